"""Judges for RISE-shapes outputs, speaking the official protocol (:class:`~.protocol.JudgeRequest` in, a text
ending in "Final Score" out), so their answers go through the official parser and scoring unchanged.

- :class:`ExactJudge`: the scene reader reads the output (and nothing is guessed: the task's exact input
  and expected scenes are known) and maps what it finds onto the official rubrics:

  * reasoning R (1-5): every cell the instruction must change is right -> 5; none right -> 1 (rubric 1:
    "fails to follow the instruction"); else by the share right: >= 3/4 -> 4, >= 1/2 -> 3, less -> 2;
  * consistency C (1-5): unintended changes (cells that must stay, changed): 0 -> 5, 1 -> 4 (rubric 4:
    "one small unintended change"), 2 -> 3, 3-4 -> 2, 5 or more -> 1;
  * plausibility P (1-5): unreadable cells (several objects in one cell, a blob the detector cannot name):
    0 -> 5, 1 -> 4, 2 -> 3, 3 -> 2, more -> 1;
  * logical samples are binary as in the official prompts: R = 1 when the whole output equals the expected
    scene ("any difference that affects the solution -> 0"), C = 1 when nothing outside the solution changed.

- :class:`CaptionJudge`: caption-then-judge. The official prompt is kept whole and each image it refers to
  is replaced by the scene reader's description ("Image 1, as read by a scene reader: row 1: ..."). A text
  LLM answers it in one of two modes: ``logprob`` (the answer is prefilled up to ``**Final Score:** **`` and
  the score is the most likely of the allowed digits, 1-5 or 0-1 for binary judgements: one forward pass)
  or ``generate`` (the model writes its explanation and score, greedy, up to ``max_tokens``; an answer
  without a readable score is an incomplete judgement, as in the official parser). It is not a VLM: it
  inherits every error of the scene reader.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...llm import LLM, Sampling
from .protocol import JudgeRequest, _digest
from .reader import GridReader, GridReading
from .rise_shapes import Task


def _score_text(what: str, score: int) -> str:
    return f"{what}\n\n**Final Score:** **{score}**"


class _Reads:
    def __init__(self, reader: GridReader):
        self.reader = reader
        self._memo: dict[str, GridReading] = {}

    def read(self, image: Any, rows: int, cols: int) -> GridReading:
        key = f"{rows}x{cols}:{_digest(image)}"
        if key not in self._memo:
            if isinstance(image, (str, Path)):
                from PIL import Image

                with Image.open(image) as im:
                    image = np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
            self._memo[key] = self.reader.read(image, rows, cols)
        return self._memo[key]


class ExactJudge:
    """The exact judge (module docstring); ``tasks`` maps a sample index to its :class:`Task`."""

    def __init__(self, tasks: Mapping[str, Task], reader: GridReader, name: str = "exact"):
        self.tasks = dict(tasks)
        self.reads = _Reads(reader)
        self.name = name

    def counts(self, task: Task, image: Any) -> dict[str, int]:
        out = self.reads.read(image, task.input.rows, task.input.cols)
        changed = task.changed
        wrong = sum(out.scene.at(*c) != task.expected.at(*c) for c in changed)
        unintended = len(out.scene.differing(task.input) - changed)
        return {"required": len(changed), "wrong": wrong, "unintended": unintended, "unreadable": out.unreadable,
                "exact": int(out.scene == task.expected)}

    def __call__(self, request: JudgeRequest) -> str:
        task = self.tasks[request.sample]
        k = self.counts(task, request.images[-1])  # the output is always the last image
        what = (f"Exact reading: {k['wrong']} of {k['required']} required changes wrong, {k['unintended']} unintended changes, "
                f"{k['unreadable']} unreadable cells.")
        if request.dimension == "reasoning":
            if request.binary:
                return _score_text(what, k["exact"])
            right = k["required"] - k["wrong"]
            s = 5 if k["wrong"] == 0 else 1 if right == 0 else 4 if right / k["required"] >= 0.75 else 3 if right / k["required"] >= 0.5 else 2
            return _score_text(what, s)
        if request.dimension == "consistency":
            if request.binary:
                return _score_text(what, int(k["unintended"] == 0))
            u = k["unintended"]
            return _score_text(what, 5 if u == 0 else 4 if u == 1 else 3 if u == 2 else 2 if u <= 4 else 1)
        u = k["unreadable"]
        return _score_text(what, max(1, 5 - u))


class CaptionJudge:
    """Caption-then-judge on a text LLM (module docstring)."""

    def __init__(self, llm: LLM, tasks: Mapping[str, Task], reader: GridReader, *, mode: str = "logprob", max_tokens: int = 192,
                 name: str | None = None):
        if mode not in ("logprob", "generate"):
            from ...errors import ConfigError

            raise ConfigError("mode", mode, "'logprob' or 'generate'")
        self.llm = llm
        self.tasks = dict(tasks)
        self.reads = _Reads(reader)
        self.mode = mode
        self.max_tokens = max_tokens
        self.name = name or f"caption-{mode}:{llm.name}"
        self.generated = self.cut = 0  # generate mode: answers written, and those stopped by max_tokens

    def text(self, request: JudgeRequest) -> str:
        task = self.tasks[request.sample]
        parts = [request.prompt.rstrip(), ""]
        n = len(request.images)
        for i, im in enumerate(request.images):
            reading = self.reads.read(im, task.input.rows, task.input.cols)
            label = f"Image {i + 1}" if n > 1 else "Output image"
            parts.append(f"{label}, as read by a scene reader (a {task.input.rows}x{task.input.cols} grid of cells on a dark "
                         f"background):\n{reading.scene.describe()}")
        return "\n\n".join(parts)

    def __call__(self, request: JudgeRequest) -> str:
        messages = [{"role": "user", "content": self.text(request)}]
        if self.mode == "generate":
            out = self.llm.chat(messages, Sampling(max_tokens=self.max_tokens, temperature=0.0))[0]
            self.generated += 1
            self.cut += out.finish_reason == "length"
            return out.text.strip()
        choices = ["0", "1"] if request.binary else ["1", "2", "3", "4", "5"]
        lp = self.llm.choice_logprobs(self.llm.format_chat(messages) + "**Final Score:** **", choices)
        finite = {c: v for c, v in lp.items() if np.isfinite(v)}
        shown = ", ".join(f"{c}: {lp[c]:.2f}" for c in choices)
        if not finite:  # no usable log-probability: an incomplete judgement (no score line), as an unparsable answer
            return f"(log-prob mode: no finite log-probability among {shown})"
        best = max(finite, key=lambda c: (finite[c], -int(c)))  # ties: the lower score
        return _score_text(f"(log-prob mode: {shown})", int(best))


__all__ = ["CaptionJudge", "ExactJudge"]
