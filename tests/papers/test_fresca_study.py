"""The fresca study's rules and measuring instruments, on planted numbers (the smoke run is in tests/test_studies_smoke.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.study import Verdict, get_study


def gen_metrics(fid_h125, fid_h15, hf_gain=0.1, acc_drop=0.0):
    arms = {}
    for w in (2.0, 4.0):
        arms[f"w{w:g}_h1"] = {"fid": 10.0, "hf_energy": 1.0, "accuracy": 0.9}
        arms[f"w{w:g}_h1.25"] = {"fid": fid_h125, "hf_energy": 1.0 + hf_gain, "accuracy": 0.9 - acc_drop}
        arms[f"w{w:g}_h1.5"] = {"fid": fid_h15, "hf_energy": 1.0 + 2 * hf_gain, "accuracy": 0.9 - acc_drop}
    return {"generation": {"guidance_scales": [2.0, 4.0], "high_scales": [1.0, 1.25, 1.5], "arms": arms}}


def depth_metrics(base, fresca):
    return {"depth": {"synthetic": {"h1": {"absrel": base}, "h1.5": {"absrel": fresca}}, "motorcycle": {"h1": {"absrel": 0.5}, "h1.5": {"absrel": 0.49}}}}


@pytest.fixture(scope="module")
def claims():
    return {c.key: c for c in get_study("fresca").claims}


def test_generation_rule(claims):
    judge = claims["generation"].judge
    assert judge(gen_metrics(9.0, 10.1)).verdict == Verdict.REPRODUCED  # within the 2% tolerance
    assert judge(gen_metrics(9.0, 11.0)).verdict == Verdict.PARTLY  # h = 1.5 worse
    assert judge(gen_metrics(12.0, 12.0, hf_gain=-0.1, acc_drop=0.1)).verdict == Verdict.NOT_REPRODUCED
    assert "not Inception" in judge(gen_metrics(9.0, 9.0)).ours


def test_depth_rule(claims):
    judge = claims["depth"].judge
    assert judge({**depth_metrics(0.30, 0.29)}).verdict == Verdict.REPRODUCED
    assert judge({**depth_metrics(0.30, 0.31)}).verdict == Verdict.NOT_REPRODUCED
    assert "motorcycle" in judge(depth_metrics(0.30, 0.29)).ours


def test_alignment_makes_affine_predictions_exact():
    from reprolab.papers.fresca.study import align_and_score

    gt = torch.rand(3, 1, 8, 8) * 5 + 1
    pred = (gt - 3.0) / 2.0  # any scale and shift of the truth
    absrel, d1 = align_and_score(pred, gt, torch.ones_like(gt, dtype=torch.bool))
    assert absrel < 1e-6 and d1 == 1.0
    noisy, _ = align_and_score(pred + 0.3 * torch.randn_like(pred), gt, torch.ones_like(gt, dtype=torch.bool))
    assert noisy > 0.01


def test_frechet_distance_by_hand():
    from reprolab.papers.fresca.study import frechet_distance

    rng = np.random.default_rng(0)
    a = rng.standard_normal((4000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
    # same covariance, mean shifted by (1, 2, 0): the distance is |dmu|^2 = 5
    assert frechet_distance(a, a + np.array([1.0, 2.0, 0.0])) == pytest.approx(5.0, abs=1e-3)
    # N(0, I) vs N(0, 4I) in 3-d: tr(I + 4I - 2*2I) = 3
    assert frechet_distance(a, 2 * rng.standard_normal((4000, 3))) == pytest.approx(3.0, rel=0.1)


def test_depth_normalisation_is_affine_invariant():
    from reprolab.papers.fresca.study import normalise_depth

    d = torch.rand(2, 1, 16, 16) + 0.5
    torch.testing.assert_close(normalise_depth(d), normalise_depth(3 * d + 7), atol=1e-5, rtol=1e-5)
