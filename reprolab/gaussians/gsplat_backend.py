"""Optional CUDA backend: ``gsplat.rasterization`` (nerfstudio's gsplat), used only when the scene
lives on a CUDA device and the ``gsplat`` package imports. It differs from our torch rasterizer
in details (3-sigma tile culling, its own anti-aliasing options off by default), so images agree
closely, not bit for bit."""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from ..errors import ConfigError, MissingExtra
from .camera import Camera
from .scene import GaussianScene


@functools.cache
def gsplat_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


def render_gsplat(scene: GaussianScene, camera: Camera, background: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(image (H, W, 3), alpha (H, W), visible (N,) bool)`` from gsplat; the rasterizer wraps them
    in its ``RenderOutput`` (gsplat gives no per-Gaussian blending weights)."""
    if scene.device.type != "cuda":
        raise ConfigError("backend", "gsplat", "a scene on a CUDA device (use backend='torch' on CPU)")
    try:
        from gsplat import rasterization
    except ImportError:
        raise MissingExtra("gsplat", "gaussians") from None
    dev, dt = scene.device, scene.dtype
    colors, alphas, meta = rasterization(
        means=scene.means,
        quats=scene.rotations,
        scales=scene.scales,
        opacities=scene.opacities,
        colors=scene.sh,
        viewmats=camera.viewmat.to(device=dev, dtype=dt)[None],
        Ks=camera.K.to(device=dev, dtype=dt)[None],
        width=camera.width,
        height=camera.height,
        sh_degree=scene.sh_degree,
        near_plane=0.2,
        backgrounds=background[None],
    )
    return colors[0], alphas[0, ..., 0], meta["radii"][0].reshape(scene.num_gaussians, -1).amax(-1) > 0
