"""Native tool calling: the server picks the tool (OpenAI ``tools`` / ``tool_calls``) instead of our text format.

llama-cpp-python's server does this with ``--chat_format chatml-function-calling``; so do vLLM,
llama.cpp's llama-server and OpenAI. :class:`ToolCallingClient` posts ``/v1/chat/completions`` with
``tools`` and returns the assistant message; :class:`NativeToolCalling` is the policy: a
``tool_calls`` entry becomes a tool action (its arguments parsed as JSON and validated by the tool
box), plain content becomes the final answer.

Choice: the loop's history is given to the model as text in one user turn (as for the text
policies), not as ``tool`` role messages, so every policy sees the same state; only the choice
of action differs.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ..errors import ConfigError
from ..llm.base import Completion, LLMError, Sampling
from .policies import Context, final_answer, render_state, system_prompt
from .state import Action, MentalState


class ToolCallingClient:
    def __init__(self, base_url: str, model: str = "default", *, timeout_s: float = 120.0, transport: Any = None):
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("base_url", base_url, "an http(s) URL such as http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self._client = httpx.Client(timeout=timeout_s, trust_env=False, transport=transport)

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], sampling: Sampling,
             tool_choice: Any = "auto") -> tuple[dict[str, Any], Completion]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": sampling.max_tokens,
                                "temperature": sampling.temperature, "seed": sampling.seed}
        if tools:
            body |= {"tools": tools, "tool_choice": tool_choice}
        t0 = time.perf_counter()
        import httpx

        try:
            r = self._client.post(self.base_url + "/chat/completions", json=body)
        except httpx.TransportError as exc:
            raise LLMError(f"no answer from {self.base_url}: {exc}",
                           fix="start the server with --chat_format chatml-function-calling, or fix base_url") from exc
        if r.status_code != 200:
            raise LLMError(f"{self.base_url} answered HTTP {r.status_code}: {r.text[:300]}",
                           fix="check that the server supports tools (llama-cpp-python: --chat_format chatml-function-calling)")
        try:
            data = r.json()
            msg = data["choices"][0]["message"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"malformed chat completion from {self.base_url}: {r.text[:200]}",
                           fix="check that base_url points at an OpenAI-compatible /v1 API") from exc
        c = Completion(text=msg.get("content") or "", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                       completion_tokens=int(usage.get("completion_tokens", 0)), seconds=time.perf_counter() - t0)
        return msg, c

    def close(self) -> None:
        self._client.close()


class NativeToolCalling:
    """The server's function calling as the policy (the agent's ``llm`` may be None; this client is metered).

    ``tool_choice`` forced to one function applies to the first step only (then "auto"), so a forced
    call cannot loop forever."""

    INSTRUCTIONS = "Solve the task. Call a tool when you need one; when you know the result, reply 'Final answer: <answer>'."

    def __init__(self, client: ToolCallingClient, tool_choice: Any = "auto"):
        self.client = client
        self.tool_choice = tool_choice  # "auto", "none", or {"type": "function", "function": {"name": NAME}} (forced)

    def decide(self, mental: MentalState, ctx: Context) -> Action:
        msgs = [{"role": "system", "content": system_prompt(ctx, self.INSTRUCTIONS)},
                {"role": "user", "content": render_state(mental, ctx)}]
        tools = ctx.tools.openai_tools(ctx.agent) if ctx.tools is not None else []
        ctx.meter.check()
        forced = isinstance(self.tool_choice, dict) and any(a.kind == "tool" for a, _ in mental.history)
        msg, c = self.client.chat(msgs, tools, ctx.sampling_now(mental), "auto" if forced else self.tool_choice)
        ctx.meter.add(c)
        ctx.trace.log("llm_call", agent=ctx.agent, kind="chat+tools", prompt=msgs, message=msg, prompt_tokens=c.prompt_tokens,
                      completion_tokens=c.completion_tokens, seconds=round(c.seconds, 4))
        calls = msg.get("tool_calls") or []
        if calls:
            fn = calls[0].get("function") or {}
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                ctx.failures.asked += 1
                ctx.failures.fail("bad_tool_arguments")
                return Action("think", content=f"(tool call with invalid JSON arguments: {fn.get('arguments')!r:.200})", text=json.dumps(msg))
            return Action("tool", tool=fn.get("name") or "?", arguments=args if isinstance(args, dict) else {"value": args},
                          text=json.dumps(msg))
        text = c.text
        return Action("finish", content=final_answer(text) or text.strip(), text=text)
