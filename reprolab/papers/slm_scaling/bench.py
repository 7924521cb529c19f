"""Benchmark ``slm_scaling``: Poisson-span interleaving vs SpiritLM-style random interleaving vs textless, at one budget.

One run, side by side: the same TextLM (TWIST init), the same size, the same compute budget C = 6 N D and
the same held-out data; only the data change -- ``poisson`` (the paper's spans, lambda = 10, eta = 0.3),
``random`` (each word spoken with probability 1/2: SpiritLM-style, slamkit's ``random``) and ``textless``
(speech units only, vocabulary K + 2). Reported: speech-only validation NLL (nats per unit, lower is
better), tSC-like accuracy (higher is better) and training seconds; the ratio column is seconds relative
to ``poisson``, the notes give each variant's NLL relative to ``poisson``. Setting: the full study's corpus
(built once, cached), its middle size at its largest budget; ``--full`` repeats with seeds 0, 1, 2.
"""

from __future__ import annotations

import numpy as np

from ...study import Benchmark, BenchResult, BenchRow, Scale, register_bench
from .corpus import build_corpus
from .experiment import Run, WavUnits, build_streams, pretrain_textlm, train_run
from .interleaving import InterleavingConfig
from .study import SLMScalingStudy, cache_root

VARIANTS = {"poisson": ("interleaved", "poisson"), "random": ("interleaved-random", "random"), "textless": ("textless", None)}


@register_bench
class SLMScalingBench(Benchmark):
    name = "slm_scaling"
    description = "speech validation NLL and tSC-like accuracy at equal compute: Poisson-span vs random interleaving vs textless"

    def run(self, quick: bool) -> BenchResult:
        from ...runtime import library_versions, machine_info

        cfg = SLMScalingStudy.config_for(Scale.FULL)
        size, budget = cfg.sizes[1], cfg.budgets[-1]
        corpus = build_corpus(cfg.corpus, cache_root())
        cache = cache_root() / "bench"
        wav_units = WavUnits(corpus)
        seeds = (0,) if quick else (0, 1, 2)
        res: dict[str, list] = {v: [] for v in VARIANTS}
        for seed in seeds:
            for variant, (regime, method) in VARIANTS.items():
                streams = build_streams(corpus, InterleavingConfig(method=method or "poisson"), cfg.interleave_passes, seed=seed)
                textlm, _ = pretrain_textlm(size, streams, cfg.text_tokens, cfg.train, seed, cache)
                res[variant].append(train_run(Run(regime, size, budget), corpus, streams, textlm, cfg.train, seed, ["tsc"], wav_units, cache))
        extra = {v: {"val_nll": float(np.mean([np.mean(r.val_nll) for r in rs])), "tsc": float(np.mean([np.mean(r.cloze["tsc"]) for r in rs])),
                     "tokens": rs[0].tokens, "seconds": float(np.median([r.seconds for r in rs])), "items": len(rs[0].cloze["tsc"])}
                 for v, rs in res.items()}
        base = extra["poisson"]
        rows = [BenchRow(f"{v} (s to train {e['tokens']:,} tokens)", e["seconds"],
                         float(np.subtract(*np.percentile([r.seconds for r in res[v]], [75, 25]))), e["seconds"] / base["seconds"],
                         f"val NLL {e['val_nll']:.3f} nats/unit ({e['val_nll'] / base['val_nll']:.3f}x poisson), tSC-like {100 * e['tsc']:.1f}%")
                for v, e in extra.items()]
        extra["nll_ratio_random_over_poisson"] = extra["random"]["val_nll"] / base["val_nll"]
        extra["nll_ratio_textless_over_poisson"] = extra["textless"]["val_nll"] / base["val_nll"]
        extra["tsc_points_poisson_minus_random"] = 100 * (base["tsc"] - extra["random"]["tsc"])
        extra["tsc_points_poisson_minus_textless"] = 100 * (base["tsc"] - extra["textless"]["tsc"])
        return BenchResult(bench=self.name, baseline="poisson (s to train)", rows=rows,
                           config={"size": size.label, "budget": budget, "seeds": list(seeds), "num_units": corpus.tokenizer.num_units,
                                   "lr": cfg.train.lr, "batch": cfg.train.batch_size, "block": cfg.train.block_size},
                           extra=extra, versions=library_versions(), machine=machine_info())
