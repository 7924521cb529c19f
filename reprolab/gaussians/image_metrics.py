"""Image quality measures used by 3DGS papers: PSNR, SSIM (Wang et al. 2004, 11x11 Gaussian window,
sigma 1.5, as the 3DGS code's ``ssim``), and the losses built on them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ShapeError


def _as_nchw(img: Tensor, what: str) -> Tensor:
    if img.dim() == 3 and img.shape[-1] in (1, 3):
        return img.permute(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W)
    if img.dim() == 4 and img.shape[-1] in (1, 3):
        return img.permute(0, 3, 1, 2)
    raise ShapeError(what, tuple(img.shape), "(H, W, C) or (B, H, W, C) with C in {1, 3}")


def psnr(pred: Tensor, target: Tensor, max_val: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, max_val] (values are clamped to that range)."""
    if pred.shape != target.shape:
        raise ShapeError("pred", tuple(pred.shape), f"the target's shape {tuple(target.shape)}")
    mse = float(((pred.clamp(0, max_val) - target) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(max_val**2 / mse)


def _window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of (H, W, C) or (B, H, W, C) images with values in [0, 1]; differentiable.

    Zero padding at the borders, as the 3DGS training code (``F.conv2d(..., padding=5)``).
    """
    if pred.shape != target.shape:
        raise ShapeError("pred", tuple(pred.shape), f"the target's shape {tuple(target.shape)}")
    x, y = _as_nchw(pred, "pred"), _as_nchw(target, "target")
    c = x.shape[1]
    w = _window(window, sigma, c, x)
    pad = window // 2
    mu_x = F.conv2d(x, w, padding=pad, groups=c)
    mu_y = F.conv2d(y, w, padding=pad, groups=c)
    sxx = F.conv2d(x * x, w, padding=pad, groups=c) - mu_x**2
    syy = F.conv2d(y * y, w, padding=pad, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, w, padding=pad, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean()


def fourier_amplitude_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute difference of the 2D Fourier amplitudes |F(pred)| and |F(target)|, per channel
    (orthonormal FFT, so the value does not grow with the image size)."""
    x, y = _as_nchw(pred, "pred"), _as_nchw(target, "target")
    fx = torch.fft.fft2(x, norm="ortho").abs()
    fy = torch.fft.fft2(y, norm="ortho").abs()
    return (fx - fy).abs().mean()
