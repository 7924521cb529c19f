"""Synthetic visual question answering on shapes scenes, with exact one-word answers.

Built on :mod:`reprolab.data.shapes` (``random_shape`` / ``render_scene``): every scene is a
list of :class:`ShapeSpec` whose attributes are known, so every answer is exact.

    from reprolab.data.vqa_shapes import VQAConfig, make_vqa
    ds = make_vqa(2000, VQAConfig(image_size=32), seed=0)
    ds.images[i]      # (3, H, W) float32 in [0, 1]
    ds.questions[i]   # "what colour is the circle ?"
    ds.answers[i]     # "red"   (always one word of ``answer_vocabulary()``)
    ds.kinds[i]       # "colour" | "count" | "position" | "relation" (the default four), or one of
                      # RELATIONAL_KINDS when asked for: VQAConfig(kinds=("count_shape", "compare", ...))

Question kinds (each drawn with equal probability among ``config.kinds``; a scene that cannot host
a kind, e.g. a relation question in a one-object scene, draws another kind):

- ``colour``: ``what colour is the <shape> ?`` about a shape that occurs once -> a colour;
- ``count``: ``how many shapes ?`` or ``how many <colour> shapes ?`` -> ``zero`` .. ``four``;
- ``position``: ``where is the <colour> <shape> ?`` -> the quadrant of its centre
  (``top-left`` ...; objects whose centre is within ``margin`` of a quadrant border are not asked about);
- ``relation``: ``is the <colour> <shape> left of|right of|above|below the <colour> <shape> ?``
  -> ``yes`` / ``no``, asked only when the two centres differ by more than ``margin`` along that axis.

Relational kinds (not in the default set; each needs several objects of the scene at once, so a
per-patch feature alone cannot answer it):

- ``count_shape``: ``how many circles ?`` -> ``zero`` .. ``four`` (shape is a property of several
  patches of a small image, unlike colour);
- ``compare``: ``are there more <colour> shapes than <colour> shapes ?`` -> ``yes`` / ``no``, asked
  only when the two counts differ (so yes and no are equally likely);
- ``same_colour``: ``is the <shape> the same colour as the <shape> ?`` about two shapes that each occur
  once -> ``yes`` / ``no``; the answer is drawn first (50/50) and a pair that gives it is sought (when the
  scene has none, another kind is drawn, so "no" stays more frequent: pairs of one colour are rarer);
- ``extreme``: ``what colour is the leftmost|rightmost|topmost|bottommost shape ?`` -> a colour, asked
  only in scenes of two or more objects where the extreme one leads the next by more than ``margin``.

Scenes have between ``objects[0]`` and ``objects[1]`` objects with distinct (colour, shape)
pairs, placed by rejection so their bounding circles do not overlap, solid (no texture). The
vocabularies can be restricted (``shapes=``, ``colours=``, ``sizes=``) to make a small model's job
easier. Everything is seeded by one ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .shapes import COLOURS, QUADRANTS, SHAPES, SIZE_RADIUS, SIZES, ShapeSpec, random_shape, render_scene

KINDS = ("colour", "count", "position", "relation")  # the default set
RELATIONAL_KINDS = ("count_shape", "compare", "same_colour", "extreme")
ALL_KINDS = KINDS + RELATIONAL_KINDS
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses", "diamond": "diamonds", "ring": "rings"}
EXTREMES = ("leftmost", "rightmost", "topmost", "bottommost")
NUMBERS = ("zero", "one", "two", "three", "four")
RELATIONS = ("left of", "right of", "above", "below")


@dataclass(frozen=True)
class VQAConfig:
    image_size: int = 32  # pixels per side
    objects: tuple[int, int] = (1, 3)  # (min, max) objects per scene
    shapes: tuple[str, ...] = ("circle", "square", "triangle")  # subset of shapes.SHAPES
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")  # subset of shapes.COLOURS
    sizes: tuple[str, ...] = ("medium", "large")  # subset of shapes.SIZES
    kinds: tuple[str, ...] = KINDS  # question kinds to draw from
    margin: float = 0.08  # minimum centre distance to a quadrant border / between related objects

    def __post_init__(self) -> None:
        if int(self.image_size) < 16:
            raise ConfigError("image_size", self.image_size, "an integer >= 16")
        lo, hi = self.objects
        if not (1 <= lo <= hi <= len(NUMBERS) - 1):
            raise ConfigError("objects", self.objects, f"(min, max) with 1 <= min <= max <= {len(NUMBERS) - 1}")
        for name, vocab in (("shapes", SHAPES), ("colours", COLOURS), ("sizes", SIZES), ("kinds", ALL_KINDS)):
            vals = getattr(self, name)
            if not vals or any(v not in vocab for v in vals):
                raise ConfigError(name, vals, f"a non-empty tuple drawn from {', '.join(vocab)}")
        if hi > len(self.shapes) * len(self.colours):
            raise ConfigError("objects", self.objects, f"at most {len(self.shapes) * len(self.colours)} objects (distinct colour-shape pairs)")
        if not (0.0 <= self.margin < 0.25):
            raise ConfigError("margin", self.margin, "a number in [0, 0.25)")


def question_vocabulary(config: VQAConfig | None = None) -> list[str]:
    """Every word a question can contain (whitespace-separated tokens), sorted."""
    words = {"what", "colour", "is", "the", "how", "many", "shapes", "where", "?", "of", "left", "right", "above", "below"}
    words |= {"are", "there", "more", "than", "same", "as", "shape"} | set(EXTREMES) | set(PLURALS.values())  # relational kinds
    words |= set(SHAPES) | set(COLOURS)
    return sorted(words)


def answer_vocabulary() -> list[str]:
    """Every possible answer (one word each), in a fixed order."""
    return [*COLOURS, *NUMBERS, *QUADRANTS, "yes", "no"]


@dataclass
class VQADataset:
    images: np.ndarray  # (N, 3, H, W) float32 in [0, 1]
    questions: list[str]
    answers: list[str]
    kinds: list[str]
    scenes: list[list[ShapeSpec]]
    config: VQAConfig
    seed: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.questions)

    def subset(self, idx) -> VQADataset:
        idx = [int(i) for i in idx]
        return VQADataset(self.images[idx], [self.questions[i] for i in idx], [self.answers[i] for i in idx], [self.kinds[i] for i in idx], [self.scenes[i] for i in idx], self.config, self.seed)

    def chance_accuracy(self) -> dict[str, float]:
        """Accuracy of always answering each kind's most frequent answer (the majority baseline)."""
        out, hits = {}, 0
        for k in sorted(set(self.kinds)):
            ans = [a for a, kk in zip(self.answers, self.kinds) if kk == k]
            best = max(ans.count(a) for a in set(ans))
            out[k] = best / len(ans)
            hits += best
        out["all"] = hits / len(self.answers)
        return out


def _scene(rng: np.random.Generator, cfg: VQAConfig, max_tries: int = 60) -> list[ShapeSpec]:
    want = int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))
    placed: list[ShapeSpec] = []
    for _ in range(want):
        for _ in range(max_tries):
            cand = random_shape(rng, texture=False, shape=cfg.shapes[rng.integers(len(cfg.shapes))], colour=cfg.colours[rng.integers(len(cfg.colours))], size=cfg.sizes[rng.integers(len(cfg.sizes))])
            if any((cand.shape, cand.colour) == (o.shape, o.colour) for o in placed):
                continue
            rc = SIZE_RADIUS[cand.size]
            if all((cand.cx - o.cx) ** 2 + (cand.cy - o.cy) ** 2 >= (rc + SIZE_RADIUS[o.size]) ** 2 for o in placed):
                placed.append(cand)
                break
    return placed


def _ask(rng: np.random.Generator, scene: list[ShapeSpec], kind: str, cfg: VQAConfig) -> tuple[str, str] | None:
    """One (question, answer) of ``kind`` about ``scene``, or None if the scene cannot host it."""
    m = cfg.margin
    if kind == "colour":
        unique = [o for o in scene if sum(p.shape == o.shape for p in scene) == 1]
        if not unique:
            return None
        o = unique[rng.integers(len(unique))]
        return f"what colour is the {o.shape} ?", o.colour
    if kind == "count":
        if rng.random() < 0.5:
            return "how many shapes ?", NUMBERS[len(scene)]
        c = cfg.colours[rng.integers(len(cfg.colours))]
        return f"how many {c} shapes ?", NUMBERS[sum(o.colour == c for o in scene)]
    if kind == "position":
        ok = [o for o in scene if abs(o.cx - 0.5) > m and abs(o.cy - 0.5) > m]
        if not ok:
            return None
        o = ok[rng.integers(len(ok))]
        return f"where is the {o.colour} {o.shape} ?", o.quadrant
    if kind == "relation":
        if len(scene) < 2:
            return None
        i, j = rng.choice(len(scene), size=2, replace=False)
        a, b = scene[int(i)], scene[int(j)]
        rel = RELATIONS[rng.integers(len(RELATIONS))]
        dx, dy = a.cx - b.cx, a.cy - b.cy  # y grows downwards
        if rel in ("left of", "right of"):
            if abs(dx) <= m:
                return None
            truth = dx < 0 if rel == "left of" else dx > 0
        else:
            if abs(dy) <= m:
                return None
            truth = dy < 0 if rel == "above" else dy > 0
        return f"is the {a.colour} {a.shape} {rel} the {b.colour} {b.shape} ?", "yes" if truth else "no"
    if kind == "count_shape":
        s = cfg.shapes[rng.integers(len(cfg.shapes))]
        return f"how many {PLURALS[s]} ?", NUMBERS[sum(o.shape == s for o in scene)]
    if kind == "compare":
        i, j = rng.choice(len(cfg.colours), size=2, replace=False)
        c1, c2 = cfg.colours[int(i)], cfg.colours[int(j)]
        n1, n2 = sum(o.colour == c1 for o in scene), sum(o.colour == c2 for o in scene)
        if n1 == n2:
            return None
        return f"are there more {c1} shapes than {c2} shapes ?", "yes" if n1 > n2 else "no"
    if kind == "same_colour":
        unique = [o for o in scene if sum(p.shape == o.shape for p in scene) == 1]
        want = bool(rng.random() < 0.5)
        pairs = [(a, b) for a in unique for b in unique if a is not b and (a.colour == b.colour) == want]
        if not pairs:
            return None
        a, b = pairs[rng.integers(len(pairs))]
        return f"is the {a.shape} the same colour as the {b.shape} ?", "yes" if want else "no"
    if kind == "extreme":
        if len(scene) < 2:
            return None
        ext = EXTREMES[rng.integers(len(EXTREMES))]
        key = {"leftmost": lambda o: o.cx, "rightmost": lambda o: -o.cx, "topmost": lambda o: o.cy, "bottommost": lambda o: -o.cy}[ext]
        first, second = sorted(scene, key=key)[:2]
        if key(second) - key(first) <= m:
            return None
        return f"what colour is the {ext} shape ?", first.colour
    raise ConfigError("kind", kind, f"one of {', '.join(ALL_KINDS)}")  # pragma: no cover


def make_vqa(n: int, config: VQAConfig | None = None, seed: int = 0) -> VQADataset:
    """``n`` (image, question, answer) triples, one question per scene, seeded."""
    cfg = config or VQAConfig()
    if int(n) < 1:
        raise ConfigError("n", n, "a positive number of questions")
    rng = np.random.default_rng(seed)
    images, qs, ans, kinds, scenes = [], [], [], [], []
    while len(qs) < n:
        scene = _scene(rng, cfg)
        for _ in range(8):  # a few tries to find a kind this scene can host
            kind = cfg.kinds[rng.integers(len(cfg.kinds))]
            qa = _ask(rng, scene, kind, cfg)
            if qa is not None:
                break
        if qa is None:
            continue
        images.append(render_scene(scene, cfg.image_size))
        qs.append(qa[0])
        ans.append(qa[1])
        kinds.append(kind)
        scenes.append(scene)
    return VQADataset(np.stack(images), qs, ans, kinds, scenes, cfg, seed)
