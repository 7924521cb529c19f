"""Benchmark ``foundation_agents``: the same tool-use tasks and model through one OpenAI-compatible server,
our agents beside the frameworks a user would otherwise pick.

Tasks: word problems (:func:`.tasks.math_tasks`, evaluation split) with one tool, ``calculator(expression)``
(Python arithmetic). Server: llama-cpp-python's, on loopback, with ``chatml-function-calling`` so that
native tool calling works; the model is Qwen2.5-Coder 0.5B (GGUF). Rows, per task: success, tokens
(from the server's ``usage``, counted on the HTTP responses of every runner alike) and seconds.

- ``ours CodeAct``: :class:`reprolab.agents.CodeAct` (code in the sandbox; the calculator is not needed);
- ``ours native tools``: :class:`reprolab.agents.NativeToolCalling` (the server picks the tool);
- ``smolagents CodeAgent`` (1.26.0): code actions, run by smolagents' local AST interpreter;
- ``LangGraph ReAct`` (1.2.22, ``create_react_agent`` with ``ChatOpenAI``): server tool calling;
- ``pydantic-ai`` (2.62.0, ``OpenAIChatModel``): server tool calling.
Peers that are not installed (``pip install 'reprolab[agents_peers]'``) are left out and named in ``extra``.
The baseline of the time ratios is smolagents' CodeAgent (the issue's named peer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .tasks import QATask, math_tasks

SYSTEM = "Solve the word problem. Use the calculator tool for arithmetic. Reply with the final number only."


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as (3 * 7 - 5) / 4.

    Args:
        expression: the arithmetic expression, with + - * / ( ) and numbers only
    """
    import ast
    import operator as op
    from fractions import Fraction

    ops = {ast.Add: op.add, ast.Sub: op.sub, ast.Mult: op.mul, ast.Div: op.truediv, ast.USub: op.neg}

    def ev(n: ast.AST) -> Fraction:
        if isinstance(n, ast.Expression):
            return ev(n.body)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
            return Fraction(n.value)
        if isinstance(n, ast.BinOp) and type(n.op) in ops:
            return ops[type(n.op)](ev(n.left), ev(n.right))
        if isinstance(n, ast.UnaryOp) and type(n.op) in ops:
            return ops[type(n.op)](ev(n.operand))
        raise ValueError(f"not arithmetic: {ast.dump(n)[:60]}")

    v = ev(ast.parse(expression, mode="eval"))
    return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"


class UsageCounter:
    """Sums ``usage`` of every chat/completions HTTP response (sync and async httpx hooks)."""

    def __init__(self, timeout_s: float = 90.0) -> None:
        self.prompt = self.completion = self.calls = 0
        self.timeout_s = timeout_s  # per HTTP request: a request past it is a measured failure of that task

    def _add(self, body: bytes) -> None:
        try:
            u = json.loads(body).get("usage") or {}
        except (ValueError, AttributeError):
            return
        self.calls += 1
        self.prompt += int(u.get("prompt_tokens", 0))
        self.completion += int(u.get("completion_tokens", 0))

    def hook(self, response: Any) -> None:
        response.read()
        self._add(response.content)

    async def ahook(self, response: Any) -> None:
        await response.aread()
        self._add(response.content)

    @property
    def tokens(self) -> int:
        return self.prompt + self.completion

    def client(self, asynchronous: bool = False) -> Any:
        import httpx

        if asynchronous:
            return httpx.AsyncClient(event_hooks={"response": [self.ahook]}, trust_env=False, timeout=self.timeout_s)
        return httpx.Client(event_hooks={"response": [self.hook]}, trust_env=False, timeout=self.timeout_s)


def runners(url: str, model: str, counter: UsageCounter, max_steps: int = 4) -> tuple[dict[str, Callable[[QATask], Any]], dict[str, str]]:
    """name -> run(task) -> answer, for ours and every installed peer; and name -> why it is missing."""
    from ...agents import Agent, CodeAct, NativeToolCalling, Tool, ToolBox, ToolCallingClient, python_tool
    from ...llm.base import Sampling
    from ...llm.openai_http import OpenAICompatLLM

    out: dict[str, Callable[[QATask], Any]] = {}
    missing: dict[str, str] = {}
    s = Sampling(max_tokens=256)

    http = OpenAICompatLLM(url, model=model, timeout_s=counter.timeout_s, retries=0)  # as the peers: a timeout fails the task
    http._client = counter.client()  # the same usage counter as the peers (their responses go through the same hook)
    code_agent = Agent(CodeAct(), http, tools=ToolBox([python_tool(timeout_s=5)]), max_steps=max_steps, sampling=s)
    out["ours CodeAct"] = lambda t: code_agent.run(t.question).answer

    client = ToolCallingClient(url, model=model, timeout_s=counter.timeout_s)
    client._client = counter.client()
    native = Agent(NativeToolCalling(client), tools=ToolBox([Tool.from_function(calculator)]), max_steps=max_steps, sampling=s,
                   system=SYSTEM)
    out["ours native tools"] = lambda t: native.run(t.question).answer

    try:
        from smolagents import CodeAgent, OpenAIServerModel
        from smolagents import tool as smol_tool

        # flatten_messages_as_text: llama-cpp-python's server (0.3.36) accepts only string message contents, and
        # smolagents sends lists of parts by default (every call then fails with HTTP 500): what a user of this
        # server has to set
        smodel = OpenAIServerModel(model_id=model, api_base=url, api_key="none", client_kwargs={"http_client": counter.client()},
                                   max_tokens=256, temperature=0.0, flatten_messages_as_text=True)
        sagent = CodeAgent(tools=[smol_tool(calculator)], model=smodel, max_steps=max_steps, verbosity_level=0)
        out["smolagents CodeAgent"] = lambda t: sagent.run(t.question)
    except ImportError as exc:
        missing["smolagents CodeAgent"] = str(exc)

    try:
        from langchain_openai import ChatOpenAI
        from langgraph.prebuilt import create_react_agent

        chat = ChatOpenAI(model=model, base_url=url, api_key="none", temperature=0.0, max_tokens=256, http_client=counter.client())
        graph = create_react_agent(chat, [calculator], prompt=SYSTEM)

        def run_lg(t: QATask) -> Any:
            state = graph.invoke({"messages": [("user", t.question)]}, {"recursion_limit": 2 * max_steps + 1})
            return state["messages"][-1].content

        out["LangGraph ReAct"] = run_lg
    except ImportError as exc:
        missing["LangGraph ReAct"] = str(exc)

    try:
        from pydantic_ai import Agent as PAgent
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        pmodel = OpenAIChatModel(model, provider=OpenAIProvider(base_url=url, api_key="none", http_client=counter.client(True)))
        pagent = PAgent(pmodel, instructions=SYSTEM, tools=[calculator], model_settings={"temperature": 0.0, "max_tokens": 256})
        out["pydantic-ai"] = lambda t: pagent.run_sync(t.question).output
    except ImportError as exc:
        missing["pydantic-ai"] = str(exc)
    return out, missing


def answer_of(x: Any) -> str:
    """The last number in an agent's answer (frameworks return prose)."""
    import re

    nums = re.findall(r"-?\d+(?:/\d+)?(?:\.\d+)?", str(x))
    return nums[-1] if nums else str(x)


def run_side_by_side(url: str, model: str, tasks: list[QATask], max_steps: int = 4,
                     timeout_s: float = 90.0) -> dict[str, dict[str, list[float]]]:
    """Per runner: success, tokens and seconds per task, interleaved by task (load drift hits all alike).
    A runner that raises on a task (a request past ``timeout_s`` included) scores a failure with its time
    and tokens."""
    from ...runtime import track

    counter = UsageCounter(timeout_s)
    run, missing = runners(url, model, counter, max_steps)
    res: dict[str, dict[str, list[float]]] = {n: {"success": [], "tokens": [], "seconds": [], "errors": []} for n in run}
    pairs = [(t, name) for t in tasks for name in run]
    for t, name in track(pairs, "tasks x runners"):
        fn = run[name]
        tok0 = counter.tokens
        t0 = time.perf_counter()
        try:
            ans, err = fn(t), 0.0
        except Exception:  # noqa: BLE001 - a peer failing on a task is a measured failure
            ans, err = None, 1.0
        res[name]["seconds"].append(time.perf_counter() - t0)
        res[name]["tokens"].append(float(counter.tokens - tok0))
        res[name]["success"].append(float(ans is not None and t.check(answer_of(ans))))
        res[name]["errors"].append(err)
    res["_missing"] = missing  # type: ignore[assignment]
    return res


@register_bench
class FoundationAgentsBench(Benchmark):
    name = "foundation_agents"
    description = ("success, tokens and seconds per word problem with a calculator tool through llama-cpp-python's OpenAI server: "
                   "ours (CodeAct, native tool calls) vs smolagents CodeAgent, LangGraph, pydantic-ai")

    def run(self, quick: bool) -> BenchResult:
        from ... import assets
        from ...agents.server import llama_server
        from ...llm import load_for_study

        model = "qwen2.5-coder-0.5b"
        load_for_study(model).close()  # StudySkipped when llama.cpp or the asset is missing
        tasks = math_tasks(3 if quick else 10, seed=0)
        # n_ctx 8192: smolagents' CodeAgent system prompt alone is ~2.5k tokens, and a failed step's retry
        # overflowed 4096 (HTTP 400); the model's own context is 32k
        with llama_server(assets.path(model), chat_format="chatml-function-calling", n_ctx=8192) as url:
            res = run_side_by_side(url, model, tasks)
        missing = res.pop("_missing")
        times = {n: r["seconds"] for n, r in res.items()}
        base = "smolagents CodeAgent" if "smolagents CodeAgent" in times else next(iter(times))
        notes = {n: f"success {100 * np.mean(r['success']):.0f}%, {np.mean(r['tokens']):.0f} tokens/task, "
                    f"{int(sum(r['errors']))} errors" for n, r in res.items()}
        return BenchResult(bench=self.name, baseline=base, rows=bench_rows(times, base, "s per task", notes),
                           config={"model": model, "tasks": len(tasks), "max_steps": 4, "max_tokens": 256, "temperature": 0.0,
                                   "server": "llama_cpp.server --chat_format chatml-function-calling --n_ctx 8192"},
                           extra={"per_task": res, "missing": missing,
                                  "note": "2 shared CPU cores; a 0.5B model: success rates on few tasks are coarse"})
