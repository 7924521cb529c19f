"""Zero-shot model selection by a language model, and the metrics that score a selection.

Efficient Model Selection for Time Series Forecasting via LLMs (Wei et al., arXiv 2504.02119):
for each data set d_i a prompt p_i is built from the series, the LLM answers zero-shot, and the
answer is parsed into a configuration m_i = (a_i, h_i, g_i) of the candidate space (Sec. 3, the
map S: P -> M). No performance matrix, no training. Four prompt structures (Sec. 4.2):
(1) values only, (2) values + precomputed meta-features, (3) values + chain of thought ("Let's
think step by step"), (4) values + meta-features + chain of thought.

Prompt layout (ours; the paper does not print its prompt): the system message holds the fixed
instructions and the whole candidate list, identical for every series, so llama.cpp reuses its KV
cache for that prefix; the user message then gives the meta-features (types 2, 4), the last
``max_values`` values at 3 significant digits (oldest first), and the answer request (a bare
``ANSWER: <name>`` line for types 1-2; "Let's think step by step" then the ANSWER line for 3-4).

Parsing (ours, documented): ``season=<the series' m>`` is read as ``season=m``; the last ``ANSWER:`` line is matched to a candidate name after removing
spaces, quotes, backticks and ``*``; if it matches no name exactly, a name within difflib ratio
>= 0.9 with the same numbers is accepted and counted as ``fuzzy``; with no ANSWER line, the last candidate name written
anywhere in the reply is taken (counted as ``mentioned``). Anything else is ``invalid``: a miss
in hit@k, counted per prompt type, never replaced by a default model.

Metrics (Sec. 5.1): hit@k = 1 when the chosen model is among the k best candidates of the series
by test MSE (ties share a rank: hit when its MSE <= the k-th smallest; our choice); relative MSE =
MSE(chosen) / min over candidates; a selection with no forecast (invalid, or a candidate that
cannot fit the series) scores as the worst applicable candidate of that series (our conservative
choice; the paper counts invalid answers as misses and gives no MSE rule).
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ...errors import ConfigError, NonFiniteError
from ...llm import LLM, Sampling
from .candidates import CANDIDATES, Candidate
from .series import META_FEATURES, meta_features, period_from_index

PROMPT_VERSION = 1


@dataclass(frozen=True)
class PromptTemplate:
    """One of the paper's four prompt structures (Sec. 4.2), versioned."""

    name: str
    meta: bool  # include the precomputed meta-features
    cot: bool  # "Let's think step by step" and room to reason
    version: int = PROMPT_VERSION


PROMPTS: dict[str, PromptTemplate] = {
    "values": PromptTemplate("values", meta=False, cot=False),
    "values+meta": PromptTemplate("values+meta", meta=True, cot=False),
    "values+cot": PromptTemplate("values+cot", meta=False, cot=True),
    "values+meta+cot": PromptTemplate("values+meta+cot", meta=True, cot=True),
}

SYSTEM = (
    "You are an expert in time-series forecasting. Given a univariate time series, choose the one forecasting "
    "configuration from the list below that will give the lowest mean squared error on the next h values.\n"
    "A configuration is algorithm[hyper-parameters,season,repr]: season=1 fits no seasonality, season=m uses the "
    "series' seasonal period m (only for m >= 2); repr=raw fits the values as they are, repr=log fits their logarithm "
    "and exponentiates the forecast (only for positive series).\n"
    "Candidate configurations:\n{candidates}\n"
    "Your reply must end with one line of the form\nANSWER: <configuration name copied exactly from the list, with the letter m, "
    "not its value>"
)


def system_prompt(candidates: Sequence[Candidate] = CANDIDATES) -> str:
    """The fixed part of every prompt: instructions and the candidate list (identical across series)."""
    return SYSTEM.format(candidates="\n".join(c.name for c in candidates))


def _sig3(x: float) -> str:
    """3 significant digits, never in scientific notation (1234.5 -> "1230", 0.012345 -> "0.0123")."""
    return np.format_float_positional(float(x), precision=3, unique=False, fractional=False, trim="-")


def user_prompt(values: Sequence[float], m: int, h: int, template: PromptTemplate, *, features: dict[str, float] | None = None,
                max_values: int = 128) -> str:
    """The per-series part: meta-features (if the template asks), the last ``max_values`` values, the request."""
    v = np.asarray(values, dtype=float)
    parts = [f"Seasonal period m = {m}; forecast horizon h = {h}; {len(v)} observations."]
    if template.meta:
        f = features if features is not None else meta_features(v, m)
        parts.append("Meta-features: " + "; ".join(f"{k} = {_sig3(f[k])}" for k in META_FEATURES))
    shown = v[-max_values:]
    parts.append(f"Last {len(shown)} values (oldest first): " + ", ".join(_sig3(x) for x in shown))
    if template.cot:
        parts.append("Let's think step by step, then end with the ANSWER line.")
    else:
        parts.append("Reply with the ANSWER line only.")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- parsing

_STRIP = re.compile(r"[\s`'\"*]")


def _norm(s: str) -> str:
    return _STRIP.sub("", s).lower()


def _norm_spaces(s: str) -> str:
    """Remove spaces inside brackets (``AutoETS[model = AAN, season = 1]``) so names can be found in free text."""
    return re.sub(r"\[[^\]\n]*\]", lambda mt: re.sub(r"\s+", "", mt.group(0)), s)


@dataclass(frozen=True)
class ParsedAnswer:
    candidate: Candidate | None
    status: str  # "exact" | "fuzzy" | "mentioned" | "invalid"


def _symbolic_season(s: str, m: int | None) -> str:
    """``season=<m's value>`` -> ``season=m`` (models often write the number they were told, e.g. season=12)."""
    if m is None or m < 2:
        return s
    return re.sub(rf"season={m}(?!\d)", "season=m", s)


def parse_answer(text: str, candidates: Sequence[Candidate] = CANDIDATES, *, m: int | None = None,
                 fuzzy_cutoff: float = 0.9) -> ParsedAnswer:
    """Match a reply to a candidate (see the module docstring for the rule); ``m``: the series' period, so that
    ``season=12`` written for a monthly series reads as ``season=m``."""
    by_norm = {_norm(c.name): c for c in candidates}
    text = _symbolic_season(_norm_spaces(str(text)), m)
    lines = [ln for ln in text.splitlines() if "answer:" in ln.lower()]
    if lines:
        tail = lines[-1][lines[-1].lower().rindex("answer:") + len("answer:"):]
        key = _norm(tail).rstrip(".")
        if key in by_norm:
            return ParsedAnswer(by_norm[key], "exact")
        digits = re.findall(r"\d+", key)
        close = [c for c in difflib.get_close_matches(key, list(by_norm), n=3, cutoff=fuzzy_cutoff) if re.findall(r"\d+", c) == digits]
        if close:  # a typo in a word, never a different number (season=12 is not season=1)
            return ParsedAnswer(by_norm[close[0]], "fuzzy")
        return ParsedAnswer(None, "invalid")
    flat = _norm(text)
    best, pos = None, -1
    for k, c in by_norm.items():
        i = flat.rfind(k)
        if i > pos or (i == pos and best is not None and len(k) > len(_norm(best.name))):
            best, pos = c, i
    return ParsedAnswer(best, "mentioned") if best is not None and pos >= 0 else ParsedAnswer(None, "invalid")


# ----------------------------------------------------------------------------- selection

@dataclass
class Selection:
    """What a selector answered for one series."""

    candidate: Candidate | None  # None: the answer was invalid (never replaced)
    status: str  # exact | fuzzy | mentioned | invalid (LLM); "chosen" for baselines
    raw: str = ""  # the model's reply
    prompt: str = ""  # the prompt structure's name
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # wall seconds of the selection (meta-features + generation for the LLM)
    m: int = 1
    h: int = 1

    @property
    def name(self) -> str | None:
        return self.candidate.name if self.candidate is not None else None

    @property
    def valid(self) -> bool:
        return self.candidate is not None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["candidate"] = self.name
        return d


def series_values(series: Any, m: int | None = None) -> tuple[np.ndarray, int, str]:
    """(values, m, id) from a pandas Series with a DatetimeIndex, a long DataFrame (one ``unique_id``), or an array (pass m)."""
    import pandas as pd

    if isinstance(series, pd.DataFrame):
        missing = {"unique_id", "ds", "y"} - set(series.columns)
        if missing:
            raise ConfigError("series", f"a DataFrame without columns {sorted(missing)}", "statsforecast's long format: unique_id, ds, y")
        ids = series["unique_id"].unique()
        if len(ids) != 1:
            raise ConfigError("series", f"{len(ids)} unique_id values", "one series per call (use select_many for several)")
        df = series.sort_values("ds")
        idx = pd.DatetimeIndex(df["ds"])
        return _finite(df["y"].to_numpy(dtype=float)), m or period_from_index(idx), str(ids[0])
    if isinstance(series, pd.Series):
        if m is None:
            if not isinstance(series.index, pd.DatetimeIndex):
                raise ConfigError("series", f"a Series indexed by {type(series.index).__name__}", "a DatetimeIndex, or pass m=")
            m = period_from_index(series.index)
        return _finite(series.to_numpy(dtype=float)), int(m), str(series.name or "series")
    arr = np.asarray(series, dtype=float)
    if arr.ndim != 1:
        raise ConfigError("series", f"an array of shape {arr.shape}", "a 1-D series")
    if m is None:
        raise ConfigError("m", None, "the seasonal period of a plain array (e.g. 12 for monthly data)")
    return _finite(arr), int(m), "series"


def _finite(v: np.ndarray) -> np.ndarray:
    if v.size < 8:
        raise ConfigError("series", f"{v.size} values", "at least 8 observations")
    bad = ~np.isfinite(v)
    if bad.any():
        raise NonFiniteError(f"series value at position {int(np.argmax(bad))}", v[bad][0], fix="drop or impute missing values first")
    return v


def select(series: Any, llm: LLM, prompt: str = "values+meta", *, m: int | None = None, h: int | None = None,
           candidates: Sequence[Candidate] = CANDIDATES, max_values: int = 128, max_tokens: int | None = None,
           seed: int = 0) -> Selection:
    """Ask ``llm`` zero-shot which candidate to fit on ``series`` (the paper's S: P -> M).

    ``series``: a pandas Series with a DatetimeIndex, statsforecast's long DataFrame (``unique_id``,
    ``ds``, ``y``; one id), or an array with ``m``. ``prompt``: one of :data:`PROMPTS`. Greedy
    decoding; ``max_tokens`` defaults to 48 without CoT and 384 with it. An unparseable reply gives
    ``Selection.candidate = None`` and ``status = "invalid"``."""
    if prompt not in PROMPTS:
        raise ConfigError("prompt", prompt, f"one of {list(PROMPTS)}")
    template = PROMPTS[prompt]
    t0 = time.perf_counter()
    values, m, _ = series_values(series, m)
    from .series import horizon_for

    h = int(h or horizon_for(m))
    features = meta_features(values, m) if template.meta else None
    messages = [{"role": "system", "content": system_prompt(candidates)},
                {"role": "user", "content": user_prompt(values, m, h, template, features=features, max_values=max_values)}]
    tokens = max_tokens or (384 if template.cot else 48)
    (c,) = llm.chat(messages, Sampling(max_tokens=tokens, temperature=0.0, seed=seed))
    parsed = parse_answer(c.text, candidates, m=m)
    seconds = (time.perf_counter() - t0) if not c.cached else (c.seconds + (time.perf_counter() - t0))
    return Selection(parsed.candidate, parsed.status, c.text, prompt, c.prompt_tokens, c.completion_tokens, seconds, m, h)


def select_many(df: Any, llm: LLM, prompt: str = "values+meta", **kwargs: Any) -> dict[str, Selection]:
    """:func:`select` for every ``unique_id`` of a long DataFrame."""
    return {str(uid): select(g, llm, prompt, **kwargs) for uid, g in df.groupby("unique_id", sort=False)}


# ----------------------------------------------------------------------------- metrics

def _row(errors: Sequence[float]) -> np.ndarray:
    e = np.asarray(errors, dtype=float)
    if e.ndim != 1 or e.size == 0:
        raise ConfigError("errors", f"shape {e.shape}", "one error per candidate (1-D, non-empty)")
    if np.isnan(e).any():
        raise NonFiniteError("a candidate's error", "NaN", fix="mark a candidate that could not fit with +inf, not NaN")
    if not np.isfinite(e).any():
        raise ConfigError("errors", "no finite error", "at least one candidate that fits the series")
    return e


def kth_best(errors: Sequence[float], k: int) -> float:
    e = np.sort(_row(errors)[np.isfinite(_row(errors))])
    return float(e[min(k, len(e)) - 1])


def hit_at_k(errors: Sequence[float], chosen: int | None, k: int) -> int:
    """1 if candidate ``chosen`` (index into ``errors``) is among the k best by error, ties sharing a rank; 0 if None or not applicable."""
    if k < 1:
        raise ConfigError("k", k, "an integer >= 1")
    e = _row(errors)
    if chosen is None or not np.isfinite(e[chosen]):
        return 0
    return int(e[chosen] <= kth_best(e, k))


def random_hit_at_k(errors: Sequence[float], k: int) -> float:
    """Expected hit@k of a uniform random pick over all candidates (k/|M| without ties)."""
    e = _row(errors)
    return float(np.sum(e <= kth_best(e, k)) / len(e))


def relative_error(errors: Sequence[float], chosen: int | None) -> float:
    """error(chosen) / min error; an invalid or non-applicable choice scores as the worst applicable candidate."""
    e = _row(errors)
    fin = e[np.isfinite(e)]
    best = float(fin.min())
    tiny = 1e-12 * max(1.0, float(np.abs(fin).max()))
    val = float(e[chosen]) if chosen is not None and np.isfinite(e[chosen]) else float(fin.max())
    return (val + tiny) / (best + tiny)


# ----------------------------------------------------------------------------- baselines

@dataclass
class KNNMetaLearner:
    """An AutoForecast-style meta-learner: k nearest series in meta-feature space vote by their ranks.

    fit(F, E): F (N, d) meta-feature vectors of the training series, E (N, |M|) their test errors;
    each row of E becomes ranks / |M| (scale-free; a non-applicable candidate ranks last). predict(f):
    the candidate with the lowest mean normalised rank over the k nearest (z-scored Euclidean)
    training series. Our choice of meta-learner among those the paper compares (Sec. 5.2)."""

    k: int = 5
    _X: np.ndarray | None = field(default=None, repr=False)
    _R: np.ndarray | None = field(default=None, repr=False)
    _mu: np.ndarray | None = field(default=None, repr=False)
    _sd: np.ndarray | None = field(default=None, repr=False)

    def fit(self, features: np.ndarray, errors: np.ndarray) -> KNNMetaLearner:
        X = np.asarray(features, dtype=float)
        E = np.asarray(errors, dtype=float)
        if X.ndim != 2 or E.ndim != 2 or len(X) != len(E) or len(X) < 1:
            raise ConfigError("features, errors", f"shapes {X.shape}, {E.shape}", "(N, d) and (N, |M|) with the same N >= 1")
        if not np.all(np.isfinite(X)):
            raise NonFiniteError("a meta-feature", "NaN/inf", fix="check the series")
        self._mu, self._sd = X.mean(0), X.std(0) + 1e-9
        self._X = (X - self._mu) / self._sd
        self._R = np.stack([rank_row(e) for e in E]) / E.shape[1]
        return self

    def scores(self, feature: np.ndarray) -> np.ndarray:
        if self._X is None:
            raise ConfigError("KNNMetaLearner", "unfitted", "call fit() first")
        z = (np.asarray(feature, dtype=float) - self._mu) / self._sd
        d = np.linalg.norm(self._X - z, axis=1)
        near = np.argsort(d, kind="stable")[: self.k]
        return self._R[near].mean(0)

    def predict(self, feature: np.ndarray) -> int:
        return int(np.argmin(self.scores(feature)))


def rank_row(errors: Sequence[float]) -> np.ndarray:
    """Ranks 1..|M| of a row of errors (average ranks for ties; non-applicable candidates last)."""
    from scipy.stats import rankdata

    e = np.asarray(errors, dtype=float)
    e = np.where(np.isfinite(e), e, np.inf)
    return rankdata(e, method="average")


def most_popular(errors: np.ndarray) -> int:
    """The candidate most often best across the rows of ``errors`` (ties: the lower mean rank)."""
    E = np.asarray(errors, dtype=float)
    best = np.argmin(np.where(np.isfinite(E), E, np.inf), axis=1)
    counts = np.bincount(best, minlength=E.shape[1])
    mean_rank = np.stack([rank_row(e) for e in E]).mean(0)
    order = np.lexsort((mean_rank, -counts))
    return int(order[0])


def for_period(candidate: Candidate, m: int, space: Sequence[Candidate] = CANDIDATES) -> Candidate:
    """A fixed choice as a user applies it to a series of period m: a season=m candidate on a non-seasonal
    series (m = 1) becomes its season=1 twin when the space has one (``AutoARIMA(season_length=m)`` with m = 1
    is ``AutoARIMA[season=1]``); otherwise the candidate itself."""
    if candidate.season != "m" or m >= 2:
        return candidate
    twin = Candidate(candidate.algorithm, candidate.params, "1", candidate.representation)
    return twin if twin in space else candidate


def exhaustive_choice(validation_errors: Sequence[float]) -> int | None:
    """Exhaustive validation: the candidate with the lowest validation error (None if none fits)."""
    e = np.asarray(validation_errors, dtype=float)
    if not np.isfinite(e).any():
        return None
    return int(np.argmin(np.where(np.isfinite(e), e, np.inf)))
