"""The opencodereasoning study's rules on planted numbers: each judge must not reproduce a control (shuffled
difficulties, identical arms, a student that solves nothing) and must reproduce a planted effect; verdicts
survive a JSON round trip; the smoke run goes end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reprolab.papers.opencodereasoning.study import ARMS, OpenCodeReasoningStudy
from reprolab.study import Verdict

SEEDS, PROBS = 3, 24


def bern(p, seed, n):
    return (np.random.default_rng(seed).random(n) < p).astype(float).tolist()


def metrics(lost_hard=0.8, lost_easy=0.1, arm_p=None, n_train=None, exec_kept=30, n_q=40, shuffle=False, oracle_p=1.0):
    rng = np.random.default_rng(0)
    diffs = [1 + i % 4 for i in range(n_q)]
    lost = [int(rng.random() < (lost_hard if d >= 3 else lost_easy)) for d in diffs]
    if shuffle:  # control: losses unrelated to difficulty
        lost = [int(rng.random() < 0.45) for _ in diffs]
    questions = [{"id": f"q{i}", "difficulty": d, "kept": 2, "lost": l} for i, (d, l) in enumerate(zip(diffs, lost))]
    arm_p = arm_p or {"all": 0.6, "exec": 0.2, "half": 0.3, "code_only": 0.3, "base": 0.05}
    n_train = n_train or {"all": 60, "exec": 25, "half": 30, "code_only": 60, "base": 0}
    students = {a: {"pass": [bern(arm_p[a], 10 * s + k, PROBS) for s in range(SEEDS)], "n_train": n_train[a]}
                for k, a in enumerate(ARMS)}
    return {"questions": questions, "exec_kept": exec_kept, "students": students, "oracle": {"pass": bern(oracle_p, 99, PROBS)}}


@pytest.fixture(scope="module")
def claims():
    return {c.key: c for c in OpenCodeReasoningStudy.claims}


def test_planted_effects_are_reproduced(claims):
    m = metrics()
    got = {k: c.judge(m) for k, c in claims.items()}
    assert {k: j.verdict for k, j in got.items()} == {k: Verdict.REPRODUCED for k in claims}, {k: j.ours for k, j in got.items()}
    assert got["exec_hurts"].headline.n == SEEDS * PROBS and got["hard_removed"].headline.unit == "questions"


def test_controls_are_not_reproduced(claims):
    # (a) difficulty unrelated to what execution filtering removes
    assert claims["hard_removed"].judge(metrics(shuffle=True)).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)
    # (a) reversed: easy questions lost more
    assert claims["hard_removed"].judge(metrics(lost_hard=0.1, lost_easy=0.8)).verdict == Verdict.NOT_REPRODUCED
    # (b)-(d): every arm the same model (identical pass arrays): nothing can hold
    m = metrics()
    for a in ARMS:
        m["students"][a]["pass"] = [list(x) for x in m["students"]["all"]["pass"]]
    for k in ("exec_hurts", "distill_helps", "more_data"):
        assert claims[k].judge(m).verdict == Verdict.INCONCLUSIVE
    # (b)-(d): shuffled labels: every other arm is the all arm's outcomes permuted over the pairs (same skill)
    m = metrics()
    rng = np.random.default_rng(5)
    for a in ARMS[1:]:
        flat = rng.permutation([x for s in m["students"]["all"]["pass"] for x in s]).tolist()
        m["students"][a]["pass"] = [flat[i * PROBS:(i + 1) * PROBS] for i in range(SEEDS)]
    for k in ("exec_hurts", "distill_helps", "more_data"):
        assert claims[k].judge(m).verdict in (Verdict.INCONCLUSIVE, Verdict.NOT_REPRODUCED)


def test_preconditions(claims):
    # a student that solves nothing: (b)-(d) are "not reproduced (student capacity)", not testable
    j = claims["exec_hurts"].judge(metrics(arm_p={a: 0.0 for a in ARMS}))
    assert j.verdict == Verdict.NOT_TESTABLE and j.ours.startswith("not reproduced (student capacity)")
    # execution filtering removed nothing: the exec arm is the all arm
    assert claims["exec_hurts"].judge(metrics(n_train={"all": 60, "exec": 60, "half": 30, "code_only": 60, "base": 0})).verdict \
        == Verdict.NOT_TESTABLE
    # the oracle control fails (the student cannot pass the problems it was fine-tuned on): the evaluation path is at
    # fault, so even planted arm differences are not testable, and the reason says so (not "student capacity")
    for oracle in (0.0, 0.3):
        for k in ("exec_hurts", "distill_helps", "more_data"):
            j = claims[k].judge(metrics(oracle_p=oracle))
            assert j.verdict == Verdict.NOT_TESTABLE and j.ours.startswith("not testable (evaluation path"), j.ours
    m = metrics()
    del m["oracle"]  # a run without the oracle control cannot vouch for its evaluation path
    assert claims["exec_hurts"].judge(m).verdict == Verdict.NOT_TESTABLE
    # a teacher that never passes: (a) is not testable
    assert claims["hard_removed"].judge(metrics(exec_kept=0)).verdict == Verdict.NOT_TESTABLE
    assert claims["hard_removed"].judge(metrics(n_q=8)).verdict == Verdict.NOT_TESTABLE


def test_verdicts_survive_json(claims):
    m = json.loads(json.dumps(metrics()))
    assert all(c.judge(m).verdict == Verdict.REPRODUCED for c in claims.values())


def test_smoke_run(smoke_run):
    result, out = smoke_run("opencodereasoning")
    assert result.status == "ok"
    m = result.metrics
    assert m["filter"]["samples"] == 8 * 2 and set(m["filter"]["rejected"]) >= {"too_short", "missing_think_end"}
    assert m["filter"]["rejected"]["too_short"] > 0  # the scripted teacher's short answers
    assert m["exec_kept"] > 0 and m["teacher_pass_all_samples"] > 0
    assert len(m["students"]["exec_equal_steps"]["pass"]) == len(m["seeds"]) and m["students"]["exec_equal_steps"]["losses"][0]["steps"] \
        >= m["students"]["exec"]["losses"][0]["steps"]
    assert len(m["oracle"]["pass"]) == m["n_heldout"] and m["oracle"]["train"]["steps"] > 0  # the oracle control ran
    folder = out / "opencodereasoning" / "smoke"
    assert (folder / "distilled.jsonl").stat().st_size > 0 and (folder / "distilled_sft.jsonl").stat().st_size > 0
    assert {c.key: c.verdict for c in result.claims}.keys() == {c.key for c in OpenCodeReasoningStudy.claims}
