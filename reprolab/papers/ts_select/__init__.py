"""Efficient Model Selection for Time Series Forecasting via LLMs (arXiv 2504.02119): zero-shot selection of a
forecasting configuration by a language model, its baselines and metrics, over statsforecast models.

    from reprolab.papers.ts_select import select, Candidate
    sel = select(series, llm, prompt="values+meta")      # pandas Series (DatetimeIndex) or statsforecast long DataFrame
    sel.candidate.model(m=12)                            # the statsforecast model, for StatsForecast(models=[...])
"""

from .candidates import AUTOARIMA_DEFAULT, CANDIDATE_NAMES, CANDIDATES, Candidate, FitRecord, NotApplicable, evaluate
from .matrix import PerformanceMatrix, performance_matrix
from .selection import (PROMPTS, KNNMetaLearner, ParsedAnswer, PromptTemplate, Selection, exhaustive_choice, for_period, hit_at_k,
                        most_popular, parse_answer, random_hit_at_k, rank_row, relative_error, select, select_many,
                        system_prompt, user_prompt)
from .series import (META_FEATURES, TimeSeries, horizon_for, load_collection, meta_features, period_from_index,
                     period_from_spacing, synthetic_series)

__all__ = ["AUTOARIMA_DEFAULT", "CANDIDATES", "CANDIDATE_NAMES", "Candidate", "FitRecord", "KNNMetaLearner", "META_FEATURES",
           "NotApplicable", "PROMPTS", "ParsedAnswer", "PerformanceMatrix", "PromptTemplate", "Selection", "TimeSeries", "evaluate",
           "exhaustive_choice", "for_period", "hit_at_k", "horizon_for", "load_collection", "meta_features", "most_popular", "parse_answer",
           "performance_matrix", "period_from_index", "period_from_spacing", "random_hit_at_k", "rank_row", "relative_error",
           "select", "select_many", "synthetic_series", "system_prompt", "user_prompt"]
