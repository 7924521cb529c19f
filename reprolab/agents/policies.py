"""Reasoning R(M_t) -> a_t (survey Sec. 2.2): the policies.

- :class:`ReAct` (Yao et al., 2023): "Thought: ... Action: {JSON}" each step; the JSON names a tool
  call, an environment action or the final answer; validated against a schema with one repair.
- :class:`CodeAct`: the model writes a ```python block (run in the sandbox through the ``python``
  tool) or "Final answer: ...".
- :class:`ChainOfThought`: one answer after free reasoning, no tools (the baseline of the tool claim).
- :class:`LogProbChoice`: scores each allowed action by the log-probability of its label
  (``choice_logprobs``) and takes the best; no text is generated.
- :class:`Lookahead`: depth-d search through the agent's world model (external or internal).
- :class:`PlanThenAct` (plan-and-solve): an internal ``plan`` action first, then an executor policy
  that sees the plan.
- :class:`NativeToolCalling`: the server's own function calling (OpenAI ``tools``), see :mod:`.native`.
Reflexion works across trials and is in :mod:`.reflexion`.

A policy's ``decide(mental, ctx)`` sees the mental state and the run's :class:`Context` (the metered
model, the tools the agent may call, the allowed environment actions, the system prompt).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..llm.base import LLM, Message, Sampling
from .budget import Meter, Trace
from .state import Action, MentalState
from .structured import FailureCounter, ask_structured
from .tools import ToolBox, spotlight_instructions


@dataclass
class Context:
    """What a policy may use during one run (built by :class:`~reprolab.agents.loop.Agent`)."""

    llm: LLM | None
    agent: str = "agent"
    tools: ToolBox | None = None
    action_names: list[str] = field(default_factory=list)  # allowed environment actions (empty: none)
    system: str = ""  # the agent's role and instructions
    spotlight: str = "delimit"  # the spotlight mode of untrusted observations (for the instruction hierarchy)
    sampling: Sampling = field(default_factory=lambda: Sampling(max_tokens=256))
    meter: Meter = field(default_factory=Meter)
    trace: Trace = field(default_factory=Trace)
    failures: FailureCounter = field(default_factory=FailureCounter)
    reflections: list[str] = field(default_factory=list)  # from earlier trials (Reflexion)
    env: Any = None  # the live environment (world models clone it; policies never step it)
    emotion: Any = None

    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools.for_agent(self.agent)] if self.tools is not None else []

    def sampling_now(self, mental: MentalState) -> Sampling:
        return self.emotion.modulate(self.sampling, mental) if self.emotion is not None else self.sampling


def render_state(mental: MentalState, ctx: Context, *, history: bool = True) -> str:
    """The user turn: the task, reflections, the plan, relevant memory, the recent steps, the last observation."""
    parts = [f"Task: {mental.goal}"]
    if ctx.reflections:
        parts.append("Reflections on your earlier attempts:\n" + "\n".join(f"- {r}" for r in ctx.reflections))
    if mental.plan:
        parts.append("Your plan:\n" + "\n".join(f"{i + 1}. {s}" for i, s in enumerate(mental.plan)))
    if history:
        query = mental.goal + " " + (mental.last_observation.content if mental.last_observation else "")
        mem = getattr(mental.memory, "retrieved", lambda q: [])(query)
        if mem:
            parts.append("Relevant memory:\n" + "\n".join(f"- {m}" for m in mem))
        recent = getattr(mental.memory, "recent", lambda: [])()
        if recent:
            parts.append("Steps so far:\n" + "\n".join(recent))
    elif mental.last_observation is not None and mental.last_observation.source != "task":
        parts.append(f"Observation: {mental.last_observation.content}")
    return "\n\n".join(parts)


def system_prompt(ctx: Context, instructions: str) -> str:
    return "\n\n".join(p for p in (ctx.system, instructions, spotlight_instructions(ctx.spotlight)) if p)


_FINAL = re.compile(r"final answer\s*(?:is)?\s*[:=]?\s*(.+)", re.I)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def final_answer(text: str) -> str | None:
    """The text after the last "Final answer:" (first line, stripped of markup), else the last ``\\boxed{...}``
    (what math-tuned models write), else None."""
    hits = _FINAL.findall(text)
    if hits:
        ans = hits[-1].strip().splitlines()[0].strip().strip("*`$ .").strip()
        boxed = _BOXED.findall(ans)
        return boxed[-1].strip() if boxed else ans
    boxed = _BOXED.findall(text)
    return boxed[-1].strip() if boxed else None


# ----------------------------------------------------------------------------------- ReAct
class ReAct:
    """Thought + one JSON action per step (Yao et al., 2023), over tools, environment actions and the answer.

    The action must match :meth:`schema` (``{"tool": NAME, "arguments": {...}}``, ``{"action": NAME}`` or
    ``{"answer": ...}``); an invalid one gets one repair turn; a second failure is counted in
    ``ctx.failures`` and becomes an internal ``think`` action (never coerced into a call)."""

    INSTRUCTIONS = ("Solve the task step by step. At each step write one line 'Thought: ...' and then one line "
                    "'Action: ' followed by a JSON object: {tools}{actions}"
                    "or {{\"answer\": ...}} when you know the final answer. Write nothing after the JSON.")

    def schema(self, ctx: Context) -> dict[str, Any]:
        options: list[dict[str, Any]] = [{"type": "object", "properties": {"answer": {}}, "required": ["answer"]}]
        if ctx.tool_names():
            options.append({"type": "object", "properties": {"tool": {"enum": ctx.tool_names()}, "arguments": {"type": "object"}},
                            "required": ["tool", "arguments"]})
        if ctx.action_names:
            options.append({"type": "object", "properties": {"action": {"enum": ctx.action_names}}, "required": ["action"]})
        return {"anyOf": options}

    def messages(self, mental: MentalState, ctx: Context) -> list[Message]:
        tools = ""
        if ctx.tool_names():
            lines = "\n".join(f"  {t.signature_text()}" for t in ctx.tools.for_agent(ctx.agent))  # type: ignore[union-attr]
            tools = f"{{\"tool\": NAME, \"arguments\": {{...}}}} to call one of the tools\n{lines}\n"
        actions = f"{{\"action\": NAME}} to act, NAME one of {ctx.action_names}\n" if ctx.action_names else ""
        sys = system_prompt(ctx, self.INSTRUCTIONS.format(tools=tools, actions=actions))
        return [{"role": "system", "content": sys}, {"role": "user", "content": render_state(mental, ctx)}]

    def decide(self, mental: MentalState, ctx: Context) -> Action:
        out = ask_structured(ctx.llm, self.messages(mental, ctx), self.schema(ctx), ctx.sampling_now(mental),  # type: ignore[arg-type]
                             counter=ctx.failures)
        if not out.ok:
            return Action("think", content=f"(unparsable action: {out.error})", text=out.text)
        v = out.value
        if "tool" in v:
            return Action("tool", tool=v["tool"], arguments=v.get("arguments", {}), text=out.text)
        if "action" in v:
            return Action("env", content=v["action"], text=out.text)
        return Action("finish", content=v["answer"], text=out.text)


# ----------------------------------------------------------------------------------- code actions
_CODE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


class CodeAct:
    """Code as the action (Wang et al., 2024, CodeAct; the survey's "code" language action).

    Each step the model either writes one ```python block, run through the ``tool`` tool (the
    sandboxed :func:`~reprolab.agents.tools.python_tool` by default) with its output shown next
    step, or ends with "Final answer: ...". A reply with code runs the code (a final answer written
    beside it, before its output was seen, is ignored); a reply with neither is a counted failure
    and an internal ``think`` step."""

    INSTRUCTIONS = ("Solve the task by writing Python. Reply with one ```python code block that computes the result and "
                    "prints it; it runs in a sandbox and you will see what it prints. Once you have seen the printed result, "
                    "reply with one line 'Final answer: <answer>'.")

    def __init__(self, tool: str = "python"):
        self.tool = tool

    def decide(self, mental: MentalState, ctx: Context) -> Action:
        msgs = [{"role": "system", "content": system_prompt(ctx, self.INSTRUCTIONS)},
                {"role": "user", "content": render_state(mental, ctx)}]
        text = ctx.llm.chat(msgs, ctx.sampling_now(mental))[0].text  # type: ignore[union-attr]
        m = _CODE.search(text)
        if m:  # a reply with code runs the code; a final answer written before seeing its output is ignored
            return Action("tool", tool=self.tool, arguments={"code": m.group(1)}, text=text)
        fa = final_answer(text)
        if fa is not None:
            return Action("finish", content=fa, text=text)
        ctx.failures.asked += 1
        ctx.failures.fail("no_action")
        return Action("think", content=text.strip()[:500], text=text)


class ChainOfThought:
    """Reason in text, then "Final answer: ..." in one call; no tools (the tool claim's baseline).
    A reply without a final-answer line takes its last number or, failing that, is a counted failure."""

    INSTRUCTIONS = "Think step by step, then end with a line 'Final answer: <answer>'."

    def decide(self, mental: MentalState, ctx: Context) -> Action:
        msgs = [{"role": "system", "content": system_prompt(ctx, self.INSTRUCTIONS)},
                {"role": "user", "content": render_state(mental, ctx)}]
        text = ctx.llm.chat(msgs, ctx.sampling_now(mental))[0].text  # type: ignore[union-attr]
        fa = final_answer(text)
        if fa is None:
            ctx.failures.asked += 1
            ctx.failures.fail("no_final_answer")
            nums = re.findall(r"-?\d+(?:\.\d+)?(?:/\d+)?", text)
            fa = nums[-1] if nums else ""
        return Action("finish", content=fa, text=text)


# ----------------------------------------------------------------------------------- log-prob scoring
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class LogProbChoice:
    """Pick the environment action whose label has the highest log-probability after the prompt.

    Choice: actions are listed as lettered options and the letters are scored with
    ``choice_logprobs`` (one token each on every tokenizer), not the action names (whose first
    tokens may coincide). Ties: the earlier option."""

    INSTRUCTIONS = "Choose the best next action. Answer with the letter of one option."

    def prompt(self, mental: MentalState, ctx: Context) -> str:
        opts = "\n".join(f"{LABELS[i]}. {a}" for i, a in enumerate(ctx.action_names))
        msgs = [{"role": "system", "content": system_prompt(ctx, self.INSTRUCTIONS)},
                {"role": "user", "content": render_state(mental, ctx) + f"\n\nOptions:\n{opts}"}]
        return ctx.llm.format_chat(msgs) + "Answer: "  # type: ignore[union-attr]

    def decide(self, mental: MentalState, ctx: Context) -> Action:
        if not ctx.action_names or len(ctx.action_names) > len(LABELS):
            raise ConfigError("action_names", ctx.action_names, f"1 to {len(LABELS)} environment actions for LogProbChoice")
        labels = list(LABELS[: len(ctx.action_names)])
        lp = ctx.llm.choice_logprobs(self.prompt(mental, ctx), labels)  # type: ignore[union-attr]
        best = max(range(len(labels)), key=lambda i: (lp[labels[i]], -i))
        return Action("env", content=ctx.action_names[best], text=json.dumps(lp))


# ----------------------------------------------------------------------------------- lookahead
class Lookahead:
    """Depth-``depth`` exhaustive search through ``world_model`` (default: the agent's) from the live env's
    clone; no model call and no real environment step while searching. ``value`` scores leaves.

    Choice (the survey names lookahead, not a search): returns are summed rewards plus the leaf value,
    and each predicted step costs ``revisit_penalty`` x the times its observation was already seen this
    episode, so neither a no-op move nor a two-state loop looks free (ties: the earlier action)."""

    def __init__(self, depth: int = 2, world_model: Any = None, value: Any = None, gamma: float = 1.0,
                 revisit_penalty: float = 0.5):
        if depth < 1:
            raise ConfigError("depth", depth, "an int >= 1")
        self.depth, self.world_model, self.value, self.gamma = depth, world_model, value, gamma
        self.revisit_penalty = revisit_penalty

    def decide(self, mental: MentalState, ctx: Context) -> Action:
        from collections import Counter

        from .world_models import lookahead

        wm = self.world_model or mental.world_model
        if wm is None or ctx.env is None:
            raise ConfigError("world_model", wm, "a world model and an environment for Lookahead")
        seen = Counter(o.raw if isinstance(o.raw, str) else o.content for _, o in mental.history)
        if mental.notes.get("first_observation") is not None:
            seen[mental.notes["first_observation"]] += 1
        penalty = self.revisit_penalty

        class _Penalised:  # every predicted step costs penalty x (times its observation was seen)
            def predict(self, state, action):
                from dataclasses import replace

                p = wm.predict(state, action)
                return replace(p, reward=p.reward - penalty * seen[p.text]) if penalty else p

        model = _Penalised()
        value = self.value
        a, v = lookahead(model, ctx.env, ctx.action_names, self.depth, value, self.gamma)
        return Action("env", content=a, text=f"lookahead depth {self.depth}: {a} (return {v:g})")


# ----------------------------------------------------------------------------------- plan then act
class PlanThenAct:
    """Plan-and-solve: at the first step an internal ``plan`` action (a numbered list written by the
    model, kept in ``mental.plan`` and shown in every later prompt), then ``executor`` acts."""

    INSTRUCTIONS = "Write a short numbered plan (at most {n} steps) to solve the task. Do not solve it yet."

    def __init__(self, executor: Any, max_steps: int = 5):
        self.executor = executor
        self.max_steps = max_steps

    def decide(self, mental: MentalState, ctx: Context) -> Action:
        if not mental.plan and not any(a.kind == "plan" for a, _ in mental.history):
            msgs = [{"role": "system", "content": system_prompt(ctx, self.INSTRUCTIONS.format(n=self.max_steps))},
                    {"role": "user", "content": f"Task: {mental.goal}"}]
            text = ctx.llm.chat(msgs, ctx.sampling_now(mental))[0].text  # type: ignore[union-attr]
            steps = [re.sub(r"^\s*(?:\d+[.)]|[-*])\s*", "", s).strip() for s in text.splitlines()]
            steps = [s for s in steps if s][: self.max_steps] or [text.strip()[:200]]
            return Action("plan", content=steps, text=text)
        return self.executor.decide(mental, ctx)
