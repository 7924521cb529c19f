"""Image degradations for robustness checks: Gaussian noise, Gaussian blur, JPEG re-encoding.

All take and return (H, W, 3) uint8 arrays and are seeded where random, so a degraded set is
the same set on every machine. ``degrade(image, "noise:0.05")`` parses a short spec.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import ConfigError
from .detection import as_hwc_uint8

KINDS = ("clean", "noise", "blur", "jpeg")


def add_noise(image: np.ndarray, sigma: float = 0.05, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise of std ``sigma`` (in units of the [0, 1] pixel range), clipped."""
    if not 0.0 <= sigma <= 1.0:
        raise ConfigError("sigma", sigma, "a noise std in [0, 1] (fraction of the pixel range)")
    a = as_hwc_uint8(image).astype(np.float64) / 255.0
    a = a + np.random.default_rng(seed).normal(0.0, sigma, a.shape)
    return as_hwc_uint8(np.clip(a, 0, 1))


def blur(image: np.ndarray, sigma: float = 0.7) -> np.ndarray:
    """Gaussian blur of std ``sigma`` pixels on each channel (scipy.ndimage)."""
    from scipy.ndimage import gaussian_filter

    if sigma < 0:
        raise ConfigError("sigma", sigma, "a blur std >= 0 (pixels)")
    a = as_hwc_uint8(image).astype(np.float64) / 255.0
    return as_hwc_uint8(gaussian_filter(a, sigma=(sigma, sigma, 0)))


def jpeg(image: np.ndarray, quality: int = 50) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode again (PIL)."""
    from PIL import Image

    if not 1 <= int(quality) <= 95:
        raise ConfigError("quality", quality, "a JPEG quality in [1, 95]")
    buf = io.BytesIO()
    Image.fromarray(as_hwc_uint8(image)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.uint8).copy()


def degrade(image: np.ndarray, spec: str, seed: int = 0) -> np.ndarray:
    """Apply ``spec``: ``clean``, ``noise[:sigma]``, ``blur[:sigma]`` or ``jpeg[:quality]``."""
    kind, _, arg = spec.partition(":")
    if kind not in KINDS:
        raise ConfigError("degradation", spec, "clean, noise[:sigma], blur[:sigma] or jpeg[:quality]")
    try:
        if kind == "clean":
            return as_hwc_uint8(image)
        if kind == "noise":
            return add_noise(image, float(arg or 0.05), seed)
        if kind == "blur":
            return blur(image, float(arg or 0.7))
        return jpeg(image, int(arg or 50))
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError("degradation", spec, "a number after the colon, e.g. noise:0.05, jpeg:50") from None
