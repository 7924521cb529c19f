"""Each rule of the gpt_imgeval study on a control that must not reproduce and a planted effect that must, and the smoke run."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.papers.gpt_imgeval.study import TAGS, _judge_diagnosis, _judge_probe, _judge_validity, ordering_holds
from reprolab.study import Verdict

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------- (a) validity
def _validity(truth, harness_by_cond):
    tags = [TAGS[i % 6] for i in range(len(truth))]
    return {"validity": {"conditions": {c: {"truth": list(map(int, truth)), "harness": list(map(int, h)), "tag": tags,
                                            "agree": [int(a == b) for a, b in zip(h, truth)]} for c, h in harness_by_cond.items()}}}


def _flip(truth, share, seed):
    r = np.random.default_rng(seed)
    out = np.array(truth, dtype=bool)
    idx = r.choice(len(out), int(round(share * len(out))), replace=False)
    out[idx] = ~out[idx]
    return out


TRUTH = np.arange(600) % 2 == 0  # half the renders carry a planted error


def test_validity_random_harness_does_not_reproduce():
    coin = RNG.random(600) < 0.5
    j = _judge_validity(_validity(TRUTH, {"clean": coin, "noise": coin, "blur": coin, "jpeg": coin}))
    assert j.verdict == Verdict.NOT_REPRODUCED


def test_validity_planted_exact_harness_reproduces():
    j = _judge_validity(_validity(TRUTH, {"clean": TRUTH, "noise": _flip(TRUTH, 0.04, 1), "blur": _flip(TRUTH, 0.05, 2), "jpeg": _flip(TRUTH, 0.06, 3)}))
    assert j.verdict == Verdict.REPRODUCED


def test_validity_between_the_bars_is_partly_and_one_valued_truth_is_not_testable():
    mid = _flip(TRUTH, 0.09, 4)
    assert _judge_validity(_validity(TRUTH, {"clean": mid, "noise": mid, "blur": mid, "jpeg": mid})).verdict == Verdict.PARTLY
    ones = np.ones(600, bool)
    assert _judge_validity(_validity(ones, {"clean": ones, "noise": ones, "blur": ones, "jpeg": ones})).verdict == Verdict.NOT_TESTABLE


# ----------------------------------------------------------------------------- (b) diagnosis
PER_TAG = 40
TAG_INDEX = [i for i in range(6) for _ in range(PER_TAG)]


def _acc(levels, seed):
    r = np.random.default_rng(seed)
    return [float(r.random() < levels[t]) for t in TAG_INDEX]


def _diag(accs, detected=0.9):
    budgets = [10, 30, 90]
    return {"diagnosis": {"budgets": budgets, "tag_index": TAG_INDEX, "accuracy": {str(b): a for b, a in zip(budgets, accs)},
                          "detected_share": {str(b): detected for b in budgets}}}


GOOD = [0.95, 0.6, 0.55, 0.6, 0.15, 0.1]  # single easiest; position, color_attr hardest


def test_diagnosis_same_model_at_every_budget_does_not_reproduce():
    a = _acc([0.5 * g for g in GOOD], 1)
    shuffled = [list(np.random.default_rng(s).permutation(a)) for s in (2, 3)]
    assert _judge_diagnosis(_diag([a, a, a])).verdict != Verdict.REPRODUCED
    assert _judge_diagnosis(_diag([a] + shuffled)).verdict != Verdict.REPRODUCED


def test_diagnosis_planted_rise_with_the_papers_ordering_reproduces():
    accs = [_acc([0.2 * g for g in GOOD], 1), _acc([0.55 * g for g in GOOD], 2), _acc(GOOD, 3)]
    assert _judge_diagnosis(_diag(accs)).verdict == Verdict.REPRODUCED
    flat = [0.6] * 6  # rise without the ordering: partly
    accs2 = [_acc([0.1] * 6, 1), _acc([0.35] * 6, 2), _acc(flat, 3)]
    assert _judge_diagnosis(_diag(accs2)).verdict == Verdict.PARTLY


def test_diagnosis_preconditions_and_ordering():
    zeros = [0.0] * len(TAG_INDEX)
    assert _judge_diagnosis(_diag([zeros, zeros, zeros])).verdict == Verdict.NOT_TESTABLE
    accs = [_acc([0.2 * g for g in GOOD], 1), _acc([0.55 * g for g in GOOD], 2), _acc(GOOD, 3)]
    assert _judge_diagnosis(_diag(accs, detected=0.2)).verdict == Verdict.NOT_TESTABLE
    rows = np.stack([[GOOD[t] for t in range(6)], range(6)], 1)
    assert ordering_holds(rows)
    assert not ordering_holds(np.stack([[0.5, 0.6, 0.5, 0.5, 0.1, 0.1], range(6)], 1))  # two_object beats single_object
    assert not ordering_holds(np.stack([[0.9, 0.6, 0.5, 0.5, 0.7, 0.1], range(6)], 1))  # position above counting
    assert not ordering_holds(np.stack([[0.1, 0.0, 0.0, 0.0, 0.0, 0.0], range(6)], 1))  # all ties at zero: no evidence of an ordering


# ----------------------------------------------------------------------------- (c) probe
def _probe(acc, hybrid_share, n=200, seed=0):
    r = np.random.default_rng(seed)
    is_diff = np.arange(n) % 2
    correct = r.random(n) < acc
    p = np.where(correct == is_diff.astype(bool), 0.8, 0.2)
    hyb = np.where(r.random(n) < hybrid_share, 0.9, 0.1)
    return {"probe": {"ran": True, "held_out_correct": correct.astype(int).tolist(), "held_out_p_diffusion": p.tolist(),
                      "held_out_is_diffusion": is_diff.tolist(), "hybrid_p_diffusion": hyb.tolist()}}


def test_probe_rule():
    assert _judge_probe({"probe": {"ran": False}}).verdict == Verdict.NOT_RUN
    assert _judge_probe(_probe(0.5, 0.9)).verdict == Verdict.NOT_TESTABLE  # random probe: cannot separate
    assert _judge_probe(_probe(0.97, 0.9)).verdict == Verdict.REPRODUCED  # planted
    assert _judge_probe(_probe(0.97, 0.1)).verdict == Verdict.NOT_REPRODUCED  # the opposite outcome
    assert _judge_probe(_probe(0.97, 0.5)).verdict == Verdict.NOT_REPRODUCED


# ----------------------------------------------------------------------------- smoke
def test_smoke_study_runs(smoke_run):
    result, out = smoke_run("gpt_imgeval")
    verdicts = {c.key: c.verdict for c in result.claims}
    assert set(verdicts) == {"validity", "diagnosis", "probe"} and verdicts["probe"] == Verdict.NOT_RUN
    m = result.metrics
    assert set(m["validity"]["conditions"]) == {"clean", "noise", "blur", "jpeg"}
    assert len(m["validity"]["conditions"]["clean"]["agree"]) == 12  # 1 prompt per tag, exact + planted error
    assert m["diagnosis"]["budgets"] == [1, 2, 3] and len(m["diagnosis"]["accuracy"]["3"]) == 6
    assert (out / "gpt_imgeval" / "smoke" / "figures" / "tags.png").stat().st_size > 1000


@pytest.mark.slow
def test_the_probe_path_runs_end_to_end(tmp_path):
    """(c) runs at full scale only: its whole path (VQ-VAE, GPT, hybrid decoder, probe, figure) on a tiny config."""
    import dataclasses

    from reprolab.papers.gpt_imgeval.study import GPTImgEvalStudy
    from reprolab.runtime import torch_threads
    from reprolab.study import RunDir, Scale

    cfg = dataclasses.replace(GPTImgEvalStudy.scales[Scale.SMOKE], probe=True, vq_steps=2, gpt_steps=2, hybrid_steps=2, probe_images=8)
    run = RunDir(tmp_path, Scale.SMOKE, 0, cfg, "gpt_imgeval")
    with torch_threads(1):
        m = GPTImgEvalStudy()._run(cfg, run)
    assert m["probe"]["ran"] and len(m["probe"]["hybrid_p_diffusion"]) == 8 and len(m["probe"]["held_out_correct"]) == 8
    assert _judge_probe(m).verdict != Verdict.NOT_RUN
    assert any(f.file.endswith("probe.png") for f in run.figures)
