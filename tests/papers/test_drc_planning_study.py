"""The drc_planning study's rules on planted numbers (each judge: a control that must not be reproduced, a planted effect
that must be), the agent-too-weak gate, JSON round trip of the verdicts, and the smoke run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reprolab.papers.drc_planning.probes import confusion
from reprolab.papers.drc_planning.study import DRCPlanningStudy, judge_decodable, judge_refine, judge_steer, judge_thinking
from reprolab.study import Verdict

pytestmark = pytest.mark.usefixtures("one_thread")
E = 60  # episodes


def confs(acc: float, seed: int, n: int = E) -> list[list[int]]:
    """Per-episode confusion matrices of predictions right with probability ``acc`` (else a random class)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = np.where(rng.random(64) < 0.7, 0, rng.integers(1, 5, 64))
        p = np.where(rng.random(64) < acc, y, rng.integers(0, 5, 64))
        out.append(confusion(p, y).ravel().tolist())
    return out


def metrics(*, solve=0.8, best=0.95, base=0.3, first=0.5, last=0.9, probe_succ=0.9, rand_succ=0.1, think=0.9, plain=0.6):
    flags = lambda p, s, n=E: (np.random.default_rng(s).random(n) < p).astype(float).tolist()  # noqa: E731
    return {
        "agent": {"solve_rate": solve, "n_test": E, "curve": []},
        "probes": {c: {"best_layer": 2, "test_conf_best": confs(best, 1 + k), "test_conf_base": confs(base, 11 + k)}
                   for k, c in enumerate(("C_A", "C_B"))},
        "ticks": {c: {"conf_first": confs(first, 21 + k), "conf_last": confs(last, 31 + k)} for k, c in enumerate(("C_A", "C_B"))},
        "interventions": {"eval_probe": flags(probe_succ, 41), "eval_random": flags(rand_succ, 42), "eval_none": flags(0.1, 43),
                          "best_alpha": 1.0, "layer": 2, "n_select": 40},
        "thinking": {"with": flags(think, 51), "without": flags(plain, 51 if think == plain else 52)},
    }


def test_planted_effects_pass_every_rule():
    m = metrics()
    for judge in (judge_decodable, judge_refine, judge_steer, judge_thinking):
        assert judge(m).verdict == Verdict.REPRODUCED, judge.__name__


def test_controls_fail_every_rule():
    # (a) an untrained model: probe no better than the observation; (b) no refinement; (c) random = probe; (d) no change
    assert judge_decodable(metrics(best=0.3, base=0.3)).verdict != Verdict.REPRODUCED
    assert judge_decodable(metrics(best=0.45, base=0.3)).verdict != Verdict.REPRODUCED  # above, but by less than 0.2
    assert judge_refine(metrics(first=0.7, last=0.7)).verdict != Verdict.REPRODUCED
    assert judge_steer(metrics(probe_succ=0.3, rand_succ=0.3)).verdict != Verdict.REPRODUCED
    assert judge_thinking(metrics(think=0.6, plain=0.6)).verdict != Verdict.REPRODUCED


def test_a_weak_agent_makes_every_claim_not_run():
    m = metrics(solve=0.3)
    for judge in (judge_decodable, judge_refine, judge_steer, judge_thinking):
        j = judge(m)
        assert j.verdict == Verdict.NOT_RUN and "agent too weak" in j.ours


def test_too_few_route_levels_is_not_testable():
    m = metrics()
    m["interventions"]["eval_probe"] = m["interventions"]["eval_probe"][:5]
    m["interventions"]["eval_random"] = m["interventions"]["eval_random"][:5]
    assert judge_steer(m).verdict == Verdict.NOT_TESTABLE


def test_verdicts_survive_a_json_round_trip():
    m = metrics()
    again = json.loads(json.dumps(m))
    assert [c.verdict for c in DRCPlanningStudy.judge(m)] == [c.verdict for c in DRCPlanningStudy.judge(again)]


def test_smoke_run_end_to_end(smoke_run):
    from reprolab.study import run_study

    res, out = smoke_run("drc_planning")
    assert res.status == "ok" and len(res.claims) == 4
    m = res.metrics
    assert set(m["probes"]) == {"C_A", "C_B"} and len(m["thinking"]["with"]) == len(m["thinking"]["without"])
    assert {f.file for f in res.figures} >= {"figures/learning_curve.png", "figures/f1_per_layer.png", "figures/success_vs_alpha.png"}
    assert all((out / "drc_planning" / "smoke" / f.file).exists() for f in res.figures)
    again, reused = run_study("drc_planning", "smoke", out=out)  # a finished result with the same key is reused, not rerun
    assert reused and again.key == res.key
