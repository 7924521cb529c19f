"""RISE-shapes: reasoning-informed edits of shape grids, with the exact expected result of every task.

RISEBench's four categories (temporal, causal, spatial, logical; paper Sec. 3.1) rebuilt on
:mod:`reprolab.data.shapes` objects placed in the cells of a grid, so that what an edit should produce is
known exactly and a scene reader can check it. Three task types per category (the spec sheet's list):

- temporal (colour or state progressions a model must know): ``traffic_light`` (the lit lamp after the next
  change: green -> yellow -> red -> green; red on top, green at the bottom), ``ripening`` (green tomatoes,
  the green circles, turn red), ``melting`` (ice cubes, the white squares, are gone after a warm day);
- causal: ``paint_mixing`` (the right drop poured into the left one: red + yellow = orange, blue + yellow =
  green, red + blue = magenta, green + blue = cyan), ``gravity`` (every object falls to the bottom of its
  column, stacking), ``rolling`` (the board tilts right: circles and rings roll to the right end of their
  row, stopping at the first object; other shapes stay);
- spatial: ``sort_by_size`` (a row rearranged from small to large), ``mirror`` (the grid flipped left-right),
  ``move_above`` (one named object moved to the cell right above another);
- logical: ``tic_tac_toe`` (crosses to play: the one winning cross; boards are drawn with exactly one
  winning cell), ``maze`` (the unique shortest path from the green circle to the red circle marked with
  yellow diamonds, walls are white squares), ``sequence`` (the next object of a periodic row).

A scene is a :class:`GridScene` of cells holding ``None`` or a :class:`Cell` (shape, colour, size). Each cell
is rendered by :func:`reprolab.data.shapes.render_scene` at the cell's centre, and the cells are tiled
(:func:`render_grid`), so a cell's object has the shapes module's size radii relative to the cell. Cells are
48 px (``CELL_PX``): at 32 px a small cross (radius 0.12 of the cell, arms 0.33 of that wide: 2.5 px) is at the
limit of what a pixel reader resolves (detectors trained on different seeds read it as a diamond or a circle);
at 48 px its arms are 3.8 px wide and every object a cell can hold reads back exactly. The JSON
form an LLM edits (:meth:`GridScene.to_json`) names each cell ``"[small |large ]colour shape"`` (medium
unwritten) or ``""``; :meth:`GridScene.from_json` validates it and raises :class:`SceneInvalid` naming
what is wrong.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...data.shapes import COLOURS, SHAPES, SIZES, ShapeSpec, render_scene
from ...errors import ConfigError

CELL_PX = 48  # default side of one cell, pixels (study v2; v1's 32 px put a small cross, arms 2.5 px wide, at the reader's limit)
SUBTASK = {  # each task type's RISEBench subtask (for the official table's subtask rows)
    "traffic_light": "Environmental Cycles", "ripening": "Life Progression", "melting": "Material Progression",
    "paint_mixing": "Chemical and Biological Transformation", "gravity": "Physics Manifestation", "rolling": "Physics Manifestation",
    "sort_by_size": "Object Arrangement", "mirror": "Viewpoint Generation", "move_above": "Layout Reasoning",
    "tic_tac_toe": "Puzzle Solving", "maze": "Puzzle Solving", "sequence": "Pattern Prediction",
}
TASK_TYPES = {
    "temporal_reasoning": ("traffic_light", "ripening", "melting"),
    "causal_reasoning": ("paint_mixing", "gravity", "rolling"),
    "spatial_reasoning": ("sort_by_size", "mirror", "move_above"),
    "logical_reasoning": ("tic_tac_toe", "maze", "sequence"),
}
MIXES = {("red", "yellow"): "orange", ("blue", "yellow"): "green", ("red", "blue"): "magenta", ("green", "blue"): "cyan"}


class SceneInvalid(ConfigError):
    """A scene (usually an LLM's JSON) that is not a valid grid of known objects."""


@dataclass(frozen=True)
class Cell:
    shape: str
    colour: str
    size: str = "medium"

    def __post_init__(self) -> None:
        for attr, vocab in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES)):
            if getattr(self, attr) not in vocab:
                raise SceneInvalid(attr, getattr(self, attr), f"one of {', '.join(vocab)}")

    def text(self) -> str:
        return f"{'' if self.size == 'medium' else self.size + ' '}{self.colour} {self.shape}"

    @classmethod
    def parse(cls, text: str) -> Cell | None:
        words = text.lower().replace(",", " ").split()
        if not words or words == ["empty"]:
            return None
        size = words[0] if words[0] in SIZES else "medium"
        rest = words[1:] if words[0] in SIZES else words
        if len(rest) != 2:
            raise SceneInvalid("cell", text, "'[small |large ]<colour> <shape>' or '' for an empty cell")
        return cls(rest[1], rest[0], size)


@dataclass(frozen=True)
class GridScene:
    cells: tuple[tuple[Cell | None, ...], ...]  # rows of cells

    @property
    def rows(self) -> int:
        return len(self.cells)

    @property
    def cols(self) -> int:
        return len(self.cells[0])

    @classmethod
    def empty(cls, rows: int, cols: int) -> GridScene:
        return cls(tuple((None,) * cols for _ in range(rows)))

    @classmethod
    def of(cls, rows: int, cols: int, objects: dict[tuple[int, int], Cell]) -> GridScene:
        return cls(tuple(tuple(objects.get((r, c)) for c in range(cols)) for r in range(rows)))

    def at(self, r: int, c: int) -> Cell | None:
        return self.cells[r][c]

    def objects(self) -> dict[tuple[int, int], Cell]:
        return {(r, c): x for r, row in enumerate(self.cells) for c, x in enumerate(row) if x is not None}

    def with_cells(self, changes: dict[tuple[int, int], Cell | None]) -> GridScene:
        rows = [list(r) for r in self.cells]
        for (r, c), v in changes.items():
            rows[r][c] = v
        return GridScene(tuple(tuple(r) for r in rows))

    def differing(self, other: GridScene) -> set[tuple[int, int]]:
        """Cells whose content differs (scenes of the same shape)."""
        if (self.rows, self.cols) != (other.rows, other.cols):
            raise SceneInvalid("grid", f"{other.rows}x{other.cols}", f"a {self.rows}x{self.cols} grid")
        return {(r, c) for r in range(self.rows) for c in range(self.cols) if self.at(r, c) != other.at(r, c)}

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "cols": self.cols, "grid": [[x.text() if x else "" for x in row] for row in self.cells]}

    @classmethod
    def from_json(cls, obj: Any, rows: int | None = None, cols: int | None = None) -> GridScene:
        """Validate an edited scene: ``{"grid": [[cell, ...], ...]}`` (``rows``/``cols`` must match when given)."""
        if not isinstance(obj, dict) or not isinstance(obj.get("grid"), list) or not obj["grid"]:
            raise SceneInvalid("scene", str(obj)[:80], 'a JSON object {"grid": [[cell, ...], ...]}')
        grid = obj["grid"]
        if not all(isinstance(r, list) and r for r in grid) or len({len(r) for r in grid}) != 1:
            raise SceneInvalid("grid", str(grid)[:80], "a list of equally long lists of cell strings")
        if rows is not None and (len(grid), len(grid[0])) != (rows, cols):
            raise SceneInvalid("grid", f"{len(grid)}x{len(grid[0])}", f"a {rows}x{cols} grid (the input's)")
        cells = []
        for row in grid:
            out = []
            for x in row:
                if x is None:
                    out.append(None)
                elif isinstance(x, str):
                    out.append(Cell.parse(x))
                else:
                    raise SceneInvalid("cell", x, "a string")
            cells.append(tuple(out))
        return cls(tuple(cells))

    def describe(self) -> str:
        """One line per row, for captions and prompts: ``row 1: red circle | empty | large blue ring``."""
        return "\n".join(f"row {r + 1}: " + " | ".join(x.text() if x else "empty" for x in row) for r, row in enumerate(self.cells))


def render_grid(scene: GridScene, cell_px: int = CELL_PX) -> np.ndarray:
    """(3, rows * cell_px, cols * cell_px) float32 in [0, 1]: each cell rendered on its own and tiled."""
    if cell_px < 16:
        raise ConfigError("cell_px", cell_px, "an integer >= 16")
    blank = render_scene([], cell_px)
    rows = []
    for row in scene.cells:
        rows.append(np.concatenate([render_scene([ShapeSpec(x.shape, x.colour, x.size, 0.5, 0.5)], cell_px) if x else blank
                                    for x in row], axis=2))
    return np.concatenate(rows, axis=1)


@dataclass(frozen=True)
class Task:
    """One RISE-shapes task in RISEBench's sample shape, with the exact expected scene."""

    index: str
    category: str
    task_type: str
    instruction: str
    input: GridScene
    expected: GridScene

    @property
    def subtask(self) -> str:
        return SUBTASK[self.task_type]

    @property
    def changed(self) -> set[tuple[int, int]]:
        """Cells the edit must change."""
        return self.input.differing(self.expected)

    def reference(self) -> str:
        """The reference text (the expected scene, described)."""
        return "A grid of cells on a dark background:\n" + self.expected.describe()


# --------------------------------------------------------------------------- generators


def _rand_cell(rng: np.random.Generator, *, avoid: Callable[[Cell], bool] = lambda c: False, shapes=SHAPES, colours=COLOURS) -> Cell:
    while True:
        c = Cell(str(rng.choice(shapes)), str(rng.choice(colours)))
        if not avoid(c):
            return c


def _free_cells(scene_cells: dict, rows: int, cols: int) -> list[tuple[int, int]]:
    return [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in scene_cells]


def _distractors(rng, objs: dict, rows: int, cols: int, k: int, avoid: Callable[[Cell], bool], cells=None) -> None:
    free = cells if cells is not None else _free_cells(objs, rows, cols)
    free = [f for f in free if f not in objs]
    for i in rng.permutation(len(free))[:k]:
        objs[free[int(i)]] = _rand_cell(rng, avoid=avoid)


def _traffic_light(rng):
    col = int(rng.integers(3))
    order = ["green", "yellow", "red"]
    row_of = {"red": 0, "yellow": 1, "green": 2}
    lit = str(rng.choice(order))
    nxt = order[(order.index(lit) + 1) % 3]
    objs = {(row_of[lit], col): Cell("circle", lit)}
    _distractors(rng, objs, 3, 3, 2, lambda c: c.shape == "circle", [(r, c) for r in range(3) for c in range(3) if c != col])
    inp = GridScene.of(3, 3, objs)
    exp = inp.with_cells({(row_of[lit], col): None, (row_of[nxt], col): Cell("circle", nxt)})
    ins = (f"Column {col + 1} is a traffic light (red lamp on top, yellow in the middle, green at the bottom); only the lit lamp "
           "is drawn. Draw the scene after the traffic light changes once.")
    return ins, inp, exp


def _ripening(rng):
    objs: dict = {}
    cells = _free_cells({}, 3, 3)
    for i in rng.permutation(9)[: int(rng.integers(1, 4))]:
        objs[cells[int(i)]] = Cell("circle", "green")
    _distractors(rng, objs, 3, 3, int(rng.integers(1, 3)), lambda c: c.shape == "circle")
    inp = GridScene.of(3, 3, objs)
    exp = inp.with_cells({k: Cell("circle", "red") for k, v in objs.items() if v == Cell("circle", "green")})
    return "The green circles are unripe tomatoes. Draw the scene after the tomatoes have fully ripened.", inp, exp


def _melting(rng):
    objs: dict = {}
    cells = _free_cells({}, 3, 3)
    for i in rng.permutation(9)[: int(rng.integers(1, 4))]:
        objs[cells[int(i)]] = Cell("square", "white")
    _distractors(rng, objs, 3, 3, int(rng.integers(1, 3)), lambda c: c.colour == "white" or c.shape == "square")
    inp = GridScene.of(3, 3, objs)
    exp = inp.with_cells({k: None for k, v in objs.items() if v == Cell("square", "white")})
    return "The white squares are ice cubes left outside on a hot summer day. Draw the scene one day later.", inp, exp


def _paint_mixing(rng):
    (a, b), mix = list(MIXES.items())[int(rng.integers(len(MIXES)))]
    if rng.random() < 0.5:
        a, b = b, a
    r, c = int(rng.integers(3)), int(rng.integers(2))
    objs = {(r, c): Cell("circle", a), (r, c + 1): Cell("circle", b)}
    _distractors(rng, objs, 3, 3, 2, lambda x: x.shape == "circle")
    inp = GridScene.of(3, 3, objs)
    exp = inp.with_cells({(r, c): Cell("circle", mix), (r, c + 1): None})
    return (f"The two circles in row {r + 1} are drops of paint. Pour the right drop into the left one and mix them well.", inp, exp)


def _gravity(rng):
    objs: dict = {}
    _distractors(rng, objs, 3, 3, int(rng.integers(2, 5)), lambda x: False)
    inp = GridScene.of(3, 3, objs)
    if inp.objects() == _fall(inp).objects():
        return _gravity(rng)
    return ("Gravity is switched on: every object falls straight down to the bottom row, stacking on the objects below it.",
            inp, _fall(inp))


def _fall(scene: GridScene) -> GridScene:
    out: dict = {}
    for c in range(scene.cols):
        stack = [scene.at(r, c) for r in range(scene.rows - 1, -1, -1) if scene.at(r, c) is not None]
        for i, x in enumerate(stack):
            out[(scene.rows - 1 - i, c)] = x
    return GridScene.of(scene.rows, scene.cols, out)


def _roll(scene: GridScene) -> GridScene:
    cells = [list(r) for r in scene.cells]
    for row in cells:
        for c in range(len(row) - 1, -1, -1):
            x = row[c]
            if x is not None and x.shape in ("circle", "ring"):
                k = c
                while k + 1 < len(row) and row[k + 1] is None:
                    k += 1
                row[c], row[k] = None, x
    return GridScene(tuple(tuple(r) for r in cells))


def _rolling(rng):
    objs: dict = {}
    _distractors(rng, objs, 3, 3, int(rng.integers(3, 6)), lambda x: False)
    inp = GridScene.of(3, 3, objs)
    if inp == _roll(inp):
        return _rolling(rng)
    return ("The board is tilted down to the right. Whatever can roll rolls right as far as it can along its row; the rest stays put.",
            inp, _roll(inp))


def _sort_by_size(rng):
    while True:
        perm = list(rng.permutation(3))
        if perm != [0, 1, 2]:
            break
    objs = [Cell(str(rng.choice(SHAPES)), str(rng.choice(COLOURS)), SIZES[i]) for i in range(3)]
    inp = GridScene.of(1, 3, {(0, k): objs[perm[k]] for k in range(3)})
    exp = GridScene.of(1, 3, {(0, k): objs[k] for k in range(3)})
    return "Rearrange the objects so that they go from the smallest on the left to the largest on the right.", inp, exp


def _mirror(rng):
    while True:
        objs: dict = {}
        _distractors(rng, objs, 3, 3, int(rng.integers(2, 5)), lambda x: False)
        inp = GridScene.of(3, 3, objs)
        exp = GridScene.of(3, 3, {(r, 2 - c): x for (r, c), x in objs.items()})
        if exp != inp:
            return "Draw the grid as it looks in a mirror standing along its right side (flip it left to right).", inp, exp


def _move_above(rng):
    while True:
        objs: dict = {}
        _distractors(rng, objs, 3, 3, int(rng.integers(3, 5)), lambda x: False)
        texts = [x.text() for x in objs.values()]
        unique = [k for k, x in objs.items() if texts.count(x.text()) == 1]
        pairs = [(a, b) for a in unique for b in unique if a != b and b[0] > 0 and (b[0] - 1, b[1]) not in objs]
        if pairs:
            a, b = pairs[int(rng.integers(len(pairs)))]
            inp = GridScene.of(3, 3, objs)
            exp = inp.with_cells({a: None, (b[0] - 1, b[1]): objs[a]})
            return f"Move the {objs[a].text()} to the cell directly above the {objs[b].text()}.", inp, exp


_LINES = [[(r, c) for c in range(3)] for r in range(3)] + [[(r, c) for r in range(3)] for c in range(3)] + \
         [[(i, i) for i in range(3)], [(i, 2 - i) for i in range(3)]]


def _wins(marks: set, cell: tuple[int, int]) -> bool:
    return any(cell in line and all(x in marks or x == cell for x in line) for line in _LINES)


def _tic_tac_toe(rng):
    cross, ring = Cell("cross", "white"), Cell("ring", "cyan")
    while True:
        cells = [(r, c) for r in range(3) for c in range(3)]
        order = [cells[int(i)] for i in rng.permutation(9)]
        n = int(rng.integers(2, 4))
        xs, os_ = set(order[:n]), set(order[n:2 * n])
        if any(all(x in xs for x in line) or all(x in os_ for x in line) for line in _LINES):
            continue
        free = [c for c in cells if c not in xs and c not in os_]
        winning = [c for c in free if _wins(xs, c)]
        if len(winning) == 1:
            inp = GridScene.of(3, 3, {**{c: cross for c in xs}, **{c: ring for c in os_}})
            return ("Tic-tac-toe: the white crosses play next. Draw the one white cross that wins the game at once.",
                    inp, inp.with_cells({winning[0]: cross}))


def _shortest_paths(walls: set, start, goal, n: int) -> list[list[tuple[int, int]]]:
    dist = {start: 0}
    q = deque([start])
    while q:
        u = q.popleft()
        for d in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            v = (u[0] + d[0], u[1] + d[1])
            if 0 <= v[0] < n and 0 <= v[1] < n and v not in walls and v not in dist:
                dist[v] = dist[u] + 1
                q.append(v)
    if goal not in dist:
        return []

    def back(v):
        if v == start:
            return [[start]]
        out = []
        for d in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            u = (v[0] + d[0], v[1] + d[1])
            if dist.get(u) == dist[v] - 1:
                out += [p + [v] for p in back(u)]
        return out

    return back(goal)


def _maze(rng):
    n = 4
    while True:
        cells = [(r, c) for r in range(n) for c in range(n)]
        order = [cells[int(i)] for i in rng.permutation(n * n)]
        start, goal = order[0], order[1]
        if abs(start[0] - goal[0]) + abs(start[1] - goal[1]) < 3:
            continue
        walls = set(order[2:2 + int(rng.integers(4, 7))])
        paths = _shortest_paths(walls, start, goal, n)
        if len(paths) == 1:
            objs = {**{w: Cell("square", "white") for w in walls}, start: Cell("circle", "green"), goal: Cell("circle", "red")}
            inp = GridScene.of(n, n, objs)
            exp = inp.with_cells({p: Cell("diamond", "yellow") for p in paths[0][1:-1]})
            return ("A maze: white squares are walls. Mark the shortest path from the green circle to the red circle by drawing a "
                    "yellow diamond in every empty cell it passes through (moves go up, down, left or right).", inp, exp)


def _sequence(rng):
    period = int(rng.integers(2, 4))
    motif = []
    while len(motif) < period:
        c = _rand_cell(rng)
        if c not in motif:
            motif.append(c)
    row = [motif[i % period] for i in range(5)]
    inp = GridScene.of(1, 5, {(0, i): row[i] for i in range(4)})
    return "The row repeats a pattern. Draw the object that comes next in the empty last cell.", inp, inp.with_cells({(0, 4): row[4]})


GENERATORS: dict[str, Callable[[np.random.Generator], tuple[str, GridScene, GridScene]]] = {
    "traffic_light": _traffic_light, "ripening": _ripening, "melting": _melting,
    "paint_mixing": _paint_mixing, "gravity": _gravity, "rolling": _rolling,
    "sort_by_size": _sort_by_size, "mirror": _mirror, "move_above": _move_above,
    "tic_tac_toe": _tic_tac_toe, "maze": _maze, "sequence": _sequence,
}


def make_tasks(per_category: int, seed: int = 0, categories: Sequence[str] = tuple(TASK_TYPES)) -> list[Task]:
    """``per_category`` tasks per category, task types taken in turn (seeded; the same seed, the same tasks)."""
    if int(per_category) < 1:
        raise ConfigError("per_category", per_category, "an integer >= 1")
    rng = np.random.default_rng(seed)
    out = []
    for cat in categories:
        if cat not in TASK_TYPES:
            raise ConfigError("category", cat, f"one of {', '.join(TASK_TYPES)}")
        for i in range(per_category):
            kind = TASK_TYPES[cat][i % len(TASK_TYPES[cat])]
            ins, inp, exp = GENERATORS[kind](rng)
            out.append(Task(f"{cat}_{i + 1}", cat, kind, ins, inp, exp))
    return out


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write a render as PNG, atomically."""
    import io

    from PIL import Image

    from ...imageeval import as_hwc_uint8
    from ...runtime import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(as_hwc_uint8(image)).save(buf, format="PNG")
    return atomic_write_bytes(Path(path), buf.getvalue())


def write_benchmark(tasks: Sequence[Task], data_dir: str | Path) -> list[Any]:
    """Write RISE-shapes tasks as RISEBench data: ``data_total.json`` and the input images (logical tasks with a
    ``reference_img``, the others with a ``reference`` text); returns the samples read back from it."""
    from ...runtime import atomic_write_json
    from .protocol import load_samples

    data_dir = Path(data_dir)
    items = []
    for t in tasks:
        img = f"{t.category}_images/{t.index.rsplit('_', 1)[1]}.png"
        write_image(data_dir / img, render_grid(t.input))
        item = {"index": t.index, "category": t.category, "instruction": t.instruction, "image": img, "subtask": t.subtask}
        if t.category == "logical_reasoning":
            ref = img.replace(".png", "_ref.png")
            write_image(data_dir / ref, render_grid(t.expected))
            item["reference_img"] = ref
        else:
            item["reference"] = t.reference()
        items.append(item)
    atomic_write_json(data_dir / "data_total.json", items)
    return load_samples(data_dir / "data_total.json")



__all__ = ["CELL_PX", "Cell", "GENERATORS", "GridScene", "MIXES", "SUBTASK", "SceneInvalid", "TASK_TYPES", "Task", "make_tasks",
           "render_grid", "write_benchmark", "write_image"]
