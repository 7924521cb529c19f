"""The benchmark's runners (ours and the peers) against an OpenAI-compatible stub on loopback: each one
reaches the server, uses the calculator or code as its framework does, and is scored and metered alike."""

from __future__ import annotations

import json

import pytest

from reprolab.papers.foundation_agents.bench import answer_of, calculator, run_side_by_side
from reprolab.papers.foundation_agents.tasks import QATask
from tests.openai_stub import openai_stub


def _reply(body: dict) -> dict:
    msgs = body["messages"]
    text = json.dumps(msgs)
    if body.get("tools"):
        if any(m.get("role") == "tool" for m in msgs):
            msg = {"role": "assistant", "content": "The answer is 42."}
        elif "Steps so far" in text:  # ours: the tool result is in the state text
            msg = {"role": "assistant", "content": "Final answer: 42"}
        else:
            name = body["tools"][0]["function"]["name"]
            msg = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps({"expression": "6*7"})}}]}
    elif "final_answer" in text:  # smolagents' CodeAgent prompt
        msg = {"role": "assistant", "content": "Thought: compute it.\n<code>\nr = calculator(expression='6*7')\nfinal_answer(r)\n</code>"}
    elif "Steps so far" in text:
        msg = {"role": "assistant", "content": "Final answer: 42"}
    else:
        msg = {"role": "assistant", "content": "```python\nprint(6 * 7)\n```"}
    return {"id": "x", "object": "chat.completion", "created": 0, "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


@pytest.fixture()
def stub():
    with openai_stub(_reply) as (url, _):
        yield url


def test_calculator_is_exact_and_refuses_code():
    assert calculator("(3 * 7 - 5) / 4") == "4" and calculator("1/3 + 1/6") == "1/2"
    with pytest.raises(ValueError):
        calculator("__import__('os').system('true')")
    assert answer_of("The answer is 42.") == "42" and answer_of(42) == "42"


def test_every_runner_solves_the_stub_task_and_is_metered(stub):
    res = run_side_by_side(stub, "stub", [QATask("t", "What is 6 times 7?", "42")])
    missing = res.pop("_missing")
    assert not missing, missing  # the agents_peers extra is installed here
    assert set(res) == {"ours CodeAct", "ours native tools", "smolagents CodeAgent", "LangGraph ReAct", "pydantic-ai"}
    for name, r in res.items():
        assert r["errors"] == [0.0] and r["success"] == [1.0], name
        assert r["tokens"][0] >= 110 and r["seconds"][0] > 0, name  # at least one call, counted on the same hook
