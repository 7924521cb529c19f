"""GenEval's prompt generator on the shapes vocabulary, and exact renders of each prompt's scene.

:func:`make_prompts` follows GenEval's ``prompts/create_prompts.py`` (tags, clause structure,
prompt wording, ``exclude`` of ``count + 1`` for counting, two distinct classes for two_object
and position, two distinct classes and colours for color_attr, counts 2-4) with the 6 shapes of
:mod:`reprolab.data.shapes` as classes and its 8 colours. Choice (the vocabulary is small): the
per-tag numbers are GenEval's official ones (80 / 99 / 80 / 94 / 100 / 100 = 553 at ``scale=1``)
and repeated prompts are *not* de-duplicated (GenEval de-duplicates; with 6 classes that would
leave 6 single-object prompts), so each line is its own unit with its own image seeds.

:func:`render_prompt` draws an image of the prompt's scene with exactly known objects: medium
solid shapes (small for counting, so that 5 fit), non-overlapping, placed at random (positions by rejection until the relation holds
under GenEval's rule with a margin). ``error`` plants a known mistake of the tag's kind (a wrong
or missing object, a count off by one, a wrong colour, a violated relation, swapped colours).
:func:`exact_verdict` applies the harness's decision logic to the true objects (exact boxes,
confidence 1, true colours), which is the verdict a perfect detector would give.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...data.shapes import COLOURS, SHAPES, SIZE_RADIUS, ShapeSpec, _grid, _shape_mask, render_scene
from ...errors import ConfigError
from ...imageeval import Detection, as_hwc_uint8
from .geneval import RELATIONS, TAGS, GenEvalConfig, evaluate, keep_detections, relative_position

OFFICIAL_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
SIZE = "medium"
COUNTING_SIZE = "small"  # up to 5 objects (4 + a planted extra) must fit
SIZES_USED = (COUNTING_SIZE, SIZE)
GAP = 0.06  # least distance between bounding circles (the ShapesDetector default)


def _article(name: str) -> str:
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _plural(name: str) -> str:
    return f"{name}es" if name[-1] == "s" else f"{name}s"


def make_prompt(tag: str, rng: np.random.Generator, classes: Sequence[str] = SHAPES, colours: Sequence[str] = COLOURS) -> dict[str, Any]:
    """One GenEval prompt line of ``tag`` (create_prompts.py's wording and clauses)."""
    n = len(classes)
    if tag == "single_object":
        c = classes[rng.integers(n)]
        return {"tag": tag, "include": [{"class": c, "count": 1}], "prompt": f"a photo of {_article(c)}"}
    if tag == "two_object":
        a, b = (classes[i] for i in rng.choice(n, 2, replace=False))
        return {"tag": tag, "include": [{"class": a, "count": 1}, {"class": b, "count": 1}], "prompt": f"a photo of {_article(a)} and {_article(b)}"}
    if tag == "counting":
        c, k = classes[rng.integers(n)], int(rng.integers(2, 5))
        return {"tag": tag, "include": [{"class": c, "count": k}], "exclude": [{"class": c, "count": k + 1}], "prompt": f"a photo of {NUMBERS[k]} {_plural(c)}"}
    if tag == "colors":
        c, col = classes[rng.integers(n)], colours[rng.integers(len(colours))]
        return {"tag": tag, "include": [{"class": c, "count": 1, "color": col}], "prompt": f"a photo of {_article(col)} {c}"}
    if tag == "position":
        a, b = (classes[i] for i in rng.choice(n, 2, replace=False))
        rel = RELATIONS[rng.integers(len(RELATIONS))]
        return {"tag": tag, "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
                "prompt": f"a photo of {_article(a)} {rel} {_article(b)}"}
    if tag == "color_attr":
        a, b = (classes[i] for i in rng.choice(n, 2, replace=False))
        ca, cb = (colours[i] for i in rng.choice(len(colours), 2, replace=False))
        return {"tag": tag, "include": [{"class": a, "count": 1, "color": ca}, {"class": b, "count": 1, "color": cb}],
                "prompt": f"a photo of {_article(ca)} {a} and {_article(cb)} {b}"}
    raise ConfigError("tag", tag, f"one of {', '.join(TAGS)}")


def make_prompts(scale: float = 1.0, seed: int = 43, per_tag: int | None = None) -> list[dict[str, Any]]:
    """GenEval-style prompts: the official per-tag counts times ``scale`` (or ``per_tag`` each), in GenEval's tag order."""
    rng = np.random.default_rng(seed)
    out = []
    for tag in TAGS:
        k = per_tag if per_tag is not None else max(1, round(OFFICIAL_COUNTS[tag] * scale))
        out.extend(make_prompt(tag, rng) for _ in range(k))
    return out


# ----------------------------------------------------------------------------- exact renders
def _fits(spec: ShapeSpec, placed: Sequence[ShapeSpec]) -> bool:
    r = SIZE_RADIUS[spec.size]
    return all((spec.cx - o.cx) ** 2 + (spec.cy - o.cy) ** 2 >= (r + SIZE_RADIUS[o.size] + GAP) ** 2 for o in placed)


def _random_spec(rng: np.random.Generator, shape: str, colour: str, size: str = SIZE) -> ShapeSpec:
    r = SIZE_RADIUS[size]
    cx, cy = rng.uniform(r, 1 - r, 2)
    return ShapeSpec(shape, colour, size, float(cx), float(cy), "solid")


def object_masks(objects: Sequence[ShapeSpec], image_size: int) -> list[np.ndarray]:
    """Pixel coverage masks (> half covered) of each object, later objects on top."""
    xx, yy = _grid(image_size)
    s = xx.shape[0] // image_size
    masks = [_shape_mask(o, xx, yy).reshape(image_size, s, image_size, s).mean(axis=(1, 3)) > 0.5 for o in objects]
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            masks[i] &= ~masks[j]
    return masks


def truth_detections(objects: Sequence[ShapeSpec], image_size: int) -> list[Detection]:
    """What a perfect detector reports: each object's exact mask and box, confidence 1."""
    dets = []
    for o, m in zip(objects, object_masks(objects, image_size)):
        if not m.any():
            continue
        ys, xs = np.nonzero(m)
        dets.append(Detection(o.shape, 1.0, (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())), m))
    return dets


def exact_verdict(objects: Sequence[ShapeSpec], metadata: dict[str, Any], image_size: int, config: GenEvalConfig = GenEvalConfig()) -> bool:
    """The harness's decision on the true objects (perfect detection and colour)."""
    dets = truth_detections(objects, image_size)
    colour_of = {id(d): o.colour for d, o in zip(dets, [o for o, m in zip(objects, object_masks(objects, image_size)) if m.any()])}
    kept = keep_detections(dets, metadata["tag"], config)
    ok, _ = evaluate(np.zeros((image_size, image_size, 3), np.uint8), kept, metadata,
                     lambda img, ds, cls: [colour_of[id(d)] for d in ds], config)
    return ok


def _relation_holds(a: ShapeSpec, b: ShapeSpec, rel: str, image_size: int, margin: float) -> bool:
    da, db = truth_detections([a, b], image_size)
    rels = relative_position(da, db)
    # a margin against pixel rounding: the relation must also hold with a stricter threshold
    return rel in rels and rel in relative_position(da, db, 0.1 + margin)


def _other(rng: np.random.Generator, values: Sequence[str], *exclude: str) -> str:
    pool = [v for v in values if v not in exclude]
    return pool[rng.integers(len(pool))]


def _scene_for(metadata: dict[str, Any], rng: np.random.Generator, error: bool, image_size: int, margin: float) -> list[ShapeSpec] | None:
    tag = metadata["tag"]
    inc = metadata["include"]
    spec: list[tuple[str, str]] = []  # (shape, colour) to place
    rel = None
    if tag in ("single_object", "colors"):
        shape, colour = inc[0]["class"], inc[0].get("color") or COLOURS[rng.integers(len(COLOURS))]
        if error:
            if tag == "colors":
                colour = _other(rng, COLOURS, colour)
            else:
                shape = _other(rng, SHAPES, shape)
        spec = [(shape, colour)]
    elif tag in ("two_object", "color_attr"):
        cols = [r.get("color") or COLOURS[rng.integers(len(COLOURS))] for r in inc]
        shapes = [r["class"] for r in inc]
        if error:
            if tag == "color_attr":
                cols = cols[::-1] if rng.random() < 0.5 else [cols[0], _other(rng, COLOURS, *cols)]
            else:
                shapes[1] = _other(rng, SHAPES, *shapes)
        spec = list(zip(shapes, cols))
    elif tag == "counting":
        k = inc[0]["count"] + (int(rng.choice([-1, 1])) if error else 0)
        spec = [(inc[0]["class"], COLOURS[rng.integers(len(COLOURS))]) for _ in range(k)]
    elif tag == "position":
        target, mover = inc[0]["class"], inc[1]["class"]
        rel = inc[1]["position"][0]
        spec = [(target, COLOURS[rng.integers(len(COLOURS))]), (mover, COLOURS[rng.integers(len(COLOURS))])]
    placed: list[ShapeSpec] = []
    for j, (shape, colour) in enumerate(spec):
        for _ in range(200):
            cand = _random_spec(rng, shape, colour, COUNTING_SIZE if tag == "counting" else SIZE)
            if not _fits(cand, placed):
                continue
            if rel is not None and j == 1:
                want = rel if not error else {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}[rel]
                if not _relation_holds(cand, placed[0], want, image_size, margin):
                    continue
            placed.append(cand)
            break
        else:
            return None
    return placed


def render_prompt(metadata: dict[str, Any], rng: np.random.Generator, image_size: int = 32, error: bool = False,
                  margin: float = 0.05) -> tuple[np.ndarray, list[ShapeSpec]]:
    """An (H, W, 3) uint8 render of the prompt's scene (``error``: with a planted mistake) and its objects."""
    for _ in range(20):
        objs = _scene_for(metadata, rng, error, image_size, margin)
        if objs is not None:
            return as_hwc_uint8(render_scene(objs, image_size)), objs
    raise ConfigError("image_size", image_size, f"a size where the scene of {metadata['prompt']!r} can be placed (try 32 or more)")
