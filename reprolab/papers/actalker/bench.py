"""Benchmark ``actalker``: one PCM layer against cross-attention fusion of the same signals (IP-Adapter style, the way
Hallo and EchoMimic fuse audio), side by side in one run.

1. **Speed as the frame grows:** seconds per forward + backward of one layer on a batch of 8 frames whose token grid
   has 16 to 1024 tokens (4x4 to 32x32), 64 channels, with the study's conditions (1 identity token, 10 audio
   tokens, 1 motion token), both gates open (Mask-Drop: the mouth, a quarter of the grid, to the audio branch, the rest
   to the motion branch), measured round-robin. A scan is linear in the tokens and attention to 12 condition tokens
   is too, so the ratio should stay roughly flat; the absolute seconds say what a PCM layer costs on a CPU.
2. **Mouth error in the study's setting:** the study's ``pcm`` and ``xattn`` arms trained for the same steps on the same
   clips (conflicting motion at test), mouth error against the audio's mouth with both signals (lower is better).

Baseline of the ratios: cross-attention. ``quick``: grids up to 16x16 and 30 training steps (a code-path check);
otherwise up to 32x32 and 600 training steps on 48 clips (the study's model and batches; the study's full runs 800).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...runtime import interleaved_timings, torch_threads
from ...study import Benchmark, BenchResult, BenchRow, bench_rows, register_bench
from .pcm import CrossAttentionFusion, PCMLayer, gate_masks

BASELINE = "cross-attention"


def layer_timings(sides: tuple[int, ...] = (4, 8, 16, 32), dim: int = 64, d_cond: int = 64, frames: int = 8, d_state: int = 4,
                  repeats: int = 5) -> dict[int, dict[str, list[float]]]:
    """Seconds per forward + backward of one PCM layer and one cross-attention fusion layer per token-grid side."""
    out = {}
    for side in sides:
        L = side * side
        g = torch.Generator().manual_seed(side)
        x = torch.randn(frames, L, dim, generator=g)
        ident = torch.randn(frames, 1, d_cond, generator=g)
        conds = {"audio": torch.randn(frames, 10, d_cond, generator=g), "motion": torch.randn(frames, 1, d_cond, generator=g)}
        face = torch.ones(frames, L, dtype=torch.bool)
        mouth = torch.zeros(frames, side, side, dtype=torch.bool)
        mouth[:, side // 2:, side // 4: side - side // 4] = True  # the lower middle quarter
        gates = torch.ones(frames, 2)
        masks = gate_masks(gates, face, mouth.flatten(1))
        torch.manual_seed(0)
        layers = {"PCM (Mask-Drop)": PCMLayer(dim, d_cond, d_state=d_state), BASELINE: CrossAttentionFusion(dim, d_cond)}

        def call(layer: torch.nn.Module) -> Any:
            def f() -> None:
                layer.zero_grad(set_to_none=True)
                layer(x, ident, conds, masks, gates).square().mean().backward()
            return f

        out[L] = interleaved_timings({k: call(m) for k, m in layers.items()}, repeats=repeats, warmup=1)
    return out


def mouth_errors(steps: int, n_train: int, n_test: int = 8, seed: int = 0, features: str = "whisper", sample_steps: int = 10,
                 **sizes: Any) -> dict[str, dict[str, Any]]:
    """The study's ``pcm`` and ``xattn`` arms trained ``steps`` on the same clips; mouth and upper-face error per test clip.
    ``sizes``: overrides of the study's model sizes (``dim``, ``depth``, ``d_state``)."""
    from . import study as S

    c = S.ACTalkerStudyConfig(n_train=n_train, n_test=n_test, steps=steps, seeds=1, sync_steps=0, sample_steps=sample_steps, features=features,
                              **sizes)
    _, test, data, tdata = S.prepare_clips(c, seed, None)
    n = c.windows * c.window
    out = {}
    for arm, name in (("pcm", "PCM (Mask-Drop)"), ("xattn", BASELINE)):
        model, tr = S.train_arm(arm, c, data, seed, description=f"bench: {name}")
        video = S.sample_clips(model, tdata, (1, 1), c, seed)
        errs = [S.region_errors(video[k], x.video[:n], x.face_mask, x.mouth_mask) for k, x in enumerate(test)]
        out[name] = {"mouth": [round(e[0], 6) for e in errs], "upper": [round(e[1], 6) for e in errs],
                     "final_loss": float(np.mean(tr.losses["mse"][-10:])), "seconds_per_step": tr.seconds_per_step}
    return out


@register_bench
class ACTalkerBench(Benchmark):
    name = "actalker"
    description = ("one PCM layer (Mask-Drop, bidirectional selective scan) vs cross-attention fusion of the same signals: seconds per "
                   "forward+backward as the frame's token grid grows 16 -> 1024, and mouth error at equal training steps")

    def run(self, quick: bool) -> BenchResult:
        sides = (4, 8, 16) if quick else (4, 8, 16, 32)
        steps, n_train = (30, 12) if quick else (600, 48)
        with torch_threads(1):
            times = layer_timings(sides)
        rows: list[BenchRow] = []
        for L, t in times.items():
            rows += bench_rows(t, BASELINE, f"s per forward+backward, {L} tokens per frame")
        errs = mouth_errors(steps, n_train)
        pcm, xa = errs["PCM (Mask-Drop)"], errs[BASELINE]
        rows.append(BenchRow("mouth error, PCM / cross-attention (both signals, conflicting motion)", float(np.mean(pcm["mouth"])),
                             float(np.std(pcm["mouth"])), float(np.mean(pcm["mouth"]) / max(np.mean(xa["mouth"]), 1e-12)),
                             f"cross-attention {np.mean(xa['mouth']):.4f}; {steps} steps each, {n_train} clips"))
        return BenchResult(bench=self.name, baseline=BASELINE, rows=rows,
                           config={"grid_sides": list(sides), "frames": 8, "dim": 64, "d_state": 4, "train_steps": steps, "train_clips": n_train,
                                   "threads": 1},
                           extra={"times": {str(k): v for k, v in times.items()}, "mouth_errors": errs})


__all__ = ["ACTalkerBench", "layer_timings", "mouth_errors"]
