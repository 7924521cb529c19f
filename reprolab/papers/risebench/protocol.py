"""RISEBench's data format, output layout and judge protocol (official ``gpt_eval.py``: ``eval_vanilla``,
``find_image``, ``gpt_generate``; prompts of ``utils.py``, kept as versioned files in ``prompts/``).

    samples = load_samples("data/data_total.json")                       # the official JSON
    judge = VLMJudge(load_llm("http://127.0.0.1:8000/v1", model="qwen2.5-vl"))   # any OpenAI-compatible VLM
    judgements = run_judge(samples, "outputs/MyModel", judge, input_dir="data", cache="outputs/MyModel/judge.sqlite")
    table = evaluate_outputs(samples, judgements, csv_path="outputs/MyModel/MyModel_judge.csv")

Which prompt and which images each of the three judgements gets follows ``eval_vanilla`` exactly, including
two details of the official code that look accidental but define the protocol: for a spatial or logical
sample with a ``reference_img``, the *consistency* judgement compares the output with the reference image
(the code reassigns ``img1`` before building it), and a logical sample with ``reference_txt`` is judged for
reasoning on the output image alone.

The VLM judge sends what ``gpt_generate`` sends: one user turn, the text first and then the images, each
thumbnailed to at most 768 px on its longest side and sent as a base64 JPEG data URL with ``detail: "high"``,
temperature 0, ``max_tokens`` 4096. Choice: JPEG quality 75 (Pillow's default, which the official
``encode_image_to_base64`` uses) and Lanczos resampling (the official ``Image.thumbnail`` uses Pillow's
default filter; the difference is below what a judge sees).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...errors import ConfigError, MalformedFile
from ...llm import LLM, ResponseCache, Sampling, user_message
from ...runtime import track
from .scoring import CATEGORIES, JUDGE_KEYS, ScoredSample, result_table, score_samples, write_table_csv

PROMPTS_DIR = Path(__file__).parent / "prompts"
PROMPT_VERSION = "v1"
IMAGE_SUFFIXES = ("png", "jpg", "jpeg")  # find_image's order
DIMENSIONS = ("consistency", "reasoning", "plausibility")


def prompt_text(name: str, version: str = PROMPT_VERSION) -> str:
    """The judge prompt ``prompts/<name>_<version>.txt`` (e.g. ``consist``, ``logical_img``), unformatted."""
    p = PROMPTS_DIR / f"{name}_{version}.txt"
    if not p.is_file():
        known = sorted(f.stem.rsplit("_", 1)[0] for f in PROMPTS_DIR.glob(f"*_{version}.txt"))
        raise ConfigError("prompt", f"{name}_{version}", f"one of {', '.join(known)} (version {version})")
    return p.read_text(encoding="utf-8")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


@dataclass(frozen=True)
class Sample:
    """One RISEBench sample, as in ``data_total.json``: paths are relative to the input folder (``data/``)."""

    index: str
    category: str
    instruction: str
    image: str
    reference: str | None = None  # text description of the expected result
    reference_img: str | None = None  # an image of the expected result (spatial, logical)
    reference_txt: str | None = None  # a textual answer (logical)
    reasoning_img: Any = None  # present: the reasoning judge also sees the input image
    consistency_free: Any = None  # present: no consistency judgement (0.8 R + 0.2 P)
    subtask: str | None = None
    reasoning_wo_ins: bool = False  # logical reference_img samples judged without the instruction
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ConfigError(f"category of sample {self.index!r}", self.category, f"one of {', '.join(CATEGORIES)}")
        if self.category == "logical_reasoning":
            if _missing(self.reference_txt) and _missing(self.reference_img):
                raise ConfigError(f"sample {self.index!r}", "no reference_txt or reference_img", "a logical sample with one of them")
        elif self.category == "spatial_reasoning":
            if _missing(self.reference) and _missing(self.reference_img):
                raise ConfigError(f"sample {self.index!r}", "no reference or reference_img", "a spatial sample with one of them")
        elif _missing(self.reference):
            raise ConfigError(f"sample {self.index!r}", "no reference", f"a {self.category} sample with a reference description")


_KNOWN = {f for f in Sample.__dataclass_fields__ if f not in ("extra", "reasoning_wo_ins")}


def load_samples(path: str | Path) -> list[Sample]:
    """Read the official ``data_total.json`` (a list of sample objects); typed errors name the bad entry."""
    p = Path(path)
    if not p.is_file():
        raise MalformedFile(str(p), "no such file", fix="pass the path of RISEBench's data_total.json (data/ in the official repo)")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedFile(str(p), f"not JSON ({exc})", fix="pass the official data_total.json") from None
    if not isinstance(raw, list) or not raw:
        raise MalformedFile(str(p), "not a non-empty list of samples", fix="pass the official data_total.json")
    out, seen = [], set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise MalformedFile(str(p), f"entry {i} is {type(item).__name__}, not an object", fix="each sample is a JSON object")
        missing = [k for k in ("index", "category", "instruction", "image") if k not in item]
        if missing:
            raise MalformedFile(str(p), f"entry {i} lacks {', '.join(missing)}", fix="each sample has index, category, instruction, image")
        idx = str(item["index"])
        if idx in seen:
            raise MalformedFile(str(p), f"index {idx!r} appears twice", fix="indices are unique")
        seen.add(idx)
        kw = {k: item[k] for k in _KNOWN if k in item}
        kw["index"] = idx
        try:
            out.append(Sample(**kw, reasoning_wo_ins="reasoning_wo_ins" in item,
                              extra={k: v for k, v in item.items() if k not in _KNOWN and k != "reasoning_wo_ins"}))
        except ConfigError as exc:
            raise MalformedFile(str(p), f"entry {i}: {exc}", fix="fix the entry (see the official data_total.json)") from None
    return out


def find_output_image(outputs_dir: str | Path, sample: Sample) -> Path:
    """``outputs/{MODEL}/images/{category}/{index}.{png|jpg|jpeg}`` (the official ``find_image``)."""
    folder = Path(outputs_dir) / "images" / sample.category
    for suffix in IMAGE_SUFFIXES:
        p = folder / f"{sample.index}.{suffix}"
        if p.is_file():
            return p
    raise MalformedFile(str(folder / f"{sample.index}.png"), "the model's output image is missing",
                        fix=f"write the edited image of sample {sample.index!r} there (png, jpg or jpeg)")


@dataclass(frozen=True)
class JudgeRequest:
    """One judgement to ask for: the formatted prompt and its images (paths or arrays), in order."""

    sample: str
    dimension: str  # consistency | reasoning | plausibility
    prompt: str
    images: tuple[Any, ...]
    binary: bool  # logical: 0/1 instead of 1-5
    prompt_name: str


def judge_requests(sample: Sample, output_image: Any, input_image: Any = None, reference_image: Any = None,
                   version: str = PROMPT_VERSION) -> dict[str, JudgeRequest]:
    """The judgements ``eval_vanilla`` asks for this sample (dimension -> request). ``input_image`` and
    ``reference_image`` are the sample's ``image`` and ``reference_img`` (paths or arrays)."""
    ins, cat = sample.instruction, sample.category
    has_ref_img = not _missing(sample.reference_img)
    has_rea_img = not _missing(sample.reasoning_img)
    if has_ref_img and reference_image is None:
        raise ConfigError("reference_image", None, f"the reference image of sample {sample.index!r} ({sample.reference_img})")
    img1 = input_image
    req: dict[str, tuple[str, str, tuple[Any, ...]]] = {}
    if cat in ("temporal_reasoning", "causal_reasoning"):
        if has_rea_img:
            req["reasoning"] = ("reasoning_w_input", prompt_text("reasoning_w_input", version).format(instruct=ins, reference=sample.reference), (img1, output_image))
        else:
            req["reasoning"] = ("reasoning", prompt_text("reasoning", version).format(instruct=ins, reference=sample.reference), (output_image,))
        cons = ("consist", prompt_text("consist", version).format(instruct=ins))
        qual = ("generation", prompt_text("generation", version))
    elif cat == "spatial_reasoning":
        if has_ref_img:
            img1 = reference_image  # as the official code: img1 now the reference, for the consistency judge too
            req["reasoning"] = ("spatial_ref_img", prompt_text("spatial_ref_img", version).format(instruct=ins), (img1, output_image))
        elif has_rea_img:
            req["reasoning"] = ("spatial_ref_w_input", prompt_text("spatial_ref_w_input", version).format(instruct=ins, reference=sample.reference), (img1, output_image))
        else:
            req["reasoning"] = ("spatial_ref", prompt_text("spatial_ref", version).format(instruct=ins, reference=sample.reference), (output_image,))
        cons = ("spatial_cons", prompt_text("spatial_cons", version).format(instruct=ins))
        qual = ("spatial_qual", prompt_text("spatial_qual", version))
    else:  # logical_reasoning
        qual = None
        if not _missing(sample.reference_txt):
            cons = ("logical_cons_ans", prompt_text("logical_cons_ans", version).format(instruct=ins, reference=sample.reference_txt))
            req["reasoning"] = ("logical_txt", prompt_text("logical_txt", version).format(instruct=ins, reference=sample.reference_txt), (output_image,))
        else:
            img1 = reference_image
            cons = ("logical_cons", prompt_text("logical_cons", version).format(instruct=ins))
            name = "logical_img_wo_q" if sample.reasoning_wo_ins else "logical_img"
            text = prompt_text(name, version) if sample.reasoning_wo_ins else prompt_text(name, version).format(instruct=ins)
            req["reasoning"] = (name, text, (img1, output_image))
    if _missing(sample.consistency_free):
        if img1 is None:
            raise ConfigError("input_image", None, f"the input image of sample {sample.index!r} ({sample.image})")
        req["consistency"] = (cons[0], cons[1], (img1, output_image))
    if qual is not None:
        req["plausibility"] = (qual[0], qual[1], (output_image,))
    binary = cat == "logical_reasoning"
    return {d: JudgeRequest(sample.index, d, req[d][1], tuple(req[d][2]), binary and d != "plausibility", req[d][0])
            for d in DIMENSIONS if d in req}


class Judge(Protocol):
    """Anything that answers a :class:`JudgeRequest` with the judge's text (ending in a "Final Score")."""

    name: str

    def __call__(self, request: JudgeRequest) -> str: ...


class VLMJudge:
    """The official judge call on any OpenAI-compatible VLM endpoint (see the module docstring)."""

    def __init__(self, llm: LLM, *, max_side: int = 768, max_tokens: int = 4096, quality: int = 75, name: str | None = None):
        self.llm = llm
        self.max_side = max_side
        self.max_tokens = max_tokens
        self.quality = quality
        self.name = name or f"vlm:{llm.name}"

    def message(self, request: JudgeRequest) -> dict[str, Any]:
        return user_message(request.prompt, [_as_image(im) for im in request.images], max_side=self.max_side, fmt="jpeg",
                            quality=self.quality, detail="high")

    def __call__(self, request: JudgeRequest) -> str:
        out = self.llm.chat([self.message(request)], Sampling(max_tokens=self.max_tokens, temperature=0.0))
        return out[0].text.strip()


def _as_image(im: Any) -> Any:
    """Arrays in (3, H, W) float [0, 1] (our renders) become (H, W, 3) uint8; paths and uint8 arrays pass."""
    import numpy as np

    if isinstance(im, np.ndarray) and im.dtype != np.uint8:
        from ...imageeval import as_hwc_uint8

        return as_hwc_uint8(im)
    return im


def _digest(im: Any) -> str:
    import numpy as np

    h = hashlib.sha256()
    if isinstance(im, (str, Path)):
        h.update(Path(im).read_bytes())
    else:
        a = np.ascontiguousarray(im)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def judgement_key(request: JudgeRequest, judge_name: str) -> str:
    """Cache key of one judgement: sample, dimension, judge, the prompt and the images' content (so a new
    output image or prompt version is judged again, and nothing else is)."""
    blob = json.dumps([request.sample, request.dimension, judge_name, request.prompt, [_digest(i) for i in request.images]])
    return hashlib.sha256(blob.encode()).hexdigest()


def sample_requests(sample: Sample, outputs_dir: str | Path, input_dir: str | Path = "data") -> dict[str, JudgeRequest]:
    """:func:`judge_requests` for a sample of the official layout: its input and reference images under ``input_dir``,
    its output under ``outputs_dir/images/{category}/``."""
    inp = Path(input_dir)
    ref = inp / sample.reference_img if not _missing(sample.reference_img) else None
    image = inp / sample.image
    for p in (image, ref):
        if p is not None and not p.is_file():
            raise MalformedFile(str(p), "an input image of the benchmark is missing", fix="pass input_dir= the official data/ folder")
    return judge_requests(sample, find_output_image(outputs_dir, sample), image, ref)


def run_judge(samples: Sequence[Sample], outputs_dir: str | Path, judge: Judge, *, input_dir: str | Path = "data",
              cache: str | Path | ResponseCache | None = None, progress: bool = True,
              requests_for: Callable[[Sample], dict[str, JudgeRequest]] | None = None) -> dict[str, dict[str, str | None]]:
    """Judge every sample's output (``outputs_dir/images/{category}/{index}.*``); returns gpt_eval.py's
    ``{index: {"judge1": ..., "judge2": ..., "judge3": ...}}`` (``judge1`` None when consistency-free, no
    ``judge3`` for logical samples). Resumable: each judgement is stored in ``cache`` (SQLite, atomic)
    under :func:`judgement_key` as soon as it is made, and a second run asks only for the missing ones."""
    store = cache if isinstance(cache, ResponseCache) or cache is None else ResponseCache(cache)
    build = requests_for or (lambda smp: sample_requests(smp, outputs_dir, input_dir))
    plan = [(s, build(s)) for s in samples]
    out: dict[str, dict[str, str | None]] = {}
    for s, reqs in (track(plan, f"judging with {judge.name}") if progress else plan):
        texts: dict[str, str | None] = {"judge1": None}
        for dim, rq in reqs.items():
            key = judgement_key(rq, judge.name)
            text = store.get(key) if store is not None else None
            if text is None:
                text = judge(rq)
                if not isinstance(text, str):
                    raise ConfigError(f"the {judge.name} answer for {s.index}/{dim}", type(text).__name__, "a string")
                if store is not None:
                    store.put(key, text)
            texts[JUDGE_KEYS[dim]] = text
        out[s.index] = texts
    return out


def judge_batch(requests: Sequence[JudgeRequest], judge: Judge, cache: str | Path | ResponseCache, *, progress: bool = True,
                description: str = "") -> int:
    """Make every judgement of ``requests`` that ``cache`` lacks (the same cache :func:`run_judge` reads), in the
    order (prompt, sample, then as given): consecutive prompts then share their longest prefix, which a local
    backend with a KV cache (llama.cpp) does not evaluate again. Returns how many judgements were made."""
    store = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
    order = sorted(range(len(requests)), key=lambda i: (requests[i].prompt_name, requests[i].sample, i))
    todo = [requests[i] for i in order if store.get(judgement_key(requests[i], judge.name)) is None]
    for rq in (track(todo, description or f"judging with {judge.name}") if progress else todo):
        text = judge(rq)
        if not isinstance(text, str):
            raise ConfigError(f"the {judge.name} answer for {rq.sample}/{rq.dimension}", type(text).__name__, "a string")
        store.put(judgement_key(rq, judge.name), text)
    return len(todo)


def evaluate_outputs(samples: Sequence[Sample], judgements: Mapping[str, Mapping[str, str | None]], *,
                     csv_path: str | Path | None = None) -> tuple[list[ScoredSample], dict[str, tuple]]:
    """Scores per sample and the official result table (written to ``csv_path`` when given)."""
    scored = score_samples(samples, judgements)
    table = result_table(scored)
    if csv_path is not None:
        write_table_csv(table, csv_path)
    return scored, table


__all__ = ["DIMENSIONS", "Judge", "JudgeRequest", "PROMPT_VERSION", "Sample", "VLMJudge", "evaluate_outputs", "find_output_image",
           "judge_batch", "judge_requests", "judgement_key", "load_samples", "prompt_text", "run_judge", "sample_requests"]
