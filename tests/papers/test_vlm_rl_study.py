"""Study vlm_rl: the smoke run, and each rule fed a control that must fail and a planted effect that must pass."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.papers.vlm_rl.evaluation import SETTINGS, reflection_ratios
from reprolab.papers.vlm_rl.study import judge_reflection, judge_rl_sft, judge_rl_vanilla, reflection_length_r, summarise
from reprolab.study import Verdict

N_Q = 60


def _run(arm, seed, p_val, p_test, rng, epochs=3, steps=None, finite=True):
    evals = [{sp: {s.name: (rng.random(N_Q) < p).astype(float).tolist() for s in SETTINGS} for sp, p in (("val", p_val), ("test", p_test))} for _ in range(epochs)]
    return {"arm": arm, "seed": seed, "evals": evals, "log": {"steps": steps or [], "epochs": []}, "losses_finite": finite, "steps": 10}


def _metrics(rl_gain=0.0, sft_gain=0.0, vanilla=0.3, seeds=3, steps=None, finite=True):
    rng = np.random.default_rng(0)
    base_v = rng.random(N_Q) < vanilla  # the same questions are hard for every arm: paired units
    parts = []
    for s in range(seeds):
        parts.append(_run("vanilla", s, vanilla, vanilla, rng, epochs=1))
        parts.append(_run("rl", s, vanilla + rl_gain, vanilla + rl_gain, rng, steps=steps[s] if steps else None, finite=finite))
        parts.append(_run("sft", s, vanilla + sft_gain, vanilla + sft_gain, rng))
    del base_v
    return summarise(parts)


def test_rl_vanilla_rule_control_fails_planted_passes():
    assert judge_rl_vanilla(_metrics(rl_gain=0.0)).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)  # RL = vanilla: no effect
    assert judge_rl_vanilla(_metrics(rl_gain=0.3)).verdict == Verdict.REPRODUCED
    assert judge_rl_vanilla(_metrics(rl_gain=0.3, vanilla=0.0)).verdict == Verdict.NOT_TESTABLE  # an untrained vanilla model
    assert judge_rl_vanilla(_metrics(rl_gain=0.3, finite=False)).verdict == Verdict.NOT_TESTABLE


def test_rl_sft_rule_control_fails_planted_passes():
    assert judge_rl_sft(_metrics(rl_gain=0.1, sft_gain=0.1)).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)
    assert judge_rl_sft(_metrics(rl_gain=0.1, sft_gain=-0.2)).verdict == Verdict.REPRODUCED


def _steps(rng, n=12, coupled=True):
    out = []
    for i in range(n):
        ratio = 0.1 + 0.3 * rng.random()
        length = 20 + 8 * ratio + (0.2 * rng.standard_normal() if coupled else 0.0)
        out.append({"step": float(i + 1), "reflection_ratio": ratio, "response_length": length if coupled else 20 + 3 * rng.random()})
    return out


def test_reflection_rule_control_fails_planted_passes():
    rng = np.random.default_rng(1)
    planted = _metrics(steps=[_steps(rng) for _ in range(3)])
    assert judge_reflection(planted).verdict == Verdict.REPRODUCED
    control = _metrics(steps=[_steps(rng, coupled=False) for _ in range(3)])  # lengths independent of reflection
    assert judge_reflection(control).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)
    flat = [[{**s, "reflection_ratio": 0.0} for s in _steps(rng)] for _ in range(3)]
    assert judge_reflection(_metrics(steps=flat)).verdict == Verdict.NOT_TESTABLE  # nothing to count
    assert reflection_length_r([{"reflection_ratio": 0.2, "response_length": 3.0}] * 5) == 0.0


def test_smoke_run(smoke_run):
    result, out = smoke_run("vlm_rl")
    m = result.metrics
    assert set(m["runs"]) == {"vanilla", "rl", "sft"} and {c.key for c in result.claims} == {"rl_beats_vanilla", "rl_beats_sft", "reflection_tracks_length"}
    rl = m["runs"]["rl"][0]
    assert rl["steps"] > 0 and rl["losses_finite"] and len(rl["evals"]) == 1
    row = rl["log"]["steps"][0]
    assert set(reflection_ratios([], [])) <= set(row) and row["response_length"] >= 1
    for arm in ("vanilla", "rl", "sft"):
        for sp in ("val", "test"):
            for s in SETTINGS:
                t = m["tables"][arm][sp][s.name]
                assert 0.0 <= t["mean"] <= t["max"] <= 1.0
    assert {f.file.split("/")[-1] for f in result.figures} >= {"accuracy_per_epoch.png", "scheme_per_step.png", "rl_vs_sft.png"}


@pytest.mark.parametrize("gain", [0.3])
def test_rules_report_numbers_in_words(gain):
    j = judge_rl_vanilla(_metrics(rl_gain=gain))
    assert "vanilla" in j.ours and "RL mean" in j.ours


def test_outcome_strings_round_trip_and_read_like_lists():
    from reprolab.papers.vlm_rl.study import bits, outcomes

    flags = [True, False, False, True]
    assert bits(flags) == "1001" and outcomes("1001").tolist() == [1.0, 0.0, 0.0, 1.0] == outcomes([1.0, 0.0, 0.0, 1.0]).tolist()
    m = _metrics(rl_gain=0.3)
    as_bits = {arm: [{**r, "evals": [{sp: {k: bits(np.asarray(v) > 0.5) for k, v in e[sp].items()} for sp in e} for e in r["evals"]]} for r in rs] for arm, rs in m["runs"].items()}
    assert judge_rl_vanilla(summarise([r for rs in as_bits.values() for r in rs])).headline.effect == pytest.approx(judge_rl_vanilla(m).headline.effect)
