"""World models (survey Sec. 4): predict T(s_t, a_t) to think before acting.

- :class:`SimulatorWorldModel` is *external*: a copy of the environment's own simulator
  (``env.clone()`` or ``copy.deepcopy(env)``), stepped without touching the real one.
- :class:`LLMWorldModel` is *internal* (prompted): a language model writes the next state.
  :func:`next_state_accuracy` measures it against the simulator.
- :func:`lookahead` searches action sequences of a given depth through any world model and
  returns the first action of the best one (the survey's "world models enable lookahead").
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from ..llm.base import LLM, Sampling
from .state import Prediction


def clone_env(env: Any) -> Any:
    return env.clone() if callable(getattr(env, "clone", None)) else copy.deepcopy(env)


class SimulatorWorldModel:
    """External world model: ``predict(env, action)`` steps a clone of ``env``; the real env is untouched.
    ``Prediction.state`` is the advanced clone (to predict further from it)."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, state: Any, action: Any) -> Prediction:
        self.calls += 1
        sim = clone_env(state)
        obs, r, term, trunc, _ = sim.step(action)
        return Prediction(state=sim, reward=float(r), done=bool(term or trunc), text=obs if isinstance(obs, str) else str(obs))


class LLMWorldModel:
    """Internal world model: the model is shown the current state (text) and an action and writes the
    next state. Choice: one greedy call with a fixed prompt; ``examples`` (state, action, next
    state) triples give it in-context demonstrations. Reward and termination are not predicted
    (0, False)."""

    PROMPT = "You simulate an environment. Given a state and an action, write the exact next state and nothing else."

    def __init__(self, llm: LLM, examples: Sequence[tuple[str, str, str]] = (), max_tokens: int = 128):
        self.llm = llm
        self.examples = list(examples)
        self.max_tokens = max_tokens
        self.calls = 0

    def messages(self, state: str, action: Any) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": self.PROMPT}]
        for s, a, nxt in self.examples:
            msgs += [{"role": "user", "content": f"State:\n{s}\nAction: {a}\nNext state:"}, {"role": "assistant", "content": nxt}]
        return msgs + [{"role": "user", "content": f"State:\n{state}\nAction: {action}\nNext state:"}]

    def predict(self, state: Any, action: Any) -> Prediction:
        self.calls += 1
        text = self.llm.chat(self.messages(str(state), action), Sampling(max_tokens=self.max_tokens))[0].text
        return Prediction(state=text.strip("\n"), text=text.strip("\n"))


def _norm(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def next_state_accuracy(model: Any, transitions: Sequence[tuple[str, Any, str]]) -> float:
    """Fraction of (state, action, true next state) whose predicted next state matches exactly
    (trailing spaces and surrounding blank lines ignored)."""
    if not transitions:
        return float("nan")
    hits = sum(_norm(model.predict(s, a).text) == _norm(nxt) for s, a, nxt in transitions)
    return hits / len(transitions)


def lookahead(model: Any, state: Any, actions: Sequence[Any], depth: int = 2,
              value: Callable[[Prediction], float] | None = None, gamma: float = 1.0) -> tuple[Any, float]:
    """Exhaustive depth-``depth`` search: the first action of the sequence with the largest return
    sum_k gamma^k r_k (+ gamma^depth value(last prediction) when not done). Ties: the earlier action
    in ``actions``. Returns (action, its return); ``len(actions) ** depth`` predictions at most."""
    best_a, best_v = actions[0], -float("inf")
    for first in actions:
        v_first = -float("inf")
        for rest in itertools.product(actions, repeat=depth - 1):
            s, ret, done = state, 0.0, False
            for k, a in enumerate((first, *rest)):
                p = model.predict(s, a)
                ret += gamma ** k * p.reward
                s, done = p.state, p.done
                if done:
                    break
            if not done and value is not None:
                ret += gamma ** depth * value(p)
            v_first = max(v_first, ret)
            if done and len(rest) and k == 0:
                break  # the episode ended at the first action: the rest changes nothing
        if v_first > best_v:
            best_a, best_v = first, v_first
    return best_a, best_v
