"""Benchmark ``wikivideo``: what CAG costs and buys against the paper's baseline, captions -> writer.

The three arms of the study (captions -> writer, CAG with ``max_iterations=2``, fixed generic questions at
CAG's call counts) on the same synthetic events, side by side (per event: captions, then CAG, then fixed), with
no response cache, so every arm pays for all its calls, its default captions included. Rows: seconds per event
(wall time of ``generate``), with exact fact recall, ROUGE-L, model calls and tokens per event in the notes. The
baseline of the ratios is captions -> writer (the paper's VideoLLM-only pipeline, what a user would otherwise run).

quick: 1 event x 3 videos, Qwen2.5-Coder 0.5B in every role; full: 2 events x 4 videos, the study's full models.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .cag import CollaborativeArticleGenerator, FixedQuestionsGenerator
from .describers import SymbolicDescriber
from .events import make_events
from .study import WikiVideoConfig, score_article

ROWS = {"captions": "captions -> writer", "cag": "CAG", "fixed": "fixed questions"}


def run_side_by_side(models: dict[str, Any], config: WikiVideoConfig, seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Per arm: seconds, calls, tokens, fact recall and ROUGE-L per event (arms interleaved by event)."""
    from ...llm import Sampling
    from ...runtime import track

    kw = {"reasoner_sampling": Sampling(max_tokens=config.reasoner_tokens), "writer_sampling": Sampling(max_tokens=config.writer_tokens)}
    res: dict[str, dict[str, list[float]]] = {a: {k: [] for k in ("seconds", "calls", "tokens", "recall", "rougeL")} for a in ROWS}
    for ev in track(make_events(config.n_events, config.n_videos, seed=seed), "wikivideo bench: events"):
        counts: dict[str, int] = {}
        for arm in ROWS:
            if arm == "captions":
                gen = CollaborativeArticleGenerator(models["describer"], None, models["writer"], 0, **kw)
            elif arm == "cag":
                gen = CollaborativeArticleGenerator(models["describer"], models["reasoner"], models["writer"], config.max_iterations, **kw)
            else:
                gen = FixedQuestionsGenerator(models["describer"], models["writer"], counts, **kw)
            t0 = time.perf_counter()
            art = gen.generate(ev.query, ev.videos)
            res[arm]["seconds"].append(time.perf_counter() - t0)
            if arm == "cag":
                counts = {vid: len(qas) for vid, qas in art.reprompts.items()}
            s = score_article(ev, art)
            for k in ("calls", "tokens", "recall", "rougeL"):
                res[arm][k].append(float(s[k]))
    return res


@register_bench
class WikiVideoBench(Benchmark):
    name = "wikivideo"
    description = ("seconds, calls, tokens, fact recall and ROUGE-L per event: captions -> writer (the paper's baseline) vs CAG "
                   "vs fixed questions, side by side on synthetic multi-camera events (no cache)")

    def run(self, quick: bool) -> BenchResult:
        from ...llm import Sampling, load_for_study

        if quick:
            config = WikiVideoConfig(n_events=1, n_videos=3, describer="qwen2.5-coder-0.5b", reasoner="qwen2.5-coder-0.5b",
                                     writer="qwen2.5-coder-0.5b")
        else:
            config = WikiVideoConfig(n_events=2, n_videos=4, describer="qwen2.5-coder-0.5b", reasoner="qwen2.5-coder-1.5b",
                                     writer="qwen2.5-coder-1.5b")
        unique: dict[str, Any] = {}
        for name in (config.describer, config.reasoner, config.writer):
            if name not in unique:
                unique[name] = load_for_study(name, n_ctx=config.n_ctx)  # StudySkipped when llama.cpp or the asset is missing
        models = {"describer": SymbolicDescriber(unique[config.describer], sampling=Sampling(max_tokens=config.describer_tokens)),
                  "reasoner": unique[config.reasoner], "writer": unique[config.writer]}
        res = run_side_by_side(models, config)
        for llm in unique.values():
            llm.close()
        times = {ROWS[a]: r["seconds"] for a, r in res.items()}
        notes = {ROWS[a]: (f"fact recall {100 * np.mean(r['recall']):.0f}%, ROUGE-L {np.mean(r['rougeL']):.3f}, "
                           f"{np.mean(r['calls']):.1f} calls, {np.mean(r['tokens']):.0f} tokens per event") for a, r in res.items()}
        base = ROWS["captions"]
        return BenchResult(bench=self.name, baseline=base, rows=bench_rows(times, base, "s per event", notes),
                           config={"events": config.n_events, "videos_per_event": config.n_videos, "describer": config.describer,
                                   "reasoner": config.reasoner, "writer": config.writer, "max_iterations": config.max_iterations,
                                   "cache": "none"},
                           extra={"per_event": {ROWS[a]: r for a, r in res.items()},
                                  "note": "2 shared CPU cores, llama.cpp; a few events: recall and ROUGE here are coarse, the study's are of record"})
