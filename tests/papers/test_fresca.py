"""FreSca on plain tensors: hand computation, the official box, invariants, shapes, dtypes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.errors import ConfigError, NonFiniteError, ShapeError
from reprolab.papers.fresca import (
    FreSca,
    FreScaConfig,
    band_energy,
    energy_cutoff,
    frequency_scale,
    fresca_guidance,
    fresca_prediction,
    low_frequency_mask,
    radial_power_spectrum,
)


def official_fourier_filter(x: torch.Tensor, scale_low: float, scale_high: float, freq_cutoff: int) -> torch.Tensor:
    """The official core/fresca.py::Fourier_filter, restated step by step (shift, box, unshift)."""
    x = x.to(torch.float32)
    xf = torch.fft.fftshift(torch.fft.fftn(x, dim=(-2, -1)), dim=(-2, -1))
    B, C, H, W = xf.shape
    crow, ccol = H // 2, W // 2
    freq_cutoff = min(freq_cutoff, min(crow, ccol))
    mask = torch.full((B, C, H, W), scale_high)
    mask[..., crow - freq_cutoff : crow + freq_cutoff, ccol - freq_cutoff : ccol + freq_cutoff] = scale_low
    return torch.fft.ifftn(torch.fft.ifftshift(xf * mask, dim=(-2, -1)), dim=(-2, -1)).real


def numpy_disc(x: np.ndarray, low: float, high: float, r0: float) -> np.ndarray:
    """The digest's pseudo-code with numpy loops: distance to (W//2, H//2) <= r0 is low."""
    H, W = x.shape[-2:]
    m = np.zeros((H, W))
    for yy in range(H):
        for xx in range(W):
            if np.sqrt((xx - W // 2) ** 2 + (yy - H // 2) ** 2) <= r0:
                m[yy, xx] = 1
    X = np.fft.fftshift(np.fft.fft2(x, axes=(-2, -1)), axes=(-2, -1))
    Xc = low * m * X + high * (1 - m) * X
    return np.fft.ifft2(np.fft.ifftshift(Xc, axes=(-2, -1)), axes=(-2, -1)).real


@pytest.fixture
def rand():
    g = torch.Generator().manual_seed(0)
    return lambda *shape: torch.randn(*shape, generator=g)


@pytest.mark.parametrize("shape,cutoff", [((2, 4, 16, 16), 5), ((1, 3, 15, 22), 4), ((2, 1, 64, 64), 20), ((1, 2, 8, 8), 20)])
def test_box_matches_the_official_filter(rand, shape, cutoff):
    x = rand(*shape)
    ours = frequency_scale(x, FreScaConfig(scale_low=0.7, scale_high=1.5, freq_cutoff=cutoff, mask="box"))
    torch.testing.assert_close(ours, official_fourier_filter(x, 0.7, 1.5, cutoff), atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("shape,r0", [((2, 3, 16, 16), 4.0), ((1, 1, 17, 12), 3.0)])
def test_disc_matches_the_digest_pseudocode(rand, shape, r0):
    x = rand(*shape)
    ours = frequency_scale(x.double(), FreScaConfig(scale_low=0.5, scale_high=2.0, freq_cutoff=int(r0), mask="disc"))
    np.testing.assert_allclose(ours.numpy(), numpy_disc(x.double().numpy(), 0.5, 2.0, r0), atol=1e-10)


def test_box_mask_by_hand():
    m = low_frequency_mask(8, 8, 2, "box")
    expected = torch.zeros(8, 8)
    expected[2:6, 2:6] = 1  # centre (4, 4), rows/cols 4-2 .. 4+2-1
    assert torch.equal(m, expected)
    assert low_frequency_mask(8, 8, 99, "box").sum() == 64  # clamped to H//2: everything is low
    d = low_frequency_mask(7, 7, 1, "disc")
    assert d.sum() == 5 and d[3, 3] == 1 and d[2, 3] == 1 and d[2, 2] == 0


def test_l_equals_h_equals_one_is_exactly_cfg(rand):
    u, c = rand(2, 4, 16, 16), rand(2, 4, 16, 16)
    cfg = u + 7.5 * (c - u)
    assert torch.equal(fresca_guidance(u, c, 7.5, FreScaConfig(scale_low=1.0, scale_high=1.0)), cfg)
    # the FFT path with l = h (forced through a cut-off that splits nothing away) agrees to round-off
    via_fft = u + 7.5 * official_fourier_filter(c - u, 1.0, 1.0, 4)
    torch.testing.assert_close(fresca_guidance(u, c, 7.5, scale_high=1.0), via_fft, atol=1e-5, rtol=1e-5)


def test_uniform_scale_is_a_plain_multiple(rand):
    x = rand(1, 2, 9, 9)
    assert torch.equal(frequency_scale(x, scale_low=1.3, scale_high=1.3), x * 1.3)


def test_h_above_one_raises_only_high_frequency_energy(rand):
    u, c = rand(2, 4, 32, 32), rand(2, 4, 32, 32)
    cfg = FreScaConfig(scale_low=1.0, scale_high=1.5, freq_cutoff=6)
    delta = c - u
    scaled = frequency_scale(delta, cfg)
    lo0, hi0 = band_energy(delta, 6)
    lo1, hi1 = band_energy(scaled, 6)
    # the box is half-open (official slicing): bins whose mirror is also inside it, the box of half-width 5, are untouched
    core0, _ = band_energy(delta, 5)
    core1, _ = band_energy(scaled, 5)
    torch.testing.assert_close(core1, core0, rtol=1e-4, atol=1e-2)
    assert bool((lo1 >= lo0 * (1 - 1e-5)).all() and (lo1 <= lo0 * 1.25**2).all())
    # the box is half-open: the unpaired edge rows/cols get (l+h)/2 after the real part, so high energy
    # grows by a factor between ((l+h)/2)^2 and h^2
    ratio = hi1 / hi0
    assert bool((ratio > 1.25**2 - 1e-3).all() and (ratio < 1.5**2 + 1e-3).all())
    # the unconditional prediction itself is not touched: eps_hat - eps_u = w * F(delta)
    out = fresca_guidance(u, c, 3.0, cfg)
    torch.testing.assert_close(out - u, 3.0 * scaled, atol=1e-4, rtol=1e-4)


def test_disc_scales_bands_exactly(rand):
    x = rand(2, 3, 32, 32)
    lo0, hi0 = band_energy(x, 5, "disc")
    lo1, hi1 = band_energy(frequency_scale(x, scale_low=0.5, scale_high=2.0, freq_cutoff=5, mask="disc"), 5, "disc")
    torch.testing.assert_close(lo1, lo0 * 0.25, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(hi1, hi0 * 4.0, rtol=1e-4, atol=1e-3)


def test_low_only_signal_is_untouched_by_h(rand):
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    smooth = torch.cos(2 * torch.pi * 2 * xx / 32) + torch.sin(2 * torch.pi * 3 * yy / 32)  # frequencies 2 and 3 only
    out = frequency_scale(smooth[None, None], scale_high=3.0, freq_cutoff=6)
    torch.testing.assert_close(out[0, 0], smooth, atol=1e-5, rtol=1e-5)
    sharp = torch.cos(2 * torch.pi * 12 * xx / 32)  # frequency 12 > cutoff: scaled by h
    torch.testing.assert_close(frequency_scale(sharp[None], scale_high=3.0, freq_cutoff=6)[0], 3.0 * sharp, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("shape", [(16, 16), (3, 16, 16), (2, 3, 5, 16, 16), (1, 1, 1, 7)])
def test_any_leading_shape(rand, shape):
    x = rand(*shape)
    out = frequency_scale(x, freq_cutoff=3)
    assert out.shape == x.shape
    flat = frequency_scale(x.reshape(-1, 1, *shape[-2:]), freq_cutoff=3).reshape(shape)
    torch.testing.assert_close(out, flat)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtype_preserved_and_computed_in_float32(rand, dtype):
    x = rand(1, 4, 16, 16)
    out = frequency_scale(x.to(dtype), freq_cutoff=4)
    assert out.dtype == dtype
    ref = frequency_scale(x.to(dtype).float(), freq_cutoff=4)
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float64: 1e-6}[dtype]
    torch.testing.assert_close(out.float(), ref, atol=tol * 10, rtol=tol)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu(rand):
    x = rand(2, 4, 32, 32)
    torch.testing.assert_close(frequency_scale(x.cuda(), freq_cutoff=5).cpu(), frequency_scale(x, freq_cutoff=5), atol=1e-5, rtol=1e-5)


def test_meta_device_follows_input():
    x = torch.randn(1, 1, 8, 8, device="meta")
    assert frequency_scale(x, check_finite=False, freq_cutoff=2).device.type == "meta"


def test_object_api_and_prediction_variant(rand):
    u, c = rand(1, 2, 16, 16), rand(1, 2, 16, 16)
    f = FreSca(scale_high=1.25, freq_cutoff=4)
    torch.testing.assert_close(f(u, c, 5.0), fresca_guidance(u, c, 5.0, FreScaConfig(scale_high=1.25, freq_cutoff=4)))
    torch.testing.assert_close(fresca_prediction(c, scale_high=2.0, freq_cutoff=4), official_fourier_filter(c, 1.0, 2.0, 4), atol=2e-5, rtol=1e-5)
    assert "1.25" in repr(f)


def test_bad_input_gets_typed_errors(rand):
    with pytest.raises(ConfigError, match="scale_high"):
        FreScaConfig(scale_high=float("nan"))
    with pytest.raises(ConfigError, match="freq_cutoff"):
        FreScaConfig(freq_cutoff=-1)
    with pytest.raises(ConfigError, match="mask"):
        FreScaConfig(mask="ring")
    with pytest.raises(ConfigError, match="keyword"):
        frequency_scale(rand(4, 4), scale_hi=2.0)
    with pytest.raises(ShapeError, match="pred_cond"):
        fresca_guidance(rand(1, 2, 8, 8), rand(1, 2, 8, 9), 2.0)
    with pytest.raises(ShapeError):
        frequency_scale(rand(8))
    with pytest.raises(ShapeError):
        frequency_scale(torch.ones(4, 4, dtype=torch.long))
    bad = rand(1, 1, 8, 8)
    bad[0, 0, 3, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="1 of 64"):
        frequency_scale(bad, freq_cutoff=2)
    with pytest.raises(ConfigError, match="guidance_scale"):
        fresca_guidance(rand(1, 1, 4, 4), rand(1, 1, 4, 4), float("inf"))


def official_energy_cutoff(x: torch.Tensor, threshold: float) -> int:
    """The official frequency_filter's cut-off choice, restated (cumsum from the left edge of the shifted row/column)."""
    xf = torch.fft.fftshift(torch.fft.fftn(x, dim=(-2, -1)), dim=(-2, -1))
    B, C, H, W = xf.shape
    max_cutoff = min(H, W) // 4

    def one(mag):
        cum = torch.cumsum(mag, 0)
        idx = torch.nonzero(cum >= threshold * cum[-1])
        return min(int(idx[0, 0]), max_cutoff) if idx.numel() else max_cutoff

    a = xf.abs().mean(dim=(0, 1))
    return max(3, (one(a[H // 2, :]) + one(a[:, W // 2])) // 2)


def test_energy_cutoff_is_measured_from_dc(rand):
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    low = (torch.cos(2 * torch.pi * 2 * xx / 64) + torch.cos(2 * torch.pi * 2 * yy / 64))[None, None]
    low = low + 0.01 * rand(1, 1, 64, 64)
    ours = energy_cutoff(low, 0.5, min_cutoff=1)
    assert ours <= 3  # half the power sits at frequency 2 from DC
    # the official version indexes from the spectrum's edge, so it answers its maximum (64 // 4)
    assert official_energy_cutoff(low, 0.2) == 16
    wide = rand(1, 1, 64, 64)  # white noise: power spread evenly, 20% of the bins is a box of half-width ~14
    assert 12 <= energy_cutoff(wide, 0.2, max_cutoff=64) <= 16


def test_radial_spectrum_finds_the_planted_frequency():
    xx = torch.arange(32.0)[None, :].expand(32, 32)
    r, p = radial_power_spectrum(torch.cos(2 * torch.pi * 7 * xx / 32)[None])
    assert int(r[p.argmax()]) == 7
