"""Pinhole cameras in the convention of COLMAP and the original 3DGS (OpenCV axes: x right,
y down, z forward), with helpers to place them around a scene."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: ``x_cam = R @ x_world + t``; pixel ``u = fx * x/z + cx``, ``v = fy * y/z + cy``.

    Pixel (i, j) covers [j, j+1) x [i, i+1) in (u, v), so its centre is (j + 0.5, i + 0.5).
    """

    R: Tensor  # (3, 3) world -> camera rotation
    t: Tensor  # (3,) world -> camera translation
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if tuple(self.R.shape) != (3, 3):
            raise ShapeError("Camera.R", tuple(self.R.shape), "(3, 3)")
        if tuple(self.t.shape) != (3,):
            raise ShapeError("Camera.t", tuple(self.t.shape), "(3,)")
        if not (self.width > 0 and self.height > 0):
            raise ConfigError("width/height", (self.width, self.height), "positive image size in pixels")
        if not (self.fx > 0 and self.fy > 0):
            raise ConfigError("fx/fy", (self.fx, self.fy), "positive focal lengths in pixels")
        if not (torch.isfinite(self.R).all() and torch.isfinite(self.t).all()):
            raise ConfigError("Camera.R/t", "non-finite", "finite pose values")

    @property
    def center(self) -> Tensor:
        """Camera centre in world coordinates, -R^T t."""
        return -self.R.T @ self.t

    @property
    def viewmat(self) -> Tensor:
        """(4, 4) world-to-camera matrix."""
        m = torch.eye(4, dtype=self.R.dtype, device=self.R.device)
        m[:3, :3] = self.R
        m[:3, 3] = self.t
        return m

    @property
    def K(self) -> Tensor:
        return torch.tensor([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=self.R.dtype, device=self.R.device)

    def to(self, device=None, dtype=None) -> Camera:
        return Camera(self.R.to(device=device, dtype=dtype), self.t.to(device=device, dtype=dtype), self.fx, self.fy, self.cx, self.cy, self.width, self.height)

    def as_dict(self) -> dict:
        return {"R": self.R.tolist(), "t": self.t.tolist(), "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, d: dict) -> Camera:
        try:
            return cls(torch.tensor(d["R"], dtype=torch.float32), torch.tensor(d["t"], dtype=torch.float32), float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]), int(d["width"]), int(d["height"]))
        except KeyError as e:
            raise ConfigError("camera", sorted(d), f"a dict with R, t, fx, fy, cx, cy, width, height (missing {e})") from None


def look_at(eye, target, up=(0.0, 0.0, 1.0), width: int = 64, height: int = 64, fov_deg: float = 50.0, dtype=torch.float32) -> Camera:
    """A camera at ``eye`` looking at ``target``; ``up`` is the world up (image y points down)."""
    eye, target, up = (torch.as_tensor(v, dtype=torch.float64) for v in (eye, target, up))
    f = target - eye
    f = f / f.norm()
    r = torch.linalg.cross(f, up)
    if r.norm() < 1e-8:
        raise ConfigError("up", tuple(up.tolist()), "a direction not parallel to the viewing direction")
    r = r / r.norm()
    d = torch.linalg.cross(f, r)  # image down
    R = torch.stack([r, d, f])  # rows: camera x, y, z axes in world
    t = -R @ eye
    focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return Camera(R.to(dtype), t.to(dtype), focal, focal, width / 2, height / 2, width, height)


def orbit_cameras(n: int, radius: float, heights: tuple[float, ...] = (0.6, 1.2), target=(0.0, 0.0, 0.0), width: int = 64, height: int = 64, fov_deg: float = 50.0, phase: float = 0.0) -> list[Camera]:
    """``n`` cameras on rings around ``target`` (z up), alternating over ``heights``, all looking at it."""
    cams = []
    for i in range(n):
        a = 2 * math.pi * i / n + phase
        h = heights[i % len(heights)]
        eye = (target[0] + radius * math.cos(a), target[1] + radius * math.sin(a), target[2] + h)
        cams.append(look_at(eye, target, width=width, height=height, fov_deg=fov_deg))
    return cams
