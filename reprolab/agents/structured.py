"""Structured outputs: a model's answer parsed as JSON, validated against a JSON Schema, with one
repair retry; a failure is counted and returned as a failure, never coerced into a value.

    out = ask_structured(llm, messages, {"type": "object", "properties": {"answer": {"type": "integer"}},
                                          "required": ["answer"]}, counter=failures)
    out.ok, out.value, out.attempts, out.error

Choices: the JSON is the first fenced ```json block, else the first balanced ``{...}`` or ``[...]``
in the text (small models wrap JSON in prose); the repair turn shows the model its own answer and
the validator's first error and asks for the corrected JSON only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..llm.base import LLM, Message, Sampling
from .tools import validate

_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)```", re.S)


@dataclass
class FailureCounter:
    """How many structured outputs were asked for, repaired, and failed (by reason)."""

    asked: int = 0
    repaired: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.failed += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {"asked": self.asked, "repaired": self.repaired, "failed": self.failed, "reasons": dict(self.reasons)}


@dataclass(frozen=True)
class Structured:
    ok: bool
    value: Any = None  # the validated JSON value (None when not ok)
    text: str = ""  # the model's last raw answer
    attempts: int = 1
    error: str = ""  # "no_json: ..." | "schema: ..." when not ok


def extract_json(text: str) -> tuple[Any, str]:
    """(value, "") for the first JSON value in ``text``, or (None, reason)."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    for i, ch in enumerate(text):
        if ch in "{[":
            end = _balanced_end(text, i)
            if end is not None:
                candidates.append(text[i:end])
                break
    for c in candidates:
        try:
            return json.loads(c), ""
        except json.JSONDecodeError as exc:
            last = f"invalid JSON ({exc.msg} at char {exc.pos})"
    return None, last if candidates else "no JSON object in the answer"


def _balanced_end(text: str, start: int) -> int | None:
    depth, in_str, esc = 0, False, False
    for j in range(start, len(text)):
        ch = text[j]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def check_structured(text: str, schema: dict[str, Any]) -> tuple[Any, str]:
    """(value, "") if ``text`` holds JSON valid under ``schema``, else (None, "no_json: ..." | "schema: ...")."""
    value, why = extract_json(text)
    if why:
        return None, f"no_json: {why}"
    err = validate(value, schema)
    return (None, f"schema: {err}") if err else (value, "")


def ask_structured(llm: LLM, messages: Sequence[Message], schema: dict[str, Any], sampling: Sampling | None = None,
                   *, counter: FailureCounter | None = None, repair: bool = True) -> Structured:
    """Ask, validate, and (once) ask for a repair. ``counter`` counts asks, repairs and failures."""
    counter = counter if counter is not None else FailureCounter()
    counter.asked += 1
    sampling = sampling or Sampling(max_tokens=256)
    text = llm.chat(list(messages), sampling)[0].text
    value, err = check_structured(text, schema)
    if not err:
        return Structured(True, value, text, 1)
    if not repair:
        counter.fail(err.split(":", 1)[0])
        return Structured(False, None, text, 1, err)
    fix = [*messages, {"role": "assistant", "content": text},
           {"role": "user", "content": f"Your answer is not valid: {err}. Reply with only the corrected JSON matching this "
                                       f"schema: {json.dumps(schema)}"}]
    text2 = llm.chat(fix, sampling)[0].text
    value, err2 = check_structured(text2, schema)
    if not err2:
        counter.repaired += 1
        return Structured(True, value, text2, 2)
    counter.fail(err2.split(":", 1)[0])
    return Structured(False, None, text2, 2, err2)
