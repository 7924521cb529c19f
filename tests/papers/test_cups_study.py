"""CUPS study: every rule fails on a control and passes on a planted effect; the smoke run; the README example."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from reprolab.study import Verdict
from reprolab.papers.cups.study import (CupsStudy, judge_depth_fusion, judge_droploss_static, judge_network_pq, judge_pseudo_labels,
                                        judge_self_training)

README = Path(__file__).resolve().parents[2] / "reprolab" / "papers" / "cups" / "README.md"


def _rows(rng, n, good: float) -> list[list[float]]:
    """Per-image PQ rows (iou, tp, fp, fn per class, 4 classes): each segment is matched with chance ``good``."""
    out = []
    for _ in range(n):
        tp = (rng.random(4) < good).astype(float)
        out.append(np.concatenate([0.8 * tp, tp, 1 - tp, 1 - tp]).tolist())
    return out


def _sem_rows(rng, n, good: float) -> list[list[list[float]]]:
    inter = rng.uniform(good - 0.1, good + 0.1, (n, 4)) * 100
    return [np.stack([i, np.full(4, 100.0)]).tolist() for i in inter]


def _metrics(rng, planted: bool) -> dict:
    n = 40
    hi, lo = (0.8, 0.2) if planted else (0.5, 0.5)
    m = {"seeds": [0, 1, 2], "pl_instances_cups": 2.0, "net_things_cups": 10, "net_things_u2seg": 10, "dropped_share": 0.5,
         "self_instances": 1.0, "fusion_changed": 100,
         "pl_rows_cups": _rows(rng, n, hi), "pl_rows_u2seg": _rows(rng, n, lo), "pl_rows_oracle": _rows(rng, n, hi),
         "pl_rows_no_motion": _rows(rng, n, lo),
         "net_rows_cups": _rows(rng, n, 0.55 if planted else 0.5), "net_rows_u2seg": _rows(rng, n, 0.1 if planted else 0.5),
         "net_rows_cups_no_drop": _rows(rng, n, lo), "net_rows_cups_self": _rows(rng, n, 0.95 if planted else 0.5),
         "static_hit_cups": (rng.random(30) < hi).astype(float).tolist(), "static_hit_cups_no_drop": (rng.random(30) < lo).astype(float).tolist(),
         "moving_hit_cups": [1.0] * 5, "moving_hit_cups_no_drop": [1.0] * 5,
         "sem_rows_depth": _sem_rows(rng, n, hi), "sem_rows_low": _sem_rows(rng, n, lo), "sem_rows_slide": _sem_rows(rng, n, lo)}
    return m


JUDGES = [judge_pseudo_labels, judge_network_pq, judge_droploss_static, judge_self_training, judge_depth_fusion]


@pytest.mark.parametrize("judge", JUDGES, ids=lambda j: j.__name__)
def test_rule_passes_a_planted_effect_and_fails_a_control(judge):
    planted = judge(_metrics(np.random.default_rng(0), planted=True))
    assert planted.verdict == Verdict.REPRODUCED, planted.ours
    # both arms from one distribution: a 95% interval passes such a control 2.5% of the time (2/60 measured), so
    # this fixed draw is one of the other 97.5%
    control = judge(_metrics(np.random.default_rng(1000), planted=False))
    assert control.verdict != Verdict.REPRODUCED, control.ours
    same = _metrics(np.random.default_rng(11), planted=False)  # the arms are literally the same labels
    for a, b in (("pl_rows_cups", "pl_rows_u2seg"), ("net_rows_cups", "net_rows_u2seg"), ("net_rows_cups_self", "net_rows_cups"),
                 ("static_hit_cups", "static_hit_cups_no_drop"), ("sem_rows_depth", "sem_rows_low"), ("sem_rows_slide", "sem_rows_low")):
        same[a] = same[b]
    assert judge(same).verdict != Verdict.REPRODUCED


def test_preconditions_make_claims_not_testable():
    m = _metrics(np.random.default_rng(0), planted=True)
    m.update(pl_instances_cups=0.0, net_things_u2seg=0, dropped_share=0.0, self_instances=0.0, fusion_changed=0)
    for judge in JUDGES:
        assert judge(m).verdict == Verdict.NOT_TESTABLE, judge.__name__


def test_smoke_run_and_rejudge(smoke_run):
    result, out = smoke_run("cups")
    assert result.status == "ok"
    assert {c.key for c in result.claims} == {c.key for c in CupsStudy.claims}
    m = result.metrics
    assert len(m["pl_rows_cups"]) == CupsStudy.scales[list(CupsStudy.scales)[0]].n_train
    again = CupsStudy.judge(m)
    assert [c.verdict for c in again] == [c.verdict for c in result.claims]
    assert {f.file for f in result.figures} >= {"figures/pseudo_labels.png", "figures/pq_per_arm.png"}


def test_readme_usage_example_runs(capsys):
    text = README.read_text()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "instances" in out
