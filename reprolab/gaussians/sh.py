"""Real spherical harmonics up to degree 3, as the original 3DGS evaluates them (``utils/sh_utils.py``
constants and sign convention): colour = sum_k SH_k(dir) c_k + 0.5, clamped at 0."""

from __future__ import annotations

import math

import torch
from torch import Tensor

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658, 1.445305721320277, -0.5900435899266435)


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """The SH basis at unit directions ``dirs`` (N, 3): (N, (degree+1)^2)."""
    x, y, z = dirs.unbind(-1)
    out = [x.new_full(x.shape, C0)]
    if degree > 0:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [C2[0] * xy, C2[1] * yz, C2[2] * (2 * zz - xx - yy), C2[3] * xz, C2[4] * (xx - yy)]
    if degree > 2:
        out += [
            C3[0] * y * (3 * xx - yy),
            C3[1] * xy * z,
            C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def sh_to_rgb(sh: Tensor, dirs: Tensor) -> Tensor:
    """RGB from SH coefficients ``sh`` (N, K, 3) seen along unit ``dirs`` (N, 3), as 3DGS: clamp(SH + 0.5, 0)."""
    degree = int(math.isqrt(sh.shape[1])) - 1
    basis = sh_basis(dirs, degree)  # (N, K)
    return ((basis[:, :, None] * sh).sum(1) + 0.5).clamp_min(0.0)


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """The DC coefficient whose colour is ``rgb`` (the official ``RGB2SH``)."""
    return (rgb - 0.5) / C0
