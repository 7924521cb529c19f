"""Steering the agent with probe vectors, its random-vector control, route-choice levels, and thinking time.

Paper (arXiv 2504.01871, Sec. 5, App. E; official intervention scripts): to make the agent take a route it would not
take, at every tick add ``alpha * w_d`` to the cell state c' of one layer on each square of the new route, ``w_d``
being the C_A probe's weight for "the agent will step onto this square in direction d", until the agent first stands
on one of those squares; and add ``alpha * w_never`` (class 0) on the squares of the old route throughout. Success:
the agent never enters the old route's check squares and solves the level in fewer than 115 steps. Alphas
{0.25, 0.5, 1, 2, 4}; control: random vectors rescaled to the probe vectors' norms. The paper's level sets
(Agent-Shortcut, Box-Shortcut) are 4-box Boxoban rooms our small agent cannot solve, so (spec sheet) the route-choice
levels here are generated: levels of the agent's own distribution where BFS finds a second way to the first push,
avoiding the optimal route's squares, and the level stays solvable without them (:func:`route_choice_levels`).

Thinking time (Sec. 6): ``thinking`` forced no-op steps at the start (they count against the step limit); a level is
solved when the agent's own moves are fewer than 115 - 5 = 110 (the paper's criterion, used for both arms).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...data.sokoban import MOVES, Level, solve
from ...errors import ConfigError
from ...nn.convlstm import DRC
from .concepts import Episode, play

ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)  # paper's grid
SUCCESS_STEPS = 115  # success: solved in fewer than 115 steps (paper)
THINKING = 5  # paper: 5 no-op steps
DIRS = {(-1, 0): 1, (1, 0): 2, (0, -1): 3, (0, 1): 4}  # move delta -> C_A class (action index)
_ACTION_OF = {"up": 1, "down": 2, "left": 3, "right": 4}


@dataclass(frozen=True)
class RouteLevel:
    """A level with two ways to the first push: ``old`` (the optimal route's squares, the check squares) and ``new``
    (an alternative route, in order, each with the C_A direction of the move onto it). 10x10 coordinates."""

    level: Level
    old: tuple[tuple[int, int], ...]
    new: tuple[tuple[int, int], ...]
    new_dirs: tuple[int, ...]


def _agent_path(level: Level) -> list[tuple[int, int]]:
    """Squares the agent walks over following the optimal solution, up to (and including) where it stands before its
    first push."""
    pos, boxes, path = level.player, set(level.boxes), [level.player]
    for a in level.solution or ():
        di, dj = MOVES[a]
        nxt = (pos[0] + di, pos[1] + dj)
        if nxt in boxes:
            break
        pos = nxt
        path.append(pos)
    return path


def _bfs_path(level: Level, start: tuple[int, int], goal: tuple[int, int], blocked: set[tuple[int, int]]) -> list[tuple[int, int]] | None:
    prev: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    q = deque([start])
    while q:
        p = q.popleft()
        if p == goal:
            out = [p]
            while prev[out[-1]] is not None:
                out.append(prev[out[-1]])  # type: ignore[arg-type]
            return out[::-1]
        for di, dj in DIRS:
            n = (p[0] + di, p[1] + dj)
            if n not in prev and n not in level.walls and n not in level.boxes and n not in blocked:
                prev[n] = p
                q.append(n)
    return None


def route_choice_levels(levels: Sequence[Level], *, min_old: int = 2, max_extra: int = 10) -> list[RouteLevel]:
    """The levels of ``levels`` that offer a route choice (see the module docstring): the optimal route to the first
    push has at least ``min_old`` squares between start and push square (the check squares), an alternative route
    from the start to the push square avoids them and is at most ``max_extra`` moves longer, and the level is still
    solvable with the check squares walled off."""
    out = []
    for lv in levels:
        path = _agent_path(lv)
        if len(path) < min_old + 2:
            continue
        old = set(path[1:-1])
        alt = _bfs_path(lv, path[0], path[-1], old)
        if alt is None or len(alt) - len(path) > max_extra:
            continue
        walled = Level(lv.walls | frozenset(old), lv.targets, lv.boxes, lv.player, lv.height, lv.width)
        if lv.targets & old or solve(walled, max_nodes=50_000) is None:
            continue
        new = alt[1:]
        dirs = tuple(DIRS[(b[0] - a[0], b[1] - a[1])] for a, b in zip(alt[:-1], alt[1:]))
        out.append(RouteLevel(lv, tuple(sorted(old)), tuple(new), dirs))
    return out


def random_vectors(probe_vectors: torch.Tensor, seed: int) -> torch.Tensor:
    """The control: Gaussian vectors (5, C), each rescaled to the norm of the probe's vector of the same class."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(probe_vectors.shape, generator=g)
    return r / r.norm(dim=1, keepdim=True) * probe_vectors.norm(dim=1, keepdim=True)


def steer(model: DRC, routes: Sequence[RouteLevel], vectors: torch.Tensor, alpha: float, layer: int,
          step_limit: int = 120) -> list[Episode]:
    """Play ``routes`` greedily with the intervention (module docstring) on ``layer``: ``vectors`` (5, C) are the
    per-class vectors (probe weights, or the random control)."""
    cfg = model.config
    if vectors.shape != (5, cfg.channels):
        raise ConfigError("vectors", tuple(vectors.shape), f"(5, {cfg.channels}) per-class vectors")
    if not 0 <= layer < cfg.depth:
        raise ConfigError("layer", layer, f"0..{cfg.depth - 1}")
    device = next(model.parameters()).device
    vec = (alpha * vectors).to(device)
    reached = np.zeros(len(routes), bool)
    batch_lo = [0]

    def delta_fn(t: int, env) -> dict[int, torch.Tensor]:
        lo = batch_lo[0]
        b = len(env)
        d = torch.zeros(b, cfg.channels, cfg.height, cfg.width, device=device)
        for i in range(b):
            r = routes[lo + i]
            pos = tuple(int(v) for v in env.player[i])
            if pos in r.new:
                reached[lo + i] = True
            if not reached[lo + i]:
                for (y, x), k in zip(r.new, r.new_dirs):
                    d[i, :, y - 1, x - 1] += vec[k]
            for y, x in r.old:
                d[i, :, y - 1, x - 1] += vec[0]
        return {layer: d}

    eps: list[Episode] = []
    chunk = 256
    for lo in range(0, len(routes), chunk):
        batch_lo[0] = lo
        eps += play(model, [r.level for r in routes[lo:lo + chunk]], record=False, delta_fn=delta_fn, batch=chunk, step_limit=step_limit)
    return eps


def route_success(ep: Episode, route: RouteLevel) -> bool:
    """The paper's success: never on a check square, and solved in fewer than 115 steps."""
    return ep.solved and ep.steps < SUCCESS_STEPS and not (ep.visited & set(route.old))


def thinking_solves(model: DRC, levels: Sequence[Level], thinking: int = THINKING) -> tuple[np.ndarray, np.ndarray]:
    """Paired solved flags (without, with ``thinking`` no-op steps): solved with fewer than 115 - thinking own moves."""
    limit = SUCCESS_STEPS - thinking
    plain = play(model, levels, record=False)
    think = play(model, levels, thinking=thinking, record=False)
    a = np.array([e.solved and e.steps < limit for e in plain])
    b = np.array([e.solved and e.steps - thinking < limit for e in think])
    return a, b
