"""The candidate space: named forecasting configurations over ``statsforecast`` 2.1.1 models.

Efficient Model Selection for Time Series Forecasting via LLMs (Wei et al., arXiv 2504.02119),
Sec. 3: a model is a triple m = (algorithm a, hyper-parameters h, data representation g); the
selector S: P -> M answers one of them by name. The paper's space is AutoForecast's 322 models
(7 algorithms x hyper-parameters x representations); ours is a smaller space on the models a
statsforecast user actually runs (spec sheet, "Candidates"):

    AutoETS[model=AAN,season=1,repr=log]
    ^ algorithm  ^ hyper-parameters   ^ representation g (raw | log)

``season`` is symbolic: ``1`` (no seasonality) or ``m`` (the series' seasonal period, 12 for
monthly data, 4 for quarterly...), so one candidate list serves every series and the prompt's
candidate block is identical across series (llama.cpp then reuses its KV cache). A candidate
fits on the representation g(y) and its forecast is mapped back with g^-1 (log -> exp).

Choices where the paper is vague (ours, written down):
- algorithms: AutoARIMA, AutoETS (ZZZ, AAN, ANN, AAA, MAM), AutoTheta, DynamicOptimizedTheta,
  AutoCES, MSTL, HoltWinters (additive, multiplicative), SeasonalNaive, Naive, RandomWalkWithDrift,
  WindowAverage(w in {4, 12}), HistoricAverage, SeasonalWindowAverage(2 seasons), SES and seasonal
  SES (optimised) -- statsforecast's defaults for everything not named;
- representations: raw and log (the paper's "exponentially smoothed" representation is left out:
  the ETS family already smooths); multiplicative models (MAM, HoltWinters[error=M]) only on raw
  values, where positivity is meaningful;
- a candidate that cannot fit a series (log of a non-positive series, any season=m candidate on a
  series with m = 1, or a series shorter than two seasons, a numerical failure) is *not applicable* there: it has
  no forecast and is never silently replaced by another model.
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError, MissingExtra, ReprolabError

REPRESENTATIONS = ("raw", "log")


class NotApplicable(ReprolabError, ValueError):
    """A candidate that cannot be fitted to this series (e.g. ``repr=log`` on values <= 0)."""


def import_statsforecast():
    try:
        import statsforecast.models as sf_models
    except ImportError as exc:  # pragma: no cover - installed by `make setup`
        raise MissingExtra("statsforecast", "ts_select") from exc
    return sf_models


# algorithm -> (hyper-parameter grid as tuples of (name, value), allowed seasons, representations)
# One line per algorithm; statsforecast's defaults for everything not listed.
_SPACE: tuple[tuple[str, tuple[tuple[tuple[str, str], ...], ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("AutoARIMA", ((),), ("1", "m"), REPRESENTATIONS),
    ("AutoETS", ((("model", "ZZZ"),),), ("1", "m"), REPRESENTATIONS),
    ("AutoETS", ((("model", "AAN"),), (("model", "ANN"),)), ("1",), REPRESENTATIONS),
    ("AutoETS", ((("model", "AAA"),),), ("m",), REPRESENTATIONS),
    ("AutoETS", ((("model", "MAM"),),), ("m",), ("raw",)),
    ("AutoTheta", ((),), ("1", "m"), REPRESENTATIONS),
    ("DynamicOptimizedTheta", ((),), ("1", "m"), REPRESENTATIONS),
    ("AutoCES", ((),), ("1", "m"), REPRESENTATIONS),
    ("MSTL", ((),), ("m",), REPRESENTATIONS),
    ("HoltWinters", ((("error", "A"),),), ("m",), REPRESENTATIONS),
    ("HoltWinters", ((("error", "M"),),), ("m",), ("raw",)),
    ("SeasonalNaive", ((),), ("m",), REPRESENTATIONS),
    ("Naive", ((),), ("1",), REPRESENTATIONS),
    ("RandomWalkWithDrift", ((),), ("1",), REPRESENTATIONS),
    ("WindowAverage", ((("window", "4"),), (("window", "12"),)), ("1",), REPRESENTATIONS),
    ("HistoricAverage", ((),), ("1",), REPRESENTATIONS),
    ("SeasonalWindowAverage", ((("window", "2"),),), ("m",), REPRESENTATIONS),
    ("SES", ((),), ("1",), REPRESENTATIONS),
    ("SeasonalES", ((),), ("m",), REPRESENTATIONS),
)

_NAME = re.compile(r"^\s*([A-Za-z]+)\s*\[(.*)\]\s*$")


@dataclass(frozen=True)
class Candidate:
    """One named configuration: algorithm, hyper-parameters, symbolic season ("1" | "m"), representation."""

    algorithm: str
    params: tuple[tuple[str, str], ...] = ()
    season: str = "1"  # "1": fitted without seasonality; "m": with the series' seasonal period
    representation: str = "raw"  # "raw" | "log"

    def __post_init__(self) -> None:
        if self.season not in ("1", "m"):
            raise ConfigError("season", self.season, '"1" or "m" (the series\' seasonal period)')
        if self.representation not in REPRESENTATIONS:
            raise ConfigError("repr", self.representation, f"one of {REPRESENTATIONS}")

    @property
    def name(self) -> str:
        inner = [f"{k}={v}" for k, v in self.params] + [f"season={self.season}", f"repr={self.representation}"]
        return f"{self.algorithm}[{','.join(inner)}]"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str, space: Sequence[Candidate] | None = None) -> Candidate:
        """The candidate called ``name`` (exact syntax, spaces ignored); checked against ``space`` (default: the full space)."""
        space = CANDIDATES if space is None else space
        by_name = {c.name.replace(" ", ""): c for c in space}
        key = str(name).replace(" ", "")
        if key in by_name:
            return by_name[key]
        import difflib

        close = difflib.get_close_matches(key, list(by_name), n=2, cutoff=0.6)
        raise ConfigError("candidate", name, f"a name from the candidate space{' (did you mean ' + ', '.join(close) + '?)' if close else ''}, "
                          "e.g. AutoETS[model=AAN,season=1,repr=log]")

    def season_length(self, m: int) -> int:
        return int(m) if self.season == "m" else 1

    # -- statsforecast objects
    def model(self, m: int) -> Any:
        """The statsforecast model object (``alias`` = this name), ready for ``StatsForecast(models=[...])``.

        ``m``: the series' seasonal period. Fit it on :meth:`transform` of the data and map its
        forecast back with :meth:`inverse`."""
        sf = import_statsforecast()
        p = dict(self.params)
        s = self.season_length(m)
        if self.season == "m" and s < 2:
            raise NotApplicable(f"{self.name} needs a seasonal period m >= 2 (this series has m = {m})",
                                fix="pick a season=1 candidate for a non-seasonal series")
        a, alias = self.algorithm, self.name
        if a == "AutoARIMA":
            return sf.AutoARIMA(season_length=s, alias=alias)
        if a == "AutoETS":
            model = p["model"]
            if s < 2 and model[-1] != "N":  # a seasonal ETS model asked without a season: ZZZ -> ZZN
                model = model[:-1] + "N"
            return sf.AutoETS(season_length=s, model=model, alias=alias)
        if a == "AutoTheta":
            return sf.AutoTheta(season_length=s, alias=alias)
        if a == "DynamicOptimizedTheta":
            return sf.DynamicOptimizedTheta(season_length=s, alias=alias)
        if a == "AutoCES":
            return sf.AutoCES(season_length=s, alias=alias)
        if a == "MSTL":
            return sf.MSTL(season_length=s, alias=alias)
        if a == "HoltWinters":
            return sf.HoltWinters(season_length=s, error_type=p["error"], alias=alias)
        if a == "SeasonalNaive":
            return sf.SeasonalNaive(season_length=s, alias=alias)
        if a == "Naive":
            return sf.Naive(alias=alias)
        if a == "RandomWalkWithDrift":
            return sf.RandomWalkWithDrift(alias=alias)
        if a == "WindowAverage":
            return sf.WindowAverage(window_size=int(p["window"]), alias=alias)
        if a == "HistoricAverage":
            return sf.HistoricAverage(alias=alias)
        if a == "SeasonalWindowAverage":
            return sf.SeasonalWindowAverage(season_length=s, window_size=int(p["window"]), alias=alias)
        if a == "SES":
            return sf.SimpleExponentialSmoothingOptimized(alias=alias)
        if a == "SeasonalES":
            return sf.SeasonalExponentialSmoothingOptimized(season_length=s, alias=alias)
        raise ConfigError("algorithm", a, "one of the candidate space's algorithms")  # pragma: no cover

    def transform(self, y: Any) -> Any:
        """g(y): the representation the model is fitted on (array, Series, or a long DataFrame's ``y`` column)."""
        if self.representation == "raw":
            return y
        import pandas as pd

        if isinstance(y, pd.DataFrame):
            out = y.copy()
            out["y"] = self.transform(out["y"].to_numpy(dtype=float))
            return out
        arr = np.asarray(y, dtype=float)
        if not np.all(arr > 0):
            raise NotApplicable(f"{self.name}: the log representation needs positive values (min {np.nanmin(arr):.4g})",
                                fix="pick a repr=raw candidate for this series")
        return pd.Series(np.log(arr), index=y.index, name=y.name) if isinstance(y, pd.Series) else np.log(arr)

    def inverse(self, forecast: Any) -> Any:
        """g^-1 of a forecast (array, Series or DataFrame column(s))."""
        if self.representation == "raw":
            return forecast
        return np.exp(forecast)

    def forecast(self, y: Sequence[float], h: int, m: int) -> np.ndarray:
        """Fit on g(y[:]) and forecast h steps, back on the original scale. Raises :class:`NotApplicable`."""
        arr = np.asarray(y, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise ConfigError("y", "a series with NaN/inf", "finite values (drop or impute missing values first)")
        s = self.season_length(m)
        if s >= 2 and len(arr) < 2 * s + 2:
            raise NotApplicable(f"{self.name}: {len(arr)} points are fewer than two seasons of {s}", fix="use a season=1 candidate")
        z = self.transform(arr)
        model = self.model(m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out = model.forecast(y=np.ascontiguousarray(z, dtype=np.float64), h=int(h))
            except Exception as exc:  # noqa: BLE001 - statsforecast raises bare Exceptions on degenerate fits
                raise NotApplicable(f"{self.name} failed to fit: {type(exc).__name__}: {exc}", fix="pick another candidate") from exc
        f = np.asarray(self.inverse(np.asarray(out["mean"], dtype=float)), dtype=float)
        if f.shape != (h,) or not np.all(np.isfinite(f)):
            raise NotApplicable(f"{self.name} gave a non-finite forecast", fix="pick another candidate")
        return f


def _build_space() -> tuple[Candidate, ...]:
    out = []
    for repr_ in REPRESENTATIONS:
        for algorithm, grid, seasons, reprs in _SPACE:
            if repr_ not in reprs:
                continue
            for params in grid:
                for season in seasons:
                    out.append(Candidate(algorithm, params, season, repr_))
    return tuple(out)


CANDIDATES: tuple[Candidate, ...] = _build_space()  # the full space (50 configurations)
CANDIDATE_NAMES: tuple[str, ...] = tuple(c.name for c in CANDIDATES)
AUTOARIMA_DEFAULT = Candidate("AutoARIMA", (), "m", "raw")  # what a hurried user runs


@dataclass
class FitRecord:
    """One candidate on one window: the forecast, its errors, the seconds it took (fit + forecast)."""

    name: str
    forecast: np.ndarray | None
    mse: float  # inf when not applicable
    mae: float
    seconds: float
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def evaluate(candidate: Candidate, train: Sequence[float], actual: Sequence[float], m: int) -> FitRecord:
    """Fit ``candidate`` on ``train``, forecast ``len(actual)`` steps, score MSE and MAE against ``actual``."""
    act = np.asarray(actual, dtype=float)
    t0 = time.perf_counter()
    try:
        f = candidate.forecast(train, len(act), m)
    except NotApplicable as exc:
        return FitRecord(candidate.name, None, float("inf"), float("inf"), time.perf_counter() - t0, exc.message)
    sec = time.perf_counter() - t0
    err = f - act
    return FitRecord(candidate.name, f, float(np.mean(err ** 2)), float(np.mean(np.abs(err))), sec)
