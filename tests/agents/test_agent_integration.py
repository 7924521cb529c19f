"""The same agent on a real GGUF in-process and through llama-cpp-python's OpenAI-compatible server on
loopback (text actions, and the server's native tool calling with ``chatml-function-calling``).

Gemma 3 270M (base, the smallest offline asset) is far too small to solve anything: these tests
assert the plumbing on real formats (prompts, parsing, metering, traces, tool calls constrained
by the server's grammar), not the model's skill."""

from __future__ import annotations


import pytest

from reprolab.agents import Agent, Budget, NativeToolCalling, ReAct, Tool, ToolBox, ToolCallingClient, Trace
from reprolab.llm import load_llm
from reprolab.llm.chat_template import PLAIN_TEMPLATE

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: make setup")
pytest.importorskip("uvicorn", reason="llama-cpp-python[server] is not installed: make setup")


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first term
        b: the second term
    """
    return a + b


@pytest.fixture(scope="module")
def gemma_path():
    from reprolab import assets

    if not assets.is_installed("gemma-3-270m"):
        pytest.skip("offline asset gemma-3-270m is not installed: run `make assets`")
    return assets.path("gemma-3-270m")


@pytest.fixture(scope="module")
def server(gemma_path):
    from reprolab.llm.server import llama_server

    with llama_server(gemma_path, n_ctx=2048, n_threads=1, startup_s=60, chat_format="chatml-function-calling") as url:
        yield url


def _agent(llm):
    from reprolab.llm.base import Sampling

    return Agent(ReAct(), llm, tools=ToolBox([add]), max_steps=2, sampling=Sampling(max_tokens=24))


def test_same_agent_in_process_and_over_http(server, gemma_path, tmp_path):
    http = load_llm(server, model="gemma", chat_template=PLAIN_TEMPLATE, timeout_s=60)
    local = load_llm("gemma-3-270m", n_ctx=2048, n_threads=1)
    try:
        r_http = _agent(http).run("What is 2 + 3?", budget=Budget(max_calls=4), trace=tmp_path / "http.jsonl")
        r_local = _agent(local).run("What is 2 + 3?", budget=Budget(max_calls=4), trace=tmp_path / "local.jsonl")
    finally:
        local.close()
        http.close()
    for r in (r_http, r_local):
        assert r.status in ("finished", "max_steps", "budget:max_calls") and 1 <= r.usage["calls"] <= 4
        assert r.usage["completion_tokens"] > 0 and r.usage["prompt_tokens"] > 0
        assert r.failures["asked"] >= 1  # every reply went through the schema (a tiny model's usually fails, counted)
    # the same agent sends the same prompt both ways, and both backends tokenize it alike. (The generated texts
    # may differ: llama-cpp-python's server applies its default repeat penalty, which the HTTP backend does not
    # turn off, while the in-process backend samples with repeat_penalty=1.)
    first = [next(e for e in Trace.read(tmp_path / f"{k}.jsonl") if e["event"] == "llm_call") for k in ("http", "local")]
    assert first[0]["prompt"] == first[1]["prompt"]
    assert first[0]["prompt_tokens"] == first[1]["prompt_tokens"] > 50


def test_native_tool_calling_through_the_server(server):
    client = ToolCallingClient(server, model="gemma", timeout_s=120)
    forced = {"type": "function", "function": {"name": "add"}}
    box = ToolBox([Tool.from_function(add)])
    from reprolab.llm.base import Sampling

    agent = Agent(NativeToolCalling(client, tool_choice=forced), tools=box, max_steps=2, sampling=Sampling(max_tokens=32))
    try:
        res = agent.run("What is 2 + 3? Use the add tool.", budget=Budget(max_calls=2))
    finally:
        client.close()
    # the server's grammar forces a schema-shaped call: it reaches our tool box, which validates and runs it
    assert res.actions[0].kind == "tool" and res.actions[0].tool == "add"
    assert set(res.actions[0].arguments) <= {"a", "b"}
    assert box.log and box.log[0]["tool"] == "add"
    assert res.usage["calls"] >= 1 and res.usage["tokens"] > 0
