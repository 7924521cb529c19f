"""Environments: anything with Gymnasium's ``reset``/``step`` plugs into the agent loop.

    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)

:class:`TextEnv` names a Gymnasium environment's discrete actions and renders its observations as
text for a language model; :class:`QuestionEnv` is a one-question task whose ``finish`` answer is
checked. An environment may offer ``action_names`` (the actions a policy can choose) and
``render_text()``; a simulator world model clones it with ``clone()`` when present, else
``copy.deepcopy``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError


@runtime_checkable
class Env(Protocol):
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]: ...

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]: ...


def check_env(env: Any) -> None:
    if not (callable(getattr(env, "reset", None)) and callable(getattr(env, "step", None))):
        raise ConfigError("env", type(env).__name__, "an object with Gymnasium's reset(seed=) and step(action)")


class TextEnv:
    """A Gymnasium-style env with named discrete actions and text observations.

    Args:
        env: any object with ``reset(seed=)`` and ``step(a)`` (a ``gymnasium.Env`` included).
        action_names: the name of each discrete action (index = the env's action).
        render: observation -> text (default ``str``).
    """

    def __init__(self, env: Any, action_names: Sequence[str], render: Callable[[Any], str] = str):
        check_env(env)
        if not action_names or len(set(action_names)) != len(action_names):
            raise ConfigError("action_names", action_names, "distinct names, one per discrete action")
        self.env = env
        self.action_names = list(action_names)
        self.render = render
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.steps = 0
        return self.render(obs), info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        if isinstance(action, str):
            if action not in self.action_names:
                raise ConfigError("action", action, f"one of {self.action_names}")
            action = self.action_names.index(action)
        self.steps += 1
        obs, r, term, trunc, info = self.env.step(action)
        return self.render(obs), float(r), bool(term), bool(trunc), info

    def clone(self) -> TextEnv:
        return copy.deepcopy(self)


class QuestionEnv:
    """One question; the agent's ``finish`` answer is passed to ``check`` (reward 1 if it holds).

    Tool calls and internal actions never reach it; only ``submit`` (called by the loop on a
    ``finish`` action) does."""

    def __init__(self, question: str, check: Callable[[Any], bool] | None = None):
        self.question = question
        self.check = check
        self.steps = 0
        self.answer: Any = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        self.answer = None
        return self.question, {}

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        self.steps += 1
        return "This task has no environment actions; give the final answer.", 0.0, False, False, {}

    def submit(self, answer: Any) -> float:
        self.answer = answer
        return float(bool(self.check(answer))) if self.check is not None else 0.0
