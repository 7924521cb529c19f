"""The survey's agent loop as types (Advances and Challenges in Foundation Agents, arXiv 2504.01990, Sec. 1.3).

    o_t     = P(s_t, M_{t-1})              perception, with attention       -> :class:`Perception`
    M_t     = L(M_{t-1}, a_{t-1}, o_t)     learning: update the mental state -> :class:`Learning`
    a_t     = R(M_t)                       reasoning: choose the next action -> :class:`Reasoning`
    s_{t+1} = T(s_t, a_t)                  the environment's transition (external actions only)

The mental state M_t = {memory, world model, emotion, goals, reward} is :class:`MentalState`.
Actions are *internal* (think, plan, reflect: they change M only and never reach the
environment) or *external* (an environment action, a tool call, or the final answer).

Each module is a ``typing.Protocol`` with a working default here or in its own file
(:class:`~reprolab.agents.memory.AgentMemory`, the world models in :mod:`.world_models`, the
policies in :mod:`.policies`). Choices where the survey is vague are in each default's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError
from ..llm.base import Sampling

INTERNAL_KINDS = ("think", "plan", "reflect")
EXTERNAL_KINDS = ("env", "tool", "finish")


@dataclass(frozen=True)
class Action:
    """a_t. ``kind``: think | plan | reflect (internal) or env | tool | finish (external).

    ``content``: the thought / plan text, the environment action, or the final answer;
    ``tool`` and ``arguments`` for a tool call; ``text``: what the model wrote (for the trace)."""

    kind: str
    content: Any = None
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    def __post_init__(self) -> None:
        if self.kind not in INTERNAL_KINDS + EXTERNAL_KINDS:
            raise ConfigError("Action.kind", self.kind, f"one of {INTERNAL_KINDS + EXTERNAL_KINDS}")
        if self.kind == "tool" and not self.tool:
            raise ConfigError("Action.tool", self.tool, "the name of a tool for a tool action")

    @property
    def internal(self) -> bool:
        return self.kind in INTERNAL_KINDS

    def describe(self) -> str:
        if self.kind == "tool":
            import json

            return f"call {self.tool}({json.dumps(self.arguments, ensure_ascii=False)})"
        if self.kind == "finish":
            return f"final answer: {self.content}"
        return f"{self.kind}: {self.content}"


@dataclass(frozen=True)
class Observation:
    """o_t: what the agent perceives. ``trusted=False`` marks data from tools or the environment
    (spotlighted in prompts, never obeyed as instructions)."""

    content: str
    source: str = "env"  # "task" | "env" | "tool:<name>" | "self"
    raw: Any = None
    reward: float = 0.0
    done: bool = False
    trusted: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmotionState:
    """A two-dimensional affect (valence in [-1, 1], arousal in [0, 1]) used only as modulation."""

    valence: float = 0.0
    arousal: float = 0.0


@dataclass
class MentalState:
    """M_t = {memory, world model, emotion, goals, reward} (+ the plan, the step, the last observation)."""

    memory: Any  # a Memory (protocol below); AgentMemory by default
    world_model: Any = None  # a WorldModel or None
    emotion: EmotionState = field(default_factory=EmotionState)
    goals: list[str] = field(default_factory=list)
    reward: float = 0.0  # cumulative (extrinsic + intrinsic)
    last_reward: float = 0.0
    t: int = 0
    plan: list[str] = field(default_factory=list)
    last_observation: Observation | None = None
    history: list[tuple[Action, Observation]] = field(default_factory=list)  # this episode's (a_{t-1}, o_t)
    env_state: Any = None  # s_t where the environment exposes it (simulator world models plan from it)
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def goal(self) -> str:
        return self.goals[0] if self.goals else ""


# ----------------------------------------------------------------------------------- protocols
@runtime_checkable
class Perception(Protocol):
    def perceive(self, raw: Any, source: str, mental: MentalState) -> Observation: ...


@runtime_checkable
class Memory(Protocol):
    def observe(self, text: str) -> None: ...

    def write(self, text: str, kind: str = "semantic", **meta: Any) -> None: ...

    def context(self, query: str) -> list[str]: ...


@runtime_checkable
class WorldModel(Protocol):
    def predict(self, state: Any, action: Any) -> Prediction: ...


@runtime_checkable
class Reward(Protocol):
    def __call__(self, obs: Observation, mental: MentalState) -> float: ...


@runtime_checkable
class Emotion(Protocol):
    def update(self, mental: MentalState, reward: float) -> EmotionState: ...

    def modulate(self, sampling: Sampling, mental: MentalState) -> Sampling: ...


@runtime_checkable
class Reasoning(Protocol):
    def decide(self, mental: MentalState, ctx: Any) -> Action: ...


@runtime_checkable
class Learning(Protocol):
    def update(self, mental: MentalState, action: Action | None, obs: Observation) -> MentalState: ...


@dataclass(frozen=True)
class Prediction:
    """A world model's guess of T(s, a): the next state (or its text), the reward, and whether the episode ends."""

    state: Any
    reward: float = 0.0
    done: bool = False
    text: str = ""


# ----------------------------------------------------------------------------------- defaults
class TextPerception:
    """P(s_t, M_{t-1}): the raw observation as text, cut to ``max_chars`` (attention as truncation).

    Choice: the survey's perceptual attention is left to the model; ours only renders objects
    (``str()``, or a ``render`` callable) and keeps the *end* of an over-long text (error
    messages and results come last). The task itself is trusted; tool and environment output
    is not."""

    def __init__(self, max_chars: int = 4000, render: Any = None):
        self.max_chars = max_chars
        self.render = render

    def perceive(self, raw: Any, source: str, mental: MentalState) -> Observation:
        text = self.render(raw) if self.render is not None else (raw if isinstance(raw, str) else str(raw))
        if len(text) > self.max_chars:
            text = "..." + text[-self.max_chars:]
        return Observation(content=text, source=source, raw=raw, trusted=source in ("task", "self"))


class ExtrinsicReward:
    """r_t = the environment's reward + ``curiosity`` x a count-based novelty bonus 1/sqrt(N(o)).

    The survey's hybrid reward (extrinsic + intrinsic, Sec. 5); ``curiosity = 0`` (default) is the
    extrinsic reward alone. Novelty counts exact observation texts (choice: the cheapest
    count-based curiosity)."""

    def __init__(self, curiosity: float = 0.0):
        self.curiosity = curiosity
        self._counts: dict[str, int] = {}

    def __call__(self, obs: Observation, mental: MentalState) -> float:
        r = float(obs.reward)
        if self.curiosity:
            n = self._counts[obs.content] = self._counts.get(obs.content, 0) + 1
            r += self.curiosity / n ** 0.5
        return r


class ValenceEmotion:
    """Emotion as modulation (survey Sec. 6): valence is an exponential average of rewards, arousal
    its absolute change; a negative valence raises the sampling temperature by up to
    ``max_boost`` (explore when things go badly). ``max_boost = 0`` (default) leaves sampling
    unchanged, so emotion changes nothing unless asked to (choice: no survey default exists)."""

    def __init__(self, decay: float = 0.7, max_boost: float = 0.0):
        self.decay = decay
        self.max_boost = max_boost

    def update(self, mental: MentalState, reward: float) -> EmotionState:
        v = self.decay * mental.emotion.valence + (1 - self.decay) * max(-1.0, min(1.0, reward))
        return EmotionState(valence=v, arousal=min(1.0, abs(v - mental.emotion.valence)))

    def modulate(self, sampling: Sampling, mental: MentalState) -> Sampling:
        if self.max_boost <= 0 or mental.emotion.valence >= 0:
            return sampling
        return replace(sampling, temperature=sampling.temperature + self.max_boost * -mental.emotion.valence)


class DefaultLearning:
    """L(M_{t-1}, a_{t-1}, o_t): in-context learning, the survey's cheapest form (no parameter update).

    Writes "action -> observation" to memory, adds the reward (through ``reward``), updates the
    emotion, records the plan of a ``plan`` action and keeps the step in the episode history.
    A ``reflect`` action's text is written to long-term memory as a reflection."""

    def __init__(self, reward: Reward | None = None, emotion: Emotion | None = None):
        self.reward = reward or ExtrinsicReward()
        self.emotion = emotion or ValenceEmotion()

    def update(self, mental: MentalState, action: Action | None, obs: Observation) -> MentalState:
        r = self.reward(obs, mental)
        mental.last_reward = r
        mental.reward += r
        mental.emotion = self.emotion.update(mental, r)
        mental.last_observation = obs
        if action is None:
            if obs.source != "task":  # the task itself is the goal, shown in every prompt; not repeated in memory
                mental.memory.observe(f"[{obs.source}] {obs.content}")
        else:
            mental.memory.observe(f"{action.describe()} -> {obs.content}")
            mental.history.append((action, obs))
            if action.kind == "plan":
                steps = action.content if isinstance(action.content, list) else [s for s in str(action.content).splitlines() if s.strip()]
                mental.plan = [str(s) for s in steps]
            elif action.kind == "reflect":
                mental.memory.write(str(action.content), kind="reflection")
        mental.t += 1
        return mental
