"""Small Sokoban levels with BFS-verified solutions, and a Gymnasium-style environment.

    from reprolab.data.sokoban import generate_levels, SokobanEnv, solve
    levels = generate_levels(10, size=6, boxes=1, seed=0)    # each with its optimal solution
    lv = levels[0]; print(lv.text); lv.solution              # e.g. ('up', 'left', 'left')
    env = SokobanEnv(lv); obs, info = env.reset(); obs, r, term, trunc, info = env.step("left")

    # Boxoban (the DRC papers' format and environment): '; N' text files, 10x10 frames, a batched numpy env
    from reprolab.data.sokoban import load_boxoban, generate_framed_levels, BatchedSokoban
    levels = generate_framed_levels(64, room=8, boxes=2, seed=0)   # reverse play in 8x8 rooms, placed in 10x10 walls
    env = BatchedSokoban(levels); obs = env.observation()          # (64, 7, 8, 8) one-hot
    obs, reward, done, info = env.step(actions)                    # actions (64,) in 0..4: noop, up, down, left, right

Generation follows the reverse-play idea of Racaniere et al. (2017, the generator of
``gym-sokoban`` and of the DRC planning paper's Boxoban levels), at a small scale: carve a room
by a random walk inside a ``size`` x ``size`` border, put boxes on their targets, then *pull*
them backwards with random player moves, so every level is solvable by construction; then
breadth-first search over (player, boxes) finds the optimal (fewest moves) solution, which
verifies the level and gives its difficulty. Levels whose boxes did not leave their targets,
or that BFS cannot solve within ``max_nodes``, are rejected.

Text format (the standard one): ``#`` wall, `` `` floor, ``.`` target, ``$`` box, ``*`` box on
a target, ``@`` player, ``+`` player on a target. Actions: up, down, left, right (a push when
a box is in the way and the cell behind it is free).

Environment reward (choice, as gym-sokoban's defaults scaled to a solve reward of 1): -0.01 a
step, +0.1 for a box pushed onto a target, -0.1 for one pushed off, +1 when every box is on a
target (terminated); truncated after ``max_steps``. (:class:`SokobanEnv`, the single-level text env; the
batched Boxoban env at the end of this module has the DRC paper's rewards, see there.)
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MalformedFile, ShapeError

ACTIONS = ("up", "down", "left", "right")
MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
Pos = tuple[int, int]


@dataclass(frozen=True)
class Level:
    walls: frozenset[Pos]
    targets: frozenset[Pos]
    boxes: frozenset[Pos]
    player: Pos
    height: int
    width: int
    solution: tuple[str, ...] | None = None  # optimal, from BFS

    @property
    def text(self) -> str:
        return render(self.walls, self.targets, self.boxes, self.player, self.height, self.width)

    @classmethod
    def from_text(cls, text: str) -> Level:
        rows = [r for r in text.splitlines() if r.strip()]
        if not rows:
            raise MalformedFile("<sokoban text>", "no rows", fix="give a level in the standard #/$/./@ format")
        walls, targets, boxes, player = set(), set(), set(), None
        for i, row in enumerate(rows):
            for j, ch in enumerate(row):
                if ch == "#":
                    walls.add((i, j))
                elif ch in ".*+":
                    targets.add((i, j))
                if ch in "$*":
                    boxes.add((i, j))
                if ch in "@+":
                    if player is not None:
                        raise MalformedFile("<sokoban text>", "two players", fix="keep one @ or +")
                    player = (i, j)
                if ch not in "#.*+$@ ":
                    raise MalformedFile("<sokoban text>", f"unknown character {ch!r} at row {i}", fix="use # . $ * @ + or space")
        if player is None or not boxes or len(boxes) != len(targets):
            raise MalformedFile("<sokoban text>", f"player={player}, {len(boxes)} boxes, {len(targets)} targets",
                                fix="one player and as many boxes as targets (at least one)")
        return cls(frozenset(walls), frozenset(targets), frozenset(boxes), player, len(rows), max(len(r) for r in rows))


def render(walls: Iterable[Pos], targets: Iterable[Pos], boxes: Iterable[Pos], player: Pos, height: int, width: int) -> str:
    walls, targets, boxes = set(walls), set(targets), set(boxes)
    rows = []
    for i in range(height):
        row = []
        for j in range(width):
            p = (i, j)
            if p in walls:
                row.append("#")
            elif p == player:
                row.append("+" if p in targets else "@")
            elif p in boxes:
                row.append("*" if p in targets else "$")
            else:
                row.append("." if p in targets else " ")
        rows.append("".join(row))
    return "\n".join(rows)


def _step(walls: frozenset[Pos], boxes: frozenset[Pos], player: Pos, action: str) -> tuple[Pos, frozenset[Pos], bool]:
    """(new player, new boxes, moved?) after ``action``; pushing into a wall or a box is no move."""
    di, dj = MOVES[action]
    nxt = (player[0] + di, player[1] + dj)
    if nxt in walls:
        return player, boxes, False
    if nxt in boxes:
        beyond = (nxt[0] + di, nxt[1] + dj)
        if beyond in walls or beyond in boxes:
            return player, boxes, False
        return nxt, (boxes - {nxt}) | {beyond}, True
    return nxt, boxes, True


def _dead_corner(p: Pos, walls: frozenset[Pos], targets: frozenset[Pos]) -> bool:
    if p in targets:
        return False
    up, down = (p[0] - 1, p[1]) in walls, (p[0] + 1, p[1]) in walls
    left, right = (p[0], p[1] - 1) in walls, (p[0], p[1] + 1) in walls
    return (up or down) and (left or right)


def solve(level: Level, max_nodes: int = 200_000) -> tuple[str, ...] | None:
    """The shortest action sequence that puts every box on a target (BFS; boxes in non-target corners
    are pruned, which never removes a solution), or None if none within ``max_nodes`` states."""
    start = (level.player, level.boxes)
    if level.boxes == level.targets:
        return ()
    parent: dict[Any, tuple[Any, str] | None] = {start: None}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        player, boxes = state
        for a in ACTIONS:
            p2, b2, moved = _step(level.walls, boxes, player, a)
            if not moved:
                continue
            s2 = (p2, b2)
            if s2 in parent:
                continue
            if b2 != boxes and any(_dead_corner(b, level.walls, level.targets) for b in b2 - boxes):
                continue
            parent[s2] = (state, a)
            if b2 == level.targets:
                path = []
                cur: Any = s2
                while parent[cur] is not None:
                    cur, act = parent[cur]
                    path.append(act)
                return tuple(reversed(path))
            if len(parent) >= max_nodes:
                return None
            queue.append(s2)
    return None


def _carve(rng: random.Random, size: int, floor_frac: float) -> set[Pos]:
    """Floor cells of a room carved by a random walk inside a border (cells 1..size-2)."""
    cells = {(i, j) for i in range(1, size - 1) for j in range(1, size - 1)}
    pos = (rng.randrange(1, size - 1), rng.randrange(1, size - 1))
    floor = {pos}
    want = max(4, int(floor_frac * len(cells)))
    for _ in range(size * size * 20):
        if len(floor) >= want:
            break
        di, dj = MOVES[rng.choice(ACTIONS)]
        nxt = (pos[0] + di, pos[1] + dj)
        if nxt in cells:
            pos = nxt
            floor.add(pos)
    return floor


def generate_level(rng: random.Random, size: int = 6, boxes: int = 1, pulls: int = 30, floor_frac: float = 0.7,
                   max_nodes: int = 200_000) -> Level | None:
    """One level by reverse play (see the module doc), or None when this attempt was rejected."""
    floor = _carve(rng, size, floor_frac)
    if len(floor) < boxes + 3:
        return None
    walls = frozenset((i, j) for i in range(size) for j in range(size) if (i, j) not in floor)
    cells = sorted(floor)
    chosen = rng.sample(cells, boxes + 1)
    targets = frozenset(chosen[:boxes])
    box_set = set(targets)
    player = chosen[-1]
    for _ in range(pulls):  # reverse moves: the player steps back, pulling a box that is in front of it
        a = rng.choice(ACTIONS)
        di, dj = MOVES[a]
        back = (player[0] - di, player[1] - dj)
        if back in walls or back in box_set:
            continue
        front = (player[0] + di, player[1] + dj)
        if front in box_set and rng.random() < 0.8:
            box_set = (box_set - {front}) | {player}
        player = back
    boxes_now = frozenset(box_set)
    if boxes_now == targets:
        return None
    lv = Level(walls, targets, boxes_now, player, size, size)
    sol = solve(lv, max_nodes)
    if sol is None or not sol:
        return None
    return Level(walls, targets, boxes_now, player, size, size, sol)


def generate_levels(n: int, *, size: int = 6, boxes: int = 1, seed: int = 0, pulls: int = 30,
                    min_moves: int = 1, max_moves: int = 99, max_tries: int = 10_000) -> list[Level]:
    """``n`` distinct solvable levels whose optimal solution has ``min_moves``..``max_moves`` moves."""
    if n < 0 or size < 4 or boxes < 1 or min_moves > max_moves:
        raise ConfigError("generate_levels", dict(n=n, size=size, boxes=boxes, min_moves=min_moves, max_moves=max_moves),
                          "n >= 0, size >= 4, boxes >= 1, min_moves <= max_moves")
    rng = random.Random(seed)
    out: list[Level] = []
    seen: set[str] = set()
    for _ in range(max_tries):
        if len(out) >= n:
            break
        lv = generate_level(rng, size, boxes, pulls)
        if lv is None or lv.text in seen or not (min_moves <= len(lv.solution or ()) <= max_moves):
            continue
        seen.add(lv.text)
        out.append(lv)
    if len(out) < n:
        raise ConfigError("generate_levels", f"{len(out)} of {n} levels after {max_tries} tries",
                          "a wider move range, more pulls, or a larger size")
    return out


class SokobanEnv:
    """Gymnasium-style Sokoban on one :class:`Level`; observations are the level text."""

    action_names = list(ACTIONS)

    def __init__(self, level: Level, max_steps: int = 50):
        self.level = level
        self.max_steps = max_steps
        self.reset()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        self.player, self.boxes, self.steps = self.level.player, self.level.boxes, 0
        return self.render(), {}

    def render(self) -> str:
        lv = self.level
        return render(lv.walls, lv.targets, self.boxes, self.player, lv.height, lv.width)

    @property
    def solved(self) -> bool:
        return self.boxes == self.level.targets

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict]:
        if isinstance(action, int) and 0 <= action < len(ACTIONS):
            action = ACTIONS[action]
        if action not in MOVES:
            raise ConfigError("action", action, f"one of {ACTIONS} or its index")
        before = len(self.boxes & self.level.targets)
        self.player, self.boxes, moved = _step(self.level.walls, self.boxes, self.player, action)
        self.steps += 1
        after = len(self.boxes & self.level.targets)
        r = -0.01 + 0.1 * (after - before)
        term = self.solved
        if term:
            r += 1.0
        return self.render(), r, term, (not term and self.steps >= self.max_steps), {"moved": moved}

    def distance(self) -> int:
        """Sum over boxes of the Manhattan distance to the nearest target (a lookahead leaf value)."""
        t = self.level.targets
        return sum(min(abs(b[0] - x[0]) + abs(b[1] - x[1]) for x in t) for b in self.boxes)

    def heuristic(self) -> float:
        """A leaf value for lookahead (higher is better): -(3 x box distance + the player's Manhattan distance
        to the nearest box off its target); 0 when solved. A choice, not from the survey."""
        off = [b for b in self.boxes if b not in self.level.targets]
        if not off:
            return 0.0
        near = min(abs(b[0] - self.player[0]) + abs(b[1] - self.player[1]) for b in off)
        return -(3.0 * self.distance() + near)

    def clone(self) -> SokobanEnv:
        c = SokobanEnv.__new__(SokobanEnv)
        c.level, c.max_steps, c.player, c.boxes, c.steps = self.level, self.max_steps, self.player, self.boxes, self.steps
        return c


def replay(level: Level, actions: Sequence[str]) -> bool:
    """Whether ``actions`` solve ``level``."""
    env = SokobanEnv(level, max_steps=len(actions) + 1)
    for a in actions:
        _, _, term, _, _ = env.step(a)
        if term:
            return True
    return env.solved


# ----------------------------------------------------------------------------- Boxoban: text files, framed rooms, a batched env
#
# DeepMind's Boxoban levels (github deepmind/boxoban-levels, the levels of the DRC papers) are 10x10 rooms with a wall border,
# one level per block headed ``; N``. The batched environment below follows the environment of "Interpreting Emergent
# Planning in Model-Free RL" (arXiv 2504.01871; official code tuphs28/emergent-planning on stephen-chung-mh/thinker):
# observation = the 8x8 interior as 7 one-hot channels, actions noop/up/down/left/right, reward -0.01 a step, +1 for a box
# pushed onto a target, -1 for one pushed off, +10 when every box is on a target, episodes cut at 120 steps.

BOXOBAN_SIZE = 10
BOXOBAN_STEP_LIMIT = 120
# Action indices of the batched env (the official order): 0 noop, 1 up, 2 down, 3 left, 4 right.
BOXOBAN_ACTIONS = ("noop", "up", "down", "left", "right")
ACTION_DELTAS = np.array([(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)], dtype=np.int64)
# Observation channels, one-hot per square (spec sheet; one class per square):
OBS_CHANNELS = ("wall", "empty", "box", "box_on_target", "agent", "agent_on_target", "target")
REWARD_STEP, REWARD_ON, REWARD_OFF, REWARD_SOLVED = -0.01, 1.0, -1.0, 10.0


def parse_boxoban(text: str, source: str = "<boxoban text>") -> list[tuple[str, Level]]:
    """``(name, level)`` for each ``; N`` block of a Boxoban text file (``;N`` and ``; N`` both; the name is the header
    without its ``;``, e.g. ``"0"`` or the cutoff sets' ``"0-3,3-4,..."``). Raises MalformedFile naming the block."""
    out: list[tuple[str, Level]] = []
    name: str | None = None
    rows: list[str] = []

    def flush() -> None:
        if name is None:
            if any(r.strip() for r in rows):
                raise MalformedFile(source, "level rows before the first '; N' header", fix="start each level with a '; N' line")
            return
        body = [r for r in rows if r.strip()]
        if not body:
            raise MalformedFile(source, f"level {name!r} has no rows", fix="give each '; N' header its level rows")
        try:
            out.append((name, Level.from_text("\n".join(body))))
        except MalformedFile as e:
            raise MalformedFile(source, f"level {name!r}: {e.problem}", fix=e.fix) from None

    for line in text.splitlines():
        if line.startswith(";"):
            flush()
            name, rows = line[1:].strip(), []
        else:
            rows.append(line.rstrip("\n"))
    flush()
    if not out:
        raise MalformedFile(source, "no levels", fix="a Boxoban file is '; 0' followed by the level's rows, then '; 1' ...")
    return out


def format_boxoban(levels: Sequence[Level], names: Sequence[str] | None = None) -> str:
    """Boxoban text: ``; N`` (N = the index, or ``names[i]``) then the level's rows, a blank line between levels."""
    names = [str(i) for i in range(len(levels))] if names is None else list(names)
    if len(names) != len(levels):
        raise ConfigError("names", f"{len(names)} names", f"one name per level ({len(levels)})")
    return "\n".join(f"; {n}\n{lv.text}\n" for n, lv in zip(names, levels))


def load_boxoban(path: str | Path) -> list[Level]:
    """The levels of a Boxoban text file (see :func:`parse_boxoban`)."""
    p = Path(path)
    if not p.is_file():
        raise MalformedFile(str(p), "no such file", fix="pass the path of a Boxoban .txt file (e.g. unfiltered/valid/000.txt)")
    return [lv for _, lv in parse_boxoban(p.read_text(), str(p))]


def save_boxoban(levels: Sequence[Level], path: str | Path, names: Sequence[str] | None = None) -> Path:
    """Write ``levels`` as a Boxoban text file, atomically."""
    from ..runtime import atomic_write_text

    return atomic_write_text(path, format_boxoban(levels, names))


SHARED_BOXOBAN = Path(__file__).resolve().parents[3] / "shared" / "data" / "boxoban"


def boxoban_dir() -> Path | None:
    """The folder of Boxoban levels copied into the workspace's ``shared/`` (``REPROLAB_BOXOBAN`` overrides), or None:
    the callers then fall back to generated levels and say so."""
    import os

    env = os.environ.get("REPROLAB_BOXOBAN")
    for p in ([Path(env)] if env else []) + [SHARED_BOXOBAN]:
        if (p / "unfiltered").is_dir() or (p / "experiments").is_dir():
            return p
    return None


def frame_level(level: Level, frame: int = BOXOBAN_SIZE, offset: Pos = (0, 0)) -> Level:
    """``level`` placed at ``offset`` inside a ``frame`` x ``frame`` room of walls (its solution, relative, is kept)."""
    di, dj = offset
    if level.height + di > frame or level.width + dj > frame or di < 0 or dj < 0:
        raise ConfigError("offset", offset, f"a place where the {level.height}x{level.width} level fits a {frame}x{frame} frame")
    inner = {(i + di, j + dj) for i in range(level.height) for j in range(level.width)}
    walls = {(i + di, j + dj) for i, j in level.walls} | {(i, j) for i in range(frame) for j in range(frame) if (i, j) not in inner}
    sh = lambda ps: frozenset((i + di, j + dj) for i, j in ps)  # noqa: E731
    return Level(frozenset(walls), sh(level.targets), sh(level.boxes), (level.player[0] + di, level.player[1] + dj), frame, frame,
                 level.solution)


def generate_framed_levels(n: int, *, room: int = 6, boxes: int = 1, seed: int = 0, frame: int = BOXOBAN_SIZE,
                           min_moves: int = 1, max_moves: int = 99, pulls: int = 30) -> list[Level]:
    """``n`` reverse-play levels of a ``room`` x ``room`` room (border included) with ``boxes`` boxes, each BFS-verified
    (``level.solution`` is optimal), placed at a seeded random offset inside a ``frame`` x ``frame`` wall frame (the
    Boxoban size by default)."""
    if room > frame:
        raise ConfigError("room", room, f"at most the frame size {frame}")
    rng = random.Random(seed + 7919)
    return [frame_level(lv, frame, (rng.randrange(frame - room + 1), rng.randrange(frame - room + 1)))
            for lv in generate_levels(n, size=room, boxes=boxes, seed=seed, pulls=pulls, min_moves=min_moves, max_moves=max_moves)]


def level_arrays(levels: Sequence[Level], size: int = BOXOBAN_SIZE) -> dict[str, np.ndarray]:
    """walls, targets, boxes as (N, size, size) bool arrays and the player as (N, 2) int64."""
    n = len(levels)
    walls, targets, boxes = (np.zeros((n, size, size), bool) for _ in range(3))
    player = np.zeros((n, 2), np.int64)
    for k, lv in enumerate(levels):
        if lv.height != size or lv.width != size:
            raise ShapeError(f"level {k}", (lv.height, lv.width), f"({size}, {size}); place smaller rooms with frame_level()")
        for arr, ps in ((walls, lv.walls), (targets, lv.targets), (boxes, lv.boxes)):
            if ps:
                idx = np.array(sorted(ps))
                arr[k, idx[:, 0], idx[:, 1]] = True
        player[k] = lv.player
    border = np.ones((size, size), bool)
    border[1:-1, 1:-1] = False
    if (~walls[:, border]).any():
        bad = int(np.nonzero((~walls[:, border]).any(1))[0][0])
        raise MalformedFile(f"<level {bad}>", "its border is not all wall", fix="Boxoban levels have a wall border; use frame_level()")
    return {"walls": walls, "targets": targets, "boxes": boxes, "player": player}


class BatchedSokoban:
    """Many Boxoban-format Sokoban episodes stepped at once with numpy (the official observation, actions and rewards).

    ``BatchedSokoban(levels)`` plays one episode per level (finished ones stay frozen: :attr:`done`); with
    ``next_levels`` (a function ``k -> k new levels``) a finished episode is replaced at once by a new level
    (training). ``step(actions)`` returns ``(obs, reward, done, info)``: obs ``(B, 7, 8, 8)`` float32, reward ``(B,)``,
    done ``(B,)`` (solved or cut at ``step_limit``), info with ``solved`` ``(B,)``, ``steps`` ``(B,)`` (the episode's
    steps), ``moved`` and ``pushed`` (B,) and, with auto-reset, ``reset`` (B,) marking the envs whose obs is a new level.
    """

    def __init__(self, levels: Sequence[Level], *, step_limit: int = BOXOBAN_STEP_LIMIT, next_levels: Any = None):
        if not levels:
            raise ConfigError("levels", "[]", "at least one level")
        if step_limit < 1:
            raise ConfigError("step_limit", step_limit, "a positive number of steps")
        self.step_limit = step_limit
        self.next_levels = next_levels
        self._load(levels)

    def _load(self, levels: Sequence[Level]) -> None:
        a = level_arrays(levels)
        self.walls, self.targets, self.boxes, self.player = a["walls"], a["targets"], a["boxes"], a["player"]
        n = len(levels)
        self.levels = list(levels)
        self.steps = np.zeros(n, np.int64)
        self.done = np.zeros(n, bool)
        self.solved = np.zeros(n, bool)

    def __len__(self) -> int:
        return len(self.levels)

    def reset(self, levels: Sequence[Level] | None = None) -> np.ndarray:
        self._load(self.levels if levels is None else levels)
        return self.observation()

    def observation(self) -> np.ndarray:
        """(B, 7, 8, 8) float32: the interior, one-hot over OBS_CHANNELS."""
        return observation_of(self.walls, self.targets, self.boxes, self.player)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        a = np.asarray(actions)
        if a.shape != (len(self),) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() > 4:
            raise ConfigError("actions", f"shape {a.shape}, dtype {a.dtype}", f"({len(self)},) integers in 0..4 ({BOXOBAN_ACTIONS})")
        live = ~self.done
        idx = np.arange(len(self))
        d = ACTION_DELTAS[a]
        nxt = self.player + d
        beyond = np.clip(nxt + d, 0, self.walls.shape[1] - 1)
        wall_n = self.walls[idx, nxt[:, 0], nxt[:, 1]]
        box_n = self.boxes[idx, nxt[:, 0], nxt[:, 1]]
        free_b = ~self.walls[idx, beyond[:, 0], beyond[:, 1]] & ~self.boxes[idx, beyond[:, 0], beyond[:, 1]]
        moved = live & (a > 0) & ~wall_n & (~box_n | free_b)
        pushed = moved & box_n
        on_before = (self.boxes & self.targets).sum((1, 2))
        p = np.nonzero(pushed)[0]
        self.boxes[p, nxt[p, 0], nxt[p, 1]] = False
        self.boxes[p, beyond[p, 0], beyond[p, 1]] = True
        self.player[moved] = nxt[moved]
        on_after = (self.boxes & self.targets).sum((1, 2))
        solved = live & (on_after == self.targets.sum((1, 2)))
        delta = on_after - on_before
        reward = np.where(live, REWARD_STEP + np.where(delta > 0, REWARD_ON * delta, REWARD_OFF * -delta) + REWARD_SOLVED * solved, 0.0)
        reward = reward.astype(np.float32)
        self.steps[live] += 1
        done = live & (solved | (self.steps >= self.step_limit))
        self.solved |= solved
        self.done |= done
        info = {"solved": solved, "steps": self.steps.copy(), "moved": moved, "pushed": pushed}
        if self.next_levels is not None and done.any():
            k = np.nonzero(done)[0]
            new = list(self.next_levels(len(k)))
            arr = level_arrays(new)
            for name in ("walls", "targets", "boxes"):
                getattr(self, name)[k] = arr[name]
            self.player[k] = arr["player"]
            self.steps[k] = 0
            self.done[k] = False
            self.solved[k] = False
            for i, lv in zip(k, new):
                self.levels[i] = lv
            info["reset"] = done.copy()
        return self.observation(), reward, done, info


def observation_of(walls: np.ndarray, targets: np.ndarray, boxes: np.ndarray, player: np.ndarray) -> np.ndarray:
    """The official observation of (B, 10, 10) states: (B, 7, 8, 8) float32, one-hot over OBS_CHANNELS, interior only."""
    n, h, w = walls.shape
    agent = np.zeros_like(walls)
    agent[np.arange(n), player[:, 0], player[:, 1]] = True
    cls = np.full((n, h, w), 1, np.int64)  # empty
    cls[targets] = 6
    cls[boxes] = 2
    cls[boxes & targets] = 3
    cls[agent] = 4
    cls[agent & targets] = 5
    cls[walls] = 0
    inner = cls[:, 1:-1, 1:-1]
    obs = np.zeros((n, len(OBS_CHANNELS), h - 2, w - 2), np.float32)
    np.put_along_axis(obs, inner[:, None], 1.0, axis=1)
    return obs
