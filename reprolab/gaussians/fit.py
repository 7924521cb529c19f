"""Fit an original 3DGS to posed images with our rasterizer (Kerbl et al. 2023, Sec. 5 and 7.1).

What follows the paper / official code: Adam with per-attribute learning rates (position
1.6e-4 x scene extent decaying exponentially to 1.6e-6 x extent, f_dc 2.5e-3, f_rest
2.5e-3 / 20, opacity 0.05, scaling 5e-3, rotation 1e-3); loss (1 - 0.2) L1 + 0.2 (1 - SSIM);
one random training view per step; SH degree raised by one at regular intervals (the official
code every 1000 of 30k steps; we every ``iterations / (sh_degree + 1)`` steps); initial scales
from the mean squared distance to the 3 nearest neighbours, opacity 0.1, identity rotation.

Departure (scaled for CPU, flagged): no adaptive densification and no opacity reset; the scene
starts from ``n`` points sampled on the true surfaces (our stand-in for the SfM cloud) and keeps
that count, so the Gaussian count is set by the caller, not grown. Low-opacity Gaussians
(sigmoid(logit) < 0.005, the official pruning threshold) are removed at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError, NonFiniteError, ShapeError
from ..runtime import track
from .camera import Camera
from .image_metrics import ssim
from .rasterizer import render
from .scene import SH_COEFFS, GaussianScene, inverse_sigmoid
from .sh import rgb_to_sh_dc


@dataclass(frozen=True)
class FitConfig:
    iterations: int = 30_000  # official default; the studies scale this down and say so
    sh_degree: int = 3  # official default
    lr_position: float = 1.6e-4  # x scene extent, decays to 1.6e-6 x extent (official)
    lr_position_final: float = 1.6e-6
    lr_dc: float = 2.5e-3  # official feature_lr
    lr_rest: float = 2.5e-3 / 20  # official: f_rest learns 20x slower
    lr_opacity: float = 0.05
    lr_scaling: float = 5e-3
    lr_rotation: float = 1e-3
    lambda_dssim: float = 0.2  # official
    prune_opacity: float = 0.005  # official min opacity
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError("iterations", self.iterations, "a positive integer")
        if self.sh_degree not in SH_COEFFS:
            raise ConfigError("sh_degree", self.sh_degree, "0, 1, 2 or 3")


def initial_scene(points: Tensor, colours: Tensor, sh_degree: int = 3) -> GaussianScene:
    """Gaussians at ``points`` (N, 3) with ``colours`` (N, 3) as in the official ``create_from_pcd``."""
    if points.dim() != 2 or points.shape[1] != 3 or colours.shape != points.shape:
        raise ShapeError("points/colours", (tuple(points.shape), tuple(colours.shape)), "(N, 3) each")
    from scipy.spatial import cKDTree

    pts = points.double().cpu().numpy()
    d, _ = cKDTree(pts).query(pts, k=4)
    dist2 = torch.as_tensor((d[:, 1:] ** 2).mean(1)).clamp_min(1e-7).to(points)
    n = points.shape[0]
    return GaussianScene(
        means=points.clone(),
        sh_dc=rgb_to_sh_dc(colours),
        sh_rest=points.new_zeros(n, SH_COEFFS[sh_degree] - 1, 3),
        opacity_logit=inverse_sigmoid(points.new_full((n,), 0.1)),
        log_scales=torch.log(torch.sqrt(dist2))[:, None].repeat(1, 3),
        quats=torch.cat([points.new_ones(n, 1), points.new_zeros(n, 3)], dim=1),
    )


def scene_extent(cameras: Sequence[Camera]) -> float:
    """The official ``cameras_extent``: 1.1 x the largest camera distance from their mean centre."""
    centers = torch.stack([c.center.double() for c in cameras])
    return float(1.1 * (centers - centers.mean(0)).norm(dim=1).max())


def photometric_loss(pred: Tensor, target: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """(1 - lambda) L1 + lambda (1 - SSIM), 3DGS Eq. 7."""
    return (1 - lambda_dssim) * (pred - target).abs().mean() + lambda_dssim * (1 - ssim(pred, target))


def fit_gaussians(init: GaussianScene, cameras: Sequence[Camera], images: Tensor, config: FitConfig = FitConfig(), seed: int = 0, description: str = "fit 3DGS") -> GaussianScene:
    """Optimise ``init`` so that it renders ``images`` (V, H, W, 3) from ``cameras``; returns the fitted scene."""
    if images.dim() != 4 or images.shape[0] != len(cameras) or images.shape[-1] != 3:
        raise ShapeError("images", tuple(images.shape), f"(V={len(cameras)}, H, W, 3)")
    dev = init.device
    images = images.to(device=dev, dtype=init.dtype)
    extent = scene_extent(cameras)
    params = {k: v.detach().clone().requires_grad_(True) for k, v in init.with_sh_degree(config.sh_degree).tensors().items()}
    lrs = {"means": config.lr_position * extent, "sh_dc": config.lr_dc, "sh_rest": config.lr_rest, "opacity_logit": config.lr_opacity, "log_scales": config.lr_scaling, "quats": config.lr_rotation}
    opt = torch.optim.Adam([{"params": [params[k]], "lr": lrs[k], "name": k} for k in params], eps=1e-15)
    gen = torch.Generator().manual_seed(seed)
    step_per_degree = max(1, config.iterations // (config.sh_degree + 1))
    k_total = params["sh_rest"].shape[1]
    for it in track(range(config.iterations), description):
        frac = it / max(1, config.iterations - 1)
        opt.param_groups[0]["lr"] = extent * config.lr_position * (config.lr_position_final / config.lr_position) ** frac  # official log-linear decay
        degree = min(config.sh_degree, it // step_per_degree)
        k_active = SH_COEFFS[degree] - 1
        rest = params["sh_rest"] if k_active == k_total else torch.cat([params["sh_rest"][:, :k_active], params["sh_rest"][:, k_active:].detach() * 0], dim=1)
        scene = GaussianScene(params["means"], params["sh_dc"], rest, params["opacity_logit"], params["log_scales"], params["quats"])
        v = int(torch.randint(len(cameras), (1,), generator=gen))
        out = render(scene, cameras[v], background=config.background)
        loss = photometric_loss(out.image, images[v], config.lambda_dssim)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"3DGS fitting loss at step {it}", float(loss), fix="lower the learning rates or check the images for NaN")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    fitted = GaussianScene(**{k: v.detach() for k, v in params.items()})
    keep = fitted.opacities >= config.prune_opacity
    return fitted.subset(keep)
