"""Visual math on shapes scenes: counting + arithmetic questions with golden chains of thought and exact answers.

Built on :mod:`reprolab.data.vqa_shapes` scenes (distinct colour-shape objects, known attributes). Every
token is a whitespace-separated word (:func:`vocabulary`), so a word-level tokenizer covers it.

    from reprolab.data.visual_math import VisualMathConfig, make_visual_math
    ds = make_visual_math(500, VisualMathConfig(), seed=0)
    ds.questions[i]  # "how many red shapes + how many circles ?"            (vision-dominant)
                     # "7 - how many blue shapes ?"                           (text-dominant: a number is given)
    ds.cots[i]       # "red shapes : 2 . circles : 1 . 2 + 1 = 3 . the answer is \\boxed{ 3 } ."
    ds.answers[i]    # "3"
    ds.kinds[i]      # "vision:+" | "vision:-" | "vision:x" | "text:+" | "text:-" | "text:x"

Terms counted: ``shapes`` (all), ``<colour> shapes``, ``<shape plural>``. Operations ``+``, ``-`` (the
question is drawn so the result is >= 0) and ``x``. ``ops`` restricts the kinds drawn; the usual split is a
training / validation set on ``objects=(1, 3)`` without ``vision:x`` and an out-of-distribution test on
4-object scenes with ``vision:x`` (an unseen combination of operation and question form).

A *reflection* segment ``wait , check again : <term> : <n> .`` (a re-count of the first term) can be planted in a
fraction ``reflect`` of the golden chains (the MAYE study plants it in the vanilla model's SFT data so that the
reflection metrics have something to count; the segment is correct, so it never changes the answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from .shapes import COLOURS, SHAPES, render_scene
from .vqa_shapes import PLURALS, VQAConfig, _scene

OPS = ("+", "-", "x")
KINDS = tuple(f"{form}:{op}" for form in ("vision", "text") for op in OPS)
MAX_NUMBER = 24  # numbers 0..MAX_NUMBER are words of the vocabulary
REFLECTION = "wait , check again :"


@dataclass(frozen=True)
class VisualMathConfig:
    image_size: int = 32
    objects: tuple[int, int] = (1, 3)
    shapes: tuple[str, ...] = ("circle", "square", "triangle")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    sizes: tuple[str, ...] = ("small", "medium")
    kinds: tuple[str, ...] = ("vision:+", "vision:-", "text:+", "text:-", "text:x")
    text_numbers: tuple[int, int] = (1, 6)  # the given number of text-dominant questions
    reflect: float = 0.0  # fraction of golden CoTs with a planted reflection segment

    def __post_init__(self) -> None:
        if not self.kinds or any(k not in KINDS for k in self.kinds):
            raise ConfigError("kinds", self.kinds, f"a non-empty tuple drawn from {', '.join(KINDS)}")
        if not (0.0 <= self.reflect <= 1.0):
            raise ConfigError("reflect", self.reflect, "a fraction in [0, 1]")
        lo, hi = self.text_numbers
        if not (0 <= lo <= hi and hi * 4 <= MAX_NUMBER):
            raise ConfigError("text_numbers", self.text_numbers, f"(lo, hi) with 0 <= lo <= hi <= {MAX_NUMBER // 4}")
        self.vqa  # validates objects / shapes / colours / sizes

    @property
    def vqa(self) -> VQAConfig:
        return VQAConfig(image_size=self.image_size, objects=self.objects, shapes=self.shapes, colours=self.colours, sizes=self.sizes)


def vocabulary() -> list[str]:
    """Every word a question or a chain of thought can contain."""
    words = {"how", "many", "shapes", "?", ":", ".", ",", "=", "the", "answer", "is", "\\boxed{", "}", "wait", "check", "again"}
    words |= set(OPS) | set(COLOURS) | set(PLURALS.values()) | {str(i) for i in range(MAX_NUMBER + 1)}
    return sorted(words)


@dataclass
class VisualMathDataset:
    images: np.ndarray  # (N, 3, H, W) float32 in [0, 1]
    questions: list[str]
    cots: list[str]  # golden chains of thought, ending in "\\boxed{ answer } ."
    answers: list[str]
    kinds: list[str]
    reflective: list[bool]  # whether the golden CoT carries the planted reflection segment
    config: VisualMathConfig
    seed: int
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.questions)

    def subset(self, idx) -> VisualMathDataset:
        idx = [int(i) for i in idx]
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return VisualMathDataset(self.images[idx], pick(self.questions), pick(self.cots), pick(self.answers), pick(self.kinds), pick(self.reflective), self.config, self.seed)

    def samples(self) -> list[dict]:
        """``[{"image", "question", "solution", "cot", "kind"}]``: the records a MAYE collator reads."""
        return [{"image": self.images[i], "question": self.questions[i], "solution": self.answers[i], "cot": self.cots[i], "kind": self.kinds[i]} for i in range(len(self))]


def _terms(cfg: VisualMathConfig, scene) -> list[tuple[str, int]]:
    terms = [("shapes", len(scene))]
    terms += [(f"{c} shapes", sum(o.colour == c for o in scene)) for c in cfg.colours]
    terms += [(PLURALS[s], sum(o.shape == s for o in scene)) for s in cfg.shapes]
    return terms


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _question(rng: np.random.Generator, cfg: VisualMathConfig, scene, kind: str) -> tuple[str, list[tuple[str, int]], str, int] | None:
    """(question, counted terms with their values, the arithmetic line's operands, the answer) or None."""
    form, op = kind.split(":")
    terms = _terms(cfg, scene)
    if form == "vision":
        i, j = rng.choice(len(terms), size=2, replace=False)
        (ta, a), (tb, b) = terms[int(i)], terms[int(j)]
        if op == "-" and a < b:
            return None
        return f"how many {ta} {op} how many {tb} ?", [(ta, a), (tb, b)], f"{a} {op} {b}", _apply(op, a, b)
    n = int(rng.integers(cfg.text_numbers[0], cfg.text_numbers[1] + 1))
    ta, a = terms[int(rng.integers(len(terms)))]
    if op == "-" and n < a:
        return None
    return f"{n} {op} how many {ta} ?", [(ta, a)], f"{n} {op} {a}", _apply(op, n, a)


def golden_cot(counted: list[tuple[str, int]], arithmetic: str, answer: int, reflect: bool = False) -> str:
    """``<term> : <n> .`` per counted term, [the reflection segment], ``<arithmetic> = <answer> .`` and the boxed answer."""
    parts = [f"{t} : {v} ." for t, v in counted]
    if reflect:
        t, v = counted[0]
        parts.append(f"{REFLECTION} {t} : {v} .")
    parts.append(f"{arithmetic} = {answer} .")
    parts.append(f"the answer is \\boxed{{ {answer} }} .")
    return " ".join(parts)


def make_visual_math(n: int, config: VisualMathConfig | None = None, seed: int = 0) -> VisualMathDataset:
    """``n`` (image, question, golden CoT, answer) records, one question per scene, seeded."""
    cfg = config or VisualMathConfig()
    if int(n) < 1:
        raise ConfigError("n", n, "a positive number of questions")
    rng = np.random.default_rng(seed)
    vqa = cfg.vqa
    images, qs, cots, ans, kinds, refl = [], [], [], [], [], []
    while len(qs) < n:
        scene = _scene(rng, vqa)
        if len(scene) < vqa.objects[0]:
            continue  # placement failed: draw another scene
        kind = cfg.kinds[int(rng.integers(len(cfg.kinds)))]
        got = _question(rng, cfg, scene, kind)
        if got is None:
            continue
        q, counted, arithmetic, answer = got
        r = bool(rng.random() < cfg.reflect)
        images.append(render_scene(scene, cfg.image_size))
        qs.append(q)
        cots.append(golden_cot(counted, arithmetic, answer, r))
        ans.append(str(answer))
        kinds.append(kind)
        refl.append(r)
    return VisualMathDataset(np.stack(images), qs, cots, ans, kinds, refl, cfg, seed)


__all__ = ["KINDS", "OPS", "REFLECTION", "SHAPES", "VisualMathConfig", "VisualMathDataset", "golden_cot", "make_visual_math", "vocabulary"]
