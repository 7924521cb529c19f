"""Benchmark ``slm_scaling``: Poisson-span interleaving vs SpiritLM-style random interleaving vs textless, at one budget.

One run, side by side: the same TextLM (TWIST init), the same size, the same compute budget C = 6 N D and
the same held-out data; only the data change -- ``poisson`` (the paper's spans, lambda = 10, eta = 0.3),
``random`` (each word spoken with probability 1/2: SpiritLM-style, slamkit's ``random``) and ``textless``
(speech units only, vocabulary K + 2). Reported: speech-only validation NLL (nats per unit, lower is
better), tSC-like accuracy (higher is better) and training seconds; the ratio column is seconds relative
to ``poisson``. Quick: the study's quick corpus and its middle size at its largest budget; otherwise the
full corpus, the full scale's middle size at its middle budget.
"""

from __future__ import annotations

import numpy as np

from ...study import Benchmark, BenchResult, BenchRow, Scale, register_bench
from .corpus import build_corpus
from .experiment import Run, WavUnits, build_streams, pretrain_textlm, train_run
from .interleaving import InterleavingConfig
from .study import SLMScalingStudy, cache_root


@register_bench
class SLMScalingBench(Benchmark):
    name = "slm_scaling"
    description = "speech validation NLL and tSC-like accuracy at equal compute: Poisson-span vs random interleaving vs textless"

    def run(self, quick: bool) -> BenchResult:
        from ...runtime import library_versions, machine_info

        cfg = SLMScalingStudy.config_for(Scale.QUICK if quick else Scale.FULL)
        size = cfg.sizes[1]
        budget = cfg.budgets[-1] if quick else cfg.budgets[1]
        corpus = build_corpus(cfg.corpus, cache_root())
        cache = cache_root() / "bench"
        wav_units = WavUnits(corpus)
        out, rows, extra = {}, [], {}
        for variant, method in (("poisson", "poisson"), ("random", "random"), ("textless", None)):
            inter = InterleavingConfig(method=method) if method else InterleavingConfig()
            streams = build_streams(corpus, inter, cfg.interleave_passes, seed=0)
            textlm, _ = pretrain_textlm(size, streams, cfg.text_tokens, cfg.train, 0, cache)
            regime = {"poisson": "interleaved", "random": "interleaved-random", "textless": "textless"}[variant]
            res = train_run(Run(regime, size, budget), corpus, streams, textlm, cfg.train, 0, ["tsc"], wav_units, cache)
            out[variant] = res
            extra[variant] = {"val_nll": float(np.mean(res.val_nll)), "tsc": float(np.mean(res.cloze["tsc"])), "tokens": res.tokens,
                              "seconds": res.seconds, "data": method or "speech only"}
        base = out["poisson"].seconds
        for v, res in out.items():
            rows.append(BenchRow(f"{v} (s to train {res.tokens:,} tokens)", res.seconds, 0.0, res.seconds / base,
                                 f"val NLL {extra[v]['val_nll']:.3f} nats/unit (x{extra[v]['val_nll'] / extra['poisson']['val_nll']:.3f} "
                                 f"of poisson), tSC-like {100 * extra[v]['tsc']:.1f}%"))
        extra["nll_ratio_random_over_poisson"] = extra["random"]["val_nll"] / extra["poisson"]["val_nll"]
        extra["nll_ratio_textless_over_poisson"] = extra["textless"]["val_nll"] / extra["poisson"]["val_nll"]
        return BenchResult(bench=self.name, baseline="poisson (s to train)", rows=rows,
                           config={"size": size.label, "budget": budget, "corpus": "quick" if quick else "full",
                                   "num_units": corpus.tokenizer.num_units},
                           extra=extra, versions=library_versions(), machine=machine_info())
