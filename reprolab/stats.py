"""Intervals and comparisons for claim rules, on ``scipy.stats``.

Every claim of a study is judged by one headline comparison: two arms (or one arm against a
reference value), in the direction the paper states, with a stated margin, over a named unit
of sampling (seeds, items, pairs, images, utterances). The comparison returns the effect (in
the paper's direction: positive means the paper's side), its 95% interval, ``n`` and an
:class:`Outcome`:

- ``holds``: the whole interval lies on the paper's side of the margin;
- ``contradicted``: the whole interval lies on the other side;
- ``unresolved``: the interval straddles the margin (inside the noise).

Which interval, for which data (all from scipy; nothing here resamples by hand):

================================  ===========================================================
:func:`compare_paired`            paired units (the same seed / item / image in both arms):
                                  the mean difference, with a Student-t interval
                                  (``scipy.stats.ttest_1samp(...).confidence_interval``) for
                                  fewer than ``BOOTSTRAP_MIN_N`` units, else a BCa bootstrap
                                  of the paired differences (``scipy.stats.bootstrap``).
:func:`compare_unpaired`          independent units: Welch's t interval
                                  (``ttest_ind(equal_var=False)``) for small samples, else an
                                  independent-samples bootstrap of the difference in means.
:func:`compare_statistic`         any statistic of the whole sample (FID of a set of images,
                                  an F1 over items): a paired (or not) bootstrap of
                                  ``statistic(a) - statistic(b)`` over the units.
:func:`compare_contrast`          a weighted sum of the means of several independent
                                  samples (a difference of differences): a bootstrap
                                  resampling each sample on its own.
:func:`compare_proportion`        k successes of n against a reference rate: the exact
                                  Clopper-Pearson interval of ``scipy.stats.binomtest``.
:func:`permutation_p_value`       a paired sign-flip (or unpaired label) permutation test,
                                  ``scipy.stats.permutation_test``; reported, not ruled on.
:func:`units_needed`              power: how many units would resolve an effect of this size.
================================  ===========================================================

Why a t interval for few units: with 3 seeds a bootstrap can only resample 10 distinct means
and its percentile interval is far too narrow (it cannot see beyond the observed range). The
t interval is the honest textbook choice there; it assumes roughly normal per-unit
differences, which is stated in every :class:`Comparison` as its ``method``.

Usage::

    from reprolab import stats
    c = stats.compare_paired(zclip_loss, fixed_loss, unit="seeds", direction="less", margin=0.0)
    c.outcome, c.effect, c.low, c.high, c.n      # e.g. unresolved, 0.011, -0.05, 0.07, 3
    c.describe()                                 # "-0.011 [-0.07, 0.05] over 3 seeds (t): unresolved"
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from .errors import ConfigError, NonFiniteError

CONFIDENCE = 0.95
BOOTSTRAP_MIN_N = 20  # below this many units, a t interval (see the module docstring)
N_RESAMPLES = 9999
SEED = 0  # resampling is seeded, so a verdict recomputed from saved numbers is the same verdict

Direction = Literal["greater", "less"]


class Outcome(str, enum.Enum):
    HOLDS = "holds"  # the interval lies wholly on the paper's side of the margin
    CONTRADICTED = "contradicted"  # wholly on the other side
    UNRESOLVED = "unresolved"  # straddles the margin: inside the noise

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Comparison:
    """The result of one headline comparison, with everything needed to redraw or re-judge it.

    ``effect``, ``low`` and ``high`` are in the paper's direction: for ``direction="less"``
    (the paper says arm a is lower, e.g. a loss) they are ``b - a``, so that a positive effect
    always means "the paper's side". ``margin`` is on the same axis: the claim holds when
    ``low > margin``. A margin of 0 asks for a strict improvement; a negative margin states
    non-inferiority ("not worse by more than |margin|"); a positive one asks for an
    improvement of at least ``margin``.
    """

    effect: float
    low: float
    high: float
    n: int
    unit: str
    margin: float
    direction: Direction
    method: str
    outcome: Outcome
    label: str = ""  # what is compared, e.g. "val loss, ZClip vs fixed clipping"
    p_value: float | None = None
    sd: float | None = None  # standard deviation of the per-unit differences, when defined
    confidence: float = CONFIDENCE  # of the interval [low, high]

    def describe(self, digits: int = 3) -> str:
        def f(x: float) -> str:
            return f"{x:.{digits}g}"

        side = f", margin {f(self.margin)}" if self.margin else ""
        return f"{f(self.effect)} [{f(self.low)}, {f(self.high)}] over {self.n} {self.unit} ({self.method}{side}): {self.outcome.value}"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["outcome"] = self.outcome.value
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Comparison:
        return cls(**{**d, "outcome": Outcome(d["outcome"])})

    def units_to_resolve(self, power: float = 0.8) -> int | None:
        """How many units would likely resolve an effect of the size measured (see :func:`units_needed`)."""
        if self.sd is None:
            return None
        return units_needed(self.effect, self.sd, margin=self.margin, power=power)


# ----------------------------------------------------------------------------- the comparisons


def outcome_of(low: float, high: float, margin: float) -> Outcome:
    """holds when the interval is wholly above the margin, contradicted when wholly below."""
    if low > margin:
        return Outcome.HOLDS
    if high < margin:
        return Outcome.CONTRADICTED
    return Outcome.UNRESOLVED


def compare_paired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    unit: str,
    direction: Direction = "greater",
    margin: float = 0.0,
    label: str = "",
    confidence: float = CONFIDENCE,
    method: Literal["auto", "t", "bootstrap"] = "auto",
    unit_range: float | None = None,
) -> Comparison:
    """Mean of the per-unit differences ``a_i - b_i`` (sign-flipped for ``direction="less"``).

    ``unit_range``: the most one unit's difference can move (1 for per-item accuracies or 0/1
    outcomes). It matters only when every unit shows the same difference: the t and bootstrap
    intervals then collapse to a point, which would let e.g. 24 unchanged pairs prove
    non-inferiority at any margin. With ``unit_range`` the interval is instead
    ``effect +- unit_range * p``, where ``p = 1 - ((1 - confidence) / 2) ** (1 / n)`` is the exact
    (Clopper-Pearson) upper bound on the share of units that could depart from the common value
    when none of the n did. Without it the point is kept (right for deterministic quantities).
    """
    x, y = _arrays(a, b, paired=True)
    d = _oriented(x - y, direction)
    return _mean_comparison(d, unit=unit, direction=direction, margin=margin, label=label, confidence=confidence, method=method,
                            unit_range=unit_range)


def compare_to_value(a: Sequence[float], reference: float, **options: Any) -> Comparison:
    """Mean of ``a_i - reference`` over the units (one arm against a fixed value, e.g. chance):
    :func:`compare_paired` against a constant arm, with the same keyword options (``unit``,
    ``direction``, ``margin``, ``label``, ``confidence``, ``method``, ``unit_range``)."""
    (x,) = _arrays(a)
    return compare_paired(x, np.full_like(x, float(reference)), **options)


def compare_unpaired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    unit: str,
    direction: Direction = "greater",
    margin: float = 0.0,
    label: str = "",
    confidence: float = CONFIDENCE,
    method: Literal["auto", "t", "bootstrap"] = "auto",
) -> Comparison:
    """Difference in means of two independent samples (e.g. 10 random layer choices vs 3 seeds)."""
    from scipy import stats as st

    x, y = _arrays(a, b, paired=False)
    sign = 1.0 if direction == "greater" else -1.0
    effect = sign * (x.mean() - y.mean())
    n = len(x) + len(y)
    use_t = method == "t" or (method == "auto" and min(len(x), len(y)) < BOOTSTRAP_MIN_N)
    if min(len(x), len(y)) < 2 or (np.ptp(x) == 0 and np.ptp(y) == 0):
        low, high, name = _degenerate(effect, x, y)
    elif use_t:
        ci = st.ttest_ind(x, y, equal_var=False).confidence_interval(confidence)
        lo, hi = sorted((sign * ci.low, sign * ci.high))
        low, high, name = lo, hi, "Welch t"
    else:
        res = st.bootstrap(
            (x, y), lambda p, q, axis=-1: p.mean(axis=axis) - q.mean(axis=axis), confidence_level=confidence,
            n_resamples=N_RESAMPLES, method="percentile", random_state=np.random.default_rng(SEED), vectorized=True,
        )
        lo, hi = sorted((sign * res.confidence_interval.low, sign * res.confidence_interval.high))
        low, high, name = lo, hi, "bootstrap"
    return _finish(effect, low, high, n, unit, margin, direction, name, label, None, confidence=confidence)


def compare_statistic(
    a: Sequence[Any],
    b: Sequence[Any],
    statistic: Callable[[np.ndarray], float],
    *,
    unit: str,
    direction: Direction = "greater",
    margin: float = 0.0,
    paired: bool = True,
    label: str = "",
    confidence: float = CONFIDENCE,
    n_resamples: int = 999,
) -> Comparison:
    """``statistic(a) - statistic(b)`` for a statistic of the whole sample (FID, F1, a rate),
    with a bootstrap over the units (paired: the same resampled units in both arms).

    ``a`` and ``b`` are arrays whose first axis is the unit (e.g. features of N images,
    shape (N, D)); ``statistic`` takes such an array. Percentile interval (BCa needs a
    jackknife of the statistic, too slow for FID-like statistics). ``n_resamples`` defaults to
    999 because such statistics are expensive.
    """
    from scipy import stats as st

    x = np.asarray(a)
    y = np.asarray(b)
    if paired and len(x) != len(y):
        raise ConfigError("b", f"{len(y)} units", f"as many units as a ({len(x)}) for a paired comparison")
    if len(x) < 2 or len(y) < 2:
        raise ConfigError("a, b", f"{len(x)} and {len(y)} units", "at least 2 units per arm")
    sign = 1.0 if direction == "greater" else -1.0
    effect = sign * (float(statistic(x)) - float(statistic(y)))
    rng = np.random.default_rng(SEED)
    if paired:
        idx = np.arange(len(x))

        def stat(i: np.ndarray) -> float:
            i = i.astype(int)
            return float(statistic(x[i])) - float(statistic(y[i]))

        res = st.bootstrap((idx,), stat, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                           random_state=rng, vectorized=False)
        n = len(x)
    else:
        ia, ib = np.arange(len(x)), np.arange(len(y))

        def stat2(i: np.ndarray, j: np.ndarray) -> float:
            return float(statistic(x[i.astype(int)])) - float(statistic(y[j.astype(int)]))

        res = st.bootstrap((ia, ib), stat2, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                           random_state=rng, vectorized=False)
        n = len(x) + len(y)
    lo, hi = sorted((sign * res.confidence_interval.low, sign * res.confidence_interval.high))
    return _finish(effect, lo, hi, n, unit, margin, direction, "bootstrap of the statistic", label, None, confidence=confidence)


def compare_contrast(
    samples: Sequence[Sequence[float]],
    weights: Sequence[float],
    *,
    unit: str,
    direction: Direction = "greater",
    margin: float = 0.0,
    label: str = "",
    confidence: float = CONFIDENCE,
) -> Comparison:
    """A linear contrast ``sum_i w_i mean(sample_i)`` of independent samples, with a bootstrap that
    resamples each sample on its own (``scipy.stats.bootstrap`` over all samples, percentile).

    For effects that no two-arm comparison expresses, e.g. a difference of differences
    "(trained wide - trained narrow) - (untrained wide - untrained narrow)": four samples,
    weights (1, -1, -1, 1). Two samples with weights (1, -1) is :func:`compare_unpaired`'s
    bootstrap. Every sample needs >= 2 units; ``n`` is the total number of units.
    """
    from scipy import stats as st

    xs = _arrays(*samples)
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(xs),) or not np.all(np.isfinite(w)) or not np.any(w != 0):
        raise ConfigError("weights", list(np.atleast_1d(w)), f"{len(xs)} finite weights, one per sample, not all zero")
    if min(len(x) for x in xs) < 2:
        raise ConfigError("samples", [len(x) for x in xs], "at least 2 units per sample")
    sign = 1.0 if direction == "greater" else -1.0
    _oriented(np.zeros(1), direction)  # validates direction
    effect = sign * float(sum(wi * x.mean() for wi, x in zip(w, xs)))
    n = sum(len(x) for x in xs)
    if all(np.ptp(x) == 0 for x in xs):
        low, high, name = effect, effect, "no variation across units"
    else:
        def contrast(*arms: np.ndarray, axis: int = -1) -> np.ndarray:
            return sum(wi * a.mean(axis=axis) for wi, a in zip(w, arms))

        res = st.bootstrap(xs, contrast, confidence_level=confidence, n_resamples=N_RESAMPLES, method="percentile",
                           random_state=np.random.default_rng(SEED), vectorized=True)
        low, high = sorted((sign * res.confidence_interval.low, sign * res.confidence_interval.high))
        name = "bootstrap of a contrast of means"
    return _finish(effect, low, high, n, unit, margin, direction, name, label, None, confidence=confidence)


def compare_proportion(
    successes: int,
    n: int,
    reference: float,
    *,
    unit: str,
    direction: Direction = "greater",
    margin: float = 0.0,
    label: str = "",
    confidence: float = CONFIDENCE,
) -> Comparison:
    """A rate of ``successes / n`` against a reference rate (e.g. chance, or the paper's rate),
    with the exact Clopper-Pearson interval and the exact binomial test's p-value."""
    from scipy import stats as st

    if not (0 <= successes <= n) or n < 1:
        raise ConfigError("successes, n", (successes, n), "0 <= successes <= n and n >= 1")
    if not 0.0 <= reference <= 1.0:
        raise ConfigError("reference", reference, "a rate in [0, 1]")
    alt = "greater" if direction == "greater" else "less"
    res = st.binomtest(successes, n, reference, alternative=alt)  # the one-sided p-value
    ci = st.binomtest(successes, n, reference).proportion_ci(confidence_level=confidence, method="exact")  # two-sided interval
    sign = 1.0 if direction == "greater" else -1.0
    lo, hi = sorted((sign * (ci.low - reference), sign * (ci.high - reference)))
    effect = sign * (successes / n - reference)
    return _finish(effect, lo, hi, n, unit, margin, direction, "exact binomial", label, float(res.pvalue), confidence=confidence)


def permutation_p_value(a: Sequence[float], b: Sequence[float], *, paired: bool = True, direction: Direction = "greater") -> float:
    """p-value of "a is on the paper's side of b" by a permutation test (sign flips when paired).

    Exact when the number of permutations is small (scipy enumerates them), else 9999 seeded
    random permutations."""
    from scipy import stats as st

    x, y = _arrays(a, b, paired=paired)
    res = st.permutation_test(
        (x, y), lambda p, q, axis=-1: p.mean(axis=axis) - q.mean(axis=axis), vectorized=True,
        permutation_type="samples" if paired else "independent", alternative=direction,
        n_resamples=N_RESAMPLES, random_state=np.random.default_rng(SEED),
    )
    return float(res.pvalue)


# ----------------------------------------------------------------------------- power


def units_needed(effect: float, sd: float, *, margin: float = 0.0, confidence: float = CONFIDENCE, power: float = 0.8) -> int | None:
    """How many paired units would resolve a true effect ``effect`` (per-unit sd ``sd``) against
    ``margin`` with probability ``power``: n = ((z_{1-a/2} + z_power) * sd / (effect - margin))^2,
    the normal approximation of the paired t test. None when the effect is on the wrong side
    of the margin (no number of units makes it hold)."""
    from scipy import stats as st

    gap = effect - margin
    if gap <= 0 or not math.isfinite(gap):
        return None
    if sd <= 0:
        return 2
    z = st.norm.ppf(1 - (1 - confidence) / 2) + st.norm.ppf(power)
    return max(2, math.ceil((z * sd / gap) ** 2))


# ----------------------------------------------------------------------------- internals


def _arrays(*xs: Sequence[float], paired: bool = False) -> tuple[np.ndarray, ...]:
    out = []
    for i, x in enumerate(xs):
        arr = np.asarray(x, dtype=float).ravel()
        if arr.size == 0:
            raise ConfigError(f"arm {i}", "an empty sample", "at least one unit")
        if not np.all(np.isfinite(arr)):
            raise NonFiniteError(f"arm {i} of a comparison", arr[~np.isfinite(arr)][:3].tolist(),
                                 fix="drop or repair the non-finite units before comparing, and report how many")
        out.append(arr)
    if paired and len(out) == 2 and len(out[0]) != len(out[1]):
        raise ConfigError("b", f"{len(out[1])} units", f"as many units as a ({len(out[0])}) for a paired comparison")
    return tuple(out)


def _oriented(d: np.ndarray, direction: Direction) -> np.ndarray:
    if direction not in ("greater", "less"):
        raise ConfigError("direction", direction, "'greater' or 'less'")
    return d if direction == "greater" else -d


def _mean_comparison(d: np.ndarray, *, unit: str, direction: Direction, margin: float, label: str, confidence: float,
                     method: str, unit_range: float | None = None) -> Comparison:
    from scipy import stats as st

    n = len(d)
    effect = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else None
    if unit_range is not None and not (math.isfinite(unit_range) and unit_range > 0):
        raise ValueError(f"unit_range must be a positive finite number, got {unit_range!r}")
    if n >= 2 and np.ptp(d) == 0 and unit_range is not None:
        half = unit_range * (1.0 - ((1.0 - confidence) / 2.0) ** (1.0 / n))
        low, high, name = effect - half, effect + half, "no variation: exact bound on departing units"
    elif n < 2 or np.ptp(d) == 0:
        low, high, name = _degenerate(effect, d)
    elif method == "t" or (method == "auto" and n < BOOTSTRAP_MIN_N):
        ci = st.ttest_1samp(d, 0.0).confidence_interval(confidence)
        low, high, name = float(ci.low), float(ci.high), "t"
    else:
        res = st.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES, method="BCa",
                           random_state=np.random.default_rng(SEED))
        low, high, name = float(res.confidence_interval.low), float(res.confidence_interval.high), "bootstrap BCa"
        if not (math.isfinite(low) and math.isfinite(high)):  # BCa can fail on very skewed data
            res = st.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES, method="percentile",
                               random_state=np.random.default_rng(SEED))
            low, high, name = float(res.confidence_interval.low), float(res.confidence_interval.high), "bootstrap"
    p = None
    if n >= 2 and np.ptp(d) > 0:
        p = float(st.ttest_1samp(d, margin, alternative="greater").pvalue)
    return _finish(effect, low, high, n, unit, margin, direction, name, label, p, sd, confidence=confidence)


def _degenerate(effect: float, *samples: np.ndarray) -> tuple[float, float, str]:
    """One unit, or no variation at all: no interval can be estimated. With a single unit the
    interval is unbounded (unresolved, honestly); with n >= 2 identical values it is the point."""
    if any(len(s) < 2 for s in samples):
        return -math.inf, math.inf, "single unit: no interval"
    return effect, effect, "no variation across units"


def _finish(effect: float, low: float, high: float, n: int, unit: str, margin: float, direction: Direction, method: str,
            label: str, p: float | None, sd: float | None = None, confidence: float = CONFIDENCE) -> Comparison:
    low, high = float(low), float(high)
    if math.isnan(low) or math.isnan(high):
        raise NonFiniteError(f"the interval of {label or 'a comparison'}", (low, high))
    # JSON has no infinities: an unbounded side is stored as a very large number.
    big = 1e300
    low, high = max(low, -big), min(high, big)
    return Comparison(float(effect), low, high, int(n), unit, float(margin), direction, method,
                      outcome_of(low, high, float(margin)), label, p, sd, float(confidence))
