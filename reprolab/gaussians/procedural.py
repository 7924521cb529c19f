"""A procedural test scene for 3DGS work, ray traced analytically (no 3DGS involved).

No real 3DGS scenes exist offline, so the 3D papers fit an original 3DGS to multi-view images of
this scene. It is a textured ground square (checkerboard) with three textured spheres (stripes,
a spherical checker, a plain glossy one), lit by one directional light with Lambert diffuse and
Blinn-Phong specular shading, so colour is view-dependent and SH of degree > 0 has something to
fit. The background is black (no sky). Ground-truth images are super-sampled (``ss`` x ``ss``
rays per pixel, box filter), so they are anti-aliased like photographs.

``surface_points`` samples points on the surfaces with their albedo: the stand-in for the SfM
point cloud that initialises 3DGS (Kerbl et al. 2023, Sec. 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .camera import Camera, orbit_cameras

GROUND_HALF = 1.4  # the ground square is [-1.4, 1.4]^2 at z = 0
SPHERES = (  # centre (x, y, z), radius, texture
    ((0.35, 0.35, 0.45), 0.45, "stripes"),
    ((-0.55, -0.25, 0.32), 0.32, "checker"),
    ((0.45, -0.6, 0.25), 0.25, "glossy"),
)
# a second layout for studies that need more than one scene: five smaller spheres, other textures
SPHERES_B = (
    ((-0.6, 0.55, 0.3), 0.3, "stripes"),
    ((0.0, 0.0, 0.4), 0.4, "glossy"),
    ((0.65, 0.35, 0.22), 0.22, "checker"),
    ((0.3, -0.7, 0.28), 0.28, "checker"),
    ((-0.55, -0.5, 0.18), 0.18, "stripes"),
)
SCENES = {"three_spheres": SPHERES, "five_spheres": SPHERES_B}
LIGHT = (0.4, 0.3, 0.87)  # direction towards the light (normalised below)
TARGET = (0.0, 0.0, 0.3)  # cameras look here


@dataclass(frozen=True)
class ProceduralViews:
    cameras: list[Camera]
    images: Tensor  # (V, H, W, 3) in [0, 1]


def _albedo(kind: str, p: Tensor, n: Tensor) -> Tensor:
    """Albedo (M, 3) of surface points ``p`` with normals ``n`` for each texture kind."""
    if kind == "ground":
        c = (torch.floor(p[:, 0] / 0.35) + torch.floor(p[:, 1] / 0.35)) % 2
        a, b = torch.tensor([0.85, 0.8, 0.7]), torch.tensor([0.25, 0.3, 0.4])
        return a * c[:, None] + b * (1 - c[:, None])
    if kind == "stripes":
        lat = torch.asin(n[:, 2].clamp(-1, 1))
        c = (torch.sin(lat * 9) > 0).float()
        return torch.tensor([0.9, 0.2, 0.15]) * c[:, None] + torch.tensor([0.95, 0.8, 0.2]) * (1 - c[:, None])
    if kind == "checker":
        lon = torch.atan2(n[:, 1], n[:, 0])
        lat = torch.asin(n[:, 2].clamp(-1, 1))
        c = (torch.floor(lon / (math.pi / 4)) + torch.floor(lat / (math.pi / 6))) % 2
        return torch.tensor([0.15, 0.3, 0.85]) * c[:, None] + torch.tensor([0.9, 0.9, 0.95]) * (1 - c[:, None])
    return torch.tensor([0.2, 0.7, 0.3]).expand(p.shape[0], 3)


def _shade(kind: str, p: Tensor, n: Tensor, view: Tensor) -> Tensor:
    light = torch.tensor(LIGHT)
    light = light / light.norm()
    diffuse = (n @ light).clamp_min(0)
    h = light - view  # view points from camera to surface
    h = h / h.norm(dim=-1, keepdim=True)
    shininess, ks = (60.0, 0.6) if kind == "glossy" else (20.0, 0.15)
    spec = ks * (n * h).sum(-1).clamp_min(0) ** shininess
    return (_albedo(kind, p, n) * (0.25 + 0.75 * diffuse[:, None]) + spec[:, None]).clamp(0, 1)


def trace(origins: Tensor, dirs: Tensor, spheres=SPHERES) -> Tensor:
    """Colours (M, 3) of rays (float32, (M, 3) each; ``dirs`` unit length)."""
    m = origins.shape[0]
    best_t = torch.full((m,), float("inf"))
    best_kind = torch.full((m,), -1, dtype=torch.long)
    best_n = torch.zeros(m, 3)
    # ground plane z = 0, inside the square
    t = -origins[:, 2] / torch.where(dirs[:, 2].abs() > 1e-9, dirs[:, 2], torch.full_like(dirs[:, 2], 1e-9))
    hit = origins + t[:, None] * dirs
    ok = (t > 1e-4) & (hit[:, 0].abs() <= GROUND_HALF) & (hit[:, 1].abs() <= GROUND_HALF)
    best_t = torch.where(ok, t, best_t)
    best_kind = torch.where(ok, 0, best_kind)
    best_n[ok] = torch.tensor([0.0, 0.0, 1.0])
    for k, (c, r, _) in enumerate(spheres, start=1):
        oc = origins - torch.tensor(c)
        b = (oc * dirs).sum(-1)
        disc = b * b - ((oc * oc).sum(-1) - r * r)
        t = -b - torch.sqrt(disc.clamp_min(0))
        ok = (disc > 0) & (t > 1e-4) & (t < best_t)
        best_t = torch.where(ok, t, best_t)
        best_kind = torch.where(ok, k, best_kind)
        nrm = (oc + t[:, None] * dirs) / r
        best_n[ok] = nrm[ok]
    out = torch.zeros(m, 3)
    p = origins + best_t.clamp_max(1e6)[:, None] * dirs
    for k, kind in enumerate(["ground"] + [s[2] for s in spheres]):
        sel = best_kind == k
        if sel.any():
            out[sel] = _shade(kind, p[sel], best_n[sel], dirs[sel])
    return out


def render_procedural(camera: Camera, ss: int = 3, spheres=SPHERES) -> Tensor:
    """The ground-truth image (H, W, 3) of the procedural scene seen by ``camera``."""
    H, W = camera.height, camera.width
    R = camera.R.double()
    sub = (torch.arange(ss, dtype=torch.float64) + 0.5) / ss
    jj, ii = torch.meshgrid(torch.arange(W, dtype=torch.float64), torch.arange(H, dtype=torch.float64), indexing="xy")
    u = (jj[..., None, None] + sub[None, None, None, :]).expand(H, W, ss, ss)
    v = (ii[..., None, None] + sub[None, None, :, None]).expand(H, W, ss, ss)
    d_cam = torch.stack([(u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy, torch.ones_like(u)], dim=-1).reshape(-1, 3)
    d = d_cam @ R  # camera -> world: R^T d
    d = d / d.norm(dim=-1, keepdim=True)
    o = (-R.T @ camera.t.double()).expand_as(d)
    colours = trace(o.float(), d.float(), spheres)
    return colours.reshape(H, W, ss * ss, 3).mean(2)


def procedural_views(n_views: int, size: int = 64, radius: float = 2.6, heights=(1.0, 1.8, 0.6), phase: float = 0.0, fov_deg: float = 50.0, ss: int = 3, spheres=SPHERES) -> ProceduralViews:
    """``n_views`` cameras on rings around the scene and their ground-truth images (``spheres``:
    the layout, e.g. ``SCENES["five_spheres"]``)."""
    cams = orbit_cameras(n_views, radius, heights=tuple(heights), target=TARGET, width=size, height=size, fov_deg=fov_deg, phase=phase)
    return ProceduralViews(cams, torch.stack([render_procedural(c, ss, spheres) for c in cams]))


def surface_points(n: int, generator: torch.Generator | None = None, spheres=SPHERES) -> tuple[Tensor, Tensor]:
    """``n`` points spread over the surfaces by area, with their albedo: (n, 3) positions, (n, 3) colours."""
    g = generator
    areas = [(2 * GROUND_HALF) ** 2] + [4 * math.pi * r * r for _, r, _ in spheres]
    probs = torch.tensor(areas) / sum(areas)
    which = torch.multinomial(probs, n, replacement=True, generator=g)
    pts, cols = torch.zeros(n, 3), torch.zeros(n, 3)
    sel = which == 0
    k = int(sel.sum())
    p = torch.cat([(torch.rand(k, 2, generator=g) * 2 - 1) * GROUND_HALF, torch.zeros(k, 1)], dim=1)
    pts[sel], cols[sel] = p, _albedo("ground", p, torch.tensor([[0.0, 0.0, 1.0]]).expand(k, 3))
    for i, (c, r, kind) in enumerate(spheres, start=1):
        sel = which == i
        k = int(sel.sum())
        nrm = torch.randn(k, 3, generator=g)
        nrm = nrm / nrm.norm(dim=-1, keepdim=True)
        p = torch.tensor(c) + r * nrm
        pts[sel], cols[sel] = p, _albedo(kind, p, nrm)
    return pts, cols
