"""FreSca: Unveiling the Scaling Space in Diffusion Models (arXiv 2504.02154).

Classifier-free guidance writes the guided noise prediction as

    eps_hat = eps_u + w * delta,        delta = eps_c - eps_u          (the "scaling space")

FreSca scales ``delta`` differently per frequency band before it is added (Sec. 3, the
digest's pseudo-code, and ``core/fresca.py::Fourier_filter`` of the official code,
github.com/WikiChao/FreSca):

    X      = fftshift(FFT2(delta))                  per channel, float32, DC at the centre
    delta' = Re IFFT2(ifftshift(l * M_l * X + h * M_h * X)),   M_h = 1 - M_l
    eps_hat = eps_u + w * delta'

with a low-frequency mask ``M_l`` around DC, a low scale ``l`` and a high scale ``h``.

Map from our names to the paper's / official code's:
    scale_low  = l      (official ``scale_low``,  default 1.0)
    scale_high = h      (official ``scale_high``, default 1.5; the ComfyUI node uses 1.25)
    freq_cutoff         (official ``freq_cutoff`` = 20: half-width of the box, in frequency bins;
                         for ``mask="disc"`` the radius r0 of the digest's pseudo-code)

Choices where the paper is vague (each also said where it is made):
- Two masks. ``"box"`` (default) is the official code exactly: rows and columns
  ``centre - cutoff : centre + cutoff`` of the shifted spectrum (half-open, so it covers
  frequencies -cutoff .. cutoff-1 on each axis; slightly asymmetric, and the real part taken
  at the end averages the two scales on the one unpaired row/column). ``"disc"`` is the
  digest's pseudo-code: Euclidean distance to the DC bin ``<= cutoff``.
- As in ``core/fresca.py`` the box half-width is clamped to ``min(H//2, W//2)`` (the Marigold
  demo's copy lacks this clamp and, on a latent smaller than 40x40, its negative slice start
  marks the wrong rows as "low"; we follow the clamped version).
- ``l == h`` is a uniform scale: we return ``l * x`` without an FFT, so ``l = h = 1`` is
  *exactly* classifier-free guidance (bit for bit), which the official code only is up to
  float32 round-off.
- Instead of shifting the spectrum, we multiply the unshifted spectrum by the ifftshifted
  mask; ``ifftshift(fftshift(X) * S) == X * ifftshift(S)`` exactly, two shifts fewer per call.
- The FFT runs in float32 (float64 inputs stay float64), under autocast disabled; the
  result is cast back to the input's dtype, as the official code does.
- The energy-threshold variant of the official code (``frequency_filter``) is *not* a
  faithful adaptive cut-off: it accumulates the magnitude along the central row from the
  left edge of the shifted spectrum (the most negative frequency), not outward from DC, and
  then uses that array index as a half-width around DC; on any spectrum concentrated near DC
  it therefore returns its ``max_cutoff`` (= min(H, W)//4). It also accumulates magnitude,
  not energy. We port the idea, corrected, as :func:`energy_cutoff` (cumulative power of
  the 2-D spectrum outward from DC in the mask's own distance), and say so in the README.
- Depth (Marigold has no CFG): the official Marigold demo applies the same filter to the
  UNet's whole prediction at every DDIM step, ``noise_pred = Fourier_filter(noise_pred, 1, 2,
  20)`` (h = 2 in the code; its README lists h = 1.5 / 1.2 / 1.1 for DIODE / KITTI / ETH3D).
  Marigold's UNet predicts v (v-parameterisation), so what is scaled is the v-prediction,
  whatever the model's parameterisation is. :func:`fresca_prediction` is that variant.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass

import torch

from ...errors import ConfigError, NonFiniteError, ShapeError

MASKS = ("box", "disc")


@dataclass(frozen=True)
class FreScaConfig:
    """FreSca's hyper-parameters (defaults: the official code's ``Fourier_filter``)."""

    scale_low: float = 1.0  # l: factor on frequencies inside the mask (official default 1.0)
    scale_high: float = 1.5  # h: factor on frequencies outside it (official 1.5; ComfyUI node 1.25)
    freq_cutoff: int = 20  # box half-width / disc radius in frequency bins (official 20, for SD latents of 64-96 px)
    mask: str = "box"  # "box" (official code) or "disc" (digest pseudo-code)

    def __post_init__(self) -> None:
        for name in ("scale_low", "scale_high"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ConfigError(name, v, "a finite number (1.0 leaves the band unchanged)")
        c = self.freq_cutoff
        if not isinstance(c, int) or isinstance(c, bool) or c < 0:
            raise ConfigError("freq_cutoff", c, "an integer >= 0 (frequency bins around DC)")
        if self.mask not in MASKS:
            raise ConfigError("mask", self.mask, " or ".join(repr(m) for m in MASKS))

    @property
    def is_uniform(self) -> bool:
        """True when l == h: the scaling is a plain scalar and no FFT is needed."""
        return float(self.scale_low) == float(self.scale_high)


def low_frequency_mask(height: int, width: int, freq_cutoff: int, mask: str = "box", device: torch.device | str | None = None) -> torch.Tensor:
    """M_l in the *shifted* layout (DC at ``(height//2, width//2)``): 1 for low frequencies, else 0.

    ``"box"``: rows ``cy-c : cy+c`` and columns ``cx-c : cx+c`` with ``c = min(cutoff, cy, cx)``
    (official ``Fourier_filter``). ``"disc"``: ``sqrt((y-cy)^2 + (x-cx)^2) <= cutoff`` (digest).
    Returns a float32 tensor of shape ``(height, width)``.
    """
    if height < 1 or width < 1:
        raise ShapeError("the spatial size", (height, width), "at least 1x1")
    if mask not in MASKS:
        raise ConfigError("mask", mask, " or ".join(repr(m) for m in MASKS))
    return _low_mask_cached(int(height), int(width), int(freq_cutoff), mask, str(torch.device(device or "cpu"))).clone()


@functools.lru_cache(maxsize=64)
def _low_mask_cached(height: int, width: int, cutoff: int, mask: str, device: str) -> torch.Tensor:
    cy, cx = height // 2, width // 2
    if mask == "box":
        c = min(cutoff, cy, cx)  # the clamp of core/fresca.py
        m = torch.zeros(height, width, dtype=torch.float32)
        m[cy - c : cy + c, cx - c : cx + c] = 1.0
    else:
        y = torch.arange(height, dtype=torch.float32)[:, None] - cy
        x = torch.arange(width, dtype=torch.float32)[None, :] - cx
        m = ((y**2 + x**2).sqrt() <= cutoff).to(torch.float32)
    return m.to(device)


@functools.lru_cache(maxsize=64)
def _unshifted_scale(height: int, width: int, cutoff: int, mask: str, low: float, high: float, device: str) -> torch.Tensor:
    """S = l*M_l + h*(1-M_l), moved to the unshifted (FFT-native) layout: X * S == ifftshift(fftshift(X) * S_shifted)."""
    m_low = _low_mask_cached(height, width, cutoff, mask, device)
    scale = high + (low - high) * m_low  # l on M_l, h on M_h = 1 - M_l
    return torch.fft.ifftshift(scale, dim=(-2, -1)).contiguous()


def _no_autocast(device: torch.device):
    """Autocast off (the FFT must run in float32 even inside an fp16 autocast region)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast (e.g. meta)
        return contextlib.nullcontext()


def _check_tensor(x: object, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ShapeError(what, type(x).__name__, "a torch.Tensor of shape (..., H, W)")
    if x.dim() < 2:
        raise ShapeError(what, tuple(x.shape), "(..., H, W) with at least two dimensions (the last two are spatial)")
    if not (x.is_floating_point() or x.is_complex()) or x.is_complex():
        raise ShapeError(f"{what} (dtype {x.dtype})", tuple(x.shape), "a real floating-point tensor")
    if x.shape[-1] < 1 or x.shape[-2] < 1:
        raise ShapeError(what, tuple(x.shape), "a non-empty spatial size (..., H>=1, W>=1)")
    return x


def _check_finite(x: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise NonFiniteError(what, f"{bad} of {x.numel()} entries are NaN or inf", fix="check the model's output (a diverged model or a half-precision overflow); FreSca cannot scale a non-finite prediction")


def frequency_scale(x: torch.Tensor, config: FreScaConfig | None = None, *, check_finite: bool = True, **overrides) -> torch.Tensor:
    """F(x): scale the low / high frequencies of ``x`` over its last two (spatial) dimensions.

    ``x``: (..., H, W), any leading batch/channel/frame dims, any device, any float dtype.
    Returns a tensor of ``x``'s shape, dtype and device. Keyword overrides, e.g.
    ``frequency_scale(x, scale_high=2.0)``, replace fields of ``config``.
    """
    config = _resolve(config, overrides)
    x = _check_tensor(x, "x")
    if check_finite:
        _check_finite(x, "the tensor given to FreSca")
    if config.is_uniform:  # no band differs: a scalar multiple, exactly (l = h = 1 returns x itself)
        return x if config.scale_low == 1.0 else x * config.scale_low
    H, W = x.shape[-2:]
    work_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    with _no_autocast(x.device):
        xf = x.to(work_dtype)
        # X = FFT2(delta) per channel (unshifted; the mask is shifted instead, see module docstring)
        spectrum = torch.fft.fft2(xf, dim=(-2, -1))
        scale = _unshifted_scale(H, W, config.freq_cutoff, config.mask, float(config.scale_low), float(config.scale_high), str(x.device))
        # l * M_l * X + h * M_h * X, then back to space; real part as the official code
        out = torch.fft.ifft2(spectrum * scale.to(work_dtype), dim=(-2, -1)).real
    return out.to(x.dtype)


def fresca_guidance(pred_uncond: torch.Tensor, pred_cond: torch.Tensor, guidance_scale: float, config: FreScaConfig | None = None, **overrides) -> torch.Tensor:
    """eps_hat = eps_u + w * F(eps_c - eps_u)  (the paper's guided prediction; diffusers' CFG form)."""
    u = _check_tensor(pred_uncond, "pred_uncond")
    c = _check_tensor(pred_cond, "pred_cond")
    if u.shape != c.shape:
        raise ShapeError("pred_cond", tuple(c.shape), f"the shape of pred_uncond {tuple(u.shape)}")
    if not isinstance(guidance_scale, (int, float)) or not math.isfinite(guidance_scale):
        raise ConfigError("guidance_scale", guidance_scale, "a finite number (w; 1.0 = conditional prediction only)")
    delta = c - u  # the scaling space
    return u + guidance_scale * frequency_scale(delta, config, **overrides)


def fresca_prediction(pred: torch.Tensor, config: FreScaConfig | None = None, **overrides) -> torch.Tensor:
    """The depth variant (official Marigold demo): F applied to the model's whole prediction at each step.

    Marigold has no CFG; the official code calls ``Fourier_filter(noise_pred, 1, 2, 20)`` on the
    UNet output (a v-prediction for Marigold) before ``scheduler.step``. Same function, no delta.
    """
    return frequency_scale(pred, config, **overrides)


def energy_cutoff(x: torch.Tensor, energy_fraction: float = 0.2, mask: str = "box", min_cutoff: int = 3, max_cutoff: int | None = None) -> int:
    """Adaptive cut-off (corrected port of the official ``frequency_filter``'s idea).

    The smallest cut-off ``c`` whose low-frequency mask holds at least ``energy_fraction`` of
    the power ``|X|^2`` of ``x`` (summed over all leading dims), with the distance to DC
    measured as the mask measures it (box: Chebyshev, disc: Euclidean), clamped to
    ``[min_cutoff, max_cutoff]`` (official defaults: 3 and min(H, W)//4). See the module
    docstring for what the official version computes instead.
    """
    x = _check_tensor(x, "x")
    if not 0.0 <= energy_fraction <= 1.0:
        raise ConfigError("energy_fraction", energy_fraction, "a number in [0, 1]")
    H, W = x.shape[-2:]
    if max_cutoff is None:
        max_cutoff = max(min(H, W) // 4, min_cutoff)
    with _no_autocast(x.device):
        power = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float32), dim=(-2, -1)), dim=(-2, -1)).abs().square()
        power = power.reshape(-1, H, W).sum(0)
    cy, cx = H // 2, W // 2
    y = torch.arange(H, device=x.device)[:, None] - cy
    xx = torch.arange(W, device=x.device)[None, :] - cx
    if mask == "box":  # bin (y, x) is inside the half-open box of cut-off c iff -c <= y < c and -c <= x < c
        dist = torch.maximum(torch.where(y < 0, -y, y + 1), torch.where(xx < 0, -xx, xx + 1)).to(torch.float32)
    elif mask == "disc":
        dist = (y.float() ** 2 + xx.float() ** 2).sqrt().ceil()
    else:
        raise ConfigError("mask", mask, " or ".join(repr(m) for m in MASKS))
    total = power.sum()
    if total <= 0:
        return int(min_cutoff)
    for c in range(0, max(H, W) + 1):
        if power[dist <= c].sum() >= energy_fraction * total:
            return int(min(max(c, min_cutoff), max_cutoff))
    return int(max_cutoff)


def band_energy(x: torch.Tensor, freq_cutoff: int, mask: str = "box") -> tuple[torch.Tensor, torch.Tensor]:
    """Power of ``x`` inside (low) and outside (high) the mask, per leading index: two tensors of shape x.shape[:-2]."""
    x = _check_tensor(x, "x")
    H, W = x.shape[-2:]
    with _no_autocast(x.device):
        power = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float32), dim=(-2, -1)), dim=(-2, -1)).abs().square()
    m = low_frequency_mask(H, W, freq_cutoff, mask, device=x.device)
    low = (power * m).sum((-2, -1))
    return low, (power * (1 - m)).sum((-2, -1))


def radial_power_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean power |X|^2 per integer radius from DC (Euclidean, in bins), averaged over leading dims.

    Returns ``(radius, power)``: 1-D tensors of length ``floor(sqrt((H/2)^2 + (W/2)^2)) + 1``.
    """
    x = _check_tensor(x, "x")
    H, W = x.shape[-2:]
    with _no_autocast(x.device):
        power = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float32), dim=(-2, -1)), dim=(-2, -1)).abs().square()
    power = power.reshape(-1, H, W).mean(0)
    y = torch.arange(H, device=x.device)[:, None] - H // 2
    xx = torch.arange(W, device=x.device)[None, :] - W // 2
    r = (y.float() ** 2 + xx.float() ** 2).sqrt().round().long()
    n = int(r.max()) + 1
    sums = torch.zeros(n, device=x.device).scatter_add_(0, r.flatten(), power.flatten())
    counts = torch.zeros(n, device=x.device).scatter_add_(0, r.flatten(), torch.ones_like(power).flatten())
    return torch.arange(n), (sums / counts.clamp_min(1)).cpu()


def _resolve(config: FreScaConfig | None, overrides: dict) -> FreScaConfig:
    if config is None:
        config = FreScaConfig()
    elif not isinstance(config, FreScaConfig):
        raise ConfigError("config", type(config).__name__, "a FreScaConfig (or None for the official defaults)")
    if overrides:
        unknown = set(overrides) - {"scale_low", "scale_high", "freq_cutoff", "mask"}
        if unknown:
            raise ConfigError("keyword", sorted(unknown), "one of scale_low, scale_high, freq_cutoff, mask")
        import dataclasses

        config = dataclasses.replace(config, **overrides)
    return config


class FreSca:
    """FreSca as an object: ``FreSca(scale_high=1.25).guide(eps_u, eps_c, w)`` or ``.scale(delta)``."""

    def __init__(self, config: FreScaConfig | None = None, **overrides):
        self.config = _resolve(config, overrides)

    def scale(self, delta: torch.Tensor) -> torch.Tensor:
        """F(delta)."""
        return frequency_scale(delta, self.config)

    def guide(self, pred_uncond: torch.Tensor, pred_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
        """eps_u + w * F(eps_c - eps_u)."""
        return fresca_guidance(pred_uncond, pred_cond, guidance_scale, self.config)

    __call__ = guide

    def __repr__(self) -> str:
        c = self.config
        return f"FreSca(scale_low={c.scale_low}, scale_high={c.scale_high}, freq_cutoff={c.freq_cutoff}, mask={c.mask!r})"
