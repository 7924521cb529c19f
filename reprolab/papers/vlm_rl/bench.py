"""Benchmark ``vlm_rl``: our MAYE trainer against TRL 1.16's ``GRPOTrainer`` and ``RLOOTrainer``, side by side.

Same model (the study's vanilla tiny Llava: its checkpoint from ``runs/vlm_rl/{full,quick}`` when there is one,
else a vanilla trained here on the quick recipe with fewer steps), same RL questions, same number of generation
steps, the same 8 prompts per step answered 4 times each (32 responses), T = 1.0, 48 new tokens, lr 2e-5, reward = MAYE's accuracy judge, one process, one
thread. TRL's VLM path needs a real processor: ours is wrapped as a ``LlavaProcessor`` (a ``CLIPImageProcessorPil``
that only rescales and normalises like our processor, our word-level tokenizer with ``<image>`` made a special
token and a chat template that renders ``<bos> <image> question``); images go through uint8 PIL for both trainers.
TRL's KL coefficient is 0 (its default; with beta > 0 it would reload a reference from ``config._name_or_path``);
ours keeps the paper's beta_loss = 0.001 with a reference copy.

Rows: seconds per generation step (median over the steps after the first; generation + update); ``extra`` holds
validation pass@1 T=0.6 of each trainer after the same number of steps (64 in-distribution questions) and the
vanilla accuracy. Variants: ours with the study's settings (8 queries per mini-batch: 4 optimiser steps per
generation step), ours with one optimiser step per generation step (as TRL's defaults), GRPO and RLOO
(8 prompts x 4 generations; one optimiser step per generation step).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data.visual_math import make_visual_math
from ...runtime import load_checkpoint, median_iqr, torch_threads
from ...study import Benchmark, BenchResult, BenchRow, RunDir, Scale, register_bench
from .formats import shapes_collate
from .maye import MayeConfig, MayeTrainer
from .rewards import judge
from .study import TRAIN_DATA, VAL_DATA, VlmRlStudy, _build, evaluate_model, outcomes, train_vanilla

GENERATIONS = 4  # TRL: completions per prompt
RESPONSES = 32  # responses per generation step, every trainer
LR = 2e-5
NEW_TOKENS = 48
TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %} <image>"
            "{% elif c['type'] == 'text' %} {{ c['text'] }}{% endif %}{% endfor %}{% endfor %}")


def vanilla_state(quick: bool) -> tuple[dict, str]:
    """The study's vanilla weights (full, then quick run folder), else a short vanilla SFT here."""
    for scale in (Scale.FULL, Scale.QUICK):
        cfg = VlmRlStudy.scales[scale]
        run = RunDir(Path("runs", "vlm_rl", scale.value), scale, 0, config=cfg, study="vlm_rl", version=VlmRlStudy.version)
        ck = load_checkpoint(run.checkpoints / f"{run.key_with('vanilla')}-vanilla.pt")
        if ck is not None:
            return ck["model"], f"the study's vanilla model (runs/vlm_rl/{scale.value})"
    cfg = VlmRlStudy.scales[Scale.QUICK]
    steps = 300 if quick else cfg.vanilla.steps
    cfg = dataclasses.replace(cfg, vanilla=dataclasses.replace(cfg.vanilla, steps=steps))
    path = Path("runs", "vlm_rl", "bench", f"vanilla-{steps}.pt")
    return train_vanilla(cfg, str(path), seed=0)["model"], f"a vanilla SFT of {steps} steps (no study checkpoint)"


def _pil(images: np.ndarray):
    from PIL import Image

    return [Image.fromarray((np.clip(im.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)) for im in images]


def _quantised(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0, 1) * 255).round().astype(np.float32) / 255.0


def llava_processor(tok):
    """Our tokenizer and image normalisation as a ``transformers.LlavaProcessor`` (what TRL's VLM path needs)."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})  # split "<image><image>..." into tokens
    tok.chat_template = TEMPLATE
    ip = CLIPImageProcessorPil(do_resize=False, do_center_crop=False, do_rescale=True, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_convert_rgb=False)
    return LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default", chat_template=TEMPLATE, image_token="<image>",
                          num_additional_image_tokens=1)


class _StepTimer:
    """A transformers callback: wall seconds of each optimiser step (TRL generates inside the step)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                timer.seconds.append(time.perf_counter() - timer.t0)

        self.seconds: list[float] = []
        self.t0 = 0.0
        self.callback = CB()


def _trl(kind: str, model, tok, rl, steps: int, out: Path) -> list[float]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    proc = llava_processor(tok)
    data = Dataset.from_dict({"prompt": [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in rl.questions],
                              "image": _pil(rl.images), "solution": rl.answers})

    def reward(completions, solution, **kw):
        return [1.0 if judge(c if isinstance(c, str) else c[0]["content"], s, use_math_verify=False) else 0.0 for c, s in zip(completions, solution)]

    common = dict(output_dir=str(out), per_device_train_batch_size=RESPONSES, num_generations=GENERATIONS, max_completion_length=NEW_TOKENS, learning_rate=LR,
                  max_steps=steps, logging_steps=10_000, report_to=[], use_cpu=True, beta=0.0, temperature=1.0, save_strategy="no", bf16=False, seed=0,
                  dataloader_num_workers=0, disable_tqdm=True)
    timer = _StepTimer()
    if kind == "grpo":
        tr = GRPOTrainer(model=model, reward_funcs=reward, args=GRPOConfig(**common), train_dataset=data, processing_class=proc, callbacks=[timer.callback])
    else:
        tr = RLOOTrainer(model=model, reward_funcs=reward, args=RLOOConfig(**common), train_dataset=data, processing_class=proc, callbacks=[timer.callback])
    tr.train()
    return timer.seconds


@register_bench
class VlmRlBench(Benchmark):
    name = "vlm_rl"
    description = "seconds per generation step and accuracy after the same steps: our MAYE trainer vs TRL 1.16 GRPOTrainer / RLOOTrainer"

    def run(self, quick: bool) -> BenchResult:
        steps = 12 if quick else 24
        scfg = VlmRlStudy.scales[Scale.QUICK]
        state, source = vanilla_state(quick)
        rl = make_visual_math(256, TRAIN_DATA, seed=30_000)
        rl.images = _quantised(rl.images)
        val = make_visual_math(64, VAL_DATA, seed=10_000)
        val.images = _quantised(val.images)
        seconds: dict[str, list[float]] = {}
        acc: dict[str, float] = {}
        out = Path("runs", "vlm_rl", "bench")
        with torch_threads(1):
            tok, model, proc = _build(scfg)
            model.load_state_dict(state)
            acc["vanilla"] = float(np.mean(outcomes(evaluate_model(model, tok, proc, val, 1, NEW_TOKENS, seed=0)["pass@1 T=0.6"])))
            samples = rl.samples()
            for name, mini in (("ours (study settings: 4 updates / step)", 8), ("ours (1 update / step)", RESPONSES)):
                tok, model, proc = _build(scfg)
                model.load_state_dict(state)
                cfg = MayeConfig(batch_size=RESPONSES, ppo_batch_size=mini, lr=LR, max_new_tokens=NEW_TOKENS, min_response_length=scfg.min_response_length)
                tr = MayeTrainer(model, tok, shapes_collate(proc), cfg, total_steps=steps, seed=0)
                ts = []
                per = RESPONSES // GENERATIONS  # the prompts TRL takes per step, each answered GENERATIONS times
                for s in range(steps):
                    torch.manual_seed(s)
                    batch = [q for q in samples[s * per : (s + 1) * per] for _ in range(GENERATIONS)]
                    t0 = time.perf_counter()
                    tr.step(batch)
                    ts.append(time.perf_counter() - t0)
                seconds[name] = ts
                acc[name] = float(np.mean(outcomes(evaluate_model(model, tok, proc, val, 1, NEW_TOKENS, seed=0)["pass@1 T=0.6"])))
            for kind, name in (("grpo", "TRL GRPOTrainer"), ("rloo", "TRL RLOOTrainer")):
                tok, model, proc = _build(scfg)
                model.load_state_dict(state)
                seconds[name] = _trl(kind, model, tok, rl, steps, out / kind)
                tok2, _, proc2 = _build(scfg)
                acc[name] = float(np.mean(outcomes(evaluate_model(model, tok2, proc2, val, 1, NEW_TOKENS, seed=0)["pass@1 T=0.6"])))
        base = "TRL GRPOTrainer"
        med = {k: median_iqr(v[1:] if len(v) > 1 else v) for k, v in seconds.items()}
        rows = [BenchRow(f"{k} (seconds per generation step)", m, iqr, m / med[base][0], f"val pass@1 T=0.6 after {steps} steps: {acc[k]:.3f}")
                for k, (m, iqr) in med.items()]
        extra: dict[str, Any] = {"accuracy_after_steps": acc, "steps": steps, "model": source, "responses_per_step": RESPONSES,
                                 "note": "ratios to TRL GRPOTrainer; accuracies on 64 validation questions, one sample each (T=0.6) -- a coarse check"}
        return BenchResult(bench=self.name, baseline=base, rows=rows, config={"steps": steps, "lr": LR, "new_tokens": NEW_TOKENS, "generations": GENERATIONS}, extra=extra)
