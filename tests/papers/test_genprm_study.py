"""The genprm study's rules on planted numbers: a control (constant judge, identical arms, a random
judge, no code run, candidates all alike) must not be reproduced, a planted effect must be; and the
verdicts recomputed from JSON-saved metrics are the same (what `reprolab rejudge` does)."""

from __future__ import annotations

import random

import pytest

from reprolab.papers.genprm.genprm import processbench_f1
from reprolab.papers.genprm.study import f1_of_units
from reprolab.papers.genprm.study import GenPRMStudy
from reprolab.study import Verdict

NS = (1, 2, 4)


def gold_labels(n, seed=0):
    """n solutions, a third correct (-1), the rest with a first error at step 0..3."""
    rng = random.Random(seed)
    return [-1 if i % 3 == 0 else rng.randrange(4) for i in range(n)]


def noisy(gold, p_right, seed):
    """Predictions equal to the gold label with probability p_right, else a random other answer."""
    rng = random.Random(seed)
    return [g if rng.random() < p_right else rng.choice([x for x in (-1, 0, 1, 2, 3) if x != g]) for g in gold]


def step_rewards(gold, p_right, seed, steps=4):
    """Per-step Maj@N rewards: each step judged on the right side of 0.5 with probability p_right."""
    rng = random.Random(seed)
    out = []
    for g in gold:
        row = []
        for t in range(steps):
            right_step = g < 0 or t < g
            ok = rng.random() < p_right
            row.append(0.9 if right_step == ok else 0.1)
        out.append(row)
    return out


def metrics(gold, code, analysis=None, *, exec_ok=5, malformed=0, prm_right=None, maj_right=None, mixed=None,
            step_p=(0.5, 0.5), same_steps=False, ran=1.0, truncated=0):
    """``code`` / ``analysis``: predictions per N (dict N -> list); ``step_p``: per-step judgement accuracy of the
    code and analysis arms (code_helps' units), ``ran``: share of each step's paths whose code finished ok."""
    analysis = analysis or code

    def arm(preds):
        return {str(n): {"f1": processbench_f1(preds[n], gold)[0], "pred": preds[n]} for n in NS}

    n_prob = len(prm_right or [1, 0])
    prm_right = prm_right or [1, 0]
    maj_right = maj_right or [1, 0]
    mixed = mixed or [True] * n_prob
    return {
        "model": "synthetic", "n_values": list(NS), "solutions": len(gold), "gold": gold, "erroneous": sum(g >= 0 for g in gold),
        "f1": {"code": arm(code), "analysis": arm(analysis)},
        "health": {a: {"malformed": malformed, "truncated": truncated, "paths": 100} for a in ("code", "analysis")},
        "steps": {"threshold": 0.5, "code": step_rewards(gold, step_p[0], 1),
                  "analysis": step_rewards(gold, step_p[0], 1) if same_steps else step_rewards(gold, step_p[1], 2),
                  "code_ran": [[ran] * 4 for _ in gold]},
        "exec_status": {"ok": exec_ok, "error": 3},
        "bon": {"4": {"prm": sum(prm_right) / n_prob, "majority": sum(maj_right) / n_prob, "oracle": 1.0, "problems": n_prob,
                      "prm_right": prm_right, "majority_right": maj_right, "mixed": mixed}},
    }


@pytest.fixture(scope="module")
def claims():
    return {c.key: c for c in GenPRMStudy.claims}


def test_f1_of_units_is_processbench_f1_and_falls_back_to_the_class_present():
    gold = [-1, -1, 0, 2, 3]
    pred = [-1, 0, 0, 2, 1]
    assert f1_of_units(list(zip(pred, gold))) == pytest.approx(processbench_f1(pred, gold)[0])
    assert f1_of_units(list(zip(pred, gold))) == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))  # by hand
    assert f1_of_units([[0, 0], [1, 2]]) == 0.5  # only erroneous solutions: their accuracy
    assert f1_of_units([[-1, -1], [-1, -1], [2, -1]]) == pytest.approx(2 / 3)  # only correct ones


def test_planted_effects_are_reproduced(claims):
    gold = gold_labels(45)
    code = {1: noisy(gold, 0.3, 1), 2: noisy(gold, 0.6, 2), 4: noisy(gold, 0.95, 3)}
    analysis = {n: noisy(gold, 0.3, 10 + n) for n in NS}
    prm, maj = [1] * 24 + [0] * 6, [0] * 18 + [1] * 12
    m = metrics(gold, code, analysis, prm_right=prm, maj_right=maj, step_p=(0.9, 0.4))
    got = {k: c.judge(m) for k, c in claims.items()}
    assert {k: j.verdict for k, j in got.items()} == {k: Verdict.REPRODUCED for k in claims}, {k: j.ours for k, j in got.items()}
    h = got["maj_scaling"].headline
    assert h.unit == "labelled solutions" and h.n == 45 and h.margin == 0.0 and h.low > 0
    assert got["bon_vs_majority"].headline.unit == "problems"
    assert got["code_helps"].headline.unit == "steps whose code ran"


def test_a_constant_judge_is_not_testable(claims):
    gold = gold_labels(30)
    always_first = {n: [0] * len(gold) for n in NS}  # flags the first step of every solution
    m = metrics(gold, always_first)
    assert {c.judge(m).verdict for c in claims.values()} == {Verdict.NOT_TESTABLE}
    always_yes = {1: [-1] * len(gold), 2: noisy(gold, 0.7, 1), 4: noisy(gold, 0.9, 2)}  # constant at N = 1 only
    assert claims["maj_scaling"].judge(metrics(gold, always_yes)).verdict == Verdict.NOT_TESTABLE


def test_a_malformed_judge_and_code_that_never_ran_are_not_testable(claims):
    gold = gold_labels(30)
    code = {1: noisy(gold, 0.3, 1), 2: noisy(gold, 0.6, 2), 4: noisy(gold, 0.95, 3)}
    assert claims["maj_scaling"].judge(metrics(gold, code, malformed=60)).verdict == Verdict.NOT_TESTABLE
    assert claims["code_helps"].judge(metrics(gold, code, {n: noisy(gold, 0.3, n) for n in NS}, exec_ok=0)).verdict \
        == Verdict.NOT_TESTABLE
    # code that ran ok in fewer than half of each step's paths: no step to compare (v3)
    j = claims["code_helps"].judge(metrics(gold, code, step_p=(0.9, 0.4), ran=0.25))
    assert j.verdict == Verdict.NOT_TESTABLE and "(0)" in j.ours


def test_stages_at_their_token_cap_make_the_claims_not_testable(claims):
    gold = gold_labels(45)
    code = {1: noisy(gold, 0.3, 1), 2: noisy(gold, 0.6, 2), 4: noisy(gold, 0.95, 3)}
    m = metrics(gold, code, {n: noisy(gold, 0.3, 10 + n) for n in NS}, prm_right=[1] * 24 + [0] * 6,
                maj_right=[0] * 18 + [1] * 12, step_p=(0.9, 0.4), truncated=11)  # 11 of 100 paths
    assert {c.judge(m).verdict for c in claims.values()} == {Verdict.NOT_TESTABLE}
    m["health"]["code"]["truncated"] = m["health"]["analysis"]["truncated"] = 10  # 10%: allowed
    assert {c.judge(m).verdict for c in claims.values()} == {Verdict.REPRODUCED}


def test_code_helps_counts_only_labelled_steps_whose_code_ran():
    from reprolab.papers.genprm.study import step_units

    m = {"gold": [-1, 1], "steps": {"threshold": 0.5,
                                     "code": [[0.9, 0.2, None], [0.8, 0.1, 0.9]],
                                     "analysis": [[0.9, 0.9, 0.9], [0.3, 0.7, 0.2]],
                                     "code_ran": [[1.0, 0.5, None], [0.25, 1.0, 1.0]]}}
    # solution 0 (correct): steps 0 and 1 count (step 2 not judged by the code arm); solution 1 (first error at
    # step 1): step 0's code ran in 25% of paths (left out), step 1 counts, step 2 is after the first error (no label)
    code, ana = step_units(m)
    assert code == [1.0, 0.0, 1.0] and ana == [1.0, 1.0, 0.0]


def test_identical_arms_are_not_reproduced(claims):
    gold = gold_labels(30)
    same = noisy(gold, 0.5, 1)
    m = metrics(gold, {n: same for n in NS}, prm_right=[1, 0, 1, 1], maj_right=[1, 0, 1, 1], same_steps=True)
    for k in claims:
        assert claims[k].judge(m).verdict == Verdict.INCONCLUSIVE, k


def test_a_random_judge_is_not_reproduced(claims):
    gold = gold_labels(30)
    for seed in range(3):
        code = {n: noisy(gold, 0.2, 100 * seed + n) for n in NS}
        analysis = {n: noisy(gold, 0.2, 100 * seed + 50 + n) for n in NS}
        m = metrics(gold, code, analysis, step_p=(0.5, 0.5))
        assert claims["maj_scaling"].judge(m).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)
        assert claims["code_helps"].judge(m).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)


def test_scaling_that_hurts_is_not_reproduced(claims):
    gold = gold_labels(45)
    code = {1: noisy(gold, 0.95, 1), 2: noisy(gold, 0.6, 2), 4: noisy(gold, 0.2, 3)}
    assert claims["maj_scaling"].judge(metrics(gold, code)).verdict == Verdict.NOT_REPRODUCED


def test_best_of_k_needs_a_choice_that_matters(claims):
    gold = gold_labels(30)
    code = {n: noisy(gold, 0.5, n) for n in NS}
    m = metrics(gold, code, prm_right=[1, 0, 1], maj_right=[1, 0, 1], mixed=[False] * 3)
    assert claims["bon_vs_majority"].judge(m).verdict == Verdict.NOT_TESTABLE
    # the PRM worse than majority on many problems: not reproduced
    m = metrics(gold, code, prm_right=[0] * 20 + [1] * 10, maj_right=[1] * 30)
    assert claims["bon_vs_majority"].judge(m).verdict == Verdict.NOT_REPRODUCED


def test_verdicts_are_recomputed_alike_from_saved_metrics(tmp_path):
    # what `reprolab rejudge genprm` does: the rules read only the JSON-saved metrics (a smoke run of
    # the study is in tests/test_studies_smoke.py; it takes minutes on 2 loaded cores, so not twice)
    import json

    gold = gold_labels(20)
    m = metrics(gold, {1: noisy(gold, 0.3, 1), 2: noisy(gold, 0.5, 2), 4: noisy(gold, 0.8, 3)},
                {n: noisy(gold, 0.4, 7 + n) for n in NS}, prm_right=[1, 1, 0], maj_right=[0, 1, 0])
    (tmp_path / "m.json").write_text(json.dumps(m))
    again = json.loads((tmp_path / "m.json").read_text())
    first, second = GenPRMStudy.judge(m), GenPRMStudy.judge(again)
    assert [(c.key, c.verdict, c.headline) for c in first] == [(c.key, c.verdict, c.headline) for c in second]
