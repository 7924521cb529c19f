"""What the ACTalker study measures on a generated clip: region errors against the exact target, and the mouth
opening read back from pixels.

- :func:`region_errors`: mean squared pixel error inside the mouth mask (the audio's region) and inside the face
  outside the mouth (the upper face: eyes, brows, gaze; the motion's region), per clip.
- :func:`read_mouth_opening`: per frame, the opening of the mouth that a frame shows, read through the identity's
  own calibration: the mouth box's mean "mouth colour share" (each pixel's position between the skin colour and the
  mouth colour, clipped to [0, 1]) of frames rendered at known openings, inverted by interpolation (monotone by
  construction: a wider-open mouth covers more of the box).
"""

from __future__ import annotations

import numpy as np

from ...errors import ShapeError
from .faces import MOUTH_RGB, FaceIdentity, render_face

__all__ = ["mouth_share", "read_mouth_opening", "region_errors"]

_LEVELS = np.linspace(0.0, 1.0, 21)


def region_errors(video: np.ndarray, target: np.ndarray, face: np.ndarray, mouth: np.ndarray) -> tuple[float, float]:
    """(mouth MSE, upper-face MSE) of a (F, 3, H, W) clip against its target, over the frames, in [0, 1] pixel units."""
    v, t = np.asarray(video, np.float64), np.asarray(target, np.float64)
    if v.shape != t.shape or v.ndim != 4:
        raise ShapeError("video / target", (v.shape, t.shape), "(F, 3, H, W) each, the same shape")
    sq = ((v - t) ** 2).mean(axis=1)  # (F, H, W)
    upper = face & ~mouth
    return float(sq[:, mouth].mean()), float(sq[:, upper].mean())


def mouth_share(frames: np.ndarray, ident: FaceIdentity, mouth: np.ndarray) -> np.ndarray:
    """(F,) the mean mouth-colour share of the mouth box in each (3, H, W) frame."""
    f = np.asarray(frames, np.float64)
    skin, lip = np.asarray(ident.skin), np.asarray(MOUTH_RGB)
    axis = lip - skin
    pix = f[:, :, mouth]  # (F, 3, P)
    share = np.einsum("fcp,c->fp", pix - skin[None, :, None], axis) / float(axis @ axis)
    return np.clip(share, 0.0, 1.0).mean(axis=1)


def read_mouth_opening(frames: np.ndarray, ident: FaceIdentity, mouth: np.ndarray) -> np.ndarray:
    """(F,) the opening in [0, 1] each frame shows, by the identity's calibration curve (see the module docstring)."""
    size = np.asarray(frames).shape[-1]
    curve = mouth_share(np.stack([render_face(ident, mouth=float(o), size=size) for o in _LEVELS]), ident, mouth)
    return np.interp(mouth_share(frames, ident, mouth), curve, _LEVELS)
