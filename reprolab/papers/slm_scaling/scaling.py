"""Scaling-law fits: L(C) power laws on the compute frontier and ISO-FLOP optima N*(C).

Paper Sec. 5 (after Hoffmann et al. 2022, "approach 2"): for each compute budget C the models of
different sizes N trained with D = C / (6 N) tokens trace an ISO-FLOP curve; a parabola in log N gives
the loss-minimising size N*(C); N* ~ C^a. The loss of the best model per budget follows L ~ C^gamma.
Ours: least squares in log-log for both exponents, a parabola through the (log N, L) points of each
budget (three sizes: exact interpolation). A parabola that opens downwards or whose vertex lies
outside the sizes tried is a minimum *on the grid edge*: N* is then clipped to the edge and flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import ConfigError, NonFiniteError


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """(exponent, log prefactor) of y = A x^k by least squares on (log x, log y)."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if len(lx) < 2 or len(lx) != len(ly):
        raise ConfigError("x, y", (len(lx), len(ly)), "two equal-length samples of at least 2 points")
    if not (np.isfinite(lx).all() and np.isfinite(ly).all()):
        raise NonFiniteError("power-law inputs", "non-positive or non-finite values", fix="pass positive finite numbers")
    dx = lx - lx.mean()
    k = float((dx * (ly - ly.mean())).sum() / (dx * dx).sum())  # least squares slope (np.polyfit's, without its overhead)
    return k, float(ly.mean() - k * lx.mean())


@dataclass(frozen=True)
class IsoFlopOptimum:
    n_star: float  # loss-minimising size (clipped to the grid)
    loss_star: float  # the parabola's value there
    on_edge: bool  # minimum at (or beyond) the grid's edge, or no minimum (concave)


def isoflop_optimum(sizes: Sequence[float], losses: Sequence[float]) -> IsoFlopOptimum:
    """Vertex of the parabola L = p2 (log N)^2 + p1 log N + p0 fitted to one budget's points."""
    x, y = np.log(np.asarray(sizes, dtype=float)), np.asarray(losses, dtype=float)
    if len(x) < 3:
        raise ConfigError("sizes", len(x), "at least 3 sizes per budget")
    p2, p1, p0 = np.linalg.lstsq(np.stack([x * x, x, np.ones_like(x)], axis=1), y, rcond=None)[0]  # = np.polyfit(x, y, 2)
    lo, hi = x.min(), x.max()
    if p2 <= 0:
        i = int(np.argmin(y))
        return IsoFlopOptimum(float(np.exp(x[i])), float(y[i]), True)
    v = -p1 / (2 * p2)
    edge = not (lo < v < hi)
    v = float(np.clip(v, lo, hi))
    return IsoFlopOptimum(float(np.exp(v)), float(p2 * v * v + p1 * v + p0), edge)


@dataclass(frozen=True)
class ScalingFit:
    gamma: float  # L_frontier ~ C^gamma
    a: float  # N*(C) ~ C^a
    frontier: list[float]  # best loss per budget
    n_star: list[float]  # ISO-FLOP optimum per budget
    edge: list[bool]  # optimum on the grid edge, per budget


def scaling_fit(budgets: Sequence[float], sizes: Sequence[float], loss: np.ndarray) -> ScalingFit:
    """Fits from a loss grid ``loss[b, s]`` (budget b, size s): gamma on the frontier min_s loss[b, s],
    a from the ISO-FLOP optima."""
    loss = np.asarray(loss, dtype=float)
    if loss.shape != (len(budgets), len(sizes)):
        raise ConfigError("loss", loss.shape, f"(budgets, sizes) = ({len(budgets)}, {len(sizes)})")
    frontier = loss.min(axis=1)
    gamma, _ = fit_power_law(budgets, frontier)
    opts = [isoflop_optimum(sizes, loss[b]) for b in range(len(budgets))]
    a, _ = fit_power_law(budgets, [o.n_star for o in opts])
    return ScalingFit(gamma, a, frontier.tolist(), [o.n_star for o in opts], [o.on_edge for o in opts])


def grid_statistic(budgets: Sequence[float], sizes: Sequence[float], which: str):
    """A statistic for ``stats.compare_statistic``: from per-unit losses (units, budgets * sizes), the mean
    over the (resampled) units, reshaped to the grid, then ``gamma`` or ``a`` of :func:`scaling_fit`:
    the fit is recomputed in every bootstrap resample."""
    if which not in ("gamma", "a"):
        raise ConfigError("which", which, "'gamma' or 'a'")
    B, S = len(budgets), len(sizes)

    def stat(per_unit: np.ndarray) -> float:
        grid = np.asarray(per_unit, dtype=float).mean(axis=0).reshape(B, S)
        return getattr(scaling_fit(budgets, sizes, grid), which)

    return stat
