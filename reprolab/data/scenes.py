"""Synthetic 3-D scenes rendered with exact per-pixel depth (for depth estimation, segmentation, ...).

Each scene is ray-cast analytically (no mesh, no rasteriser, so depth is exact to float
precision): a pinhole camera at the origin looking down +z (y up) sees a ground plane
``y = -camera_height``, a back wall ``z = wall_distance`` (so every ray hits something), and a
few spheres and axis-aligned boxes resting on the ground; the camera is tilted down by a random pitch. Every surface gets a random base
colour and a procedural texture in world coordinates (checkerboard, stripes or plain), and
Lambertian shading from one directional light plus ambient, so the image carries the usual
monocular cues: perspective of the ground's texture, occlusion, shading, relative size.

``depth`` is the camera-space z of the first hit (what Marigold and most depth benchmarks
call depth), in scene units (think metres); ``instance`` is the index of the surface hit
(0 ground, 1 wall, 2.. objects).

    from reprolab.data.scenes import SceneConfig, make_scenes
    scenes = make_scenes(256, SceneConfig(height=32, width=32), seed=0)
    scenes.images   # float32 (N, 3, H, W) in [0, 1]
    scenes.depth    # float32 (N, 1, H, W), > 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class SceneConfig:
    height: int = 32  # image rows
    width: int = 32  # image columns
    fov_deg: float = 60.0  # horizontal field of view of the pinhole camera
    max_spheres: int = 3  # 0..max_spheres spheres per scene
    max_boxes: int = 2  # 0..max_boxes boxes per scene
    camera_height: tuple[float, float] = (0.8, 2.0)  # range of the camera's height above the ground
    pitch_deg: tuple[float, float] = (5.0, 25.0)  # range of the camera's downward tilt
    wall_distance: tuple[float, float] = (6.0, 14.0)  # range of the back wall's z
    noise: float = 0.01  # std of Gaussian pixel noise added to the image

    def __post_init__(self) -> None:
        if self.height < 2 or self.width < 2:
            raise ConfigError("height/width", (self.height, self.width), "at least 2 pixels each")
        if not 1.0 <= self.fov_deg <= 150.0:
            raise ConfigError("fov_deg", self.fov_deg, "a field of view in [1, 150] degrees")
        if self.max_spheres < 0 or self.max_boxes < 0:
            raise ConfigError("max_spheres/max_boxes", (self.max_spheres, self.max_boxes), "counts >= 0")
        lo, hi = self.wall_distance
        if not 2.0 < lo <= hi:
            raise ConfigError("wall_distance", self.wall_distance, "a range (lo, hi) with 2 < lo <= hi")


@dataclass
class Scenes:
    images: torch.Tensor  # (N, 3, H, W) float32 in [0, 1]
    depth: torch.Tensor  # (N, 1, H, W) float32, camera-space z of the first hit
    instance: torch.Tensor  # (N, 1, H, W) int64, 0 ground, 1 wall, 2.. objects

    def __len__(self) -> int:
        return len(self.images)


def _rays(config: SceneConfig) -> np.ndarray:
    """Unit ray directions (H, W, 3) through pixel centres, in camera coordinates: z forward, y up."""
    f = 0.5 * config.width / math.tan(math.radians(config.fov_deg) / 2)
    u = np.arange(config.width) + 0.5 - config.width / 2
    v = config.height / 2 - (np.arange(config.height) + 0.5)
    d = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.full((1, 1), f)), -1).astype(np.float64)
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _texture(rng: np.random.Generator, points: np.ndarray, kind: int, period: float) -> np.ndarray:
    """A scalar pattern in [0, 1] at world points (..., 3): 0 plain, 1 checkerboard, 2 stripes."""
    if kind == 0:
        return np.ones(points.shape[:-1])
    q = np.floor(points / period).astype(np.int64)
    if kind == 1:
        return ((q[..., 0] + q[..., 1] + q[..., 2]) % 2).astype(np.float64)
    axis = int(rng.integers(0, 3))
    return (q[..., axis] % 2).astype(np.float64)


def render_scene(rng: np.random.Generator, config: SceneConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: image (3, H, W) in [0, 1], depth (H, W), instance (H, W)."""
    d_cam = _rays(config)  # (H, W, 3) in camera coordinates
    H, W = d_cam.shape[:2]
    pitch = math.radians(rng.uniform(*config.pitch_deg))  # look down: rotate about x
    rot = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(pitch), -math.sin(pitch)], [0.0, math.sin(pitch), math.cos(pitch)]])
    d = d_cam @ rot.T  # world directions; a point t * d in the world is t * d_cam in the camera
    cam_h = rng.uniform(*config.camera_height)
    wall = rng.uniform(*config.wall_distance)
    t_best = np.full((H, W), np.inf)
    normal = np.zeros((H, W, 3))
    inst = np.full((H, W), -1, dtype=np.int64)

    def hit(t: np.ndarray, n: np.ndarray, k: int) -> None:
        closer = (t > 1e-6) & (t < t_best)
        t_best[closer] = t[closer]
        normal[closer] = n[closer] if n.ndim == 3 else n
        inst[closer] = k

    with np.errstate(divide="ignore", invalid="ignore"):
        hit(np.where(d[..., 1] < 0, -cam_h / d[..., 1], np.inf), np.array([0.0, 1.0, 0.0]), 0)  # ground y = -cam_h
        hit(wall / d[..., 2], np.array([0.0, 0.0, -1.0]), 1)  # back wall z = wall
        objects = []
        k = 2
        for _ in range(int(rng.integers(0, config.max_spheres + 1))):
            r = rng.uniform(0.35, 1.2)
            c = np.array([rng.uniform(-2.0, 2.0), -cam_h + r, rng.uniform(2.0 + r, max(2.0 + r, 0.7 * wall))])
            b = d @ c  # ray o=0: |t d - c|^2 = r^2 -> t^2 - 2 t (d.c) + |c|^2 - r^2 = 0
            disc = b**2 - (c @ c - r * r)
            t = np.where(disc >= 0, b - np.sqrt(np.maximum(disc, 0)), np.inf)
            n = t[..., None] * d - c
            hit(t, n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12), k)
            objects.append(k)
            k += 1
        for _ in range(int(rng.integers(0, config.max_boxes + 1))):
            size = rng.uniform(0.4, 1.4, 3)
            lo = np.array([rng.uniform(-2.5, 1.5), -cam_h, rng.uniform(2.0, 0.7 * wall)])
            hi = lo + size
            t1, t2 = lo / d, hi / d  # slabs, o = 0
            tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
            t_near, t_far = tmin.max(-1), tmax.min(-1)
            t = np.where((t_near <= t_far) & (t_far > 0), t_near, np.inf)
            axis = tmin.argmax(-1)
            n = np.zeros((H, W, 3))
            np.put_along_axis(n, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
            hit(t, n, k)
            objects.append(k)
            k += 1

    points = t_best[..., None] * d
    depth = t_best * d_cam[..., 2]  # camera-space z of the hit
    light = np.array([rng.uniform(-0.6, 0.6), 1.0, rng.uniform(-0.9, -0.2)])
    light /= np.linalg.norm(light)
    shade = 0.35 + 0.65 * np.clip(normal @ light, 0.0, 1.0)
    image = np.zeros((H, W, 3))
    for s in range(k):
        m = inst == s
        if not m.any():
            continue
        base, alt = rng.uniform(0.15, 0.95, 3), rng.uniform(0.15, 0.95, 3)
        pattern = _texture(rng, points[m], int(rng.integers(0, 3)), rng.uniform(0.3, 1.0))
        image[m] = (pattern[:, None] * base + (1 - pattern[:, None]) * alt) * shade[m][:, None]
    image = np.clip(image + config.noise * rng.standard_normal(image.shape), 0.0, 1.0)
    return image.transpose(2, 0, 1).astype(np.float32), depth.astype(np.float32), inst


def make_scenes(n: int, config: SceneConfig | None = None, seed: int = 0) -> Scenes:
    """``n`` scenes, deterministic in ``seed`` (scene ``i`` depends only on ``seed`` and ``i``)."""
    config = config or SceneConfig()
    if n < 0:
        raise ConfigError("n", n, "a count >= 0")
    imgs, depths, insts = [], [], []
    for i in range(n):
        img, dep, ins = render_scene(np.random.default_rng([seed, i]), config)
        imgs.append(img)
        depths.append(dep)
        insts.append(ins)
    if n == 0:
        H, W = config.height, config.width
        return Scenes(torch.zeros(0, 3, H, W), torch.zeros(0, 1, H, W), torch.zeros(0, 1, H, W, dtype=torch.int64))
    return Scenes(torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(depths))[:, None], torch.from_numpy(np.stack(insts))[:, None])
