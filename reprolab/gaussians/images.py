"""Image files to float tensors, for the camera readers (COLMAP, NeRF-synthetic)."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from ..errors import MalformedFile
from ..runtime import readable_file


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None, background: tuple[float, float, float] | None = None) -> Tensor:
    """(H, W, 3) float32 in [0, 1] from a PNG/JPEG/... file (Pillow).

    An alpha channel is composited over ``background`` (RGB in [0, 1]; required for RGBA files,
    as 3DGS does for NeRF-synthetic). ``size`` = (width, height): the image is resized to it with
    a box filter when its aspect ratio matches (a downscaled dataset), else refused."""
    from PIL import Image, UnidentifiedImageError

    p = readable_file(path, "image", "pass the folder that holds the images the camera file names")
    try:
        with Image.open(p) as im:
            im.load()
            has_alpha = im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info)
            im = im.convert("RGBA" if has_alpha else "RGB")
            if size is not None and im.size != tuple(size):
                w, h = im.size
                if abs(w / h - size[0] / size[1]) > 0.01 * size[0] / size[1]:
                    raise MalformedFile(str(p), f"is {w}x{h} px but its camera says {size[0]}x{size[1]} (another aspect ratio)", fix="pass the images the camera file was made for")
                im = im.resize(tuple(size), Image.Resampling.BOX)
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except MalformedFile:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MalformedFile(str(p), f"is not a readable image ({type(e).__name__}: {e})", fix="pass PNG or JPEG images") from None
    if arr.shape[-1] == 4:
        bg = np.asarray((0.0, 0.0, 0.0) if background is None else background, dtype=np.float32)
        arr = arr[..., :3] * arr[..., 3:] + bg * (1.0 - arr[..., 3:])
    return torch.from_numpy(np.ascontiguousarray(arr))


def write_image(path: str | os.PathLike, image: Tensor, alpha: Tensor | None = None) -> None:
    """Write (H, W, 3) in [0, 1] (and an optional (H, W) alpha) as an 8-bit PNG."""
    from PIL import Image

    rgb = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    if alpha is not None:
        a = (alpha.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()[..., None]
        Image.fromarray(np.concatenate([rgb, a], -1), "RGBA").save(path)
    else:
        Image.fromarray(rgb, "RGB").save(path)
