"""The vlm_sae study's rules on synthetic metrics: controls (identical arms, shuffled / zero correlations, an
SAE that does not steer) that must not be reproduced, planted effects that must, failing preconditions that
give not testable; and a rejudge round trip of a smoke result."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.data.shapes import ATTRIBUTES
from reprolab.study import Result, Verdict, get_study, rejudge, run_study

EPS = (1, 4)


def ms_metrics(neurons=0.05, btk=(0.5, 0.6), mat=(0.55, 0.65), n=80, fvu=0.1, rho=0.3, rho_sd=0.05, seed=0):
    """Synthetic per-unit MS: each arm N(mean, 0.1) over n units, clipped to [-1, 1]."""
    rng = np.random.default_rng(seed)

    def vals(mu):
        return np.clip(mu + 0.1 * rng.standard_normal(n), -1, 1).round(4).tolist()

    def summary(v):
        return {"best": max(v), "top10_mean": float(np.mean(sorted(v)[-10:])), "mean": float(np.mean(v)), "worst": min(v), "defined": len(v), "total": n}

    sae = {}
    for arch, means in (("batchtopk", btk), ("matryoshka", mat)):
        for e, mu in zip(EPS, means):
            v = vals(mu)
            sae[f"{arch}_x{e}"] = {"ms": summary(v), "ms_values": v, "eval_fvu": fvu, "spearman_ms_purity": float(rho + rho_sd * rng.standard_normal())}
    nv = vals(neurons)
    return {"expansions": list(EPS), "neurons": {"ms": summary(nv), "ms_values": nv, "spearman_ms_purity": -0.1}, "sae": sae}


def steering_metrics(sae_gain=0.3, dm_gain=0.1, n_latents=8, probe_acc=0.95, n_test=400, seed=0):
    rng = np.random.default_rng(seed)
    strengths = [0.0, 0.5, 1.0, 2.0]
    latents = []
    for j in range(n_latents):
        base = 0.02
        sae = [base] + [float(np.clip(base + sae_gain * s / 2 + 0.03 * rng.standard_normal(), 0, 1)) for s in strengths[1:]]
        dm = [base] + [float(np.clip(base + dm_gain * s / 2 + 0.03 * rng.standard_normal(), 0, 1)) for s in strengths[1:]]
        latents.append({"latent": j, "ms": 0.8, "purity": 0.9, "concept": "colour=red", "sae": sae, "diffmean": dm})
    return {"steering": {
        "latents": latents, "strengths": strengths,
        "sae_curve": np.mean([lat["sae"] for lat in latents], 0).tolist() if latents else [],
        "diffmean_curve": np.mean([lat["diffmean"] for lat in latents], 0).tolist() if latents else [],
        "probe_test_correct": {a: int(probe_acc * n_test) for a in ATTRIBUTES}, "probe_test_n": n_test,
    }}


@pytest.fixture(scope="module")
def claims():
    return {c.key: c for c in get_study("vlm_sae").claims}


def test_sae_vs_neurons(claims):
    judge = claims["sae_vs_neurons"].judge
    planted = judge(ms_metrics(neurons=0.05, btk=(0.5, 0.6)))
    assert planted.verdict == Verdict.REPRODUCED, planted.ours
    assert planted.headline.margin == pytest.approx(0.10) and planted.headline.n == 160
    # controls: latents no better than neurons, or better by less than the "far" margin
    assert judge(ms_metrics(neurons=0.3, btk=(0.3, 0.6), mat=(0.3, 0.6))).verdict != Verdict.REPRODUCED
    assert judge(ms_metrics(neurons=0.3, btk=(0.33, 0.6), mat=(0.33, 0.6), n=400)).verdict == Verdict.NOT_REPRODUCED
    # the Matryoshka SAE (supporting) not above the neurons: partly
    assert judge(ms_metrics(neurons=0.05, btk=(0.5, 0.6), mat=(0.05, 0.6))).verdict == Verdict.PARTLY
    # an SAE that did not learn (unexplained variance 0.9): not testable
    assert judge(ms_metrics(fvu=0.9)).verdict == Verdict.NOT_TESTABLE
    assert judge(ms_metrics(n=5)).verdict == Verdict.NOT_TESTABLE


def test_ms_rises_with_expansion(claims):
    judge = claims["ms_rises_with_expansion"].judge
    assert judge(ms_metrics(btk=(0.5, 0.6), mat=(0.55, 0.65))).verdict == Verdict.REPRODUCED
    same = judge(ms_metrics(btk=(0.5, 0.5), mat=(0.5, 0.5)))
    assert same.verdict != Verdict.REPRODUCED
    assert judge(ms_metrics(btk=(0.6, 0.5), n=300)).verdict == Verdict.NOT_REPRODUCED
    m = ms_metrics()
    m["expansions"] = [1]
    assert judge(m).verdict == Verdict.NOT_TESTABLE


def test_matryoshka_vs_batchtopk(claims):
    judge = claims["matryoshka_vs_batchtopk"].judge
    assert judge(ms_metrics(btk=(0.5, 0.6), mat=(0.6, 0.6))).verdict == Verdict.REPRODUCED
    m = ms_metrics(btk=(0.5, 0.6), mat=(0.5, 0.6))
    m["sae"]["matryoshka_x1"]["ms_values"] = list(m["sae"]["batchtopk_x1"]["ms_values"])  # identical arms
    assert judge(m).verdict == Verdict.INCONCLUSIVE
    assert judge(ms_metrics(btk=(0.6, 0.6), mat=(0.5, 0.6), n=300)).verdict == Verdict.NOT_REPRODUCED


def test_ms_tracks_ground_truth(claims):
    judge = claims["ms_tracks_ground_truth"].judge
    planted = judge(ms_metrics(rho=0.3))
    assert planted.verdict == Verdict.REPRODUCED and planted.headline.unit == "SAEs" and planted.headline.n == 4
    assert judge(ms_metrics(rho=0.0, rho_sd=0.1, seed=2)).verdict != Verdict.REPRODUCED  # shuffled purity: rho ~ 0
    m = ms_metrics()
    for k in list(m["sae"])[1:]:
        m["sae"][k]["spearman_ms_purity"] = None
    assert judge(m).verdict == Verdict.NOT_TESTABLE


def test_steering(claims):
    judge = claims["steering_beats_diffmean"].judge
    planted = judge(steering_metrics(sae_gain=0.4, dm_gain=0.1))
    assert planted.verdict == Verdict.REPRODUCED and planted.headline.unit == "steered latents" and planted.headline.n == 8
    # v1 showed "partly" when DiffMean won by 4.5x and the SAE still lifted insertion: now not reproduced
    dm_wins = judge(steering_metrics(sae_gain=0.3, dm_gain=1.2))
    assert dm_wins.verdict == Verdict.NOT_REPRODUCED
    assert judge(steering_metrics(sae_gain=0.3, dm_gain=0.3)).verdict != Verdict.REPRODUCED  # same direction, same norm
    weak = judge(steering_metrics(sae_gain=0.15, dm_gain=0.0))  # beats DiffMean but barely moves the probe
    assert weak.verdict == Verdict.PARTLY
    assert judge(steering_metrics(probe_acc=0.3)).verdict == Verdict.NOT_TESTABLE  # probes near chance
    # a weak probe that no steered latent is read with does not block the claim (all steered concepts are colours)
    m = steering_metrics(sae_gain=0.4, dm_gain=0.1)
    m["steering"]["probe_test_correct"]["position"] = 100
    assert judge(m).verdict == Verdict.REPRODUCED
    m["steering"]["probe_test_correct"]["colour"] = 100
    assert judge(m).verdict == Verdict.NOT_TESTABLE
    assert judge(steering_metrics(n_latents=1)).verdict == Verdict.NOT_TESTABLE
    assert judge(steering_metrics(n_latents=0)).verdict == Verdict.NOT_TESTABLE


def test_the_claims_name_their_unit_and_margin():
    for c in get_study("vlm_sae").claims:
        assert "unit:" in c.rule and "margin" in c.rule


def test_smoke_result_rejudges_to_the_same_verdicts(tmp_path, one_thread):
    result, _ = run_study("vlm_sae", "smoke", out=tmp_path)
    assert result.status == "ok"
    assert all("ms_values" in v for v in result.metrics["sae"].values()) and "ms_values" in result.metrics["neurons"]
    again = rejudge(Result.load(tmp_path / "vlm_sae" / "smoke" / "result.json"))
    assert [(c.key, c.verdict, c.headline) for c in again.claims] == [(c.key, c.verdict, c.headline) for c in result.claims]
