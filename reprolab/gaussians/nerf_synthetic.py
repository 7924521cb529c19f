"""Read NeRF-synthetic (Blender) ``transforms_*.json`` files with their images, as the original
3DGS does (``readCamerasFromTransforms`` in ``scene/dataset_readers.py``).

The file holds ``camera_angle_x`` (horizontal field of view, radians) and ``frames``, each with a
``file_path`` (relative to the json's folder, usually without extension: ``./train/r_0`` means
``train/r_0.png``) and a ``transform_matrix`` (4x4 camera-to-world in OpenGL/Blender axes: y up,
z backwards). Like 3DGS we flip the y and z camera axes to reach OpenCV axes and invert to
world-to-camera; fx = fy = W / (2 tan(camera_angle_x / 2)), principal point at the image centre.
Instant-NGP style files with ``fl_x``/``fl_y``/``cx``/``cy`` (top level or per frame) use those.
RGBA images are composited over ``background`` (3DGS: white with ``--white_background``, which
the NeRF-synthetic scenes are trained with; our default is white). Anything malformed raises
:class:`~reprolab.errors.MalformedFile` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import MalformedFile
from ..runtime import atomic_write_bytes, readable_file
from .camera import Camera

_FIX = "pass a NeRF-synthetic transforms_*.json (camera_angle_x, frames[].file_path, frames[].transform_matrix) next to its images"
_EXTS = ("", ".png", ".jpg", ".jpeg", ".PNG", ".JPG")


def _number(name: str, d: dict, key: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise MalformedFile(name, f"{key} is {v!r}, not a finite number", fix=_FIX)
    return float(v)


def parse_transforms(raw: bytes, name: str = "transforms.json") -> tuple[dict, list[dict]]:
    """Validate a transforms json's text: (top-level dict, frames) with matrices as float64 arrays."""
    try:
        d = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise MalformedFile(name, f"is not JSON ({type(e).__name__}: {str(e)[:80]})", fix=_FIX) from None
    if not isinstance(d, dict):
        raise MalformedFile(name, f"holds a {type(d).__name__}, not an object", fix=_FIX)
    frames = d.get("frames")
    if not isinstance(frames, list) or not frames:
        raise MalformedFile(name, "has no non-empty 'frames' list", fix=_FIX)
    if "fl_x" not in d and "camera_angle_x" not in d and not all(isinstance(f, dict) and "fl_x" in f for f in frames):
        raise MalformedFile(name, "has neither camera_angle_x nor fl_x", fix=_FIX)
    if "camera_angle_x" in d and not 0 < _number(name, d, "camera_angle_x") < math.pi:
        raise MalformedFile(name, f"camera_angle_x {d['camera_angle_x']!r} is not an angle in (0, pi) radians", fix=_FIX)
    out = []
    for i, f in enumerate(frames):
        if not isinstance(f, dict) or not isinstance(f.get("file_path"), str) or not f["file_path"]:
            raise MalformedFile(name, f"frame {i} has no file_path string", fix=_FIX)
        try:
            m = np.asarray(f.get("transform_matrix"), dtype=np.float64)
        except (TypeError, ValueError):
            m = np.zeros(0)
        if m.shape != (4, 4) or not np.isfinite(m).all():
            raise MalformedFile(name, f"frame {i} ({f['file_path']}) has no finite 4x4 transform_matrix", fix=_FIX)
        if abs(np.linalg.det(m[:3, :3])) < 1e-6:
            raise MalformedFile(name, f"frame {i} ({f['file_path']}) has a singular rotation in transform_matrix", fix=_FIX)
        out.append({**f, "transform_matrix": m})
    return d, out


def _camera_from_c2w(c2w: np.ndarray, fx: float, fy: float, cx: float, cy: float, w: int, h: int) -> Camera:
    c2w = c2w.copy()
    c2w[:3, 1:3] *= -1  # OpenGL/Blender camera axes (y up, z back) -> OpenCV (y down, z forward)
    w2c = np.linalg.inv(c2w)
    return Camera(torch.tensor(w2c[:3, :3], dtype=torch.float32), torch.tensor(w2c[:3, 3], dtype=torch.float32), fx, fy, cx, cy, w, h)


def _image_path(folder: Path, file_path: str, name: str) -> Path:
    base = folder / file_path
    for ext in _EXTS:
        p = Path(str(base) + ext)
        if p.is_file():
            return p
    raise MalformedFile(str(base), f"no image file for frame file_path {file_path!r} of {name} (tried {', '.join(e or 'as is' for e in _EXTS)})", fix="pass the json inside its dataset folder, next to its images")


def load_transforms(path: str | os.PathLike, background: tuple[float, float, float] = (1.0, 1.0, 1.0), downscale: int = 1) -> tuple[list[Camera], Tensor]:
    """(cameras, images (V, H, W, 3) float32 in [0, 1]) from a ``transforms_*.json`` and its images."""
    from .images import read_image

    p = readable_file(path, "transforms json", _FIX)
    d, frames = parse_transforms(p.read_bytes(), str(p))
    cams, imgs = [], []
    for f in frames:
        img_path = _image_path(p.parent, f["file_path"], str(p))
        from PIL import Image

        try:
            with Image.open(img_path) as im:
                W0, H0 = im.size
        except Exception as e:
            raise MalformedFile(str(img_path), f"is not a readable image ({type(e).__name__})", fix="pass PNG or JPEG images") from None
        W, H = max(1, round(W0 / downscale)), max(1, round(H0 / downscale))
        s = W / W0
        src = {**d, **{k: v for k, v in f.items() if k in ("fl_x", "fl_y", "cx", "cy")}}
        if "fl_x" in src:
            fx = _number(str(p), src, "fl_x")
            fy = _number(str(p), src, "fl_y") if "fl_y" in src else fx
        else:
            fx = fy = 0.5 * W0 / math.tan(0.5 * _number(str(p), d, "camera_angle_x"))
        cx = _number(str(p), src, "cx") if "cx" in src else W0 / 2
        cy = _number(str(p), src, "cy") if "cy" in src else H0 / 2
        if not (fx > 0 and fy > 0):
            raise MalformedFile(str(p), f"focal length {fx}, {fy} is not positive", fix=_FIX)
        cams.append(_camera_from_c2w(f["transform_matrix"], fx * s, fy * s, cx * s, cy * s, W, H))
        imgs.append(read_image(img_path, (W, H), background))
    if len({im.shape for im in imgs}) != 1:
        raise MalformedFile(str(p), f"its images have different sizes {sorted({tuple(im.shape[:2]) for im in imgs})}", fix="use images of one size")
    return cams, torch.stack(imgs)


def write_transforms(path: str | os.PathLike, cameras: list[Camera], images: Tensor, split: str = "train", alpha: Tensor | None = None) -> Path:
    """Write ``cameras`` and ``images`` as a NeRF-synthetic dataset: ``path`` (the json) and PNGs in
    ``<split>/r_<i>.png`` beside it. All cameras must share one horizontal field of view."""
    from .images import write_image

    path = Path(path)
    (path.parent / split).mkdir(parents=True, exist_ok=True)
    c0 = cameras[0]
    frames = []
    for i, (c, im) in enumerate(zip(cameras, images)):
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = c.R.double().cpu().numpy(), c.t.double().cpu().numpy()
        c2w = np.linalg.inv(w2c)
        c2w[:3, 1:3] *= -1  # OpenCV -> OpenGL camera axes
        write_image(path.parent / split / f"r_{i}.png", im, None if alpha is None else alpha[i])
        frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.0, "transform_matrix": c2w.tolist()})
    d = {"camera_angle_x": 2 * math.atan(0.5 * c0.width / c0.fx), "frames": frames}
    return atomic_write_bytes(path, json.dumps(d, indent=1).encode())


__all__ = ["load_transforms", "parse_transforms", "write_transforms"]
