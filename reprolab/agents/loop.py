"""The agent: the survey's perception-learning-reasoning loop with budgets and a trace (Sec. 1.3).

    agent = Agent(ReAct(), llm=llm, tools=ToolBox([add]), memory=AgentMemory.recency(512))
    res = agent.run("What is 2 + 3?", budget=Budget(max_calls=8), trace="runs/x/trace.jsonl")
    res.answer, res.status, res.usage        # '5', 'finished', {'calls': 2, 'tokens': ..., 'seconds': ...}

One run:

    o_0 = P(s_0, M_{-1});  M_0 = L(M_{-1}, -, o_0)
    repeat:  a_t = R(M_t)                          (the policy, with the metered model)
             internal a_t (think / plan / reflect) -> o_{t+1} = "noted", the environment is NOT stepped
             tool call    -> the tool box (permissions, schema, sandbox) -> o_{t+1} (spotlighted)
             env action   -> s_{t+1} = T(s_t, a_t) -> o_{t+1} = P(s_{t+1}, M_t)
             finish       -> the answer (``env.submit(answer)`` when the env checks answers); stop
             M_{t+1} = L(M_t, a_t, o_{t+1})
    until finish, termination, ``max_steps`` or the budget.

Every model call goes through :class:`~reprolab.agents.budget.MeteredLLM`, so the budget is checked
before each call and every call is in the trace (JSONL) with its tokens and seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..llm.base import LLM, Sampling
from .budget import Budget, BudgetExceeded, Meter, MeteredLLM, Trace
from .envs import QuestionEnv, check_env
from .memory import AgentMemory
from .policies import Context
from .state import Action, DefaultLearning, MentalState, Observation, TextPerception
from .structured import FailureCounter
from .tools import SPOTLIGHT_MODES, ToolBox, spotlight as spotlight_text


@dataclass
class RunResult:
    """What one run did. ``status``: finished | terminated | truncated | max_steps | budget:<limit> | error."""

    answer: Any
    status: str
    steps: int
    reward: float
    success: bool | None  # the environment's verdict where it gives one (QuestionEnv.check, a terminal reward > 0)
    usage: dict[str, float]
    actions: list[Action] = field(default_factory=list)
    env_steps: int = 0  # external environment actions sent to the env
    tool_calls: int = 0
    failures: dict[str, Any] = field(default_factory=dict)
    trace: Trace | None = None
    mental: MentalState | None = None

    def to_json(self) -> dict[str, Any]:
        return {"answer": self.answer, "status": self.status, "steps": self.steps, "reward": self.reward,
                "success": self.success, "usage": self.usage, "env_steps": self.env_steps, "tool_calls": self.tool_calls,
                "failures": self.failures, "actions": [a.describe() for a in self.actions]}


class Agent:
    """An agent = a policy (reasoning) + perception + learning + memory + world model + tools + a model.

    Args:
        policy: the :class:`~reprolab.agents.state.Reasoning` (``decide(mental, ctx) -> Action``).
        llm: the model the policy uses (any :mod:`reprolab.llm` backend; None for model-free policies).
        name: the agent's name (tool permissions and traces use it).
        tools: the tool box; the agent sees only the tools its permissions grant.
        memory: factory of a fresh memory per run (default :meth:`AgentMemory.recency`), or an instance shared
            across runs (a knowledge store the agent keeps).
        perception / learning / world_model: the modules (defaults: text perception that spotlights tool
            output, in-context learning, none).
        system: the role and instructions (the system prompt's first paragraph).
        spotlight: how untrusted observations are marked ("none", "delimit", "datamark"), and whether the
            system prompt carries the instruction hierarchy.
        spotlight_sources: which observation sources are untrusted ("tool" = every tool; "env").
        max_steps: loop steps per run (also capped by ``Budget.max_steps``).
        sampling: the policy's sampling (greedy, 256 tokens by default).
    """

    def __init__(self, policy: Any, llm: LLM | None = None, *, name: str = "agent", tools: ToolBox | None = None,
                 memory: Any = None, perception: Any = None, learning: Any = None, world_model: Any = None,
                 system: str = "", spotlight: str = "delimit", spotlight_sources: tuple[str, ...] = ("tool",),
                 max_steps: int = 8, sampling: Sampling | None = None):
        if not callable(getattr(policy, "decide", None)):
            raise ConfigError("policy", type(policy).__name__, "an object with decide(mental, ctx) -> Action")
        if max_steps < 1:
            raise ConfigError("max_steps", max_steps, "an int >= 1")
        self.policy, self.llm, self.name, self.tools = policy, llm, name, tools
        self.memory = memory
        self.perception = perception or TextPerception()
        self.learning = learning or DefaultLearning()
        self.world_model = world_model
        self.system, self.spotlight, self.spotlight_sources = system, spotlight, spotlight_sources
        self.max_steps = max_steps
        self.sampling = sampling or Sampling(max_tokens=256)
        if spotlight not in SPOTLIGHT_MODES:
            raise ConfigError("spotlight", spotlight, f"one of {SPOTLIGHT_MODES}")

    def _fresh_memory(self) -> Any:
        if self.memory is None:
            return AgentMemory.recency(512)
        return self.memory() if callable(self.memory) and not hasattr(self.memory, "observe") else self.memory

    def _perceive(self, raw: Any, source: str, mental: MentalState, reward: float = 0.0, done: bool = False) -> Observation:
        obs = self.perception.perceive(raw, source, mental)
        kind = source.split(":", 1)[0]
        if kind in self.spotlight_sources and not obs.trusted:
            obs = Observation(spotlight_text(obs.content, self.spotlight, source), obs.source, obs.raw, trusted=False, info=obs.info)
        return Observation(obs.content, obs.source, obs.raw, reward, done, obs.trusted, obs.info)

    def run(self, task: str | None = None, env: Any = None, *, seed: int | None = 0, budget: Budget | None = None,
            trace: str | os.PathLike | Trace | None = None, reflections: list[str] | tuple[str, ...] = (),
            goals: list[str] | None = None) -> RunResult:
        """One episode on ``env`` (default: a :class:`QuestionEnv` of ``task``). ``task`` is the goal the
        agent is told; with a Gymnasium env it may be None (the first observation is the task)."""
        if env is None:
            if not isinstance(task, str) or not task.strip():
                raise ConfigError("task", task, "a non-empty task text, or an env")
            env = QuestionEnv(task)
        check_env(env)
        meter = Meter(budget or Budget())
        tr = trace if isinstance(trace, Trace) else Trace(trace)
        failures = FailureCounter()
        llm = MeteredLLM(self.llm, meter, tr, self.name) if self.llm is not None else None
        ctx = Context(llm=llm, agent=self.name, tools=self.tools, action_names=list(getattr(env, "action_names", []) or []),
                      system=self.system, spotlight=self.spotlight, sampling=self.sampling, meter=meter, trace=tr,
                      failures=failures, reflections=list(reflections), env=env, emotion=getattr(self.learning, "emotion", None))
        mental = MentalState(memory=self._fresh_memory(), world_model=self.world_model, goals=list(goals or []))
        mental.env_state = env
        tr.log("start", agent=self.name, task=task, seed=seed, policy=type(self.policy).__name__)
        raw, _info = env.reset(seed=seed)
        if task is None:
            mental.goals = mental.goals or [str(raw)]
        else:
            mental.goals = [task, *mental.goals]
        first = self._perceive(raw, "task" if isinstance(env, QuestionEnv) else "env", mental)
        mental.notes["first_observation"] = raw if isinstance(raw, str) else first.content
        mental = self.learning.update(mental, None, first)

        actions: list[Action] = []
        answer, status, success = None, "max_steps", None
        env_steps = tool_calls = 0
        t_start = time.monotonic()
        try:
            for _ in range(self.max_steps):
                meter.check(step=True)
                meter.steps += 1
                action = self.policy.decide(mental, ctx)
                actions.append(action)
                tr.log("action", agent=self.name, t=mental.t, kind=action.kind, action=action.describe(), internal=action.internal)
                if action.internal:  # a_t changes M only: T is not applied
                    obs = Observation("noted", "self", trusted=True)
                elif action.kind == "tool":
                    tool_calls += 1
                    res = self.tools.call(action.tool, action.arguments, agent=self.name) if self.tools is not None else None
                    text = res.output if res is not None else f"no tools are available (asked for {action.tool!r})"
                    tr.log("tool", agent=self.name, tool=action.tool, ok=bool(res and res.ok), error=res.error if res else "no_tools",
                           output=text[:1000], seconds=round(res.seconds, 4) if res else 0.0)
                    obs = self._perceive(text, f"tool:{action.tool}", mental)
                elif action.kind == "env":
                    env_steps += 1
                    raw, r, term, trunc, _info = env.step(action.content)
                    obs = self._perceive(raw, "env", mental, reward=r, done=term or trunc)
                    if term or trunc:
                        status = "terminated" if term else "truncated"
                        mental = self.learning.update(mental, action, obs)
                        success = r > 0 if term else False
                        break
                else:  # finish
                    answer = action.content
                    r = env.submit(answer) if callable(getattr(env, "submit", None)) else 0.0
                    if isinstance(env, QuestionEnv) and env.check is not None:
                        success = r > 0
                    obs = Observation(f"answered {answer}", "self", reward=r, done=True, trusted=True)
                    mental = self.learning.update(mental, action, obs)
                    status = "finished"
                    break
                tr.log("observation", agent=self.name, t=mental.t, source=obs.source, content=obs.content[:1000], reward=obs.reward)
                mental = self.learning.update(mental, action, obs)
        except BudgetExceeded as exc:
            status = f"budget:{exc.what}"
            tr.log("budget", agent=self.name, what=exc.what, spent=exc.spent, limit=exc.limit)
        usage = meter.summary()
        usage["seconds"] = round(time.monotonic() - t_start, 4)
        result = RunResult(answer=answer, status=status, steps=meter.steps, reward=mental.reward, success=success, usage=usage,
                           actions=actions, env_steps=env_steps, tool_calls=tool_calls, failures=failures.to_json(),
                           trace=tr, mental=mental)
        tr.log("summary", agent=self.name, **{k: v for k, v in result.to_json().items() if k != "actions"})
        if not isinstance(trace, Trace):
            tr.close()
        return result
