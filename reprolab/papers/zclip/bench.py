"""Benchmark ``zclip``: what ZClip costs per step, next to ``clip_grad_norm_`` and the official package.

Two measurements on the tiny GPT of the study (quick-scale size), all variants interleaved in
one process: (1) the clipping call alone, on the same gradients restored before every call;
(2) a whole training step (forward, backward, clipping, AdamW). The paper calls the overhead
negligible; our target is at most 1.05x of ``clip_grad_norm_`` for the training step.
"""

from __future__ import annotations

import torch

from ...nn.gpt import GPT, GPTConfig
from ...runtime import interleaved_timings
from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .zclip import ZClip


def _official_zclip():
    try:
        import zclip as official
    except ImportError:
        return None
    return official.ZClip(max_grad_norm=None)


@register_bench
class ZClipBench(Benchmark):
    name = "zclip"
    description = "per-step cost of ZClip vs torch clip_grad_norm_ vs the official zclip 1.0.0 (ratios)"

    def run(self, quick: bool) -> BenchResult:
        torch.manual_seed(0)
        cfg = GPTConfig(block_size=64, n_layer=2, n_embd=128, n_head=4)
        model = GPT(cfg)
        x = torch.randint(0, 256, (16, 64))
        y = torch.randint(0, 256, (16, 64))
        _, loss = model(x, y)
        loss.backward()
        saved = [p.grad.detach().clone() for p in model.parameters()]

        def restore() -> None:
            torch._foreach_copy_([p.grad for p in model.parameters()], saved)

        ours = ZClip(max_grad_norm=None)
        official = _official_zclip()
        for _ in range(ours.config.warmup_steps + 1):  # time the steady state, not the warm-up
            restore()
            ours.step(model)
            if official is not None:
                restore()
                official.step(model)

        calls = {
            "clip_grad_norm_": lambda: torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0),
            "reprolab ZClip": lambda: ours.step(model),
        }
        if official is not None:
            calls["official zclip 1.0.0"] = lambda: official.step(model)
        reps = 300 if quick else 2000
        clip_times = interleaved_timings(calls, repeats=reps, warmup=10, setup=restore)

        # a whole training step with each clipping method (one optimizer per variant, built once:
        # constructing it inside the timed step would dilute every ratio)
        def train_step(clip):
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

            def fn():
                _, loss = model(x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                clip()
                opt.step()

            return fn

        step_calls = {name: train_step(fn) for name, fn in calls.items()}
        step_times = interleaved_timings(step_calls, repeats=20 if quick else 100, warmup=3)

        rows = bench_rows(clip_times, "clip_grad_norm_", "clip call") + bench_rows(step_times, "clip_grad_norm_", "train step")
        step_ratio = next(r.ratio for r in rows if r.name == "reprolab ZClip (train step)")
        return BenchResult(
            bench=self.name,
            baseline="clip_grad_norm_ (clip call)",
            rows=rows,
            config={"model": "GPT 2x128, block 64, batch 16", "parameters": model.num_parameters(), "clip_repeats": reps},
            extra={
                "target": "ZClip train step <= 1.05x clip_grad_norm_ train step",
                "train_step_ratio": round(step_ratio, 4),
                "target_met": step_ratio <= 1.05,
                "official_installed": official is not None,
            },
        )
