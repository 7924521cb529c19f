"""Bootstrap helpers for image-evaluation scores, on :mod:`reprolab.stats` and ``scipy.stats.bootstrap``.

- :func:`bootstrap_ci`: a score (default: the mean of per-image 0/1 verdicts) with its
  percentile bootstrap interval over the units (images or prompts).
- :func:`paired_bootstrap`: the difference of a score between two arms scored on the same
  units (two checkpoints on the same prompts), as a :class:`reprolab.stats.Comparison` (a
  paired bootstrap of ``statistic(a) - statistic(b)``, so it can be judged like any claim).
- :func:`resample_share`: the share of bootstrap resamples of the units on which a property of
  the whole sample holds (e.g. "single_object is the easiest tag"): a stability measure for
  orderings, which have no single interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import stats
from ..errors import ConfigError, NonFiniteError


def _units(values: Sequence[Any], what: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        raise ConfigError(what, f"{len(x)} units", "at least 2 units to resample")
    if not np.all(np.isfinite(x)):
        raise NonFiniteError(what, "NaN/inf values", fix="drop or repair the non-finite scores before bootstrapping")
    return x


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean, *, confidence: float = 0.95,
                 n_resamples: int = 1999, seed: int = stats.SEED) -> tuple[float, float, float]:
    """``(statistic(values), low, high)`` with a percentile bootstrap over the first axis."""
    from scipy.stats import bootstrap

    x = _units(values, "values")
    point = float(statistic(x))
    if np.all(x == x[0]):
        return point, point, point
    idx = np.arange(len(x))
    res = bootstrap((idx,), lambda i: float(statistic(x[i.astype(int)])), confidence_level=confidence, n_resamples=n_resamples,
                    method="percentile", random_state=np.random.default_rng(seed), vectorized=False)
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], *, unit: str = "prompts", confidence: float = 0.95, margin: float = 0.0,
                     statistic: Callable[[np.ndarray], float] = np.mean, label: str = "", n_resamples: int = 1999) -> stats.Comparison:
    """``statistic(a) - statistic(b)`` over the same units, paired bootstrap interval (:func:`reprolab.stats.compare_statistic`)."""
    x, y = _units(a, "a"), _units(b, "b")
    if len(x) != len(y):
        raise ConfigError("b", f"{len(y)} units", f"as many units as a ({len(x)}): a paired comparison scores both arms on the same units")
    return stats.compare_statistic(x, y, statistic, unit=unit, paired=True, margin=margin, label=label, confidence=confidence,
                                   n_resamples=n_resamples)


def resample_share(units: Sequence[Any], holds: Callable[[np.ndarray], bool], *, n_resamples: int = 1000, seed: int = stats.SEED) -> float:
    """Share of ``n_resamples`` bootstrap resamples (rows of ``units``, with replacement) on which ``holds(sample)`` is true."""
    x = np.asarray(units)
    if len(x) < 2:
        raise ConfigError("units", f"{len(x)} units", "at least 2 units to resample")
    rng = np.random.default_rng(seed)
    hits = sum(bool(holds(x[rng.integers(0, len(x), len(x))])) for _ in range(int(n_resamples)))
    return hits / int(n_resamples)
