"""reprolab.data.visual_math: golden chains of thought whose arithmetic and answers are exact."""

from __future__ import annotations

import re

import pytest

from reprolab.data.visual_math import KINDS, REFLECTION, VisualMathConfig, golden_cot, make_visual_math, vocabulary
from reprolab.errors import ConfigError


def _check_cot(cot: str, answer: str) -> None:
    m = re.search(r"(\d+) ([+x-]) (\d+) = (\d+) \.", cot)
    a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
    assert c == (a + b if op == "+" else a - b if op == "-" else a * b) == int(answer)
    assert cot.endswith(f"the answer is \\boxed{{ {answer} }} .")


def test_cots_are_exact_and_in_the_vocabulary():
    ds = make_visual_math(200, VisualMathConfig(), seed=3)
    vocab = set(vocabulary())
    for q, cot, a, k in zip(ds.questions, ds.cots, ds.answers, ds.kinds):
        _check_cot(cot, a)
        assert set(q.split()) | set(cot.split()) <= vocab and k in KINDS and int(a) >= 0
    assert {k for k in ds.kinds} == set(VisualMathConfig().kinds)  # vision:x is held out by default


def test_counts_match_the_scene():
    ds = make_visual_math(50, VisualMathConfig(kinds=("text:+",)), seed=1)
    for q, cot, a in zip(ds.questions, ds.cots, ds.answers):
        n = int(q.split()[0])
        counted = int(cot.split(" : ")[1].split()[0])
        assert int(a) == n + counted


def test_ood_split_and_planted_reflection():
    test = make_visual_math(30, VisualMathConfig(objects=(4, 4), kinds=("vision:x",)), seed=2)
    assert set(test.kinds) == {"vision:x"} and all(int(c.split(" : ")[1].split()[0]) <= 4 for c in test.cots)
    ds = make_visual_math(400, VisualMathConfig(reflect=0.2), seed=0)
    frac = sum(ds.reflective) / len(ds)
    assert 0.13 < frac < 0.27
    assert all((REFLECTION in c) == r for c, r in zip(ds.cots, ds.reflective))
    assert golden_cot([("circles", 2)], "3 + 2", 5, reflect=True) == "circles : 2 . wait , check again : circles : 2 . 3 + 2 = 5 . the answer is \\boxed{ 5 } ."
    assert make_visual_math(5, seed=4).questions == make_visual_math(5, seed=4).questions


def test_bad_config():
    with pytest.raises(ConfigError, match="kinds"):
        VisualMathConfig(kinds=("vision:/",))
    with pytest.raises(ConfigError, match="reflect"):
        VisualMathConfig(reflect=1.5)
    with pytest.raises(ConfigError, match="n"):
        make_visual_math(0)
