"""Learning across trials (survey Sec. 2.1, in-context learning from feedback): Reflexion and its baseline.

Reflexion (Shinn et al., 2023): after a failed trial, the model reads its attempt and the
evaluator's feedback and writes a short verbal reflection; the reflections (the last
``keep``, 3 in the Reflexion paper) are put in the next trial's prompt and written to the
agent's long-term memory as ``reflection`` records. :func:`resample` is the ablation: the same
number of trials with a fresh seed each and no reflection.

    out = reflexion(agent, task, evaluate, llm, max_trials=3)
    out.success, out.trials, out.reflections

``evaluate(result) -> (success, feedback_text)`` is the task's own check (for code: the prompt's
examples run in the sandbox); the final success may be judged by a separate hidden check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..llm.base import LLM, Sampling
from .budget import Budget
from .loop import Agent, RunResult

REFLECT_PROMPT = ("You attempted a task and failed. In two or three sentences, say what went wrong and what you "
                  "will do differently next time. Do not write the solution.")


@dataclass
class TrialsResult:
    success: bool  # the evaluator's verdict on the last trial
    trials: int
    results: list[RunResult] = field(default_factory=list)
    reflections: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)

    @property
    def final(self) -> RunResult:
        return self.results[-1]

    @property
    def usage(self) -> dict[str, float]:
        keys = self.results[0].usage.keys() if self.results else ()
        return {k: sum(r.usage[k] for r in self.results) for k in keys}


def reflect(llm: LLM, task: str, result: RunResult, feedback: str, max_tokens: int = 128) -> str:
    """One reflection: the task, the attempt (its actions and answer) and the feedback -> a short text."""
    attempt = "\n".join(a.text or a.describe() for a in result.actions)[-2000:]
    msgs = [{"role": "system", "content": REFLECT_PROMPT},
            {"role": "user", "content": f"Task: {task}\n\nYour attempt:\n{attempt}\n\nFeedback:\n{feedback}\n\nReflection:"}]
    return llm.chat(msgs, Sampling(max_tokens=max_tokens))[0].text.strip()


def reflexion(agent: Agent, task: str, evaluate: Callable[[RunResult], tuple[bool, str]], llm: LLM | None = None, *,
              max_trials: int = 3, keep: int = 3, seed: int = 0, budget: Budget | None = None, env_factory: Callable[[], Any] | None = None,
              trace: Any = None) -> TrialsResult:
    """Up to ``max_trials`` trials; stop at the first the evaluator accepts. ``llm`` writes the reflections
    (default: the agent's model)."""
    llm = llm or agent.llm
    out = TrialsResult(False, 0)
    for i in range(max_trials):
        res = agent.run(task, env_factory() if env_factory else None, seed=seed, budget=budget, trace=trace,
                        reflections=out.reflections[-keep:])
        ok, feedback = evaluate(res)
        out.results.append(res)
        out.feedback.append(feedback)
        out.trials, out.success = i + 1, ok
        if ok or i == max_trials - 1:
            break
        text = reflect(llm, task, res, feedback)  # type: ignore[arg-type]
        out.reflections.append(text)
        store = getattr(agent.memory, "store", None)
        if store is not None:
            store.write(text, kind="reflection", task=task)
    return out


def resample(agent: Agent, task: str, evaluate: Callable[[RunResult], tuple[bool, str]], *, max_trials: int = 3,
             seed: int = 0, budget: Budget | None = None, env_factory: Callable[[], Any] | None = None,
             temperature: float = 0.7, trace: Any = None) -> TrialsResult:
    """The ablation of :func:`reflexion`: up to ``max_trials`` independent trials (seeds seed, seed+1, ...,
    sampled at ``temperature`` from the second on, as the first is the same greedy attempt), no reflection."""
    from dataclasses import replace

    out = TrialsResult(False, 0)
    base = agent.sampling
    try:
        for i in range(max_trials):
            agent.sampling = base if i == 0 else replace(base, temperature=max(temperature, base.temperature), seed=base.seed + i)
            res = agent.run(task, env_factory() if env_factory else None, seed=seed + i, budget=budget, trace=trace)
            ok, feedback = evaluate(res)
            out.results.append(res)
            out.feedback.append(feedback)
            out.trials, out.success = i + 1, ok
            if ok:
                break
    finally:
        agent.sampling = base
    return out
