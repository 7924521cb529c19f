"""ts_select: the candidate space on real statsforecast objects, the metrics against hand computations,
meta-features on synthetic series with known structure, answer parsing, select() on the real formats,
and the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("statsforecast", reason="statsforecast is not installed: make setup")

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError  # noqa: E402
from reprolab.llm.fake import ScriptedLLM  # noqa: E402
from reprolab.papers.ts_select import (AUTOARIMA_DEFAULT, CANDIDATES, PROMPTS, Candidate, KNNMetaLearner, NotApplicable,  # noqa: E402
                                       exhaustive_choice, for_period, hit_at_k, meta_features, most_popular, parse_answer,
                                       performance_matrix, period_from_index, period_from_spacing, random_hit_at_k,
                                       relative_error, select, select_many, synthetic_series, system_prompt)
from reprolab.papers.ts_select.series import TimeSeries  # noqa: E402


@pytest.fixture(scope="module")
def air():
    from statsforecast.utils import AirPassengersDF

    return AirPassengersDF.copy()


# ----------------------------------------------------------------------------- candidate space

def test_candidate_names_round_trip_and_are_unique():
    names = [c.name for c in CANDIDATES]
    assert len(names) == len(set(names)) == 50
    for c in CANDIDATES:
        assert Candidate.parse(c.name) is c
        assert Candidate.parse(c.name.replace(",", ", ")) is c  # spaces ignored
    assert Candidate.parse("AutoETS[model=AAN,season=1,repr=log]").params == (("model", "AAN"),)
    with pytest.raises(ConfigError, match="did you mean"):
        Candidate.parse("AutoETS[model=AAN,season=1,repr=lg]")
    with pytest.raises(ConfigError, match="season"):
        Candidate("Naive", (), "12", "raw")


def test_statsforecast_runs_the_chosen_model_unchanged_on_air_passengers(air):
    """The configuration builds the statsforecast object; StatsForecast(models=[...]) runs it on the
    representation; the inverse maps the forecast back, and equals Candidate.forecast."""
    from statsforecast import StatsForecast

    c = Candidate.parse("AutoETS[model=ZZZ,season=m,repr=log]")
    sf = StatsForecast(models=[c.model(m=12)], freq="ME")
    train = air.iloc[:-12]
    fc = sf.forecast(df=c.transform(train), h=12)
    pred = c.inverse(fc[c.name].to_numpy())
    assert pred.shape == (12,) and np.all(np.isfinite(pred))
    np.testing.assert_allclose(pred, c.forecast(train["y"].to_numpy(), 12, 12), rtol=1e-6)
    mse_log = np.mean((pred - air["y"].to_numpy()[-12:]) ** 2)
    naive = Candidate.parse("Naive[season=1,repr=raw]").forecast(train["y"].to_numpy(), 12, 12)
    assert mse_log < np.mean((naive - air["y"].to_numpy()[-12:]) ** 2) / 4  # seasonal ETS on logs: far better than naive


def test_not_applicable_candidates_are_refused_not_replaced():
    y = np.linspace(-5, 5, 60)
    with pytest.raises(NotApplicable, match="positive"):
        Candidate.parse("Naive[season=1,repr=log]").forecast(y, 8, 1)
    with pytest.raises(NotApplicable, match="m >= 2"):
        Candidate.parse("SeasonalNaive[season=m,repr=raw]").forecast(y, 8, 1)
    with pytest.raises(ConfigError, match="NaN"):
        Candidate.parse("Naive[season=1,repr=raw]").forecast([1.0, np.nan, 2.0], 2, 1)


def test_naive_and_seasonal_naive_forecasts_by_hand():
    y = np.arange(1.0, 37.0)
    np.testing.assert_allclose(Candidate.parse("Naive[season=1,repr=raw]").forecast(y, 3, 12), [36, 36, 36])
    np.testing.assert_allclose(Candidate.parse("SeasonalNaive[season=m,repr=raw]").forecast(y, 3, 12), [25, 26, 27])
    np.testing.assert_allclose(Candidate.parse("Naive[season=1,repr=log]").forecast(y, 2, 12), [36, 36])  # exp(log(36))
    np.testing.assert_allclose(Candidate.parse("WindowAverage[window=4,season=1,repr=raw]").forecast(y, 1, 12), [34.5])
    with pytest.raises(NotApplicable, match="two seasons"):
        Candidate.parse("SeasonalNaive[season=m,repr=raw]").forecast(y[:20], 3, 12)


# ----------------------------------------------------------------------------- metrics

def test_hit_at_k_and_random_by_hand():
    e = [5.0, 1.0, 3.0, np.inf, 2.0]  # ranks: idx1 < idx4 < idx2 < idx0; idx3 not applicable
    assert [hit_at_k(e, j, 1) for j in range(5)] == [0, 1, 0, 0, 0]
    assert [hit_at_k(e, j, 2) for j in range(5)] == [0, 1, 0, 0, 1]
    assert hit_at_k(e, None, 5) == 0  # an invalid answer is a miss
    assert random_hit_at_k(e, 2) == pytest.approx(2 / 5)
    assert random_hit_at_k([1.0, 1.0, 2.0, 3.0], 1) == pytest.approx(2 / 4)  # ties share the rank
    assert hit_at_k([1.0, 1.0, 2.0, 3.0], 1, 1) == 1
    with pytest.raises(NonFiniteError):
        hit_at_k([1.0, np.nan], 0, 1)
    with pytest.raises(ConfigError):
        hit_at_k([1.0, 2.0], 0, 0)


def test_relative_error_by_hand_and_invalid_scores_as_worst():
    e = [4.0, 2.0, np.inf, 8.0]
    assert relative_error(e, 1) == pytest.approx(1.0)
    assert relative_error(e, 0) == pytest.approx(2.0)
    assert relative_error(e, None) == pytest.approx(4.0)  # worst applicable: 8 / 2
    assert relative_error(e, 2) == pytest.approx(4.0)  # not applicable: the same


def test_fixed_choices_on_a_non_seasonal_series_use_their_season_1_twin():
    assert for_period(AUTOARIMA_DEFAULT, 12) == AUTOARIMA_DEFAULT
    assert for_period(AUTOARIMA_DEFAULT, 1).name == "AutoARIMA[season=1,repr=raw]"
    aaa = Candidate.parse("AutoETS[model=AAA,season=m,repr=raw]")
    assert for_period(aaa, 1) == aaa  # no season=1 twin in the space: unchanged (and not applicable there)


def test_baselines_by_hand():
    E = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [1.0, 3.0, 2.0], [2.0, 1.0, 3.0], [1.0, 2.0, 3.0]])
    assert most_popular(E) == 0  # best on 3 of 5 series
    assert exhaustive_choice([3.0, np.inf, 0.5]) == 2
    assert exhaustive_choice([np.inf, np.inf]) is None
    F = np.array([[0.0, 0.0], [10.0, 10.0], [0.1, 0.0], [10.0, 9.9], [0.0, 0.1]])
    ml = KNNMetaLearner(k=2).fit(F, E)
    assert ml.predict(np.array([9.9, 10.0])) == 1  # neighbours 1 and 3 both rank candidate 1 first
    assert ml.predict(np.array([0.05, 0.05])) == 0


# ----------------------------------------------------------------------------- series and meta-features

def test_meta_features_on_synthetic_series_with_known_structure():
    t = np.arange(240.0)
    rng = np.random.default_rng(0)
    seasonal = 100 + 20 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, 240)
    trending = 50 + 0.5 * t + rng.normal(0, 1, 240)
    noise = rng.normal(0, 1, 240)
    fs, ft, fn = meta_features(seasonal, 12), meta_features(trending, 12), meta_features(noise, 12)
    assert fs["seasonal_strength"] > 0.9 and fn["seasonal_strength"] < 0.3 and ft["seasonal_strength"] < 0.3
    assert ft["trend_strength"] > 0.9 and fn["trend_strength"] < 0.3
    assert fs["acf_m"] > 0.8 and abs(fn["acf1"]) < 0.2
    assert fs["positive"] == 1.0 and fn["positive"] == 0.0
    assert fs["length"] == 240 and fs["period"] == 12
    with pytest.raises(NonFiniteError):
        meta_features([1.0] * 10 + [np.nan], 1)
    for s in synthetic_series(6, seed=3):
        f = meta_features(s.train_for_test, s.m)
        assert all(np.isfinite(v) for v in f.values())
        if s.truth["amplitude"] > 4 * s.truth["sigma"]:
            assert f["seasonal_strength"] > 0.5, (s.name, s.truth, f)


def test_windows_and_periods():
    s = TimeSeries("x", np.arange(40.0), 4, 4)
    np.testing.assert_array_equal(s.test, [36, 37, 38, 39])
    np.testing.assert_array_equal(s.validation, [32, 33, 34, 35])
    assert len(s.train_for_test) == 36 and len(s.train_for_validation) == 32
    assert period_from_spacing(1 / 12) == 12 and period_from_spacing(0.25) == 4 and period_from_spacing(1.0) == 1
    assert period_from_index(pd.date_range("2000-01-01", periods=24, freq="MS")) == 12
    assert period_from_index(pd.date_range("2000-01-01", periods=24, freq="QS")) == 4
    with pytest.raises(NonFiniteError):
        TimeSeries("bad", np.array([1.0, np.inf, 2.0]), 1, 1)


def test_performance_matrix_is_cached_and_reused(tmp_path):
    ss = synthetic_series(2, seed=1, length=60, periods=(4,))
    cands = [Candidate.parse(n) for n in ("Naive[season=1,repr=raw]", "SeasonalNaive[season=m,repr=raw]", "HistoricAverage[season=1,repr=log]")]
    a = performance_matrix(ss, cands, cache_dir=tmp_path)
    assert a.test_mse.shape == (2, 3) and len(list(tmp_path.glob("*.npz"))) == 2
    b = performance_matrix(ss, cands, cache_dir=tmp_path)
    np.testing.assert_array_equal(a.test_mse, b.test_mse)
    np.testing.assert_array_equal(a.val_seconds, b.val_seconds)  # read back, not refitted
    y = ss[0].values
    naive = np.mean((y[-4:] - y[-5]) ** 2)  # by hand
    assert a.test_mse[0, 0] == pytest.approx(naive)
    for bad in (b"not a zip", b"PK\x03\x04truncated"):
        next(tmp_path.glob("*.npz")).write_bytes(bad)
        with pytest.raises(MalformedFile, match="delete"):
            performance_matrix(ss, cands, cache_dir=tmp_path)


# ----------------------------------------------------------------------------- prompts, parsing, select

def test_parse_answer_exact_fuzzy_mentioned_invalid():
    assert parse_answer("ANSWER: AutoETS[model=AAN,season=1,repr=log]").status == "exact"
    p = parse_answer("blah\nAnswer: `AutoETS[model=AAN, season=1, repr=log]`.")
    assert p.status == "exact" and p.candidate.name == "AutoETS[model=AAN,season=1,repr=log]"
    assert parse_answer("ANSWER: AutoETS[model=AAN,season=1,repr=lo]").status == "fuzzy"
    assert parse_answer("I would use Naive[season=1,repr=raw] here").candidate.name == "Naive[season=1,repr=raw]"
    assert parse_answer("ANSWER: Prophet").status == "invalid" and parse_answer("ANSWER: Prophet").candidate is None
    assert parse_answer("").status == "invalid"
    # models write the period they were told: season=12 on a monthly series is season=m, never season=1
    p = parse_answer("ANSWER: AutoARIMA[season=12,repr=log]", m=12)
    assert p.status == "exact" and p.candidate.name == "AutoARIMA[season=m,repr=log]"
    assert parse_answer("ANSWER: AutoARIMA[season=12,repr=log]", m=4).status == "invalid"
    assert parse_answer("AutoETS[model = AAN, season = 4, repr = raw] fits best", m=4).status == "invalid"  # AAN has no season=m
    assert parse_answer("so AutoTheta[season = 4, repr = raw] fits best", m=4).candidate.name == "AutoTheta[season=m,repr=raw]"


def test_prompt_puts_the_fixed_part_first_and_differs_by_structure(air):
    seen = []
    llm = ScriptedLLM(lambda p, s: (seen.append(p), "ANSWER: AutoARIMA[season=m,repr=raw]")[1])
    for name in PROMPTS:
        sel = select(air.set_index("ds")["y"].asfreq("ME"), llm, name)
        assert sel.candidate == AUTOARIMA_DEFAULT and sel.status == "exact" and sel.m == 12 and sel.h == 12
        assert sel.prompt == name and sel.prompt_tokens > 0 and sel.seconds > 0
    sys = system_prompt()
    assert all(p.index(sys) < p.index("Last ") for p in seen)  # candidates before the values
    assert all(p.startswith(seen[0][: seen[0].index(sys) + len(sys)]) for p in seen)  # a common prefix for the KV cache
    assert ("Meta-features" in seen[1]) and ("Meta-features" not in seen[0])
    assert "step by step" in seen[2] and "step by step" in seen[3] and "step by step" not in seen[1]


def test_select_accepts_the_long_dataframe_and_counts_invalid_answers(air):
    llm = ScriptedLLM(lambda p, s: "I cannot decide.")
    sel = select(air, llm, "values")
    assert sel.candidate is None and sel.status == "invalid" and sel.raw == "I cannot decide."
    two = pd.concat([air, air.assign(unique_id="b")])
    got = select_many(two, ScriptedLLM(lambda p, s: "ANSWER: Naive[season=1,repr=raw]"), "values+meta")
    assert set(got) == {"1.0", "b"} and all(g.name == "Naive[season=1,repr=raw]" for g in got.values())
    with pytest.raises(ConfigError, match="unique_id"):
        select(two, llm)
    with pytest.raises(ConfigError, match="prompt"):
        select(air, llm, "values+magic")
    with pytest.raises(ConfigError, match="unique_id, ds, y"):
        select(air.rename(columns={"y": "value"}), llm)
    with pytest.raises(NonFiniteError):
        select(air.assign(y=air["y"].where(air.index != 5)), llm)
    with pytest.raises(ConfigError, match="DatetimeIndex"):
        select(pd.Series(np.arange(30.0)), llm)
