"""A GenEval-compatible harness: GenEval's decision logic and file formats, with any detector.

GPT-ImgEval (arXiv 2504.02782) scores GPT-4o's text-to-image generations with GenEval
(Ghosh et al. 2023, github.com/djghosh13/geneval). The official evaluator needs CUDA, mmdet 2.x
(Mask2Former) and open_clip; this module keeps its decision logic exactly (from
``evaluation/evaluate_images.py`` and ``evaluation/summary_scores.py``) and takes any
:class:`reprolab.imageeval.Detector` and colour classifier.

Decision logic (:func:`evaluate`, :func:`keep_detections`), as the official code does it:

- per class, detections with score ``> threshold`` (0.3; 0.9 when the prompt's tag is
  ``counting``), most confident first, at most ``max_objects`` (16); then greedy NMS at
  ``max_overlap`` (1.0 = none, the official default; IoU with GenEval's ``+1`` pixel areas);
- ``include`` clauses are ANDed: a clause needs at least ``count`` detections of its class and
  keeps the ``count`` most confident. With ``color``, those are colour-classified and all
  ``count`` must have the colour. With ``position: [relation, group]``, every kept object is
  tested against every object of the group'th matched clause (:func:`relative_position`); a
  clause that failed leaves no target ("no target for ...");
- ``exclude`` clauses are ORed: any class with at least ``count`` kept detections fails the image.

:func:`relative_position` (A relative to B): box centres and sizes, ``offset = cA - cB``;
``revised = max(|offset| - 0.1 (size_A + size_B), 0) sign(offset)`` per axis; no relation if
both revised components are below 1e-3; else ``d = revised / |offset|`` and "left of" if
``dx < -0.5``, "right of" if ``dx > 0.5``, "above" if ``dy < -0.5``, "below" if ``dy > 0.5``
(y grows downwards).

Formats: ``evaluation_metadata.jsonl`` (one prompt per line: ``tag``, ``include``, optional
``exclude``, ``prompt``); the image folder ``NNNNN/metadata.jsonl`` (the prompt's line as one
JSON object) + ``NNNNN/samples/NNNN.png``; the results JSONL with the official fields
``filename, tag, prompt, correct, reason, metadata, details`` (``metadata`` and ``details``
are JSON strings; ``details`` maps each class to its kept ``[x1, y1, x2, y2, score]`` rows);
and ``summary_scores.py``'s numbers (:func:`summary_scores`): total images and prompts, %
correct images, % prompts with at least one correct image, per-tag accuracy in order of first
appearance, and the overall score = the unweighted mean of the tag accuracies.

Choices where the official code leaves room: images are read with EXIF transposition and
converted to RGB as the official evaluator does; folders are visited in sorted order (the
official ``os.listdir`` order is arbitrary, which changes only the row order); the ``filename``
field holds the image path as joined from the folder given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError, MalformedFile
from ...imageeval import ColourClassifier, Detection, Detector, MaskedCropColour, as_hwc_uint8, box_iou
from ...runtime import atomic_write_text, readable_file

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
RELATIONS = ("left of", "right of", "above", "below")
RESULT_FIELDS = ("filename", "tag", "prompt", "correct", "reason", "metadata", "details")


@dataclass(frozen=True)
class GenEvalConfig:
    """The official evaluator's ``--options`` and their defaults."""

    threshold: float = 0.3
    counting_threshold: float = 0.9
    max_objects: int = 16
    max_overlap: float = 1.0  # NMS IoU threshold; 1.0 = no NMS
    position_threshold: float = 0.1

    def __post_init__(self) -> None:
        for name in ("threshold", "counting_threshold", "max_overlap"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(name, v, "a number in [0, 1]")
        if self.max_objects < 1:
            raise ConfigError("max_objects", self.max_objects, "a positive number of objects per class")


# ----------------------------------------------------------------------------- formats
def check_metadata(m: Any, where: str = "the metadata") -> dict[str, Any]:
    """Validate one prompt's metadata (GenEval's line format); return it."""
    if not isinstance(m, dict) or "include" not in m or "tag" not in m or "prompt" not in m:
        raise MalformedFile(where, "a prompt line needs tag, include and prompt", fix="use GenEval's evaluation_metadata.jsonl format")
    for kind in ("include", "exclude"):
        for j, req in enumerate(m.get(kind, [])):
            if not isinstance(req, dict) or "class" not in req or not isinstance(req.get("count"), int) or req["count"] < 1:
                raise MalformedFile(where, f"{kind}[{j}] needs a class and a positive integer count", fix="use GenEval's clause format")
            if kind == "include" and "position" in req:
                rel, tgt = req["position"]
                if rel not in RELATIONS or not isinstance(tgt, int) or not 0 <= tgt < j:
                    raise MalformedFile(where, f"include[{j}].position {req['position']!r}", fix=f"[relation, index of an earlier clause], relation one of {RELATIONS}")
    return m


def read_metadata(path: str | Path) -> list[dict[str, Any]]:
    """The prompts of an ``evaluation_metadata.jsonl`` (one JSON object a line)."""
    p = readable_file(path, "GenEval metadata", "pass GenEval's prompts/evaluation_metadata.jsonl or one written by write_metadata")
    out = []
    for i, line in enumerate(p.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            m = json.loads(line)
        except json.JSONDecodeError as e:
            raise MalformedFile(f"{p}:{i + 1}", f"not JSON ({e.msg})") from None
        out.append(check_metadata(m, f"{p}:{i + 1}"))
    if not out:
        raise MalformedFile(str(p), "no prompts", fix="a JSONL file with one prompt object a line")
    return out


def write_metadata(path: str | Path, metadatas: Iterable[Mapping[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps(dict(m)) + "\n" for m in metadatas))


def load_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 (EXIF-transposed, RGB), or a typed error."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = readable_file(path, "image", "regenerate the image")
    try:
        with Image.open(p) as im:
            return as_hwc_uint8(ImageOps.exif_transpose(im).convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise MalformedFile(str(p), f"not a readable image ({e})", fix="regenerate the image") from None


def save_image(path: str | Path, image: Any) -> Path:
    """Write an image as PNG atomically."""
    import io

    from PIL import Image

    from ...runtime import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(as_hwc_uint8(image)).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


def iter_folder(imagedir: str | Path) -> Iterable[tuple[Path, dict[str, Any]]]:
    """``(image path, metadata)`` for every ``NNNNN/samples/N.png`` under ``imagedir`` (sorted)."""
    root = Path(imagedir)
    if not root.is_dir():
        raise MalformedFile(str(root), "not a folder of generated images", fix="pass the folder holding 00000/, 00001/, ...")
    for sub in sorted(root.iterdir()):
        if not sub.is_dir() or not sub.name.isdigit():
            continue
        mp = readable_file(sub / "metadata.jsonl", "GenEval prompt metadata", "write the prompt's line into NNNNN/metadata.jsonl")
        try:
            metadata = check_metadata(json.loads(mp.read_text()), str(mp))
        except json.JSONDecodeError as e:
            raise MalformedFile(str(mp), f"not JSON ({e.msg})") from None
        samples = sub / "samples"
        if not samples.is_dir():
            continue
        for img in sorted(samples.iterdir()):
            if img.is_file() and re.match(r"\d+\.png", img.name):
                yield img, metadata


# ----------------------------------------------------------------------------- decision logic
def keep_detections(detections: Iterable[Detection], tag: str, config: GenEvalConfig = GenEvalConfig()) -> dict[str, list[Detection]]:
    """Per class: score above the (tag's) threshold, most confident first, at most max_objects, NMS at max_overlap."""
    thr = config.counting_threshold if tag == "counting" else config.threshold
    by_class: dict[str, list[Detection]] = {}
    for d in detections:
        by_class.setdefault(d.label, []).append(d)
    out: dict[str, list[Detection]] = {}
    for cls, dets in by_class.items():
        order = sorted((d for d in dets if d.score > thr), key=lambda d: -d.score)[: config.max_objects]
        kept: list[Detection] = []
        while order:
            top = order.pop(0)
            kept.append(top)
            if config.max_overlap != 1:
                order = [d for d in order if box_iou(top.box, d.box) < config.max_overlap]
        if kept:
            out[cls] = kept
    return out


def relative_position(a: Detection | Sequence[float], b: Detection | Sequence[float], position_threshold: float = 0.1) -> set[str]:
    """Relations of A to B (see the module docstring)."""
    ba = np.asarray(a.box if isinstance(a, Detection) else a[:4], dtype=np.float64).reshape(2, 2)
    bb = np.asarray(b.box if isinstance(b, Detection) else b[:4], dtype=np.float64).reshape(2, 2)
    offset = ba.mean(0) - bb.mean(0)
    dim_a, dim_b = np.abs(ba[1] - ba[0]), np.abs(bb[1] - bb[0])
    revised = np.maximum(np.abs(offset) - position_threshold * (dim_a + dim_b), 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    rel = set()
    if dx < -0.5:
        rel.add("left of")
    if dx > 0.5:
        rel.add("right of")
    if dy < -0.5:
        rel.add("above")
    if dy > 0.5:
        rel.add("below")
    return rel


ColourFn = ColourClassifier | Callable[[np.ndarray, Sequence[Detection], str], list[str]]


def _classify(colour: ColourFn, image: np.ndarray, dets: Sequence[Detection], cls: str) -> list[str]:
    return colour.classify(image, dets, cls) if hasattr(colour, "classify") else colour(image, dets, cls)


def evaluate(image: np.ndarray, detected: Mapping[str, Sequence[Detection]], metadata: Mapping[str, Any], colour: ColourFn,
             config: GenEvalConfig = GenEvalConfig(), colours: Sequence[str] | None = None) -> tuple[bool, str]:
    """GenEval's ``evaluate``: ``(correct, reason)`` for kept detections (see the module docstring)."""
    correct = True
    reason: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    for req in metadata.get("include", []):
        cls = req["class"]
        matched = True
        found = list(detected.get(cls, []))[: req["count"]]
        if len(found) < req["count"]:
            correct = matched = False
            reason.append(f"expected {cls}>={req['count']}, found {len(found)}")
        else:
            if "color" in req:
                got = _classify(colour, image, found, cls)
                if len(got) != len(found):
                    raise MalformedFile("the colour classifier's output", f"{len(got)} colours for {len(found)} objects", fix="return one colour per detection")
                if got.count(req["color"]) < req["count"]:
                    correct = matched = False
                    names = colours if colours is not None else list(dict.fromkeys(got))
                    reason.append(f"expected {req['color']} {cls}>={req['count']}, found {got.count(req['color'])} {req['color']}; and "
                                  + ", ".join(f"{got.count(c)} {c}" for c in names if c in got))
            if "position" in req and matched:
                rel, group = req["position"]
                if matched_groups[group] is None:
                    correct = matched = False
                    reason.append(f"no target for {cls} to be {rel}")
                else:
                    for obj in found:
                        for target in matched_groups[group]:
                            true_rels = relative_position(obj, target, config.position_threshold)
                            if rel not in true_rels:
                                correct = matched = False
                                reason.append(f"expected {cls} {rel} target, found {' and '.join(true_rels)} target")
                                break
                        if not matched:
                            break
        matched_groups.append(found if matched else None)
    for req in metadata.get("exclude", []):
        cls = req["class"]
        if len(detected.get(cls, [])) >= req["count"]:
            correct = False
            reason.append(f"expected {cls}<{req['count']}, found {len(detected[cls])}")
    return correct, "\n".join(reason)


def evaluate_image(image: Any, metadata: Mapping[str, Any], detector: Detector, colour: ColourFn | None = None, *,
                   filename: str = "", image_id: Any = None, config: GenEvalConfig = GenEvalConfig()) -> dict[str, Any]:
    """One results row (the official fields) for an image array or file."""
    img = load_image(image) if isinstance(image, (str, Path)) else as_hwc_uint8(image)
    filename = filename or (str(image) if isinstance(image, (str, Path)) else "")
    dets = detector.detect(img, image_id=image_id if image_id is not None else filename or None)
    if not isinstance(dets, (list, tuple)) or not all(isinstance(d, Detection) for d in dets):
        raise MalformedFile("the detector's output", f"{type(dets).__name__}", fix="a detector returns a list of reprolab.imageeval.Detection")
    kept = keep_detections(dets, metadata["tag"], config)
    ok, reason = evaluate(img, kept, metadata, colour if colour is not None else MaskedCropColour(), config)
    return {"filename": filename, "tag": metadata["tag"], "prompt": metadata["prompt"], "correct": bool(ok), "reason": reason,
            "metadata": json.dumps(dict(metadata)), "details": json.dumps({k: [d.row() for d in v] for k, v in kept.items()})}


def evaluate_folder(imagedir: str | Path, detector: Detector, colour: ColourFn | None = None, *, outfile: str | Path | None = None,
                    config: GenEvalConfig = GenEvalConfig()) -> list[dict[str, Any]]:
    """Evaluate every image of a GenEval folder; write the results JSONL to ``outfile`` (atomic) if given."""
    from ...runtime import track

    items = list(iter_folder(imagedir))
    if not items:
        raise MalformedFile(str(imagedir), "no NNNNN/samples/N.png images", fix="fill the folder first (fill_folder or GenEval's generator)")
    rows = [evaluate_image(p, m, detector, colour, filename=str(p), config=config) for p, m in track(items, "GenEval evaluation", total=len(items))]
    if outfile is not None:
        write_results(outfile, rows)
    return rows


def write_results(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> Path:
    return atomic_write_text(path, "".join(json.dumps({k: r[k] for k in RESULT_FIELDS}) + "\n" for r in rows))


def read_results(path: str | Path) -> list[dict[str, Any]]:
    p = readable_file(path, "GenEval results", "pass the results.jsonl written by evaluate_folder or GenEval's evaluate_images.py")
    rows = []
    for i, line in enumerate(p.read_text().splitlines()):
        if line.strip():
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise MalformedFile(f"{p}:{i + 1}", f"not JSON ({e.msg})") from None
            missing = [k for k in ("tag", "correct", "metadata") if k not in r]
            if missing:
                raise MalformedFile(f"{p}:{i + 1}", f"missing fields {missing}", fix=f"rows carry {', '.join(RESULT_FIELDS)}")
            rows.append(r)
    return rows


def summary_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``summary_scores.py``'s numbers: images, prompts, % correct images/prompts, per-tag accuracy, overall."""
    if not rows:
        raise ConfigError("rows", "no results", "at least one evaluated image")
    by_prompt: dict[str, list[bool]] = {}
    by_tag: dict[str, list[bool]] = {}
    for r in rows:
        by_prompt.setdefault(r["metadata"], []).append(bool(r["correct"]))
        by_tag.setdefault(r["tag"], []).append(bool(r["correct"]))
    tags = {t: float(np.mean(v)) for t, v in by_tag.items()}
    return {
        "total_images": len(rows),
        "total_prompts": len(by_prompt),
        "correct_images": float(np.mean([bool(r["correct"]) for r in rows])),
        "correct_prompts": float(np.mean([any(v) for v in by_prompt.values()])),
        "tags": tags,
        "tag_counts": {t: [int(sum(v)), len(v)] for t, v in by_tag.items()},
        "overall": float(np.mean(list(tags.values()))),
    }


def format_summary(s: Mapping[str, Any]) -> str:
    """The text ``summary_scores.py`` prints."""
    lines = ["Summary", "=======", f"Total images: {s['total_images']}", f"Total prompts: {s['total_prompts']}",
             f"% correct images: {s['correct_images']:.2%}", f"% correct prompts: {s['correct_prompts']:.2%}", "",
             "Task breakdown", "=============="]
    for t, v in s["tags"].items():
        k, n = s["tag_counts"][t]
        lines.append(f"{t:<16} = {v:.2%} ({k} / {n})")
    lines += ["", f"Overall score (avg. over tasks): {s['overall']:.5f}"]
    return "\n".join(lines)
