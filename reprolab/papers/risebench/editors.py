"""Editors for RISE-shapes: what is being benchmarked (the paper's image editors, at laptop scale).

- :class:`IdentityEditor`: returns the input image (the floor of RISEBench's Table 2: editors that do not
  reason, e.g. FLUX.1-Canny at 0.0%).
- :class:`InstructionOnlyEditor`: never sees the image, as a text-to-image model given only the instruction:
  it draws the objects the instruction names ("the white squares", "a yellow diamond") in seeded random
  cells of an empty grid of the requested size.
- :class:`PerceiveReasonRender`: the scene reader turns the input image into a JSON scene, an LLM edits the
  JSON following the instruction (``think=True``: a few sentences of reasoning first, as BAGEL's "thinking"
  mode that RISEBench's leaderboard reports: 5.8 -> 15.8), the answer is validated
  (:meth:`GridScene.from_json`) and rendered. An answer that is not a valid scene of the input's grid is a
  failure: counted, and the editor returns the input image unchanged.
- :class:`OracleEditor`: renders the exact expected scene; :class:`PlantedErrorOracle` does so with a planted
  error in a known share of tasks (a required change left undone, an unintended change, or a wrong colour),
  a control with known accuracy.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...data.shapes import COLOURS, SHAPES
from ...errors import ConfigError
from ...llm import LLM, Sampling
from .reader import GridReader
from .rise_shapes import CELL_PX, Cell, GridScene, SceneInvalid, Task, render_grid


@dataclass
class Edit:
    """An editor's output: the image, the scene it meant to draw (None: unknown), whether it is a valid edit."""

    image: np.ndarray  # (3, H, W) float32 in [0, 1]
    scene: GridScene | None = None
    valid: bool = True
    raw: str = ""  # the LLM's answer, when there is one
    info: dict[str, Any] = field(default_factory=dict)


class IdentityEditor:
    name = "identity"

    def __init__(self, cell_px: int = CELL_PX):
        self.cell_px = cell_px

    def edit(self, task: Task, image: np.ndarray) -> Edit:
        return Edit(np.asarray(image, dtype=np.float32).copy(), task.input)


_MENTION = re.compile(r"\b(?:(small|large)\s+)?(" + "|".join(COLOURS) + r")\s+(" + "|".join(SHAPES) + r")s?\b", re.IGNORECASE)


class InstructionOnlyEditor:
    name = "instruction_only"

    def __init__(self, seed: int = 0, cell_px: int = CELL_PX):
        self.seed = seed
        self.cell_px = cell_px

    def edit(self, task: Task, image: np.ndarray) -> Edit:
        rows, cols = np.asarray(image).shape[1] // self.cell_px, np.asarray(image).shape[2] // self.cell_px
        rng = np.random.default_rng([self.seed, _stable(task.index)])
        named = [Cell(m.group(3).lower(), m.group(2).lower(), (m.group(1) or "medium").lower()) for m in _MENTION.finditer(task.instruction)]
        cells = [(r, c) for r in range(rows) for c in range(cols)]
        picks = [cells[int(i)] for i in rng.permutation(len(cells))[:len(named)]]
        scene = GridScene.of(rows, cols, dict(zip(picks, named)))
        return Edit(render_grid(scene, self.cell_px), scene)


SYSTEM = ("You edit pictures given as JSON. A picture is a grid of cells; each cell is \"\" (empty) or an object written "
          "\"[small |large ]<colour> <shape>\" (medium size is not written). Colours: " + ", ".join(COLOURS) + ". Shapes: "
          + ", ".join(SHAPES) + ". Row 1 is the top row; column 1 is the left column.")
DIRECT = "Picture:\n{scene}\n\nInstruction: {instruction}\n\nAnswer with the edited picture as JSON in exactly the same format, and nothing else."
THINK = ("Picture:\n{scene}\n\nInstruction: {instruction}\n\nFirst think step by step in at most three short sentences: which "
         "cells must change and into what. Then write the edited picture as JSON in exactly the same format on the last line.")


def extract_scene_json(text: str) -> Any:
    """The last JSON object with a ``"grid"`` key in ``text`` (None if there is none)."""
    dec = json.JSONDecoder()
    found = None
    for m in re.finditer(r"\{\s*\"grid\"", text):
        try:
            obj, _ = dec.raw_decode(text[m.start():])
        except json.JSONDecodeError:
            continue
        found = obj
    return found


class PerceiveReasonRender:
    """Scene reader -> LLM edits the JSON scene -> validated -> rendered (see the module docstring)."""

    def __init__(self, llm: LLM, reader: GridReader, *, think: bool = False, max_tokens: int | None = None, name: str | None = None):
        self.llm = llm
        self.reader = reader
        self.think = think
        self.max_tokens = max_tokens or (256 if think else 160)
        self.name = name or f"prr{'-think' if think else ''}"
        self.failures = 0
        self.calls = 0

    def prompt(self, task: Task, scene: GridScene) -> list[dict[str, str]]:
        body = (THINK if self.think else DIRECT).format(scene=json.dumps({"grid": scene.to_json()["grid"]}), instruction=task.instruction)
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]

    def edit(self, task: Task, image: np.ndarray) -> Edit:
        reading = self.reader.read(image, task.input.rows, task.input.cols)
        seen = reading.scene
        prefill = "" if self.think else '{"grid": ['
        out = self.llm.chat(self.prompt(task, seen), Sampling(max_tokens=self.max_tokens, temperature=0.0), prefill=prefill)[0]
        raw = prefill + out.text
        self.calls += 1
        try:
            obj = extract_scene_json(raw)
            if obj is None:
                raise SceneInvalid("answer", raw[-80:], 'a JSON object {"grid": [...]}')
            scene = GridScene.from_json(obj, seen.rows, seen.cols)
        except SceneInvalid as exc:
            self.failures += 1
            return Edit(np.asarray(image, dtype=np.float32).copy(), None, False, raw,
                        {"error": str(exc), "finish": out.finish_reason, "tokens": out.completion_tokens})
        return Edit(render_grid(scene, self.reader.cell_px), scene, True, raw, {"finish": out.finish_reason, "tokens": out.completion_tokens})


class OracleEditor:
    name = "oracle"

    def __init__(self, cell_px: int = CELL_PX):
        self.cell_px = cell_px

    def edit(self, task: Task, image: np.ndarray) -> Edit:
        return Edit(render_grid(task.expected, self.cell_px), task.expected)


ERROR_KINDS = ("undone", "unintended", "wrong_colour")


class PlantedErrorOracle:
    """The oracle with one planted error in a share ``rate`` of the tasks (which, and which kind, seeded)."""

    def __init__(self, rate: float = 0.5, seed: int = 0, cell_px: int = CELL_PX):
        if not 0.0 <= rate <= 1.0:
            raise ConfigError("rate", rate, "a share in [0, 1]")
        self.rate, self.seed, self.cell_px = rate, seed, cell_px
        self.name = f"oracle_err{int(round(rate * 100))}"

    def plant(self, task: Task) -> tuple[GridScene, str | None]:
        rng = np.random.default_rng([self.seed, _stable(task.index)])
        if rng.random() >= self.rate:
            return task.expected, None
        kind = ERROR_KINDS[int(rng.integers(len(ERROR_KINDS)))]
        exp, changed = task.expected, sorted(task.changed)
        others = [(r, c) for r in range(exp.rows) for c in range(exp.cols) if (r, c) not in task.changed]
        if kind == "unintended" and not others:  # every cell must change (e.g. a sorted row): nothing else to disturb
            kind = "undone"
        if kind == "undone":
            cell = changed[int(rng.integers(len(changed)))]
            return exp.with_cells({cell: task.input.at(*cell)}), kind
        if kind == "wrong_colour":
            filled = [c for c in changed if exp.at(*c) is not None] or changed
            cell = filled[int(rng.integers(len(filled)))]
            old = exp.at(*cell) or Cell("circle", "white")
            colour = [c for c in COLOURS if c != old.colour][int(rng.integers(len(COLOURS) - 1))]
            return exp.with_cells({cell: Cell(old.shape, colour, old.size)}), kind
        cell = others[int(rng.integers(len(others)))]
        old = exp.at(*cell)
        new = None if old is not None else Cell(SHAPES[int(rng.integers(len(SHAPES)))], COLOURS[int(rng.integers(len(COLOURS)))])
        return exp.with_cells({cell: new}), "unintended"

    def edit(self, task: Task, image: np.ndarray) -> Edit:
        scene, kind = self.plant(task)
        return Edit(render_grid(scene, self.cell_px), scene, info={"planted": kind})


__all__ = ["DIRECT", "ERROR_KINDS", "Edit", "IdentityEditor", "InstructionOnlyEditor", "OracleEditor", "PerceiveReasonRender",
           "PlantedErrorOracle", "SYSTEM", "THINK", "extract_scene_json"]


def _stable(text: str) -> int:
    """A seed from a string, the same in every process (``hash`` is salted per process)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
