"""The fresca study's rules on synthetic metrics (controls that must not be reproduced, planted effects that must,
failing preconditions that give not testable), its measuring instruments, and a rejudge round trip of a smoke result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.study import Result, Verdict, get_study, rejudge


N_IMAGES = 60
DIM = 8


def gen_metrics(cfg_shift=1.0, fresca_shift=1.0, cfg_acc=0.9, fresca_acc=None, clf_acc=0.88, changed=True, same_noise=True, seed=0):
    """Synthetic generation metrics: the reference is N(0, I); each arm's per-image features are the
    shared per-image noise (the same initial noise in both arms) plus a mean shift: the arm with the
    smaller shift has the lower FID."""
    from reprolab.papers.fresca.study import encode_rows

    rng = np.random.default_rng(seed)
    ws = [2.0, 4.0]
    per_image, arms = {}, {}
    ref = rng.standard_normal((4000, DIM))
    for w in ws:
        z = rng.standard_normal((N_IMAGES, DIM))
        zf = z if same_noise else rng.standard_normal((N_IMAGES, DIM))
        k_c = int(round(cfg_acc * N_IMAGES))
        k_f = int(round((cfg_acc if fresca_acc is None else fresca_acc) * N_IMAGES))
        per_image[f"w{w:g}"] = {
            "cfg": encode_rows(z + cfg_shift), "fresca": encode_rows(zf + fresca_shift),
            "cfg_correct": [1] * k_c + [0] * (N_IMAGES - k_c), "fresca_correct": [1] * k_f + [0] * (N_IMAGES - k_f),
        }
        for h in (1.0, 1.25, 1.5):
            arms[f"w{w:g}_h{h:g}"] = {"fid": 1.0, "accuracy": cfg_acc, "hf_energy": 1.0, "pixel_change_vs_cfg": 0.0 if h == 1.0 or not changed else 0.1}
    return {"generation": {
        "guidance_scales": ws, "high_scales": [1.0, 1.25, 1.5], "arms": arms, "classifier_test_accuracy": clf_acc,
        "reference": {"n": 4000, "mean": ref.mean(0).tolist(), "cov": encode_rows(np.cov(ref, rowvar=False), 8)},
        "per_image": per_image,
    }}


def depth_metrics(base_mean=0.12, gain=0.01, n=30, flat=0.4, noise=0.01, changed=True, seed=0):
    rng = np.random.default_rng(seed)
    base = base_mean + 0.03 * rng.standard_normal(n)
    fr = base - gain + noise * rng.standard_normal(n)
    syn = {"h1": {"absrel": float(base.mean()), "absrel_per_scene": base.tolist()},
           "h1.5": {"absrel": float(fr.mean()), "absrel_per_scene": fr.tolist()}}
    return {"depth": {"high_scales": [1.0, 1.5], "synthetic": syn, "flat_absrel_per_scene": (flat + 0.05 * rng.standard_normal(n)).tolist(),
                      "prediction_change": {"h1": 0.0, "h1.5": 0.05 if changed else 0.0},
                      "motorcycle": {"h1": {"absrel": 0.5}, "h1.5": {"absrel": 0.49}}}}


@pytest.fixture(scope="module")
def claims():
    return {c.key: c for c in get_study("fresca").claims}


def test_generation_planted_effect_is_reproduced(claims):
    j = claims["generation"].judge(gen_metrics(cfg_shift=1.0, fresca_shift=0.5))
    assert j.verdict == Verdict.REPRODUCED, j.ours
    assert j.headline.unit == "generated images" and j.headline.n == N_IMAGES and j.headline.margin == 0
    assert j.headline.effect > 0 and j.headline.low > 0
    assert "not Inception" in j.ours


def test_generation_controls_are_not_reproduced(claims):
    judge = claims["generation"].judge
    same = judge(gen_metrics(1.0, 1.0))  # identical arms: the paired difference is exactly 0
    assert same.verdict == Verdict.INCONCLUSIVE and same.headline.effect == 0
    worse = judge(gen_metrics(0.5, 1.0))  # FreSca further from the real images
    assert worse.verdict == Verdict.NOT_REPRODUCED
    # an unrelated arm (fresh noise, same distribution): no paired effect to find
    unrelated = judge(gen_metrics(1.0, 1.0, same_noise=False, seed=3))
    assert unrelated.verdict != Verdict.REPRODUCED


def test_generation_preconditions_give_not_testable(claims):
    judge = claims["generation"].judge
    chance = judge(gen_metrics(1.0, 0.5, cfg_acc=0.1))  # a generator at chance: FID of noise means nothing
    assert chance.verdict == Verdict.NOT_TESTABLE and "generator usable" in chance.ours
    barely = judge(gen_metrics(1.0, 0.5, cfg_acc=0.45))  # above chance, but its lower bound is not 30 points above
    assert barely.verdict == Verdict.NOT_TESTABLE
    assert judge(gen_metrics(1.0, 0.5, clf_acc=0.3)).verdict == Verdict.NOT_TESTABLE
    assert judge(gen_metrics(1.0, 0.5, changed=False)).verdict == Verdict.NOT_TESTABLE


def test_generation_accuracy_drop_is_a_supporting_check(claims):
    j = claims["generation"].judge(gen_metrics(1.0, 0.5, cfg_acc=0.9, fresca_acc=0.8))
    assert j.verdict == Verdict.PARTLY and not all(j.checks.values())


def test_depth_rule(claims):
    judge = claims["depth"].judge
    planted = judge(depth_metrics(gain=0.01))
    assert planted.verdict == Verdict.REPRODUCED and planted.headline.unit == "test scenes" and planted.headline.n == 30
    assert judge(depth_metrics(gain=0.0, noise=0.0)).verdict == Verdict.INCONCLUSIVE  # identical arms
    assert judge(depth_metrics(gain=0.0, noise=0.01, seed=1)).verdict != Verdict.REPRODUCED  # noise only
    assert judge(depth_metrics(gain=-0.01)).verdict == Verdict.NOT_REPRODUCED
    assert "motorcycle" in planted.ours


def test_depth_preconditions_give_not_testable(claims):
    judge = claims["depth"].judge
    untrained = judge(depth_metrics(base_mean=0.35, flat=0.4))  # barely better than flat: what an untrained net does
    assert untrained.verdict == Verdict.NOT_TESTABLE and "learned" in untrained.ours
    assert judge(depth_metrics(changed=False)).verdict == Verdict.NOT_TESTABLE


def test_the_claims_name_their_unit_and_margin():
    for c in get_study("fresca").claims:
        assert "unit:" in c.rule and "margin 0" in c.rule
    assert "high-frequency energy" not in get_study("fresca").claims[0].rule  # holds by construction: a unit test only


def test_fast_fid_agrees_with_the_direct_one():
    from reprolab.papers.fresca.study import FIDToReference, frechet_distance

    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3000, 6)) @ rng.standard_normal((6, 6))
    gen = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6)) + 0.3
    fast = FIDToReference(ref.mean(0), np.cov(ref, rowvar=False))
    assert fast(gen) == pytest.approx(frechet_distance(gen, ref), rel=1e-4, abs=1e-4)
    assert fast(ref) == pytest.approx(0.0, abs=1e-6)


def test_feature_rows_round_trip():
    from reprolab.papers.fresca.study import decode_rows, encode_rows

    x = np.random.default_rng(0).standard_normal((5, 7)) * 10
    np.testing.assert_allclose(decode_rows(encode_rows(x)), x, rtol=1e-3)
    np.testing.assert_allclose(decode_rows(encode_rows(x, 8)), x, rtol=1e-7)


def test_smoke_result_rejudges_to_the_same_verdicts(smoke_run):
    result, out = smoke_run("fresca")
    assert result.status == "ok"
    g = result.metrics["generation"]
    assert len(g["per_image"]["w2"]["cfg"]) == get_study("fresca").config_for("smoke").samples_per_arm
    # the smoke generator is at chance: its FID claim must not be judged
    assert result.claims[0].verdict == Verdict.NOT_TESTABLE
    again = rejudge(Result.load(out / "fresca" / "smoke" / "result.json"))
    assert [(c.key, c.verdict, c.headline) for c in again.claims] == [(c.key, c.verdict, c.headline) for c in result.claims]


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
