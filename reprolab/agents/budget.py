"""Budgets and traces: every model call of an agent run is metered, checked and written down.

A :class:`Budget` caps what one run may spend (model calls, tokens, wall seconds, loop steps).
A :class:`Meter` holds what was spent; :class:`MeteredLLM` wraps any :class:`reprolab.llm.LLM`
so that each call is checked against the budget *before* it is made (a run never goes past its
limit) and recorded after it (calls, prompt/completion tokens, seconds) in the meter and in the
run's :class:`Trace`, a JSONL file with one event per line.

Choice (the survey sets no budget semantics): the check happens before a call, so a budget of
``max_calls=3`` allows exactly three calls; tokens are checked against what was already spent
(a call's own size is unknown until it returns), so a run can end at most one call past
``max_tokens``; that overshoot is reported in the meter.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ReprolabError
from ..llm.base import LLM, Completion, Message, Sampling


class BudgetExceeded(ReprolabError, RuntimeError):
    """A run reached one of its :class:`Budget` limits; the agent loop catches it and stops."""

    def __init__(self, what: str, spent: float, limit: float):
        super().__init__(f"budget reached: {what} {spent:g} of {limit:g}",
                         fix=f"raise Budget({what}=...) or give the agent an easier task")
        self.what = what
        self.spent = spent
        self.limit = limit


@dataclass(frozen=True)
class Budget:
    """Limits of one run; ``None`` = unlimited."""

    max_calls: int | None = None  # model calls (each sample counts)
    max_tokens: int | None = None  # prompt + completion tokens over all calls
    max_seconds: float | None = None  # wall time from the start of the run
    max_steps: int | None = None  # iterations of the perception-learning-reasoning loop

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_steps"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(name, v, "None or an int >= 0")
        if self.max_seconds is not None and not (isinstance(self.max_seconds, (int, float)) and self.max_seconds > 0
                                                 and math.isfinite(self.max_seconds)):
            raise ConfigError("max_seconds", self.max_seconds, "None or a finite number of seconds > 0")


@dataclass
class Meter:
    """What a run spent so far, checked against its :class:`Budget`."""

    budget: Budget = field(default_factory=Budget)
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0
    steps: int = 0
    cache_hits: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def check(self, *, step: bool = False) -> None:
        """Raise :class:`BudgetExceeded` if one more call (or, with ``step``, one more loop step) would pass a limit."""
        b = self.budget
        if b.max_calls is not None and not step and self.calls >= b.max_calls:
            raise BudgetExceeded("max_calls", self.calls, b.max_calls)
        if b.max_tokens is not None and self.tokens >= b.max_tokens:
            raise BudgetExceeded("max_tokens", self.tokens, b.max_tokens)
        if b.max_seconds is not None and self.seconds >= b.max_seconds:
            raise BudgetExceeded("max_seconds", round(self.seconds, 3), b.max_seconds)
        if step and b.max_steps is not None and self.steps >= b.max_steps:
            raise BudgetExceeded("max_steps", self.steps, b.max_steps)

    def add(self, c: Completion) -> None:
        if c.cached:
            self.cache_hits += 1
        self.calls += 1
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.llm_seconds += c.seconds

    def summary(self) -> dict[str, float]:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "tokens": self.tokens, "llm_seconds": round(self.llm_seconds, 4), "seconds": round(self.seconds, 4),
                "steps": self.steps, "cache_hits": self.cache_hits}


class Trace:
    """A run's events, kept in memory and (with ``path``) appended to a JSONL file as they happen.

    Each event is one JSON object: ``{"event": kind, "agent": name, "t": step, "elapsed_s": ..., ...}``.
    The file is opened in append mode and flushed per line, so an interrupted run leaves every
    event it finished; :meth:`close` writes a final ``summary`` event.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.events: list[dict[str, Any]] = []
        self.path = Path(path) if path is not None else None
        self._fh = None
        self._t0 = time.monotonic()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")

    def log(self, event: str, **data: Any) -> dict[str, Any]:
        rec = {"event": event, "elapsed_s": round(time.monotonic() - self._t0, 4), **data}
        self.events.append(rec)
        if self._fh is not None:
            self._fh.write(json.dumps(rec, default=_jsonable, ensure_ascii=False) + "\n")
            self._fh.flush()
        return rec

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def save(self, path: str | os.PathLike) -> Path:
        """Write every event kept in memory to a JSONL file (atomically), e.g. for a run traced without a path."""
        from ..runtime import atomic_write_text

        p = Path(path)
        atomic_write_text(p, "".join(json.dumps(e, default=_jsonable, ensure_ascii=False) + "\n" for e in self.events))
        return p

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @staticmethod
    def read(path: str | os.PathLike) -> list[dict[str, Any]]:
        """Events of a JSONL trace file (a truncated last line, from a killed run, is dropped)."""
        from ..errors import MalformedFile

        p = Path(path)
        if not p.is_file():
            raise MalformedFile(str(p), "no such trace file", fix="pass the path given to Agent.run(trace=...)")
        lines = p.read_text(encoding="utf-8").splitlines()
        out = []
        for i, line in enumerate(lines):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if i == len(lines) - 1:  # the last line of a killed run
                    break
                raise MalformedFile(str(p), f"line {i + 1} is not JSON", fix="pass a JSONL trace written by reprolab.agents") from None
        return out


def _jsonable(o: Any) -> Any:
    if hasattr(o, "to_json"):
        return o.to_json()
    if hasattr(o, "__dataclass_fields__"):
        return asdict(o)
    return str(o)


class MeteredLLM(LLM):
    """An :class:`LLM` whose every call is checked against a :class:`Meter`'s budget and traced.

    It forwards ``chat``/``complete``/``choice_logprobs``/``score`` to the wrapped backend, so any
    backend (llama.cpp, transformers, HTTP, ScriptedLLM, a cache) can be metered. A log-prob query
    counts as one call with the prompt's tokens unknown (0)."""

    def __init__(self, llm: LLM, meter: Meter, trace: Trace | None = None, agent: str = "agent"):
        super().__init__()
        self.inner = llm
        self.meter = meter
        self.trace = trace
        self.agent = agent
        self.name = llm.name
        self.supports_logprobs = llm.supports_logprobs

    def format_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        return self.inner.format_chat(messages, add_generation_prompt)

    def renders_chat(self, messages: Sequence[Message]) -> bool:
        return self.inner.renders_chat(messages)

    def _record(self, kind: str, outs: list[Completion], prompt: str | Sequence[Message]) -> None:
        for c in outs:
            self.meter.add(c)
            self.stats.add(c)
            if self.trace is not None:
                self.trace.log("llm_call", agent=self.agent, kind=kind, prompt=prompt if isinstance(prompt, str)
                               else [_loggable(m) for m in prompt],
                               text=c.text, prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
                               seconds=round(c.seconds, 4), cached=c.cached)

    def _each(self, fn, sampling: Sampling | None) -> list[Completion]:
        sampling = sampling or Sampling()
        out = []
        for i in range(sampling.n):
            self.meter.check()
            out.extend(fn(sampling.one(i)))
        return out

    def complete(self, prompt: str, sampling: Sampling | None = None) -> list[Completion]:
        outs = self._each(lambda s: self.inner.complete(prompt, s), sampling)
        self._record("complete", outs, prompt)
        return outs

    def chat(self, messages: Sequence[Message], sampling: Sampling | None = None, *, prefill: str = "") -> list[Completion]:
        outs = self._each(lambda s: self.inner.chat(messages, s, prefill=prefill), sampling)
        self._record("chat", outs, messages)
        return outs

    def _logprob_call(self, kind: str, fn, prompt: str) -> Any:
        self.meter.check()
        t0 = time.perf_counter()
        value = fn()
        c = Completion(text="", prompt_tokens=0, completion_tokens=0, seconds=time.perf_counter() - t0)
        self.meter.add(c)
        if self.trace is not None:
            self.trace.log("llm_call", agent=self.agent, kind=kind, prompt=prompt, value=value, seconds=round(c.seconds, 4))
        return value

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, float]:
        return self._logprob_call("choice_logprobs", lambda: self.inner.choice_logprobs(prompt, choices), prompt)

    def next_token_logprobs(self, prompt: str, top_k: int = 20) -> dict[str, float]:
        return self._logprob_call("next_token_logprobs", lambda: self.inner.next_token_logprobs(prompt, top_k), prompt)

    def score(self, text: str, prefix: str = "") -> float:
        return self._logprob_call("score", lambda: self.inner.score(text, prefix), prefix + text)


def _loggable(message: Message) -> Message:
    """A message as a trace keeps it: images (base64 data URLs, often 100 KB each) become ``<image>``."""
    if isinstance(message.get("content"), str):
        return message
    from ..llm.multimodal import message_text

    return {**message, "content": message_text(message)}
