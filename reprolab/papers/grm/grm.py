"""DeepSeek-GRM: pointwise generative reward modeling with inference-time scaling (Liu et al., arXiv 2504.02495).

A generative reward model (GRM) reads a query and n >= 1 responses and *writes* its judgement:
first principles adapted to this query (criteria with weights), then a critique of each response
against them, then an integer score 1-10 per response (Sec. 3, the pointwise GRM
``{S_i} = f_extract(C)``, ``C = r_theta(x, {y_i}, {p_i})``, ``{p_i} ~ p_theta(x, {y_i})``).
Inference-time scaling (Sec. 4): sample k independent judgements at temperature 0.5 and **vote**
by summing each response's scores, ``S*_i = sum_j S_{i,j}`` (the paper's voting equation), which widens the score range
from 10 to 10k values; a **meta RM** rates each of the k judgements and only the top
``k_meta = k/2`` are voted on (Sec. 4, "Meta Reward Modeling Guided Voting").

    from reprolab.llm import load_llm
    from reprolab.papers.grm import GenerativeRewardModel, GRMConfig
    grm = GenerativeRewardModel(load_llm("qwen2.5-coder-1.5b", cache="grm.sqlite"), GRMConfig(k=8))
    r = grm.score("Write add(a, b).", ["def add(a, b): return a + b", "def add(a, b): return a - b"])
    r.votes, r.chosen, r.failed            # summed scores, argmax, samples that could not be parsed
    grm.best_of_n(query, candidates, k=8).index

Choices where the paper is vague (each flagged where it happens):
- the prompt is ours (``prompts/pointwise_v1.txt``), written after the paper's appendix format
  (principles with weights -> critique -> ``\\boxed{s_1, ..., s_n}``); prompt files are versioned;
- a sample whose output cannot be parsed into exactly n integers in [1, 10] is a *failed* sample:
  it gets no scores (never zeros), is left out of the vote, and ``RewardResult.failed`` counts it;
- each sample is generated in two calls (ours; the paper samples one text): up to the opening of
  its score list (stop at ``\\boxed{``, after "Scores:"), then the list itself (stop at ``}``, which a
  list of integers cannot contain). One call with a ``}`` stop cut critiques that quote a dict or an
  f-string in the middle. The second call continues the same text at the same temperature and seed
  (llama.cpp reuses the shared prefix), so this is the model's own judgement, not a prompt change;
- ``force_scores`` (our addition, on by default, ``False`` is the paper's plain behaviour): when a
  sample hit its token cap (``finish_reason == "length"``) or ended without a score list, we ask the
  same sample to finish with the prefix ``Scores: \\boxed{`` (a few tokens, same temperature and
  seed); forced samples are marked (``GRMSample.forced``) and counted. The study treats judgements
  at the cap as a precondition (at most 10%), so its verdicts rest on judgements that ran whole;
- ties of the vote: ``chosen`` is the first of the tied responses and ``tied`` is set; the study
  scores a tie as half right (expected accuracy of a random tie-break), see ``study.py``;
- sample i has seed ``seed + i`` (the shared LLM room's semantics), so the on-disk cache resumes a
  partial batch and k = 8 reuses the samples of k = 4; ``parallel > 1`` sends the k requests
  concurrently (for servers that batch), with the same samples in the same order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ...errors import ConfigError, MalformedFile, NonFiniteError
from ...llm import LLM, Sampling
from ...runtime import atomic_write_text, thread_map, track

PROMPTS_DIR = Path(__file__).parent / "prompts"
SCORE_PREFIX = "Scores: \\boxed{"
BOX_OPEN = "\\boxed{"
_OPENS_SCORES = re.compile(r"scores?\s*[:：]\s*\$?\s*$", re.I)  # text that stopped right before its box


def load_prompt(version: str) -> str:
    """The text of ``prompts/<version>.txt`` (e.g. ``pointwise_v1``)."""
    p = PROMPTS_DIR / f"{version}.txt"
    if not p.is_file():
        known = sorted(f.stem for f in PROMPTS_DIR.glob("*.txt"))
        raise ConfigError("prompt_version", version, f"one of {known}")
    return p.read_text(encoding="utf-8")


@dataclass(frozen=True)
class GRMConfig:
    """Sampling of the pointwise GRM; defaults follow the paper where it says."""

    k: int = 1  # judgements sampled per query (paper: 1, 2, 4, 8, 16, 32; Fig. 1/4)
    temperature: float = 0.5  # paper: temperature 0.5 for parallel sampling
    max_tokens: int = 300  # tokens per judgement (ours: CPU budget; the paper does not cap it)
    prompt_version: str = "pointwise_v1"  # file in prompts/
    seed: int = 0  # sample i uses seed + i
    min_score: int = 1  # paper: discrete scores 1-10 (Sec. 3)
    max_score: int = 10
    force_scores: bool = True  # ours: finish a truncated judgement with "Scores: \boxed{" (see module doc)
    score_tokens: int = 16  # tokens allowed for the forced score list
    prefill: str = "Principles:"  # starts the assistant's answer in the prompt's format ("" to disable)
    progress: bool = True  # a progress bar over the k samples
    parallel: int = 1  # concurrent requests for the k samples (for HTTP servers that batch; 1 = one by one)

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigError("k", self.k, "an integer >= 1")
        if not (isinstance(self.temperature, (int, float)) and self.temperature >= 0):
            raise ConfigError("temperature", self.temperature, "a number >= 0 (paper: 0.5)")
        if not isinstance(self.parallel, int) or self.parallel < 1:
            raise ConfigError("parallel", self.parallel, "an integer >= 1")
        if self.max_tokens < 1 or self.score_tokens < 1:
            raise ConfigError("max_tokens", (self.max_tokens, self.score_tokens), "integers >= 1")
        if not self.min_score < self.max_score:
            raise ConfigError("min_score", (self.min_score, self.max_score), "min_score < max_score (paper: 1, 10)")


# ----------------------------------------------------------------------------- parsing


@dataclass
class GRMSample:
    """One sampled judgement: the text, its parts, and the scores (None when it failed)."""

    index: int  # sample number i (seed = config.seed + i)
    text: str
    principles: str = ""
    critique: str = ""
    weights: list[tuple[str, float]] = field(default_factory=list)  # (principle, weight %) as written
    scores: list[int] | None = None
    failure: str | None = None  # why it failed: "no_scores", "wrong_count", "out_of_range", "not_integer"
    forced: bool = False  # scores came from the forced completion
    finish_reason: str = "stop"

    @property
    def ok(self) -> bool:
        return self.scores is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_SCORES_LINE = re.compile(r"Scores?\s*[:：]\s*\[?([0-9 ,;/.\-]+)\]?", re.I)
_WEIGHT = re.compile(r"([^;\n]+?)\s*\(\s*(\d+(?:\.\d+)?)\s*%\s*\)")


def _section(text: str, name: str, following: Sequence[str]) -> str:
    m = re.search(rf"{name}\s*:", text, flags=re.I)
    if not m:
        return ""
    rest = text[m.end():]
    ends = [e.start() for f in following for e in [re.search(rf"{f}\s*:", rest, flags=re.I)] if e]
    return rest[: min(ends)].strip() if ends else rest.strip()


def parse_scores(blob: str, n: int, lo: int = 1, hi: int = 10) -> tuple[list[int] | None, str | None]:
    """The n integer scores in ``blob`` (the inside of \\boxed{} or a "Scores:" line).
    Returns (scores, None) or (None, failure reason); never guesses a missing score."""
    parts = [p for p in re.split(r"[,;\s]+", blob.strip()) if p]
    if not parts:
        return None, "no_scores"
    vals = []
    for p in parts:
        p = p.strip(".")
        if not re.fullmatch(r"-?\d+", p):
            return None, "not_integer"
        vals.append(int(p))
    if len(vals) != n:
        return None, "wrong_count"
    if any(v < lo or v > hi for v in vals):
        return None, "out_of_range"
    return vals, None


def parse_judgement(text: str, n: int, lo: int = 1, hi: int = 10, index: int = 0) -> GRMSample:
    """Split a judgement into principles, critique and scores (the last ``\\boxed{...}``; else a
    "Scores:" line). A judgement without exactly n integers in [lo, hi] is a failed sample."""
    s = GRMSample(index=index, text=text)
    s.principles = _section(text, "Principles", ["Critique", "Scores"])
    s.critique = _section(text, "Critique", ["Scores"])
    s.weights = [(a.strip(" -*:"), float(w)) for a, w in _WEIGHT.findall(s.principles)]
    boxed = _BOXED.findall(text)
    if boxed:
        s.scores, s.failure = parse_scores(boxed[-1], n, lo, hi)
    else:
        lines = _SCORES_LINE.findall(text)
        s.scores, s.failure = parse_scores(lines[-1], n, lo, hi) if lines else (None, "no_scores")
    return s


# ----------------------------------------------------------------------------- voting


def vote(samples: Sequence[GRMSample], n: int, use: Sequence[int] | None = None) -> list[int]:
    """Voting: S*_i = sum over the used samples j of S_{i,j}; failed samples are skipped, not zeros."""
    idx = range(len(samples)) if use is None else use
    totals = [0] * n
    for j in idx:
        s = samples[j]
        if s.scores is None:
            continue
        for i, v in enumerate(s.scores):
            totals[i] += v
    return totals


def meta_select(ratings: Sequence[float], valid: Sequence[bool], k_meta: int) -> list[int]:
    """Indices of the top ``k_meta`` valid samples by meta-RM rating (ties: the earlier sample);
    fewer when fewer are valid (paper Sec. 4: keep the k_meta best of k, k_meta = k/2)."""
    if k_meta < 1:
        raise ConfigError("k_meta", k_meta, "an integer >= 1")
    cand = [j for j in range(len(ratings)) if valid[j]]
    cand.sort(key=lambda j: (-ratings[j], j))
    return sorted(cand[:k_meta])


@dataclass
class RewardResult:
    """What one call of :meth:`GenerativeRewardModel.score` found."""

    n_responses: int
    samples: list[GRMSample]
    used: list[int]  # samples that were voted on (all valid ones, or the meta RM's top k_meta)
    votes: list[int]  # summed scores per response (voting)
    meta_ratings: list[float] | None = None

    @property
    def failed(self) -> int:
        return sum(not s.ok for s in self.samples)

    @property
    def valid(self) -> int:
        return len(self.samples) - self.failed

    @property
    def chosen(self) -> int | None:
        """Index of the response with the highest vote (the first on a tie); None if no sample parsed."""
        if not self.used:
            return None
        return max(range(self.n_responses), key=lambda i: (self.votes[i], -i))

    @property
    def tied(self) -> bool:
        """More than one response shares the top vote (or nothing parsed)."""
        return not self.used or self.votes.count(max(self.votes)) > 1

    @property
    def rewards(self) -> list[float]:
        """Mean score per response over the used samples (NaN-free: 0 when nothing parsed, see ``used``)."""
        return [v / len(self.used) for v in self.votes] if self.used else [0.0] * self.n_responses

    def to_json(self) -> dict[str, Any]:
        return {"n_responses": self.n_responses, "votes": self.votes, "used": self.used, "chosen": self.chosen,
                "tied": self.tied, "failed": self.failed, "meta_ratings": self.meta_ratings,
                "samples": [s.to_json() for s in self.samples]}


class MetaRM(Protocol):
    """Rates sampled judgements (higher = more likely right). Implementations: :class:`LLMJudgeMetaRM`
    here, :class:`reprolab.papers.grm.meta_rm.ClassifierMetaRM` (MiniLM + logistic regression)."""

    def rate(self, query: str, responses: Sequence[str], samples: Sequence[GRMSample]) -> list[float]: ...


@dataclass
class BestOfN:
    index: int | None
    candidate: str | None
    result: RewardResult


class GenerativeRewardModel:
    """The pointwise GRM over any backend of :mod:`reprolab.llm` (llama.cpp, transformers, HTTP)."""

    def __init__(self, llm: LLM, config: GRMConfig | None = None):
        self.llm = llm
        self.config = config or GRMConfig()
        self.template = load_prompt(self.config.prompt_version)

    # -- prompt --
    def messages(self, query: str, responses: Sequence[str]) -> list[dict[str, str]]:
        _check_inputs(query, responses)
        blocks = "\n\n".join(f"#### Response {i + 1} ####\n{r.strip()}" for i, r in enumerate(responses))
        n = len(responses)
        slots = ", ".join(f"s{i + 1}" for i in range(n))
        words = ", ".join(f"s{i + 1} is the score of Response {i + 1}" for i in range(n))
        return [{"role": "user", "content": self.template.format(query=query.strip(), responses=blocks, n=n, slots=slots, slot_words=words)}]

    # -- sampling --
    def sample(self, query: str, responses: Sequence[str], k: int | None = None) -> list[GRMSample]:
        """k judgements at the configured temperature, sample i with seed ``seed + i`` (cached one by one)."""
        cfg = self.config
        k = cfg.k if k is None else k
        if not isinstance(k, int) or k < 1:
            raise ConfigError("k", k, "an integer >= 1")
        msgs = self.messages(query, responses)
        n = len(responses)
        # Two calls per sample (ours, issue 19): the judgement runs until it opens its score list
        # (stop at "\boxed{", a string no principle or critique needs), then the same sample writes the
        # list inside the box (stop at "}", which cannot occur in a list of integers). A stop at "}" in
        # one call cut critiques that quote a dict or an f-string.
        base = Sampling(max_tokens=cfg.max_tokens, temperature=cfg.temperature, n=k, seed=cfg.seed, stop=(BOX_OPEN,))

        def finish(text: str, i: int) -> str:
            prompt = self.llm.format_chat(msgs) + text
            (f,) = self.llm.complete(prompt, Sampling(max_tokens=cfg.score_tokens, temperature=cfg.temperature,
                                                      seed=cfg.seed + i, stop=("}",)))
            return text + f.text + "}"

        def one(i: int) -> GRMSample:
            (c,) = self.llm.chat(msgs, base.one(i), prefill=cfg.prefill)
            text = cfg.prefill + c.text
            if c.finish_reason == "stop" and _OPENS_SCORES.search(text):
                # the model stopped where it opens its box (after "Scores:"): its own score list follows
                text = finish(text + BOX_OPEN, i)
            s = parse_judgement(text, n, cfg.min_score, cfg.max_score, index=i)
            s.finish_reason = c.finish_reason
            if s.failure == "no_scores" and cfg.force_scores:
                # ours (module doc): a judgement that hit the token cap or ended without a score list is
                # asked to finish with one; marked forced
                text = finish(text.rstrip() + "\n" + SCORE_PREFIX, i)
                scores, failure = parse_scores(text.rsplit(BOX_OPEN, 1)[1].rstrip("}"), n, cfg.min_score, cfg.max_score)
                s.text = text
                s.scores, s.failure, s.forced = scores, failure, True
            return s

        # parallel requests when cfg.parallel > 1 (an HTTP server batches them; llama.cpp serialises them behind its lock)
        return thread_map(one, range(k), cfg.parallel, f"grm: {k} judgements" if cfg.progress and k > 1 else None)

    def score(self, query: str, responses: Sequence[str], k: int | None = None, meta_rm: MetaRM | None = None,
              k_meta: int | None = None) -> RewardResult:
        """Sample k judgements and vote (sum of scores); with ``meta_rm``, vote over its top ``k_meta`` (default k/2)."""
        samples = self.sample(query, responses, k)
        return self.vote(query, responses, samples, meta_rm=meta_rm, k_meta=k_meta)

    def vote(self, query: str, responses: Sequence[str], samples: Sequence[GRMSample], meta_rm: MetaRM | None = None,
             k_meta: int | None = None) -> RewardResult:
        """Vote over already sampled judgements (plain, or guided by ``meta_rm``)."""
        samples = list(samples)
        n = len(responses)
        valid = [s.ok for s in samples]
        ratings = None
        if meta_rm is None:
            used = [j for j, v in enumerate(valid) if v]
        else:
            km = max(1, len(samples) // 2) if k_meta is None else k_meta
            ratings = [float(x) for x in meta_rm.rate(query, responses, samples)]
            if len(ratings) != len(samples) or any(math.isnan(x) for x in ratings):
                raise NonFiniteError("meta-RM ratings", ratings, fix="the meta RM must return one finite (or -inf) rating per sample")
            used = meta_select(ratings, valid, km)
        return RewardResult(n, samples, used, vote(samples, n, used), ratings)

    # -- uses --
    def best_of_n(self, query: str, candidates: Sequence[str], k: int | None = None, meta_rm: MetaRM | None = None) -> BestOfN:
        """Best-of-N selection: all candidates judged together, the highest vote wins (first on a tie)."""
        r = self.score(query, candidates, k=k, meta_rm=meta_rm)
        i = r.chosen
        return BestOfN(i, candidates[i] if i is not None else None, r)

    def reward_function(self, k: int | None = None) -> Callable[..., list[float]]:
        """A reward function in TRL's ``reward_funcs`` shape: ``f(prompts, completions, **kw) -> list[float]``,
        each completion scored alone (pointwise, n = 1) as its mean score over k samples (0.0 if all failed)."""

        def reward(prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float]:
            return [self.score(_text(p), [_text(c)], k=k).rewards[0] for p, c in zip(prompts, completions)]

        return reward


def _text(x: Any) -> str:
    """A plain string, or the content of the last message of a conversational list (TRL's two formats)."""
    if isinstance(x, str):
        return x
    if isinstance(x, list) and x and isinstance(x[-1], dict) and isinstance(x[-1].get("content"), str):
        return x[-1]["content"]
    raise ConfigError("text", x if len(repr(x)) < 80 else type(x).__name__, "a string or a list of {'role', 'content'} messages")


def _check_inputs(query: str, responses: Sequence[str]) -> None:
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("query", query, "a non-empty string")
    if isinstance(responses, str) or len(responses) < 1 or not all(isinstance(r, str) for r in responses):
        raise ConfigError("responses", responses if isinstance(responses, str) else [type(r).__name__ for r in responses],
                          "a non-empty list of strings")


# ----------------------------------------------------------------------------- judge a preference set


def judge_preferences(grm: GenerativeRewardModel, in_path: str | Path, out_path: str | Path, k: int | None = None,
                      meta_rm: MetaRM | None = None, skip_ties: bool = True) -> dict[str, int]:
    """Label a preference set: JSONL in, JSONL out with TRL's fields (``prompt``, ``chosen``, ``rejected``).

    Each input row has ``prompt`` and two responses as ``responses: [a, b]``, ``response_a``/
    ``response_b``, or ``chosen``/``rejected`` (relabelling an existing set: the output adds
    ``agrees_with_input``). Strings or conversational lists are accepted, and the output keeps the
    input's shape (a conversational completion stays a list). A row whose samples all failed to parse
    is never written (``all_failed`` counts it); a tie is dropped when ``skip_ties`` (``ties`` counts
    it), else written with ``tie: true``. Written atomically."""
    rows_out, counts = [], {"rows": 0, "written": 0, "ties": 0, "all_failed": 0, "failed_samples": 0}
    from .data import read_lines

    lines = read_lines(in_path)
    for ln, line in enumerate(track(lines, "grm: judging preference pairs")):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            prompt = row["prompt"]
            if "responses" in row:
                raw = list(row["responses"])
            elif "response_a" in row:
                raw = [row["response_a"], row["response_b"]]
            else:
                raw = [row["chosen"], row["rejected"]]
            if len(raw) != 2:
                raise ValueError(f"{len(raw)} responses, expected 2")
            query, resp = _text(prompt), [_text(r) for r in raw]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, ConfigError) as e:
            raise MalformedFile(str(in_path), f"line {ln + 1}: {type(e).__name__}: {e}",
                                fix='give each line {"prompt": ..., "responses": [a, b]} or prompt/chosen/rejected') from None
        counts["rows"] += 1
        r = grm.score(query, resp, k=k, meta_rm=meta_rm)
        counts["failed_samples"] += r.failed
        if not r.used:
            counts["all_failed"] += 1
        elif r.tied:
            counts["ties"] += 1
        if not r.used:  # no parsed judgement at all: nothing to write, whatever skip_ties says (counted above)
            continue
        if skip_ties and r.tied:
            continue
        c = r.chosen if r.chosen is not None else 0
        out = {"prompt": prompt, "chosen": raw[c], "rejected": raw[1 - c], "scores": r.votes, "k": len(r.samples),
               "failed": r.failed, "tie": r.tied}
        if "chosen" in row and "responses" not in row and "response_a" not in row:
            out["agrees_with_input"] = c == 0
        rows_out.append(out)
    counts["written"] = len(rows_out)
    atomic_write_text(out_path, "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in rows_out))
    return counts


# ----------------------------------------------------------------------------- the prompted meta RM


class LLMJudgeMetaRM:
    """Meta RM as a prompted LLM judge: rating = ln p("Yes") - ln p("No") after ``prompts/meta_judge_v1.txt``
    (the paper trains its meta RM, Sec. 4; this is the untrained, prompted variant). A failed sample
    gets -inf (it is never kept)."""

    def __init__(self, llm: LLM, prompt_version: str = "meta_judge_v1"):
        self.llm = llm
        self.template = load_prompt(prompt_version)

    def rate(self, query: str, responses: Sequence[str], samples: Sequence[GRMSample]) -> list[float]:
        blocks = "\n\n".join(f"#### Response {i + 1} ####\n{r.strip()}" for i, r in enumerate(responses))
        out = []
        for s in samples:
            if not s.ok:
                out.append(float("-inf"))
                continue
            msg = [{"role": "user", "content": self.template.format(query=query.strip(), responses=blocks, n=len(responses),
                                                                    evaluation=s.text.strip())}]
            lp = self.llm.choice_logprobs(self.llm.format_chat(msg), ["Yes", "No"])
            out.append(lp["Yes"] - lp["No"])
        return out
