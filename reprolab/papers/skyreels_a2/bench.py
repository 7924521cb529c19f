"""Benchmark ``skyreels_a2``: A2's conditioning against VACE-style references-as-frames on the same tiny Wan transformer,
trained for the same steps on the same clips, side by side in one run.

Arms (the study's, :mod:`.study`): ``A2`` (condition video + mask in channels, and EfficientNet-Lite0 image tokens
through the image branch) and ``VACE-style`` (the references as the first frames of the noisy sequence, kept clean,
no channel condition and no image tokens: what a diffusers user gets from ``WanVACEPipeline(reference_images=...)``,
simplified to pixel space). Reported per arm: element consistency on the study's presence classifier (trained on
true frames first), background consistency, and seconds per training step (forward + backward + AdamW on the same
batch, measured round-robin). Baseline of the time ratio: VACE-style. ``quick``: 40 steps, 6 prompts (a code-path
check); otherwise the study's quick size: 300 steps, 16 prompts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...nn.flow import FlowBatch, FlowTrainConfig, euler_sample, timed_step, train_flow
from ...runtime import interleaved_timings
from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .elements import generate_element_clips
from .study import (SLOTS, A2StudyConfig, PixelA2Denoiser, _batch_indices, clip_tensors, consistency, elements_config, make_transformer,
                    semantic_tokens, slot_weights, text_states, train_classifiers)

BASELINE = "VACE-style"
ARMS = {"A2": "a2", BASELINE: "vace"}


def compare(steps: int, n_prompts: int, n_train: int = 256, semantic: str = "efficientnet", seed: int = 0, classifier_steps: int = 300,
            **model: Any) -> dict:
    """Train both arms for ``steps`` and score them on ``n_prompts``; ``model``: overrides of the study's model sizes."""
    c = A2StudyConfig(n_train=n_train, n_test=n_prompts, steps=steps, seeds=1, classifier_steps=classifier_steps, semantic=semantic, **model)
    ecfg = elements_config(c)
    train, test = generate_element_clips(n_train, ecfg, seed=seed + 1), generate_element_clips(n_prompts, ecfg, seed=seed + 2)
    data, tdata = clip_tensors(train), clip_tensors(test)
    text = text_states([x.caption for x in train + test], c.text_dim, seed=seed)
    sem = semantic_tokens(train + test, semantic)
    text_train, text_test, sem_train, sem_test = text[:n_train], text[n_train:], sem[:n_train], sem[n_train:]
    pres, back = train_classifiers(train, classifier_steps, seed + 3, len(ecfg.identities))

    def batch(step: int) -> FlowBatch:
        i = _batch_indices(step, n_train, c.batch, seed)
        return FlowBatch({"slots": data["slots"][i], "video": data["video"][i]},
                         {"text": text_train[i], "cond": data["cond"][i], "image": sem_train[i], "refs": data["slots"][i]})

    models = {name: PixelA2Denoiser(arm, make_transformer(c, sem.shape[-1], seed=seed), sem.shape[1]) for name, arm in ARMS.items()}
    out: dict = {"arms": {}}
    conds = {"text": text_test, "cond": tdata["cond"], "image": sem_test, "refs": tdata["slots"]}
    shapes = {"slots": (n_prompts, 3, SLOTS, c.size, c.size), "video": (n_prompts, 3, c.frames, c.size, c.size)}
    for name, model in models.items():
        tr = train_flow(model, batch, FlowTrainConfig(steps=steps, lr=c.lr, warmup=min(50, max(1, steps // 5)), cfg_dropout={"text": 0.1},
                                                      modality_weights=slot_weights(ARMS[name])), seed=seed, description=f"bench: {name}")
        g = euler_sample(model, shapes, conds, guidance=[("text", c.guidance)], num_inference_steps=c.sample_steps,
                         generator=torch.Generator().manual_seed(10_000))
        video01 = ((g["video"].clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4)
        el, bg = consistency(video01, test, pres, back)
        out["arms"][name] = {"element": el.tolist(), "background": bg.tolist(), "final_loss": float(np.mean(tr.losses["mse"][-10:])),
                             "params": sum(p.numel() for p in model.parameters())}

    opts = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in models.items()}

    for m in models.values():
        m.train()
    out["times"] = interleaved_timings({name: timed_step(m, batch(0), opts[name], slot_weights(ARMS[name])) for name, m in models.items()},
                                       repeats=5, warmup=1)
    return out


@register_bench
class SkyReelsA2Bench(Benchmark):
    name = "skyreels_a2"
    description = ("element consistency and seconds per training step at equal steps on one tiny WanTransformer3DModel: A2's conditioning "
                   "(channel condition + image tokens) vs VACE-style references as frames")

    def run(self, quick: bool) -> BenchResult:
        steps, prompts, n_train = (40, 6, 64) if quick else (300, 16, 256)
        res = compare(steps, prompts, n_train=n_train, classifier_steps=100 if quick else 300)
        notes = {name: (f"element consistency {np.mean(r['element']):.3f}, background {np.mean(r['background']):.3f}, "
                        f"{r['params'] / 1e6:.2f}M params, final loss {r['final_loss']:.3f}") for name, r in res["arms"].items()}
        return BenchResult(bench=self.name, baseline=BASELINE, rows=bench_rows(res["times"], BASELINE, "s per training step", notes),
                           config={"steps": steps, "prompts": prompts, "train_clips": n_train, "batch": 8,
                                   "clips": f"3 reference slots + {A2StudyConfig.frames} frames {A2StudyConfig.size}x{A2StudyConfig.size}, pixel space"},
                           extra={"arms": res["arms"]})


__all__ = ["SkyReelsA2Bench", "compare"]
