"""The grm study's rules and its evaluation by seeded subsets, on planted numbers (the smoke run is in tests/test_studies_smoke.py)."""

from __future__ import annotations

import pytest

from reprolab.papers.grm.grm import GRMSample
from reprolab.papers.grm.study import evaluate, pair_accuracy
from reprolab.study import Verdict, get_study


def _s(scores):
    return GRMSample(index=0, text="", scores=scores, failure=None if scores else "no_scores")


def metrics(acc1, acc8, meta8, ties1, ties8, degenerate=False):
    row = lambda a, t: {"acc": a, "acc_std": 0.01, "ties": t, "undecided": 0.0}  # noqa: E731
    return {"k_max": 8, "model": "m", "pairs_eval": 10, "meta_rm": {"degenerate": degenerate},
            "eval": {"vote": {"1": row(acc1, ties1), "8": row(acc8, ties8)}, "meta": {"8": row(meta8, 0.0)}}}


@pytest.fixture(scope="module")
def claims():
    return {c.key: c for c in get_study("grm").claims}


def test_rules(claims):
    good = metrics(0.6, 0.7, 0.7, 0.4, 0.1)
    assert all(claims[k].judge(good).verdict == Verdict.REPRODUCED for k in claims)
    bad = metrics(0.7, 0.6, 0.5, 0.1, 0.1)
    assert all(claims[k].judge(bad).verdict == Verdict.NOT_REPRODUCED for k in claims)
    assert claims["voting_scaling"].judge(metrics(0.6, 0.6, 0.6, 0.4, 0.1)).verdict == Verdict.NOT_REPRODUCED  # equal is not a rise
    assert claims["meta_voting"].judge(metrics(0.6, 0.7, 0.7, 0.4, 0.1)).verdict == Verdict.REPRODUCED  # "at least as good"
    assert "degenerate" in claims["meta_voting"].judge(metrics(0.6, 0.7, 0.7, 0.4, 0.1, degenerate=True)).ours


def test_pair_accuracy_counts_a_tie_as_a_random_guess_and_undecided_as_chance():
    assert pair_accuracy([18, 9], 0, True) == (1.0, True, False)
    assert pair_accuracy([9, 18], 0, True) == (0.0, False, False)
    assert pair_accuracy([9, 9], 1, True) == (0.5, False, True)
    assert pair_accuracy([0, 0], 1, False) == (0.5, False, True)


def test_evaluate_subsets_give_exact_values_on_a_planted_set():
    # pair 0: 3 of 4 samples right, 1 tie; pair 1: all samples tie
    samples = [[_s([9, 2]), _s([8, 3]), _s([7, 7]), _s([9, 1])], [_s([5, 5])] * 4]
    ratings = [[0.9, 0.8, 0.1, 0.2], [0.5] * 4]
    out = evaluate(samples, [0, 1], [2, 2], (1, 4), draws=50, seed=0, ratings=ratings)
    v1, v4 = out["vote"]["1"], out["vote"]["4"]
    assert v4["draws"] == 1 and v4["acc"] == pytest.approx((1.0 + 0.5) / 2) and v4["ties"] == pytest.approx(0.5)
    # k = 1: pair 0 is right with p = 3/4 and tied with p = 1/4 -> expected (3/4 + 1/8 + 1/2) / 2 ~ 0.6875
    assert v1["draws"] == 50 and 0.6 < v1["acc"] < 0.78 and v1["acc_min"] <= v1["acc"] <= v1["acc_max"]
    assert out["meta"]["4"]["acc"] == pytest.approx(0.75)  # keeps samples 0, 1 for pair 0
    again = evaluate(samples, [0, 1], [2, 2], (1, 4), draws=50, seed=0, ratings=ratings)
    assert again == out  # seeded
    assert "1" not in out["meta"]  # meta needs k >= 2
