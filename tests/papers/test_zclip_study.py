"""The zclip study's spike detector and rules on planted numbers: spikes found at known steps,
Student-t noise without spikes under a stated false-positive rate; for each claim a control that
must not be reproduced and a planted effect that must be; failing preconditions give not testable;
and a rejudge round trip on a smoke result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reprolab.papers.zclip.study import (
    FP_PER_1000_STEPS, NOT_WORSE_MARGIN, SPIKE_WINDOW, UNIFORM_LOSS, ZClipStudy, count_spikes, lr_sensitivity, spiking_rates,
)
from reprolab.study import Result, Verdict, rejudge

SEEDS = 4
LRS = ["0.003", "0.01", "0.03", "0.1", "0.3"]


def curve(n=1000, noise=0.03, seed=0, df=None):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = 2.0 + 3.5 * np.exp(-t / 60)  # a loss curve falling from ln 256 to 2
    eps = rng.standard_t(df, n) if df else rng.normal(0, 1, n)
    return base + noise * eps


def test_planted_spikes_are_found_at_their_steps():
    losses = curve()
    for t in (200, 450, 451, 452, 800):  # three events, one of them three steps long
        losses[t] += 0.8
    events, flagged = count_spikes(losses)
    assert events == 3
    assert flagged == [200, 450, 451, 452, 800]


def test_a_divergence_is_a_spike_and_the_first_window_is_never_flagged():
    losses = curve(300)
    losses[10] += 5.0  # inside the first window: no full window yet
    losses[250:] = np.nan
    events, flagged = count_spikes(losses)
    assert events == 1 and flagged[0] == 250 and 10 not in flagged


def test_student_t_noise_without_spikes_stays_under_the_stated_false_positive_rate():
    events = [count_spikes(curve(1000, seed=s, df=5))[0] for s in range(40)]
    assert np.mean(events) <= FP_PER_1000_STEPS
    # and the detector is not blind: the same noise with one planted jump of 10 robust sd is found
    planted = [count_spikes(np.where(np.arange(1000) == 600, 0.4, 0.0) + curve(1000, seed=s, df=5))[1] for s in range(40)]
    assert np.mean([600 in f for f in planted]) >= 0.95


def arm(spikes, losses):
    """Per-rate per-seed numbers of one arm: spikes[lr][seed], losses[lr][seed]."""
    return {k: {"spikes": list(map(int, spikes[i])), "final_val_loss": [None if x is None else float(x) for x in losses[i]]}
            for i, k in enumerate(LRS)}


def metrics(none, fixed, zclip):
    return {"lrs": LRS, "seeds": SEEDS, "runs": {"none": none, "fixed": fixed, "zclip": zclip}}


rng = np.random.default_rng(0)
SEED_LEVEL = rng.normal(0, 0.04, SEEDS)  # seed-to-seed spread shared by every arm of a seed
U_SHAPE = np.array([2.30, 2.05, 1.95, 2.10, 2.60])  # final loss against lr: best at 0.03


def losses(shape, noise=0.005):
    return [shape[i] + SEED_LEVEL + rng.normal(0, noise, SEEDS) for i in range(len(LRS))]


def counts(per_rate):
    return [np.full(SEEDS, c) + rng.integers(0, 2, SEEDS) * (c > 0) for c in per_rate]


def verdicts(m):
    return {c.key: c.judge(m).verdict for c in ZClipStudy.claims}


def test_planted_effect_is_reproduced():
    none = arm(counts([0, 0, 1, 3, 5]), losses(U_SHAPE + [0, 0, 0.1, 0.4, 1.2]))
    fixed = arm(counts([0, 0, 0, 2, 4]), losses(U_SHAPE + [0, 0, 0, 0.2, 0.8]))
    zclip = arm(counts([0, 0, 0, 0, 0]), losses(U_SHAPE - 0.01))
    m = metrics(none, fixed, zclip)
    assert spiking_rates(m) == ["0.1", "0.3"]
    assert set(verdicts(m).values()) == {Verdict.REPRODUCED}


def test_identical_arms_are_not_reproduced_except_non_inferiority():
    same = arm(counts([0, 0, 1, 2, 3]), losses(U_SHAPE))
    v = verdicts(metrics(same, same, same))
    assert v["spikes"] == Verdict.INCONCLUSIVE  # 0 difference, margin 0: not "fewer"
    assert v["lr_sensitivity"] == Verdict.INCONCLUSIVE
    assert v["best_rate_not_worse"] == Verdict.REPRODUCED  # "not worse" holds for identical arms (non-inferiority)


def test_shuffled_arm_labels_do_not_reproduce_a_planted_effect_backwards():
    """Control: swap the arms of the planted effect (ZClip spiky and sensitive): not reproduced."""
    fixed = arm(counts([0, 0, 0, 0, 0]), losses(U_SHAPE - 0.01))
    zclip = arm(counts([0, 0, 0, 2, 4]), losses(U_SHAPE + [0, 0, 0, 0.2, 0.8]))
    m = metrics(fixed, fixed, zclip)
    j = {c.key: c.judge(m) for c in ZClipStudy.claims}
    assert j["spikes"].verdict == Verdict.NOT_TESTABLE  # fixed clipping never spikes: nothing to be fewer than
    assert j["lr_sensitivity"].verdict == Verdict.NOT_REPRODUCED
    m2 = metrics(fixed, arm(counts([0, 0, 0, 1, 1]), losses(U_SHAPE)), arm(counts([0, 0, 0, 3, 4]), losses(U_SHAPE + 3 * NOT_WORSE_MARGIN)))
    assert verdicts(m2)["spikes"] == Verdict.NOT_REPRODUCED
    assert verdicts(m2)["best_rate_not_worse"] == Verdict.NOT_REPRODUCED


def test_random_spike_counts_are_not_reproduced():
    """Control: both arms draw their spike counts from the same distribution."""
    hits = 0
    for s in range(20):
        r = np.random.default_rng(100 + s)
        draw = lambda: [r.poisson(2, SEEDS) for _ in LRS]  # noqa: E731
        m = metrics(arm(draw(), losses(U_SHAPE)), arm(draw(), losses(U_SHAPE)), arm(draw(), losses(U_SHAPE)))
        hits += ZClipStudy.claims[0].judge(m).verdict == Verdict.REPRODUCED
    assert hits <= 2  # a 95% interval: about 1 in 40 one-sided false calls, at most 2 of 20 by chance


def test_untrained_and_diverged_arms():
    fine = arm(counts([0, 0, 0, 1, 2]), losses(U_SHAPE))
    untrained = arm(counts([0] * 5), [np.full(SEEDS, UNIFORM_LOSS - 0.5) for _ in LRS])
    v = verdicts(metrics(untrained, untrained, fine))
    assert v["lr_sensitivity"] == Verdict.NOT_TESTABLE and v["best_rate_not_worse"] == Verdict.NOT_TESTABLE
    diverged = arm(counts([0, 0, 1, 1, 1]), [*losses(U_SHAPE)[:3], [None] * SEEDS, [None] * SEEDS])
    m = metrics(diverged, diverged, fine)
    # a diverged run counts as ln 256 in the sensitivity: fixed clipping's is much larger
    assert np.mean(lr_sensitivity(m, "fixed")) == pytest.approx(np.mean(lr_sensitivity(m, "zclip")) + (2 * UNIFORM_LOSS - 2.10 - 2.60) / 5, abs=0.02)
    assert verdicts(m)["lr_sensitivity"] == Verdict.REPRODUCED


def test_lr_sensitivity_by_hand():
    m = metrics(*[arm(counts([0] * 5), [np.full(SEEDS, x) for x in (2.3, 2.0, 1.9, 2.5, 9.0)])] * 3)
    # mean of min(L, ln 256) minus the best: ((2.3 + 2.0 + 1.9 + 2.5 + ln 256) / 5) - 1.9
    assert lr_sensitivity(m, "fixed") == pytest.approx([(2.3 + 2.0 + 1.9 + 2.5 + math.log(256)) / 5 - 1.9] * SEEDS)


def test_the_claims_name_their_unit_and_margin():
    for c in ZClipStudy.claims:
        assert "unit: seeds" in c.rule and "margin" in c.rule
    assert SPIKE_WINDOW == 50


def test_smoke_result_rejudges_to_the_same_verdicts(smoke_run):
    result, out = smoke_run("zclip")
    assert result.status == "ok"
    m = result.metrics
    cfg = ZClipStudy.config_for("smoke")
    for a in cfg.arms:
        for k in m["lrs"]:  # raw per-seed numbers the rules need
            assert len(m["runs"][a][k]["final_val_loss"]) == len(m["runs"][a][k]["spikes"]) == cfg.seeds
    again = rejudge(Result.load(out / "zclip" / "smoke" / "result.json"))
    assert [(c.key, c.verdict, c.headline) for c in again.claims] == [(c.key, c.verdict, c.headline) for c in result.claims]


def test_a_version_2_record_is_not_judged_by_version_3_rules():
    v2 = {"baseline_lr": 1e-3, "aggressive_lr": 1e-2, "baseline": {}, "aggressive": {}}
    assert {c.judge(v2).verdict for c in ZClipStudy.claims} == {Verdict.NOT_RUN}


def test_v4_switches_constant_rate_and_training_split_are_validated():
    from reprolab.errors import ConfigError
    from reprolab.papers.zclip.study import SCALES, ZClipStudyConfig, lr_at
    from reprolab.study import Scale

    assert [lr_at(s, 100, 0.01, 0.0, "constant") for s in (0, 50, 99)] == [0.01, 0.01, 0.01]
    assert lr_at(99, 100, 0.01, 0.0) == pytest.approx(0.001, rel=0.01)  # cosine to 10%, the default
    assert lr_at(0, 100, 0.01, 0.1, "constant") == pytest.approx(0.001)  # warm-up still applies
    base = SCALES[Scale.SMOKE]
    for field, bad in (("lr_schedule", "linear"), ("eval_split", "test")):
        with pytest.raises(ConfigError, match=field):
            ZClipStudyConfig(**{**base.__dict__, field: bad})
    full = SCALES[Scale.FULL]
    assert (full.weight_decay, full.lr_schedule, full.eval_split, full.corpus_bytes) == (0.0, "constant", "train", 3_000)


def test_the_supporting_check_reads_the_no_clip_arms_spikiest_rate():
    from reprolab.papers.zclip.study import shown_rate

    quiet = arm(counts([0] * 5), losses(U_SHAPE))
    middle = arm([np.zeros(SEEDS), np.zeros(SEEDS), np.array([3, 2, 0, 0]), np.array([1, 0, 0, 0]), np.zeros(SEEDS)], losses(U_SHAPE))
    assert shown_rate(metrics(middle, quiet, quiet)) == LRS[2]  # most seeds with a spike, not the highest rate
    assert shown_rate(metrics(quiet, quiet, quiet)) == LRS[-1]  # no spikes anywhere: ties go to the highest rate
    j = ZClipStudy.claims[0].judge(metrics(middle, quiet, quiet))
    assert f"lr {LRS[2]}" in j.ours and j.verdict == Verdict.NOT_TESTABLE  # 2 of 4 seeds: half, not most


def test_v6_corrupted_batches_are_the_same_in_every_arm_and_left_out_of_the_spike_rule():
    import dataclasses

    from reprolab.data.text_corpus import ByteCorpus
    from reprolab.errors import ConfigError
    from reprolab.papers.zclip.study import SCALES, ZClipStudyConfig, pretrain
    from reprolab.study import Scale

    cfg = dataclasses.replace(SCALES[Scale.SMOKE], steps=80, outlier_prob=0.15, outlier_kind="repeat")
    corpus = ByteCorpus.python_stdlib(3_000)
    a, b = (pretrain(cfg, corpus, arm, 1e-2, seed=0, description=arm) for arm in ("none", "zclip"))
    assert a["outlier_steps"] == b["outlier_steps"] and len(a["outlier_steps"]) >= 5
    losses = np.array(a["losses"], dtype=float)
    clean = np.setdiff1d(np.arange(len(losses)), a["outlier_steps"])
    assert np.median(losses[a["outlier_steps"]]) > np.median(losses[clean[40:]])  # a byte the text never has: a high loss
    assert not set(a["spike_steps"]) & set(a["outlier_steps"])  # the corrupted steps themselves are never judged
    none = pretrain(dataclasses.replace(cfg, outlier_prob=0.0), corpus, "none", 1e-2, seed=0, description="clean")
    assert none["outlier_steps"] == [] and none["losses"][:a["outlier_steps"][0]] == a["losses"][:a["outlier_steps"][0]]
    for field, bad in (("outlier_kind", "zeros"), ("outlier_prob", 1.0), ("outlier_prob", -0.1)):
        with pytest.raises(ConfigError, match=field):
            ZClipStudyConfig(**{**cfg.__dict__, field: bad})
    full = SCALES[Scale.FULL]
    assert (full.outlier_prob, full.outlier_kind, full.corpus_bytes) == (0.01, "repeat", 3_000)
