"""Small Sokoban levels with BFS-verified solutions, and a Gymnasium-style environment.

    from reprolab.data.sokoban import generate_levels, SokobanEnv, solve
    levels = generate_levels(10, size=6, boxes=1, seed=0)    # each with its optimal solution
    lv = levels[0]; print(lv.text); lv.solution              # e.g. ('up', 'left', 'left')
    env = SokobanEnv(lv); obs, info = env.reset(); obs, r, term, trunc, info = env.step("left")

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
target (terminated); truncated after ``max_steps``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, MalformedFile

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
