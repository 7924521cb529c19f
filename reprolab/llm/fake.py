"""A scripted backend for tests: deterministic answers from a Python function, no model.

    llm = ScriptedLLM(lambda prompt, s: "42", choices=lambda prompt: {"Yes": -0.1, "No": -2.3})

It speaks the whole interface (chat through a plain template, log-probabilities from
``choices``), so code built on :mod:`reprolab.llm` can be tested in milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from .base import LLM, Completion, LogprobsUnavailable, Message, Sampling, apply_stops
from .chat_template import PLAIN_TEMPLATE, render_chat


class ScriptedLLM(LLM):
    def __init__(self, respond: Callable[[str, Sampling], str], *, choices: Callable[[str], dict[str, float]] | None = None,
                 name: str = "scripted"):
        super().__init__()
        self.respond = respond
        self.choices = choices
        self.name = name
        self.prompts: list[str] = []

    def format_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        return render_chat(PLAIN_TEMPLATE, messages, add_generation_prompt=add_generation_prompt)

    def _complete_one(self, prompt: str, s: Sampling) -> Completion:
        self.prompts.append(prompt)
        raw = self.respond(prompt, s)
        text, stopped = apply_stops(raw, s.stop)
        words = text.split()
        finish = "stop" if stopped or len(words) <= s.max_tokens else "length"
        if len(words) > s.max_tokens:
            text = " ".join(words[: s.max_tokens])
        return Completion(text=text, finish_reason=finish, prompt_tokens=len(prompt.split()),
                          completion_tokens=len(text.split()), seconds=1e-4)

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, float]:
        if self.choices is None:
            raise LogprobsUnavailable("this scripted backend has no log-probabilities", fix="pass choices=")
        lp = self.choices(prompt)
        return {c: lp.get(c, -math.inf) for c in choices}

    def next_token_logprobs(self, prompt: str, top_k: int = 20) -> dict[str, float]:
        if self.choices is None:
            raise LogprobsUnavailable("this scripted backend has no log-probabilities", fix="pass choices=")
        return dict(sorted(self.choices(prompt).items(), key=lambda kv: -kv[1])[:top_k])
