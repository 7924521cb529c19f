"""A differentiable Gaussian rasterizer in pure PyTorch (CPU or any device), and gsplat on CUDA.

Follows the forward pass of the original 3DGS CUDA rasterizer (Kerbl et al. 2023, Sec. 4 and 6;
EWA splatting, Zwicker et al. 2001):

- camera-space mean ``t = R mu + t_cam``; Gaussians with depth ``t_z <= 0.2`` are culled;
- 2D covariance ``Sigma' = J W Sigma W^T J^T + 0.3 I`` (the official low-pass dilation), with
  the Jacobian of the perspective projection and ``t_x/t_z``, ``t_y/t_z`` clamped to
  1.3 x the half field of view, as the official code does;
- per pixel, front to back in depth order: ``alpha_i = min(0.99, o_i exp(-0.5 d^T Sigma'^-1 d))``,
  skipped when ``alpha_i < 1/255`` or the exponent is positive; ``C = sum_i c_i alpha_i T_i +
  T_final * background`` with ``T_i = prod_{j<i} (1 - alpha_j)``; blending stops before a
  Gaussian that would bring the transmittance below 1e-4 (official early stop);
- colour from SH of the direction camera-centre -> mean (``sh.sh_to_rgb``).

Departure (written where it happens): the official code assigns a Gaussian to the 16x16 tiles
its 3-sigma box touches, so pixels outside 3 sigma within an untouched tile never see it. We
test every pixel where ``alpha`` can reach 1/255 (radius ``sqrt(2 ln(255 o) lambda_max)``), so
the image does not depend on a tiling and equals the brute-force per-pixel reference
(:func:`render_reference`) up to float rounding.

Implementation (no tiles, no padding): list every (Gaussian, pixel) pair in the Gaussian's
reach box, drop pairs with ``alpha < 1/255``, sort the pairs by pixel then depth, and composite
with a segmented ``cumsum`` of ``log(1 - alpha)`` per pixel; autograd differentiates it all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from .camera import Camera
from .scene import GaussianScene
from .sh import sh_to_rgb

NEAR = 0.2  # official near-plane cull distance
ALPHA_MIN = 1.0 / 255.0  # official: alphas below this are skipped
ALPHA_MAX = 0.99  # official clamp
T_MIN = 1e-4  # official early-stop transmittance
DILATION = 0.3  # official low-pass filter added to the 2D covariance


@dataclass
class RenderOutput:
    image: Tensor  # (H, W, 3) RGB
    alpha: Tensor  # (H, W) accumulated opacity, 1 - T_final
    weights: Tensor | None  # (N,) sum over pixels of alpha_i T_i (blending weight), if asked for
    visible: Tensor  # (N,) bool: in front of the camera with a valid 2D covariance


def quat_to_rotmat(q: Tensor) -> Tensor:
    """Rotation matrices (N, 3, 3) from quaternions (N, 4) in (w, x, y, z) order (normalised here)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(q.shape[:-1] + (3, 3))


def covariance_3d(log_scales: Tensor, quats: Tensor) -> Tensor:
    """Sigma = R S S^T R^T, (N, 3, 3) (3DGS Eq. 6)."""
    M = quat_to_rotmat(quats) * torch.exp(log_scales)[:, None, :]  # R S
    return M @ M.transpose(1, 2)


@dataclass
class Projected:
    mean2d: Tensor  # (N, 2) pixel coordinates (u, v)
    conic: Tensor  # (N, 3) inverse 2D covariance entries (a, b, c) of [[a, b], [b, c]]
    depth: Tensor  # (N,)
    radius: Tensor  # (N,) conservative pixel radius beyond which alpha < 1/255 (no grad)
    visible: Tensor  # (N,) bool
    opacity: Tensor  # (N,)
    rgb: Tensor  # (N, 3)


def project(scene: GaussianScene, camera: Camera) -> Projected:
    """Project every Gaussian to the image plane (EWA splatting, 3DGS Eq. 5)."""
    R = camera.R.to(scene.means)
    tc = camera.t.to(scene.means)
    p = scene.means @ R.T + tc  # (N, 3) camera space
    z = p[:, 2]
    in_front = z > NEAR
    zs = torch.where(in_front, z, torch.ones_like(z))  # safe divisor for culled Gaussians
    lim_x = 1.3 * 0.5 * camera.width / camera.fx
    lim_y = 1.3 * 0.5 * camera.height / camera.fy
    tx = (p[:, 0] / zs).clamp(-lim_x, lim_x) * zs
    ty = (p[:, 1] / zs).clamp(-lim_y, lim_y) * zs
    zero = torch.zeros_like(zs)
    J = torch.stack(
        [camera.fx / zs, zero, -camera.fx * tx / zs**2, zero, camera.fy / zs, -camera.fy * ty / zs**2], dim=-1
    ).reshape(-1, 2, 3)
    T = J @ R  # (N, 2, 3)
    cov2d = T @ covariance_3d(scene.log_scales, scene.quats) @ T.transpose(1, 2)
    a = cov2d[:, 0, 0] + DILATION
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + DILATION
    det = a * c - b * b
    valid = in_front & (det > 0)
    det_s = torch.where(valid, det, torch.ones_like(det))
    conic = torch.stack([c / det_s, -b / det_s, a / det_s], dim=-1)
    mean2d = torch.stack([camera.fx * p[:, 0] / zs + camera.cx, camera.fy * p[:, 1] / zs + camera.cy], dim=-1)
    opacity = torch.sigmoid(scene.opacity_logit)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt((mid * mid - det).clamp_min(0.0))
        # alpha = o exp(-0.5 r^2 / lambda) < 1/255 beyond r = sqrt(2 ln(255 o) lambda); see module docstring
        reach = torch.log((opacity.clamp_max(ALPHA_MAX) / ALPHA_MIN).clamp_min(1.0))
        radius = torch.sqrt(2 * reach * lam.clamp_min(0)) + 1.0
        valid = valid & (reach > 0)
    cam_center = (-R.T @ tc)
    dirs = scene.means - cam_center
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    rgb = sh_to_rgb(scene.sh, dirs)
    return Projected(mean2d, conic, z, radius, valid, opacity, rgb)


def render(
    scene: GaussianScene,
    camera: Camera,
    background: Tensor | tuple[float, float, float] = (0.0, 0.0, 0.0),
    backend: str = "torch",
    return_weights: bool = False,
) -> RenderOutput:
    """Render ``scene`` from ``camera``: differentiable in every attribute of the scene.

    backend: ``"torch"`` (this file, any device), ``"gsplat"`` (CUDA only; needs the optional
    ``gsplat`` package; no per-Gaussian weights), or ``"auto"`` (gsplat when the scene is on CUDA
    and gsplat imports, else torch).
    """
    if backend not in ("torch", "gsplat", "auto"):
        raise ConfigError("backend", backend, "'torch', 'gsplat' or 'auto'")
    bg = torch.as_tensor(background, dtype=scene.dtype, device=scene.device)
    if bg.shape != (3,):
        raise ShapeError("background", tuple(bg.shape), "(3,) RGB")
    if backend != "torch" and not return_weights:
        from .gsplat_backend import gsplat_available, render_gsplat

        if backend == "gsplat" or (scene.device.type == "cuda" and gsplat_available()):
            image, alpha, visible = render_gsplat(scene, camera, bg)
            return RenderOutput(image, alpha, None, visible)
    return _render_torch(scene, camera, bg, return_weights)


def _render_torch(scene: GaussianScene, camera: Camera, bg: Tensor, return_weights: bool) -> RenderOutput:
    H, W = camera.height, camera.width
    dev, dt = scene.device, scene.dtype
    proj = project(scene, camera)
    with torch.no_grad():
        # every (Gaussian, pixel) pair inside the Gaussian's reach box, clipped to the image
        u, v, r = proj.mean2d[:, 0], proj.mean2d[:, 1], proj.radius
        x_lo = torch.floor(u - r).clamp(0, W).long()
        x_hi = torch.ceil(u + r).clamp(0, W).long()
        y_lo = torch.floor(v - r).clamp(0, H).long()
        y_hi = torch.ceil(v + r).clamp(0, H).long()
        bw = torch.where(proj.visible, x_hi - x_lo, 0)
        bh = torch.where(proj.visible, y_hi - y_lo, 0)
        count = bw * bh
        gid = torch.repeat_interleave(torch.arange(scene.num_gaussians, device=dev), count)
        off = torch.arange(gid.numel(), device=dev) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        px = x_lo[gid] + off % bw[gid].clamp_min(1)
        py = y_lo[gid] + off // bw[gid].clamp_min(1)
        # keep the pairs whose alpha reaches 1/255 (the rule of render_reference)
        dx = px.to(dt) + 0.5 - u[gid]
        dy = py.to(dt) + 0.5 - v[gid]
        cn = proj.conic[gid]
        power = -0.5 * (cn[:, 0] * dx * dx + cn[:, 2] * dy * dy) - cn[:, 1] * dx * dy
        ok = (power <= 0) & (proj.opacity[gid] * torch.exp(power) >= ALPHA_MIN)
        gid, pix = gid[ok], (py * W + px)[ok]
        # sort by pixel, then front to back
        rank = torch.empty(scene.num_gaussians, dtype=torch.long, device=dev)
        rank[torch.argsort(proj.depth, stable=True)] = torch.arange(scene.num_gaussians, device=dev)
        order = torch.argsort(pix * scene.num_gaussians + rank[gid])
        gid, pix = gid[order], pix[order]
        seg_pix, seg_id, seg_len = torch.unique_consecutive(pix, return_inverse=True, return_counts=True)
        seg_start = torch.cumsum(seg_len, 0) - seg_len
    if gid.numel() == 0:
        image = bg.expand(H, W, 3).clone()
        weights = scene.means.new_zeros(scene.num_gaussians) if return_weights else None
        return RenderOutput(image, scene.means.new_zeros(H, W), weights, proj.visible)
    dx = (pix % W).to(dt) + 0.5 - proj.mean2d[gid, 0]
    dy = (pix // W).to(dt) + 0.5 - proj.mean2d[gid, 1]
    cn = proj.conic[gid]
    power = -0.5 * (cn[:, 0] * dx * dx + cn[:, 2] * dy * dy) - cn[:, 1] * dx * dy
    alpha = (proj.opacity[gid] * torch.exp(power)).clamp_max(ALPHA_MAX)  # (pairs,)

    def seg_cumsum(x: Tensor) -> Tensor:
        """Inclusive cumulative sum within each pixel's run (float64 so long runs stay exact)."""
        c = torch.cumsum(x.double(), 0)
        base = (c - x.double())[seg_start][seg_id]
        return (c - base).to(dt)

    log_t = seg_cumsum(torch.log1p(-alpha))  # log transmittance after each Gaussian of the pixel
    # official early stop: a Gaussian that would bring T below 1e-4 and all behind it are skipped
    alpha = torch.where(log_t >= math.log(T_MIN), alpha, torch.zeros_like(alpha))
    log1m = torch.log1p(-alpha)
    log_t = seg_cumsum(log1m)
    w = alpha * torch.exp(log_t - log1m)  # alpha_i T_i, T_i = prod_{j<i} (1 - alpha_j)
    last = seg_start + seg_len - 1
    t_final = scene.means.new_ones(H * W).index_put((seg_pix,), torch.exp(log_t[last]))
    color = scene.means.new_zeros(H * W, 3).index_add(0, pix, w[:, None] * proj.rgb[gid]) + t_final[:, None] * bg
    weights = scene.means.new_zeros(scene.num_gaussians).index_add(0, gid, w) if return_weights else None
    return RenderOutput(color.reshape(H, W, 3), (1 - t_final).reshape(H, W), weights, proj.visible)


def render_reference(scene: GaussianScene, camera: Camera, background=(0.0, 0.0, 0.0)) -> Tensor:
    """Brute-force per-pixel, per-Gaussian loop in float64 (slow; for tests on tiny scenes).

    Written independently of :func:`render` (plain Python loops and 2x2 algebra) from the same
    rules: every Gaussian in front of the near plane is tested at every pixel centre.
    """
    s = scene.detach().to(dtype=torch.float64)
    R = camera.R.double()
    tc = camera.t.double()
    center = -R.T @ tc
    bg = torch.as_tensor(background, dtype=torch.float64)
    lim_x = 1.3 * 0.5 * camera.width / camera.fx
    lim_y = 1.3 * 0.5 * camera.height / camera.fy
    items = []
    for i in range(s.num_gaussians):
        p = R @ s.means[i] + tc
        if p[2] <= NEAR:
            continue
        x, y, z = (float(v) for v in p)
        txz = min(max(x / z, -lim_x), lim_x) * z
        tyz = min(max(y / z, -lim_y), lim_y) * z
        J = torch.tensor([[camera.fx / z, 0.0, -camera.fx * txz / z**2], [0.0, camera.fy / z, -camera.fy * tyz / z**2]], dtype=torch.float64)
        q = s.quats[i] / s.quats[i].norm()
        w_, qx, qy, qz = (float(v) for v in q)
        Rq = torch.tensor(
            [
                [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - w_ * qz), 2 * (qx * qz + w_ * qy)],
                [2 * (qx * qy + w_ * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - w_ * qx)],
                [2 * (qx * qz - w_ * qy), 2 * (qy * qz + w_ * qx), 1 - 2 * (qx * qx + qy * qy)],
            ],
            dtype=torch.float64,
        )
        S = torch.diag(torch.exp(s.log_scales[i]))
        cov3 = Rq @ S @ S @ Rq.T
        cov2 = J @ R @ cov3 @ R.T @ J.T + DILATION * torch.eye(2, dtype=torch.float64)
        if torch.linalg.det(cov2) <= 0:
            continue
        inv = torch.linalg.inv(cov2)
        u = camera.fx * x / z + camera.cx
        v = camera.fy * y / z + camera.cy
        d = s.means[i] - center
        rgb = sh_to_rgb(s.sh[i : i + 1], (d / d.norm())[None])[0]
        items.append((z, u, v, inv, float(torch.sigmoid(s.opacity_logit[i])), rgb))
    items.sort(key=lambda it: it[0])
    img = torch.zeros(camera.height, camera.width, 3, dtype=torch.float64)
    for row in range(camera.height):
        for col in range(camera.width):
            T = 1.0
            c = torch.zeros(3, dtype=torch.float64)
            for _, u, v, inv, o, rgb in items:
                d = torch.tensor([col + 0.5 - u, row + 0.5 - v], dtype=torch.float64)
                power = -0.5 * float(d @ inv @ d)
                if power > 0:
                    continue
                a = min(ALPHA_MAX, o * math.exp(power))
                if a < ALPHA_MIN:
                    continue
                if T * (1 - a) < T_MIN:
                    break
                c = c + rgb * a * T
                T = T * (1 - a)
            img[row, col] = c + T * bg
    return img
