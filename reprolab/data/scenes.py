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


def _sphere_hit(d: np.ndarray, c: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """Ray length and unit normal where rays from the origin along ``d`` (H, W, 3) first hit the sphere (c, r)."""
    b = d @ c  # |t d - c|^2 = r^2 -> t^2 - 2 t (d.c) + |c|^2 - r^2 = 0
    disc = b**2 - (c @ c - r * r)
    t = np.where(disc >= 0, b - np.sqrt(np.maximum(disc, 0)), np.inf)
    n = t[..., None] * d - c
    return t, n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def _box_hit(d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray length and normal where rays from the origin along ``d`` first hit the axis-aligned box [lo, hi] (slabs)."""
    H, W = d.shape[:2]
    t1, t2 = lo / d, hi / d
    tmin, tmax = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = tmin.max(-1), tmax.min(-1)
    t = np.where((t_near <= t_far) & (t_far > 0), t_near, np.inf)
    axis = tmin.argmax(-1)
    n = np.zeros((H, W, 3))
    np.put_along_axis(n, axis[..., None], -np.sign(np.take_along_axis(d, axis[..., None], -1)), -1)
    return t, n


class _ZBuffer:
    """The nearest surface along each ray so far: ray length, normal and surface id per pixel."""

    def __init__(self, H: int, W: int):
        self.t = np.full((H, W), np.inf)
        self.normal = np.zeros((H, W, 3))
        self.id = np.full((H, W), -1, dtype=np.int64)

    def hit(self, t: np.ndarray, n: np.ndarray, k: int) -> None:
        """Keep surface ``k`` (ray lengths ``t``, normals ``n``: per pixel or one vector) where it is nearer."""
        closer = (t > 1e-6) & (t < self.t)
        self.t[closer] = t[closer]
        self.normal[closer] = n[closer] if n.ndim == 3 else n
        self.id[closer] = k


def render_scene(rng: np.random.Generator, config: SceneConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: image (3, H, W) in [0, 1], depth (H, W), instance (H, W)."""
    d_cam = _rays(config)  # (H, W, 3) in camera coordinates
    H, W = d_cam.shape[:2]
    pitch = math.radians(rng.uniform(*config.pitch_deg))  # look down: rotate about x
    rot = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(pitch), -math.sin(pitch)], [0.0, math.sin(pitch), math.cos(pitch)]])
    d = d_cam @ rot.T  # world directions; a point t * d in the world is t * d_cam in the camera
    cam_h = rng.uniform(*config.camera_height)
    wall = rng.uniform(*config.wall_distance)
    zb = _ZBuffer(H, W)
    hit = zb.hit

    with np.errstate(divide="ignore", invalid="ignore"):
        hit(np.where(d[..., 1] < 0, -cam_h / d[..., 1], np.inf), np.array([0.0, 1.0, 0.0]), 0)  # ground y = -cam_h
        hit(wall / d[..., 2], np.array([0.0, 0.0, -1.0]), 1)  # back wall z = wall
        objects = []
        k = 2
        for _ in range(int(rng.integers(0, config.max_spheres + 1))):
            r = rng.uniform(0.35, 1.2)
            c = np.array([rng.uniform(-2.0, 2.0), -cam_h + r, rng.uniform(2.0 + r, max(2.0 + r, 0.7 * wall))])
            hit(*_sphere_hit(d, c, r), k)
            objects.append(k)
            k += 1
        for _ in range(int(rng.integers(0, config.max_boxes + 1))):
            size = rng.uniform(0.4, 1.4, 3)
            lo = np.array([rng.uniform(-2.5, 1.5), -cam_h, rng.uniform(2.0, 0.7 * wall)])
            hit(*_box_hit(d, lo, lo + size), k)
            objects.append(k)
            k += 1

    t_best, normal, inst = zb.t, zb.normal, zb.id
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


# ----------------------------------------------------------------------------- stereo video
# Two rectified views (left, right) at two time steps (t, t+1) of one street-like scene: the camera
# rig moves (ego-motion, a translation), about half the objects move rigidly (a translation each),
# the rest stand still. Every map is exact: depth, disparity = f*B/depth, optical flow t -> t+1 of
# the left view, semantic class, instance id and a per-pixel moving flag.

STEREO_CLASSES = ("ground", "wall", "sphere", "box")  # semantic ids 0..3
STEREO_STUFF = (0, 1)  # ground and wall are stuff
STEREO_THINGS = (2, 3)  # spheres and boxes are things


@dataclass(frozen=True)
class StereoVideoConfig:
    height: int = 64  # image rows
    width: int = 128  # image columns
    fov_deg: float = 60.0  # horizontal field of view
    baseline: float = 0.5  # stereo baseline B (scene units, think metres); the right camera sits at +B along camera x
    objects: tuple[int, int] = (2, 5)  # range (inclusive) of spheres + boxes per scene
    moving_fraction: float = 0.5  # chance that an object moves between t and t+1
    object_speed: tuple[float, float] = (0.35, 0.8)  # range of a moving object's displacement per frame
    ego_speed: tuple[float, float] = (0.3, 0.7)  # range of the rig's forward displacement per frame
    camera_height: tuple[float, float] = (1.3, 1.8)
    pitch_deg: tuple[float, float] = (3.0, 8.0)  # downward tilt
    wall_distance: tuple[float, float] = (14.0, 20.0)  # range of the back wall's z at t
    noise: float = 0.01  # std of Gaussian pixel noise, drawn independently per view

    def __post_init__(self) -> None:
        if self.height < 8 or self.width < 8:
            raise ConfigError("height/width", (self.height, self.width), "at least 8 pixels each")
        if not 1.0 <= self.fov_deg <= 150.0:
            raise ConfigError("fov_deg", self.fov_deg, "a field of view in [1, 150] degrees")
        if not self.baseline > 0:
            raise ConfigError("baseline", self.baseline, "a stereo baseline > 0")
        if not 0 <= self.objects[0] <= self.objects[1]:
            raise ConfigError("objects", self.objects, "a range (lo, hi) with 0 <= lo <= hi")
        if not 0.0 <= self.moving_fraction <= 1.0:
            raise ConfigError("moving_fraction", self.moving_fraction, "a probability in [0, 1]")
        if not 6.0 < self.wall_distance[0] <= self.wall_distance[1]:
            raise ConfigError("wall_distance", self.wall_distance, "a range (lo, hi) with 6 < lo <= hi")

    @property
    def focal(self) -> float:
        """Focal length in pixels (square pixels)."""
        return 0.5 * self.width / math.tan(math.radians(self.fov_deg) / 2)


@dataclass
class StereoVideo:
    """N stereo-video scenes; arrays are numpy, index 0 is the scene. Left view at t unless named.

    Images are float32 (N, 3, H, W) in [0, 1]; maps are (N, H, W).
    """

    left0: np.ndarray  # left image at t
    right0: np.ndarray  # right image at t
    left1: np.ndarray  # left image at t+1
    right1: np.ndarray  # right image at t+1
    depth0: np.ndarray  # float32, camera z of the left view at t
    depth1: np.ndarray  # float32, left view at t+1
    disparity0: np.ndarray  # float32, f*B/depth0 (pixels; the match of left pixel x is right pixel x - d)
    disparity1: np.ndarray  # float32, f*B/depth1
    flow: np.ndarray  # float32 (N, 2, H, W): (du, dv) taking a left-t pixel to its position at t+1
    flow_valid: np.ndarray  # bool: the flow's target is inside the image and visible (not occluded) at t+1
    semantic: np.ndarray  # int64 class id (STEREO_CLASSES) of the left view at t
    instance: np.ndarray  # int64: 0 on stuff, 1..k on the k objects
    moving: np.ndarray  # bool: the pixel's surface moves in the world between t and t+1
    objects: list[list[dict]]  # per scene, per instance id 1..k: {"id", "class", "moving", "velocity"}
    focal: float
    baseline: float

    def __len__(self) -> int:
        return len(self.left0)


def _cast(origin: np.ndarray, d: np.ndarray, ground_y: float, wall_z: float, objects: list[dict], shift: int):
    """Ray-cast from ``origin`` along world directions ``d`` (H, W, 3): ray length, normal, surface id.

    Surface ids: 0 ground, 1 wall, 2.. the objects (``objects[i]`` at its current ``pos``); ``shift``
    selects the object positions of frame 0 or 1.
    """
    H, W = d.shape[:2]
    zb = _ZBuffer(H, W)
    hit = zb.hit

    with np.errstate(divide="ignore", invalid="ignore"):
        hit(np.where(d[..., 1] < 0, (ground_y - origin[1]) / d[..., 1], np.inf), np.array([0.0, 1.0, 0.0]), 0)
        hit((wall_z - origin[2]) / d[..., 2], np.array([0.0, 0.0, -1.0]), 1)
        for k, ob in enumerate(objects, start=2):
            pos = ob["pos"] + shift * ob["velocity"]
            if ob["kind"] == "sphere":
                hit(*_sphere_hit(d, pos - origin, ob["radius"]), k)
            else:
                hit(*_box_hit(d, pos - origin, pos + ob["size"] - origin), k)
    return zb.t, zb.normal, zb.id


def render_stereo_video(rng: np.random.Generator, config: StereoVideoConfig) -> dict:
    """One stereo-video scene as a dict of numpy arrays (the fields of :class:`StereoVideo`, unbatched).

    World frame: y up, the ground at ``y = -camera_height``, the back wall at ``z = wall``; the rig
    starts at the origin and translates by ``ego`` between t and t+1; the camera is pitched down
    (rotation about x, the same at both times). Objects move by a pure translation, so their
    shading (Lambertian, one directional light) is the same at both times, and their textures
    live in object coordinates: a static surface point has the same colour in every view.
    """
    d_cam = _rays(SceneConfig(height=config.height, width=config.width, fov_deg=config.fov_deg))
    H, W = d_cam.shape[:2]
    f = config.focal
    pitch = math.radians(rng.uniform(*config.pitch_deg))
    rot = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(pitch), -math.sin(pitch)], [0.0, math.sin(pitch), math.cos(pitch)]])
    d = d_cam @ rot.T
    cam_h = rng.uniform(*config.camera_height)
    wall = rng.uniform(*config.wall_distance)
    ego = np.array([rng.uniform(-0.1, 0.1), 0.0, rng.uniform(*config.ego_speed)])
    right_offset = rot @ np.array([config.baseline, 0.0, 0.0])
    objects = []
    for _ in range(int(rng.integers(config.objects[0], config.objects[1] + 1))):
        z = rng.uniform(4.0, 0.75 * wall)
        x = rng.uniform(-0.45, 0.45) * z
        moving = bool(rng.random() < config.moving_fraction)
        speed = rng.uniform(*config.object_speed) if moving else 0.0
        heading = rng.uniform(-0.5, 0.5) + (0.0 if rng.random() < 0.5 else math.pi)  # mostly across the view
        vel = speed * np.array([math.cos(heading), 0.0, math.sin(heading)])
        if rng.random() < 0.5:
            r = rng.uniform(0.5, 1.0)
            objects.append({"kind": "sphere", "class": 2, "radius": r, "pos": np.array([x, -cam_h + r, z]), "velocity": vel,
                            "moving": moving})
        else:
            size = rng.uniform(0.7, 1.6, 3)
            objects.append({"kind": "box", "class": 3, "size": size, "pos": np.array([x - size[0] / 2, -cam_h, z]),
                            "velocity": vel, "moving": moving})
    light = np.array([rng.uniform(-0.6, 0.6), 1.0, rng.uniform(-0.9, -0.2)])
    light /= np.linalg.norm(light)
    looks = [(rng.uniform(0.15, 0.95, 3), rng.uniform(0.15, 0.95, 3), int(rng.integers(0, 3)), rng.uniform(0.3, 0.9),
              int(rng.integers(0, 3))) for _ in range(2 + len(objects))]
    looks_waves = [(rng.normal(0.0, 6.0, (3, 3)), rng.uniform(0, 2 * math.pi, 3)) for _ in range(2 + len(objects))]

    def shade(origin: np.ndarray, shift: int):
        t, normal, surf = _cast(origin, d, -cam_h, wall, objects, shift)
        points = origin + t[..., None] * d
        image = np.zeros((H, W, 3))
        sh = 0.35 + 0.65 * np.clip(normal @ light, 0.0, 1.0)
        for s in range(2 + len(objects)):
            m = surf == s
            if not m.any():
                continue
            base, alt, kind, period, axis = looks[s]
            local = points[m] - (objects[s - 2]["pos"] + shift * objects[s - 2]["velocity"] if s >= 2 else 0.0)
            waves, phases = looks_waves[s]
            fine = 0.5 + 0.5 * np.sin(local @ waves.T + phases).mean(-1)  # every surface carries fine texture
            if kind == 0:
                pattern = fine
            else:
                q = np.floor(local / period).astype(np.int64)
                pattern = 0.7 * ((q.sum(-1) if kind == 1 else q[:, axis]) % 2).astype(np.float64) + 0.3 * fine
            image[m] = (pattern[:, None] * base + (1 - pattern[:, None]) * alt) * sh[m][:, None]
        image = np.clip(image + config.noise * rng.standard_normal(image.shape), 0.0, 1.0)
        return image.transpose(2, 0, 1).astype(np.float32), t * d_cam[..., 2], surf, points

    o0, o1 = np.zeros(3), ego
    left0, depth0, surf0, points0 = shade(o0, 0)
    right0, _, _, _ = shade(o0 + right_offset, 0)
    left1, depth1, surf1, _ = shade(o1, 1)
    right1, _, _, _ = shade(o1 + right_offset, 1)
    # exact flow: move each visible point with its surface, project into the left camera at t+1
    vel = np.stack([np.zeros(3), np.zeros(3)] + [ob["velocity"] for ob in objects])
    moved = points0 + vel[surf0]
    cam1 = (moved - o1) @ rot  # camera coordinates at t+1 (rot's columns are the camera axes)
    u0 = np.arange(W)[None, :] + np.zeros((H, 1))
    v0 = np.arange(H)[:, None] + np.zeros((1, W))
    u1 = f * cam1[..., 0] / cam1[..., 2] + W / 2 - 0.5
    v1 = H / 2 - 0.5 - f * cam1[..., 1] / cam1[..., 2]
    flow = np.stack([u1 - u0, v1 - v0]).astype(np.float32)
    ui, vi = np.rint(u1).astype(np.int64), np.rint(v1).astype(np.int64)
    inside = (cam1[..., 2] > 1e-6) & (ui >= 0) & (ui < W) & (vi >= 0) & (vi < H)
    uc, vc = np.clip(ui, 0, W - 1), np.clip(vi, 0, H - 1)
    seen = (surf1[vc, uc] == surf0) & (np.abs(depth1[vc, uc] - cam1[..., 2]) < 0.05 * cam1[..., 2])
    semantic = np.where(surf0 >= 2, np.array([0, 1] + [ob["class"] for ob in objects])[surf0], surf0)
    instance = np.where(surf0 >= 2, surf0 - 1, 0)
    moving = np.array([False, False] + [ob["moving"] for ob in objects])[surf0]
    meta = [{"id": i + 1, "class": ob["class"], "moving": ob["moving"], "velocity": ob["velocity"].tolist()}
            for i, ob in enumerate(objects)]
    return {
        "left0": left0, "right0": right0, "left1": left1, "right1": right1,
        "depth0": depth0.astype(np.float32), "depth1": depth1.astype(np.float32),
        "disparity0": (f * config.baseline / depth0).astype(np.float32), "disparity1": (f * config.baseline / depth1).astype(np.float32),
        "flow": flow, "flow_valid": inside & seen, "semantic": semantic.astype(np.int64), "instance": instance.astype(np.int64),
        "moving": moving, "objects": meta,
    }


def make_stereo_video(n: int, config: StereoVideoConfig | None = None, seed: int = 0) -> StereoVideo:
    """``n`` stereo-video scenes, deterministic in ``seed`` (scene ``i`` depends only on ``seed`` and ``i``)."""
    config = config or StereoVideoConfig()
    if n < 1:
        raise ConfigError("n", n, "a count >= 1")
    scenes = [render_stereo_video(np.random.default_rng([seed, i, 29]), config) for i in range(n)]
    fields = {k: np.stack([s[k] for s in scenes]) for k in scenes[0] if k != "objects"}
    return StereoVideo(**fields, objects=[s["objects"] for s in scenes], focal=config.focal, baseline=config.baseline)
