"""Calibration of the zclip study's spiking regime (issue 16): run before the study's rules were fixed.

Trains the no-clipping arm (and, on request, the other arms) of the study's tiny GPT over a grid of
regimes and learning rates for a few seeds, and prints one row per (regime, lr): spike events per
seed by the study's rule, the largest robust z-score of any step, divergences, final validation
loss. The README's calibration tables are this script's output. Round 1 (the v3 regime)::

    python -m reprolab.papers.zclip.calibrate --steps 600 --seeds 2 --out /tmp/zclip_calibration.jsonl

Round 2 (memorising a small text at a constant rate; the v4 regime is its 4 kB, 2 x 96, lr 1e-2 row)::

    python -m reprolab.papers.zclip.calibrate --regimes memorise --corpus-bytes 4000 --n-embd 96 --steps 1500 \
        --lrs 6e-3 1e-2 1.5e-2 --arms none fixed --seeds 3 --out /tmp/zclip_calibration2.jsonl

Round 3 (the no-clip arm only; the v5 regime is its 3 kB row; each run took about 45 s on one thread, so two
processes split the seeds with ``--seed-offset``; 2400 steps at 4 kB only for seeds 2-3, as the constant rate makes
the first 1200 steps those of a 1200-step run)::

    python -m reprolab.papers.zclip.calibrate --regimes memorise --arms none --n-embd 96 --lrs 1e-2 --steps 1200 \
        --seeds 4 --corpus-bytes 3000 --out /tmp/zclip_calibration3.jsonl   # also 6000; 4000 at --lrs 1.2e-2 and 8e-3

Round 4 (v5's regime plus 1% corrupted batches; the v6 regime is its repeated-rare-byte row; run with
``OMP_NUM_THREADS=1`` in two processes that split the seeds, each run about 45 s)::

    python -m reprolab.papers.zclip.calibrate --regimes "memorise, 1% repeated-rare-byte batches" --arms none --n-embd 96 \
        --lrs 3e-3 6e-3 --steps 1200 --seeds 4 --corpus-bytes 3000 --out /tmp/zclip_calibration4.jsonl   # and --seed-offset 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from ...data.text_corpus import ByteCorpus
from .study import MEMORISE, ZClipStudyConfig, pretrain

BASE = ZClipStudyConfig(seeds=2, steps=600, batch_size=16, block_size=64, n_layer=2, n_embd=128, n_head=4,
                        corpus_bytes=2_000_000, lrs=(1e-2,), eval_batches=4)
REGIMES = {
    "v2 (warm-up 5%, beta2 0.95, tied)": dict(warmup_frac=0.05, beta2=0.95),
    "no warm-up, beta2 0.95": dict(warmup_frac=0.0, beta2=0.95),
    "no warm-up, beta2 0.999": dict(warmup_frac=0.0, beta2=0.999),
    "no warm-up, beta2 0.999, untied": dict(warmup_frac=0.0, beta2=0.999, tie_weights=False),
    "no warm-up, beta2 0.999, qk-layernorm": dict(warmup_frac=0.0, beta2=0.999, qk_layernorm=True),
    "post-LN, no warm-up, beta2 0.999": dict(warmup_frac=0.0, beta2=0.999, norm_position="post"),
    "attention scale 1, no warm-up, beta2 0.999": dict(warmup_frac=0.0, beta2=0.999, attn_scale=1.0),
    "3% random-byte batches, no warm-up, beta2 0.999": dict(warmup_frac=0.0, beta2=0.999, outlier_prob=0.03, outlier_kind="random"),
    "2% repeated-rare-byte batches, no warm-up, beta2 0.999": dict(warmup_frac=0.0, beta2=0.999, outlier_prob=0.02, outlier_kind="repeat"),
    # round 2: many passes over a small text (--corpus-bytes), constant rate, no weight decay
    "memorise": MEMORISE,
    "memorise, beta2 0.99": dict(MEMORISE, beta2=0.99),
    # round 4: the memorisation regime plus rare corrupted batches (round 1 tried them at a loss near 2.8)
    "memorise, 1% random-byte batches": dict(MEMORISE, outlier_prob=0.01, outlier_kind="random"),
    "memorise, 1% repeated-rare-byte batches": dict(MEMORISE, outlier_prob=0.01, outlier_kind="repeat"),
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--regimes", nargs="*", default=list(REGIMES), help="names from REGIMES")
    ap.add_argument("--lrs", nargs="*", type=float, default=[3e-3, 1e-2, 3e-2, 1e-1])
    ap.add_argument("--arms", nargs="*", default=["none"])
    ap.add_argument("--steps", type=int, default=BASE.steps)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--seed-offset", type=int, default=0, help="first seed (to split seeds over processes)")
    ap.add_argument("--n-embd", type=int, default=BASE.n_embd)
    ap.add_argument("--corpus-bytes", type=int, default=BASE.corpus_bytes, help="bytes of stdlib source (round 2: 2,000 to 32,000)")
    ap.add_argument("--block-size", type=int, default=BASE.block_size)
    ap.add_argument("--out", required=True, help="JSON lines, one per run (appended)")
    args = ap.parse_args(argv)
    corpus = ByteCorpus.python_stdlib(args.corpus_bytes)
    for name in args.regimes:
        cfg = dataclasses.replace(BASE, steps=args.steps, n_embd=args.n_embd, block_size=args.block_size,
                                  corpus_bytes=args.corpus_bytes, **REGIMES[name])
        for lr in args.lrs:
            for arm in args.arms:
                rows = []
                for s in range(args.seed_offset, args.seed_offset + args.seeds):
                    tr = pretrain(cfg, corpus, arm, lr, seed=s, description=f"{name} lr {lr:g} {arm} seed {s}")
                    row = {"regime": name, "lr": lr, "arm": arm, "seed": s, "steps": args.steps, "n_embd": args.n_embd, "corpus_bytes": args.corpus_bytes,
                           "spikes": tr["spikes"], "spike_steps": tr["spike_steps"], "robust_z_max": tr["robust_z_max"],
                           "diverged": tr["diverged"], "final_val_loss": tr["final_val_loss"], "wall_s": tr["wall_s"],
                           "max_grad_norm": float(np.nanmax([g for g in tr["grad_norms"] if g is not None] or [np.nan]))}
                    rows.append(row)
                    with open(args.out, "a") as f:
                        f.write(json.dumps(row) + "\n")
                finals = [r["final_val_loss"] for r in rows]
                print(f"{name:42s} lr {lr:<6g} {arm:5s} spikes {[r['spikes'] for r in rows]} z_max {[r['robust_z_max'] for r in rows]} "
                      f"diverged {[r['diverged'] for r in rows]} final {finals} wall {[r['wall_s'] for r in rows]}", flush=True)


if __name__ == "__main__":
    main()
