"""A 3D Gaussian Splatting scene in the parameterisation of the original implementation.

Kerbl et al., "3D Gaussian Splatting for Real-Time Radiance Field Rendering" (SIGGRAPH 2023),
Sec. 4: each Gaussian has a mean, an anisotropic covariance Sigma = R S S^T R^T stored as a
quaternion (R) and per-axis scales (S), an opacity and view-dependent colour as spherical
harmonics (SH) up to degree 3. Like the official code (and its ``.ply`` files) we store the
*raw* parameters: opacity as a logit (activation: sigmoid), scales as logs (activation: exp),
the quaternion unnormalised in (w, x, y, z) order (activation: normalise), SH as DC + rest.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

from ..errors import NonFiniteError, ShapeError

SH_COEFFS = {0: 1, 1: 4, 2: 9, 3: 16}  # (degree + 1)^2 coefficients per colour channel


def sh_degree_from_rest(n_rest: int) -> int:
    """SH degree from the number of non-DC coefficients per channel (0, 3, 8 or 15)."""
    for d, k in SH_COEFFS.items():
        if k - 1 == n_rest:
            return d
    raise ShapeError("sh_rest", f"(N, {n_rest}, 3)", "(N, K, 3) with K in {0, 3, 8, 15} (SH degree 0-3)")


@dataclass
class GaussianScene:
    """N Gaussians with the raw (pre-activation) attributes of the original 3DGS.

    means: (N, 3) world positions; sh_dc: (N, 3) the degree-0 SH coefficient per RGB channel;
    sh_rest: (N, K, 3) higher-order SH, K = (degree+1)^2 - 1; opacity_logit: (N,);
    log_scales: (N, 3); quats: (N, 4) in (w, x, y, z) order, not necessarily unit length.
    """

    means: Tensor
    sh_dc: Tensor
    sh_rest: Tensor
    opacity_logit: Tensor
    log_scales: Tensor
    quats: Tensor

    def __post_init__(self) -> None:
        n = self.means.shape[0] if self.means.dim() == 2 else -1
        expect = {"sh_dc": (3,), "opacity_logit": (), "log_scales": (3,), "quats": (4,)}  # trailing dims
        if self.means.dim() != 2 or self.means.shape[1] != 3:
            raise ShapeError("means", tuple(self.means.shape), "(N, 3)")
        for name, tail in expect.items():
            t = getattr(self, name)
            if tuple(t.shape) != (n, *tail):
                raise ShapeError(name, tuple(t.shape), f"(N{''.join(f', {d}' for d in tail)}{',' if not tail else ''}) with N={n}")
        r = self.sh_rest
        if r.dim() != 3 or r.shape[0] != n or r.shape[2] != 3:
            raise ShapeError("sh_rest", tuple(r.shape), f"(N, K, 3) with N={n}")
        sh_degree_from_rest(r.shape[1])

    # -- properties ------------------------------------------------------------------------
    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    def __len__(self) -> int:
        return self.num_gaussians

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_rest(self.sh_rest.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def opacities(self) -> Tensor:
        """Activated opacity sigmoid(logit), (N,)."""
        return torch.sigmoid(self.opacity_logit)

    @property
    def scales(self) -> Tensor:
        """Activated scales exp(log_scales), (N, 3)."""
        return torch.exp(self.log_scales)

    @property
    def rotations(self) -> Tensor:
        """Unit quaternions (w, x, y, z), (N, 4)."""
        return self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @property
    def sh(self) -> Tensor:
        """All SH coefficients, (N, (degree+1)^2, 3), DC first."""
        return torch.cat([self.sh_dc[:, None, :], self.sh_rest], dim=1)

    # -- transforms ------------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn) -> GaussianScene:
        """A new scene with ``fn`` applied to every attribute tensor."""
        return GaussianScene(**{k: fn(v) for k, v in self.tensors().items()})

    def to(self, device=None, dtype=None) -> GaussianScene:
        return self.map(lambda t: t.to(device=device, dtype=dtype))

    def detach(self) -> GaussianScene:
        return self.map(lambda t: t.detach().clone())

    def subset(self, index: Tensor) -> GaussianScene:
        """The Gaussians selected by a boolean mask or an index tensor."""
        return self.map(lambda t: t[index])

    def with_sh_degree(self, degree: int) -> GaussianScene:
        """Truncate (or zero-pad) the SH to ``degree``."""
        k = SH_COEFFS[degree] - 1
        rest = self.sh_rest[:, :k]
        if rest.shape[1] < k:
            pad = rest.new_zeros(rest.shape[0], k - rest.shape[1], 3)
            rest = torch.cat([rest, pad], dim=1)
        return replace(self, sh_rest=rest)

    def flat_attributes(self) -> Tensor:
        """Per-Gaussian attributes except the position, in the .ply order:
        f_dc (3), f_rest (3K, channel-major as the official code writes it), opacity (1),
        scale (3), rot (4). Shape (N, 11 + 3K)."""
        rest = self.sh_rest.transpose(1, 2).reshape(self.num_gaussians, 3 * self.sh_rest.shape[1])  # (N, 3, K) -> (N, 3K)
        return torch.cat([self.sh_dc, rest, self.opacity_logit[:, None], self.log_scales, self.quats], dim=1)

    @classmethod
    def from_flat_attributes(cls, means: Tensor, flat: Tensor) -> GaussianScene:
        """Inverse of :meth:`flat_attributes`."""
        n_rest3 = flat.shape[1] - 11
        if flat.dim() != 2 or n_rest3 < 0 or n_rest3 % 3:
            raise ShapeError("flat attributes", tuple(flat.shape), "(N, 11 + 3K) with K in {0, 3, 8, 15}")
        k = n_rest3 // 3
        n = flat.shape[0]
        return cls(
            means=means,
            sh_dc=flat[:, 0:3],
            sh_rest=flat[:, 3 : 3 + 3 * k].reshape(n, 3, k).transpose(1, 2),
            opacity_logit=flat[:, 3 + 3 * k],
            log_scales=flat[:, 4 + 3 * k : 7 + 3 * k],
            quats=flat[:, 7 + 3 * k : 11 + 3 * k],
        )

    def check_finite(self, what: str = "Gaussian scene") -> None:
        for name, t in self.tensors().items():
            if not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).sum())
                raise NonFiniteError(f"{what}.{name}", f"{bad} non-finite values", fix="the scene diverged or the file is corrupt; refit or re-export it")

    @staticmethod
    def floats_per_gaussian(sh_degree: int) -> int:
        """Stored floats per Gaussian in the original .ply (with the unused normals)."""
        return 3 + 3 + 3 * SH_COEFFS[sh_degree] + 1 + 3 + 4


def inverse_sigmoid(p: Tensor) -> Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


def random_scene(n: int, sh_degree: int = 3, generator: torch.Generator | None = None, extent: float = 1.0, dtype=torch.float32) -> GaussianScene:
    """A random scene (for tests and fuzzing): means in [-extent, extent]^3, small Gaussians."""
    g = generator
    k = SH_COEFFS[sh_degree] - 1
    return GaussianScene(
        means=(torch.rand(n, 3, generator=g, dtype=dtype) * 2 - 1) * extent,
        sh_dc=torch.randn(n, 3, generator=g, dtype=dtype) * 0.5,
        sh_rest=torch.randn(n, k, 3, generator=g, dtype=dtype) * 0.1,
        opacity_logit=torch.randn(n, generator=g, dtype=dtype),
        log_scales=torch.log(torch.rand(n, 3, generator=g, dtype=dtype) * 0.1 * extent + 0.02 * extent),
        quats=torch.randn(n, 4, generator=g, dtype=dtype),
    )


__all__ = ["GaussianScene", "SH_COEFFS", "sh_degree_from_rest", "inverse_sigmoid", "random_scene"]
