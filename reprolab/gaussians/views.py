"""Posed images on disk: one ``.npz`` with ``images`` (V, H, W, 3; uint8 0-255 or float 0-1),
``viewmats`` (V, 4, 4; world-to-camera, OpenCV axes as COLMAP / 3DGS) and ``Ks`` (V, 3, 3)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import MalformedFile
from ..runtime import atomic_write_bytes, readable_file
from .camera import Camera

_FIX = "write the file with reprolab.gaussians.save_views (keys images, viewmats, Ks)"


def save_views(path: str | os.PathLike, cameras: list[Camera], images: Tensor) -> Path:
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        images=(images.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy(),
        viewmats=np.stack([c.viewmat.double().cpu().numpy() for c in cameras]),
        Ks=np.array([[[c.fx, 0.0, c.cx], [0.0, c.fy, c.cy], [0.0, 0.0, 1.0]] for c in cameras], dtype=np.float64),
    )
    return atomic_write_bytes(path, buf.getvalue())


def load_views(path: str | os.PathLike) -> tuple[list[Camera], Tensor]:
    """(cameras, images (V, H, W, 3) float32 in [0, 1]) from a views ``.npz``."""
    path = readable_file(path, "views .npz", _FIX)
    try:
        with np.load(path) as z:
            images, viewmats, Ks = z["images"], z["viewmats"], z["Ks"]
    except KeyError as e:
        raise MalformedFile(str(path), f"lacks the array {e}", fix=_FIX) from None
    except Exception as e:  # zipfile / pickle / format errors
        raise MalformedFile(str(path), f"is not a readable .npz ({type(e).__name__}: {e})", fix=_FIX) from None
    if images.ndim != 4 or images.shape[-1] != 3 or viewmats.shape != (len(images), 4, 4) or Ks.shape != (len(images), 3, 3):
        raise MalformedFile(str(path), f"shapes images {images.shape}, viewmats {viewmats.shape}, Ks {Ks.shape} are inconsistent; expected (V, H, W, 3), (V, 4, 4), (V, 3, 3)", fix=_FIX)
    imgs = torch.from_numpy(images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0))
    if not torch.isfinite(imgs).all() or not (np.isfinite(viewmats).all() and np.isfinite(Ks).all()):
        raise MalformedFile(str(path), "has non-finite pixels or camera values", fix=_FIX)
    h, w = images.shape[1:3]
    cams = [Camera(torch.tensor(m[:3, :3], dtype=torch.float32), torch.tensor(m[:3, 3], dtype=torch.float32), float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]), int(w), int(h)) for m, k in zip(viewmats, Ks)]
    return cams, imgs
