"""Multi-agent systems (survey Part III): composition as a chain, a manager with workers, and a vote.

- :class:`Chain` (static topology, a pipeline): agent i's answer is agent i+1's input.
- :class:`ManagerWorkers` (hierarchical): the manager's model splits the task into assignments
  ``[{"worker": NAME, "task": ...}]`` (a schema-validated structured output, one repair), each
  worker solves its part, and the manager writes the final answer from their answers.
- :class:`Vote` (collaboration by consensus): every agent answers; the most frequent normalised
  answer wins (ties: the answer given first).

All three return a :class:`MultiResult` with every member's :class:`~reprolab.agents.loop.RunResult`
and their summed usage; a shared :class:`~reprolab.agents.budget.Budget` is applied per member run.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..llm.base import LLM, Sampling
from .budget import Budget, Trace
from .loop import Agent, RunResult
from .structured import FailureCounter, ask_structured


@dataclass
class MultiResult:
    answer: Any
    runs: list[RunResult] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def usage(self) -> dict[str, float]:
        """Summed over the members' runs and, for :class:`ManagerWorkers`, the manager's own calls."""
        keys = ("calls", "prompt_tokens", "completion_tokens", "tokens", "seconds")
        manager = self.detail.get("manager_usage", {})
        return {k: sum(r.usage.get(k, 0) for r in self.runs) + manager.get(k, 0) for k in keys}


def normalise_answer(a: Any) -> str:
    return " ".join(str(a).strip().lower().rstrip(".").split())


class Chain:
    def __init__(self, agents: Sequence[Agent], template: str = "{task}\n\nInput from the previous step:\n{previous}"):
        if not agents:
            raise ConfigError("agents", agents, "at least one agent")
        self.agents, self.template = list(agents), template

    def run(self, task: str, *, budget: Budget | None = None, trace: Any = None) -> MultiResult:
        runs, previous = [], None
        for agent in self.agents:
            prompt = task if previous is None else self.template.format(task=task, previous=previous)
            res = agent.run(prompt, budget=budget, trace=trace)
            runs.append(res)
            previous = res.answer
        return MultiResult(previous, runs)


class Vote:
    def __init__(self, agents: Sequence[Agent]):
        if not agents:
            raise ConfigError("agents", agents, "at least one agent")
        self.agents = list(agents)

    def run(self, task: str, *, budget: Budget | None = None, trace: Any = None) -> MultiResult:
        runs = [a.run(task, budget=budget, trace=trace, seed=i) for i, a in enumerate(self.agents)]
        answers = [normalise_answer(r.answer) for r in runs if r.answer is not None]
        if not answers:
            return MultiResult(None, runs, {"votes": {}})
        counts = Counter(answers)
        top = max(counts.values())
        winner = next(a for a in answers if counts[a] == top)
        original = next(r.answer for r in runs if r.answer is not None and normalise_answer(r.answer) == winner)
        return MultiResult(original, runs, {"votes": dict(counts)})


class ManagerWorkers:
    """A manager model and named worker agents (each with its own tools and permissions)."""

    PLAN = ("You manage a team: {workers}. Split the task into assignments for them. Reply with only a JSON list "
            "[{{\"worker\": NAME, \"task\": TEXT}}, ...], one item per assignment.")
    SYNTH = "Combine your workers' answers into the final answer to the task. End with 'Final answer: <answer>'."

    def __init__(self, manager: LLM, workers: dict[str, Agent], max_assignments: int = 4,
                 descriptions: dict[str, str] | None = None):
        if not workers:
            raise ConfigError("workers", workers, "a dict of name -> Agent")
        self.manager, self.workers, self.max_assignments = manager, dict(workers), max_assignments
        self.descriptions = descriptions or {}
        self.failures = FailureCounter()

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "minItems": 1, "maxItems": self.max_assignments,
                "items": {"type": "object", "properties": {"worker": {"enum": list(self.workers)}, "task": {"type": "string", "minLength": 1}},
                          "required": ["worker", "task"]}}

    def run(self, task: str, *, budget: Budget | None = None, trace: Any = None) -> MultiResult:
        from .budget import Meter, MeteredLLM
        from .policies import final_answer

        tr = trace if isinstance(trace, Trace) else Trace(trace)
        meter = Meter(budget or Budget())
        manager = MeteredLLM(self.manager, meter, tr, "manager")
        team = ", ".join(f"{n} ({self.descriptions[n]})" if n in self.descriptions else n for n in self.workers)
        plan = ask_structured(manager, [{"role": "system", "content": self.PLAN.format(workers=team)},
                                        {"role": "user", "content": f"Task: {task}"}], self.schema(), Sampling(max_tokens=256),
                              counter=self.failures)
        if not plan.ok:
            return MultiResult(None, [], {"error": plan.error, "manager_usage": meter.summary()})
        runs = []
        for item in plan.value:
            res = self.workers[item["worker"]].run(item["task"], budget=budget, trace=tr)
            runs.append(res)
        reports = "\n".join(f"- {it['worker']} on {json.dumps(it['task'])}: {r.answer}" for it, r in zip(plan.value, runs))
        text = manager.chat([{"role": "system", "content": self.SYNTH},
                             {"role": "user", "content": f"Task: {task}\n\nYour workers' answers:\n{reports}"}], Sampling(max_tokens=256))[0].text
        answer = final_answer(text) or text.strip()
        if not isinstance(trace, Trace):
            tr.close()
        return MultiResult(answer, runs, {"assignments": plan.value, "manager_usage": meter.summary()})
