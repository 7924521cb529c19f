"""Does the SkyReels-A2 study's a2 model draw its element references with more training? (issue 32 probe, 2026-12-04)

Not the study: one arm (``a2``, both reference paths) of the study's full configuration (384 training clips, the 4 x 32
two-layer pixel-space ``WanTransformer3DModel``, batch 8, lr 2e-3, the same classifiers and sampler), trained for a given
number of steps on seed 0, then sampled for 32 validation prompts from a generator seed the study never uses (99, so the
study's test prompts stay unseen) with the prompt's own references and with another prompt's (shuffled, the control).
Prints element consistency (identity among the presence detector's top 2; chance 2/16 = 0.125) and background
consistency per guidance scale, and saves the first samples as ``.npy``.

    .venv/bin/python docs/diagnostics/skyreels_a2_steps.py --steps 300 --guidance 1 2 5   # the study's per-arm budget
    .venv/bin/python docs/diagnostics/skyreels_a2_steps.py --steps 1500 --guidance 1 5
    .venv/bin/python docs/diagnostics/skyreels_a2_steps.py --steps 3000 --guidance 1 5

Measured 2026-12-04 on 2 threads (README of skyreels_a2, "Would more training help?"), element consistency of a2 /
shuffled references (background consistency 1.00 / 0.22 in every row):

| steps | s per step | training | final MSE | guidance 1 | guidance 2 | guidance 5 |
|---|---|---|---|---|---|---|
| 300 | 0.28 | 87 s | 0.239 | 0.129 / 0.117 | 0.133 / 0.105 | 0.145 / 0.109 |
| 1500 | 0.29 | 431 s | 0.122 | 0.148 / 0.105 | | 0.172 / 0.113 |
| 3000 | 0.32 | 967 s | 0.091 | 0.207 / 0.125 | | 0.191 / 0.121 |

At 300 steps the samples are scattered patch-sized colour blocks over a right background; at 1500 the blobs sit on the
elements' sides of the frame; at 3000 they are coherent blobs of roughly the references' colours that move, still
without recognisable shapes. The 300 and 1500 rows were measured by this script's first draft (the same code with
the arguments positional).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from reprolab.nn.flow import FlowBatch, FlowTrainConfig, train_flow
from reprolab.papers.skyreels_a2 import study as S
from reprolab.papers.skyreels_a2.elements import generate_element_clips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[300], help="training steps (one model per value)")
    ap.add_argument("--guidance", type=float, nargs="+", default=[1.0, 5.0], help="text CFG scales to sample with")
    ap.add_argument("--arm", default="a2", choices=S.ARMS)
    ap.add_argument("--out", type=Path, default=Path("/tmp/skyreels_a2_steps"), help="folder for the sample arrays")
    args = ap.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    c = S.SkyReelsA2Study.scales[S.Scale.FULL]
    ecfg = S.elements_config(c)
    t0 = time.time()
    train, val = generate_element_clips(c.n_train, ecfg, seed=1), generate_element_clips(32, ecfg, seed=99)
    data, vdata = S.clip_tensors(train), S.clip_tensors(val)
    text = S.text_states([x.caption for x in train + val], c.text_dim, seed=0)
    sem = S.semantic_tokens(train + val, c.semantic)
    tt, tv, st, sv = text[: len(train)], text[len(train):], sem[: len(train)], sem[len(train):]
    pres, back = S.train_classifiers(train, c.classifier_steps, 3, len(ecfg.identities))
    print(f"data and classifiers: {time.time() - t0:.0f} s", flush=True)

    def batches(step: int) -> FlowBatch:
        i = S._batch_indices(step, len(train), c.batch, 2000)
        return FlowBatch({"slots": data["slots"][i], "video": data["video"][i]},
                         {"text": tt[i], "cond": data["cond"][i], "image": st[i], "refs": data["slots"][i]})

    perm = torch.roll(torch.arange(len(val)), 1)
    own = {"text": tv, "cond": vdata["cond"], "image": sv, "refs": vdata["slots"]}
    shuffled = {**own, "cond": vdata["cond"][perm], "image": sv[perm], "refs": vdata["slots"][perm]}
    for steps in args.steps:
        t0 = time.time()
        model = S.PixelA2Denoiser(args.arm, S.make_transformer(c, sem.shape[-1], seed=1000), sem.shape[1])
        cfg = FlowTrainConfig(steps=steps, lr=c.lr, warmup=min(50, max(1, steps // 5)), cfg_dropout={"text": 0.1},
                              modality_weights=S.slot_weights(args.arm))
        out = train_flow(model, batches, cfg, seed=2000, description=f"{args.arm}, {steps} steps")
        row = {"arm": args.arm, "steps": steps, "train_s": round(time.time() - t0), "s_per_step": round(out.seconds_per_step, 3),
               "final_mse": round(float(np.mean(out.losses["mse"][-20:])), 4)}
        for g in args.guidance:
            sc = dataclasses.replace(c, guidance=g)
            for name, conds in (("own", own), ("shuffled", shuffled)):
                video = S.SkyReelsA2Study._sample(model, conds, sc, 0)
                elem, bg = S.consistency(video, val, pres, back)
                row[f"g{g:g} {name}"] = [round(float(elem.mean()), 3), round(float(bg.mean()), 3)]
                if name == "own":
                    np.save(args.out / f"{args.arm}_{steps}_g{g:g}.npy", video[:6].numpy())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
