"""The neuralgs study's rules (version 4) on synthetic rate-distortion curves: the arithmetic by hand
(BD-PSNR with linear interpolation, the ratio within 0.5 dB), controls that must not be reproduced,
planted effects that must be, failed preconditions that give not testable; and a rejudge round trip
on a smoke result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reprolab.papers.neuralgs.study import MIN_ORIGINAL_PSNR, NeuralGSStudy, bd_psnr, ratio_within
from reprolab.study import Result, Verdict, rejudge

UNITS = 6
VIEWS = 6
PLY = 500_000


def loss(ratio):  # a planted rate-distortion shape: 0.64 dB at 40x, 0.25 dB at 10x
    return 0.25 * math.log10(ratio) ** 2


def curve(ratios, orig_psnr, extra=0.0, rng=None, noise=0.0):
    return [{"bytes": int(PLY / r), "psnr": orig_psnr - loss(r) - extra + (rng.normal(0, noise) if rng is not None else 0.0)} for r in ratios]


def arm(level, nbytes, rng):
    v = level + rng.normal(0, 0.05, VIEWS)
    return {"bytes": nbytes, "psnr": float(v.mean()), "psnr_views": v.tolist()}


def metrics(seed=0, peer_gap=1.0, ngs_extra=0.0, ablation=None, orig=30.0, noise=0.0):
    rng = np.random.default_rng(seed)
    ab = {"single_mlp": -3.0, "clustered": -0.6, "clustered_importance": -0.3, "neuralgs": -0.1} | (ablation or {})
    units = []
    for u in range(UNITS):
        o = orig + rng.normal(0, 1.0)  # units differ in difficulty; the methods share it
        units.append({
            "scene": f"s{u % 2}", "seed": u // 2,
            "original": {"bytes": PLY, "psnr": o},
            "curves": {
                "neuralgs": curve((40, 20, 10, 4), o, ngs_extra, rng, noise),
                "fp16_zip": curve((9, 5, 3, 2.1), o, peer_gap, rng, noise),
                "prune_vq": curve((30, 15, 8, 5), o, peer_gap, rng, noise),
            },
            "ablation": {k: arm(o + v, PLY // 10, rng) for k, v in ab.items()},
        })
    return {"units": units}


def verdicts(m):
    return {c.key: c.judge(m).verdict for c in NeuralGSStudy.claims}


def test_bd_psnr_by_hand():
    a = [{"bytes": 10**x, "psnr": 20 + 2 * x} for x in (3, 4, 5)]
    b = [{"bytes": 10**x, "psnr": 19 + 2 * x} for x in (3.5, 4.5, 6)]
    assert bd_psnr(a, b) == pytest.approx(1.0)  # parallel lines 1 dB apart, on the overlap [3.5, 5]
    assert bd_psnr(b, a) == pytest.approx(-1.0)
    assert bd_psnr(a, [{"bytes": 10**7, "psnr": 1}, {"bytes": 10**8, "psnr": 2}]) is None  # no overlap
    # a kinked curve: (3, 0) -> (4, 2) -> (5, 2); against a flat 0 on [3, 5]: area 1 + 2 = 3 over width 2
    k = [{"bytes": 10**3, "psnr": 0.0}, {"bytes": 10**4, "psnr": 2.0}, {"bytes": 10**5, "psnr": 2.0}]
    flat = [{"bytes": 10**3, "psnr": 0.0}, {"bytes": 10**5, "psnr": 0.0}]
    assert bd_psnr(k, flat, grid=20001) == pytest.approx(1.5, abs=1e-3)


def test_ratio_within_half_db_by_hand():
    pts = [{"bytes": PLY / r, "psnr": 30 - l} for r, l in ((40, 2.0), (20, 1.0), (10, 0.25), (4, 0.0))]
    # crossing 0.5 dB between 10x (0.25) and 20x (1.0): a third of the way in log ratio
    assert ratio_within(pts, PLY, 30.0) == pytest.approx(10 * 2 ** (1 / 3))
    assert ratio_within([{"bytes": PLY / r, "psnr": 30.0} for r in (40, 4)], PLY, 30.0) == pytest.approx(40)  # all within: the smallest point (a lower bound)
    assert ratio_within([{"bytes": PLY / r, "psnr": 28.0} for r in (40, 4)], PLY, 30.0) == 1.0  # none within


def test_planted_effects_are_reproduced():
    assert set(verdicts(metrics()).values()) == {Verdict.REPRODUCED}


def test_peer_control_same_curve_with_noise_is_not_reproduced():
    """Control: NeuralGS's curve is the peers' curve (no gap), each point jittered by 0.3 dB."""
    for seed in range(3):
        v = verdicts(metrics(seed=seed, peer_gap=0.0, noise=0.3))
        assert v["beats_fp16_zip"] != Verdict.REPRODUCED and v["beats_prune_vq"] != Verdict.REPRODUCED


def test_a_worse_neuralgs_is_not_reproduced():
    v = verdicts(metrics(peer_gap=-1.0))
    assert v["beats_fp16_zip"] == Verdict.NOT_REPRODUCED and v["beats_prune_vq"] == Verdict.NOT_REPRODUCED


def test_ratio_control_a_lossy_neuralgs_is_not_reproduced():
    """Control: NeuralGS loses 2 dB more at every point, so no point stays within 0.5 dB (r = 1)."""
    v = verdicts(metrics(ngs_extra=2.0))
    assert v["ratio_within_half_db"] == Verdict.NOT_REPRODUCED


def test_identical_ablation_arms_are_not_reproduced():
    v = verdicts(metrics(ablation={"single_mlp": -0.1, "clustered": -0.1, "clustered_importance": -0.1, "neuralgs": -0.1}))
    for key in ("clustering", "importance", "frequency_loss"):
        assert v[key] == Verdict.NOT_REPRODUCED, key


def test_a_negligible_ablation_gain_is_not_reproduced():
    v = verdicts(metrics(ablation={"neuralgs": -0.3 + 0.004}))  # v3's frequency loss: +0.004 dB
    assert v["frequency_loss"] == Verdict.NOT_REPRODUCED


def test_preconditions_give_not_testable():
    assert set(verdicts(metrics(orig=MIN_ORIGINAL_PSNR - 8)).values()) == {Verdict.NOT_TESTABLE}
    m = metrics()
    for u in m["units"][:1]:
        u["curves"]["fp16_zip"] = [{"bytes": PLY * 2, "psnr": 40.0}, {"bytes": PLY * 3, "psnr": 41.0}]  # no size overlap
    v = verdicts(m)
    assert v["beats_fp16_zip"] == Verdict.NOT_TESTABLE and v["beats_prune_vq"] == Verdict.REPRODUCED


def test_rules_name_unit_and_margin():
    for c in NeuralGSStudy.claims:
        assert "unit: scene x seed" in c.rule and "margin" in c.rule


def test_smoke_result_rejudges_to_the_same_verdicts(smoke_run):
    result, out = smoke_run("neuralgs")
    assert result.status == "ok"
    cfg = NeuralGSStudy.config_for("smoke")
    units = result.metrics["units"]
    assert len(units) == len(cfg.scenes) * cfg.seeds
    for u in units:
        assert len(u["curves"]["fp16_zip"]) == 4 and len(u["curves"]["prune_vq"]) == 4 and len(u["curves"]["neuralgs"]) >= 2
        assert all(len(a["psnr_views"]) == cfg.test_views for a in u["ablation"].values())
        assert all(p["bytes"] < u["original"]["bytes"] for k in u["curves"] for p in u["curves"][k])
    again = rejudge(Result.load(out / "neuralgs" / "smoke" / "result.json"))
    assert [(c.key, c.verdict, c.headline) for c in again.claims] == [(c.key, c.verdict, c.headline) for c in result.claims]
