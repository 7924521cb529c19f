"""Pick NeuralGS's operating point from what a user asks for: a size (``target_bytes``) or a
quality (``max_db_drop``), and never hand back a file larger than the input.

The paper reports one operating point per scene (clusters by scene type, width 128) and no size
target; these rules are ours (written in the docstrings of :func:`compress_to_target` and
:func:`compress_to_quality`, and in the README).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from ...errors import ConfigError
from ...gaussians import Camera, GaussianScene, psnr, render, scene_to_ply_bytes
from .neuralgs import NeuralGSConfig, NeuralGSFile, choose_operating_point, compress, decompress, predicted_bytes

# compression ratios tried by compress_to_quality, smallest file first
QUALITY_LADDER = (50.0, 20.0, 10.0, 5.0, 2.0)
DEFAULT_RATIO = 10.0  # the default target: a tenth of the input (the paper reaches 45x on real scenes)


@dataclass
class Outcome:
    """What compression produced: ``file`` (None = keep the input: nothing smaller met the ask),
    and a line per tried operating point."""

    file: NeuralGSFile | None
    input_bytes: int
    tried: list[dict] = field(default_factory=list)
    reason: str = ""

    @property
    def kept_input(self) -> bool:
        return self.file is None


def input_bytes_of(scene: GaussianScene) -> int:
    """The size of the scene as an original-layout .ply (what the input costs)."""
    return len(scene_to_ply_bytes(scene))


def compress_to_target(scene: GaussianScene, cameras: Sequence[Camera], images: Tensor, target_bytes: int | None = None, config: NeuralGSConfig = NeuralGSConfig(), seed: int = 0, input_bytes: int | None = None, clusters: int | None = None, width: int | None = None) -> Outcome:
    """Compress into at most ``target_bytes`` (default: a tenth of the input), else keep the input.

    The clusters and width come from :func:`~.neuralgs.choose_operating_point` unless given. When
    the predicted file (an upper estimate) is not smaller than the input, nothing is compressed;
    when the written file is not smaller, it is dropped: either way the outcome keeps the input."""
    n_in = input_bytes if input_bytes is not None else input_bytes_of(scene)
    target = int(n_in / DEFAULT_RATIO) if target_bytes is None else int(target_bytes)
    if target <= 0:
        raise ConfigError("target size", target, "a positive number of bytes (e.g. --target-kb 500)")
    kept = scene.num_gaussians - int(round(config.prune_ratio * scene.num_gaussians))
    if clusters is None and width is None:
        op = choose_operating_point(scene.num_gaussians, scene.sh_degree, min(target, n_in - 1), config.prune_ratio, config.mlp_layers, config.pe_levels)
        clusters, width = op.num_clusters, op.mlp_width
    elif width is None:  # the clusters are the user's: the widest MLPs that fit (width 4 if none does; then the input is kept)
        fits = [w for w in range(4, 129, 4) if predicted_bytes(kept, clusters, w, config.mlp_layers, config.pe_levels, scene.sh_degree) <= min(target, n_in - 1)]
        width = max(fits) if fits else 4
    elif clusters is None:  # the width is the user's: the most clusters (<= 8) that fit, at least one
        fits = [c for c in range(1, 9) if predicted_bytes(kept, c, width, config.mlp_layers, config.pe_levels, scene.sh_degree) <= min(target, n_in - 1)]
        clusters = max(fits) if fits else 1
    pred = predicted_bytes(kept, clusters, width, config.mlp_layers, config.pe_levels, scene.sh_degree)
    row = {"clusters": clusters, "width": width, "predicted_bytes": pred, "target_bytes": target}
    if pred >= n_in:
        return Outcome(None, n_in, [row], f"{clusters} MLPs of width {width} would take about {pred / 1e3:.1f} kB, not less than the input's {n_in / 1e3:.1f} kB")
    f = compress(scene, cameras, images, replace(config, num_clusters=clusters, mlp_width=width), seed=seed)
    row["bytes"] = f.num_bytes
    if f.num_bytes >= n_in:
        return Outcome(None, n_in, [row], f"the NeuralGS file ({f.num_bytes / 1e3:.1f} kB) is not smaller than the input ({n_in / 1e3:.1f} kB)")
    return Outcome(f, n_in, [row])


def holdout_split(n_views: int, every: int = 8) -> tuple[list[int], list[int]]:
    """(train, eval) view indices: every ``every``-th view held out (the 3DGS / Mip-NeRF 360
    ``--eval`` convention); with fewer than ``every`` views all are used for both."""
    if n_views < every:
        return list(range(n_views)), list(range(n_views))
    ev = list(range(0, n_views, every))
    return [i for i in range(n_views) if i % every], ev


def psnr_drop(original: GaussianScene, decoded: GaussianScene, cameras: Sequence[Camera], images: Tensor, background=(0.0, 0.0, 0.0)) -> float:
    """Mean over views of PSNR(original render) - PSNR(decoded render), both against the images,
    each PSNR capped at 100 dB (a render equal to its image would otherwise give inf - x)."""
    drops = []
    with torch.no_grad():
        for cam, img in zip(cameras, images):
            a = min(psnr(render(original, cam, background).image, img), 100.0)
            b = min(psnr(render(decoded.to(original.device), cam, background).image, img), 100.0)
            drops.append(a - b)
    return float(sum(drops) / len(drops))


def compress_to_quality(scene: GaussianScene, cameras: Sequence[Camera], images: Tensor, max_db_drop: float, config: NeuralGSConfig = NeuralGSConfig(), seed: int = 0, input_bytes: int | None = None, ladder: Sequence[float] = QUALITY_LADDER) -> Outcome:
    """The smallest file on a ladder of sizes (input / 50, / 20, / 10, / 5, / 2) whose PSNR drop
    against the uncompressed scene is at most ``max_db_drop`` dB, else the input.

    The drop is measured on held-out views (every 8th, as 3DGS's ``--eval``; trained on the rest)
    when there are 8 views or more, else on the training views themselves (then optimistic). Up to
    five compressions: a time budget in ``config`` is split evenly over the rungs."""
    if not (max_db_drop >= 0 and math.isfinite(max_db_drop)):
        raise ConfigError("max_db_drop", max_db_drop, "a finite number of dB >= 0 (e.g. --max-db-drop 0.5)")
    n_in = input_bytes if input_bytes is not None else input_bytes_of(scene)
    train, ev = holdout_split(len(cameras))
    tr_cams, tr_imgs = [cameras[i] for i in train], images[train]
    ev_cams, ev_imgs = [cameras[i] for i in ev], images[ev]
    kept = scene.num_gaussians - int(round(config.prune_ratio * scene.num_gaussians))
    floor = predicted_bytes(kept, 1, 4, config.mlp_layers, config.pe_levels, scene.sh_degree)
    rungs = [int(n_in / r) for r in ladder if floor <= int(n_in / r) < n_in]
    out = Outcome(None, n_in, reason=f"no operating point on the ladder {', '.join(f'{r:g}x' for r in ladder)} stays within {max_db_drop} dB")
    if not rungs:
        out.reason = f"no rung of the ladder fits between the positions' floor ({floor / 1e3:.1f} kB) and the input ({n_in / 1e3:.1f} kB)"
        return out
    cfg = replace(config, time_budget_s=config.time_budget_s / len(rungs)) if config.time_budget_s else config
    for target in rungs:
        t0 = time.perf_counter()
        res = compress_to_target(scene, tr_cams, tr_imgs, target, cfg, seed=seed, input_bytes=n_in)
        row = res.tried[0]
        if res.file is None:
            row["note"] = res.reason
            out.tried.append(row)
            continue
        row["db_drop"] = psnr_drop(scene, decompress(res.file, device=scene.device), ev_cams, ev_imgs, config.background)
        row["seconds"] = time.perf_counter() - t0
        row["views"] = "held-out" if ev != train else "training"
        out.tried.append(row)
        if row["db_drop"] <= max_db_drop:
            out.file, out.reason = res.file, ""
            return out
    return out


__all__ = ["Outcome", "QUALITY_LADDER", "DEFAULT_RATIO", "compress_to_target", "compress_to_quality", "holdout_split", "psnr_drop", "input_bytes_of"]
