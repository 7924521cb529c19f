"""The zclip study's rules on synthetic per-seed metrics: controls that must not be reproduced,
planted effects that must be, failing preconditions that give not testable; and a rejudge round
trip on a smoke result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reprolab.papers.zclip.study import NOT_WORSE_MARGIN, UNIFORM_LOSS, ZClipStudy
from reprolab.study import Result, Verdict, rejudge, run_study

SEEDS = 5


def arm(spikes, losses):
    return {"spikes": list(spikes), "final_val_loss": list(losses)}


def metrics(fixed_agg, zclip_agg, fixed_base, zclip_base):
    return {"baseline_lr": 1e-3, "aggressive_lr": 1e-2,
            "baseline": {"fixed": fixed_base, "zclip": zclip_base},
            "aggressive": {"fixed": fixed_agg, "zclip": zclip_agg}}


def verdicts(m):
    return {c.key: c.judge(m).verdict for c in ZClipStudy.claims}


rng = np.random.default_rng(0)
SEED_LEVEL = 1.8 + rng.normal(0, 0.05, SEEDS)  # seed-to-seed spread like v1's (1.75-1.90), shared by both arms


def test_planted_effect_is_reproduced():
    noise = rng.normal(0, 0.003, SEEDS)
    m = metrics(
        arm([3, 2, 4, 3, 2], SEED_LEVEL + 0.10), arm([0, 0, 1, 0, 0], SEED_LEVEL + noise),
        arm([0] * SEEDS, SEED_LEVEL - 0.1 + 0.02), arm([0] * SEEDS, SEED_LEVEL - 0.1 + noise),
    )
    assert set(verdicts(m).values()) == {Verdict.REPRODUCED}


def test_identical_arms_are_not_reproduced_except_non_inferiority():
    same = arm([2, 1, 3, 2, 1], SEED_LEVEL)
    v = verdicts(metrics(same, same, same, same))
    assert v["spikes"] == Verdict.INCONCLUSIVE  # 0 difference, margin 0: not "fewer"
    assert v["final_loss_aggressive"] == Verdict.INCONCLUSIVE
    # "not worse" holds for identical arms by design (a non-inferiority margin)
    assert v["baseline_not_worse"] == Verdict.REPRODUCED


def test_v1_numbers_are_not_called_reproduced():
    """Version 1's full numbers at lr 1e-2 (ZClip worse on the mean inside the seed spread) must not
    give 'ZClip ends lower'."""
    fixed, zc = [1.8170, 1.8604, 1.7698], [1.8291, 1.7521, 1.9013]
    m = metrics(arm([0, 0, 0], fixed), arm([0, 0, 0], zc), arm([0, 0, 0], fixed), arm([0, 0, 0], zc))
    v = verdicts(m)
    assert v["final_loss_aggressive"] == Verdict.INCONCLUSIVE
    assert v["baseline_not_worse"] == Verdict.INCONCLUSIVE  # worse by 0.012 with a 0.1 spread: not resolved either way


def test_untrained_zclip_arm_is_not_reproduced():
    """Control: ZClip's 'model' predicts bytes uniformly (an untrained model): contradicted."""
    good = arm([2, 1, 3, 2, 1], SEED_LEVEL)
    bad = arm([0] * SEEDS, np.full(SEEDS, UNIFORM_LOSS) - rng.uniform(0, 0.01, SEEDS))
    v = verdicts(metrics(good, bad, good, bad))
    assert v["final_loss_aggressive"] == Verdict.NOT_REPRODUCED
    assert v["baseline_not_worse"] == Verdict.NOT_REPRODUCED


def test_zclip_worse_by_more_than_the_margin_is_not_reproduced_and_within_is():
    base = arm([0] * SEEDS, SEED_LEVEL)
    worse = arm([0] * SEEDS, SEED_LEVEL + 3 * NOT_WORSE_MARGIN + rng.normal(0, 0.002, SEEDS))
    slightly = arm([0] * SEEDS, SEED_LEVEL + NOT_WORSE_MARGIN / 4 + rng.normal(0, 0.0005, SEEDS))
    assert ZClipStudy.claims[2].judge(metrics(base, base, base, worse)).verdict == Verdict.NOT_REPRODUCED
    assert ZClipStudy.claims[2].judge(metrics(base, base, base, slightly)).verdict == Verdict.REPRODUCED


def test_a_diverged_zclip_run_counts_as_uniform_loss():
    fixed = arm([0] * 3, [1.80, 1.81, 1.79])
    zc = arm([0] * 3, [None, None, None])
    c = ZClipStudy.claims[1].judge(metrics(fixed, zc, fixed, fixed))
    assert c.verdict == Verdict.NOT_REPRODUCED
    assert c.headline.effect == pytest.approx(1.80 - UNIFORM_LOSS, abs=1e-9)


def test_no_spikes_in_the_fixed_arm_is_not_testable():
    """At our scale no arm spikes (v1): fewer spikes than zero cannot be tested."""
    quiet = arm([0] * SEEDS, SEED_LEVEL)
    j = ZClipStudy.claims[0].judge(metrics(quiet, quiet, quiet, quiet))
    assert j.verdict == Verdict.NOT_TESTABLE


def test_failed_loss_preconditions_are_not_testable():
    untrained = arm([0] * SEEDS, np.full(SEEDS, UNIFORM_LOSS + 0.1))
    fine = arm([0] * SEEDS, SEED_LEVEL)
    assert ZClipStudy.claims[1].judge(metrics(untrained, fine, fine, fine)).verdict == Verdict.NOT_TESTABLE
    assert ZClipStudy.claims[2].judge(metrics(fine, fine, untrained, fine)).verdict == Verdict.NOT_TESTABLE


def test_the_claims_name_their_unit_and_margin():
    for c in ZClipStudy.claims:
        assert "unit: seeds" in c.rule and "margin" in c.rule
    assert math.isclose(UNIFORM_LOSS, math.log(256))


def test_smoke_result_rejudges_to_the_same_verdicts(tmp_path):
    result, _ = run_study("zclip", "smoke", out=tmp_path)
    assert result.status == "ok"
    m = result.metrics
    for regime in ("baseline", "aggressive"):
        for a in ("fixed", "zclip"):  # raw per-seed numbers the rules need
            assert len(m[regime][a]["final_val_loss"]) == len(m[regime][a]["spikes"]) == ZClipStudy.config_for("smoke").seeds
    again = rejudge(Result.load(tmp_path / "zclip" / "smoke" / "result.json"))
    assert [(c.key, c.verdict, c.headline) for c in again.claims] == [(c.key, c.verdict, c.headline) for c in result.claims]
