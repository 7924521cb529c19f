"""A speech front-end in torch: power spectrogram, mel filter bank, log-mel, MFCC and deltas.

The mel filters come from ``transformers.audio_utils.mel_filter_bank`` (Slaney scale and area
normalisation by default, the same filters as ``librosa.filters.mel``); everything else is plain
torch (``torch.stft``), so it runs on any device and batches. No torchaudio: its wheels pin a CUDA
build of torch and, once installed, break ``transformers.audio_utils``.

Conventions (librosa's where there is one): centred frames with reflection padding, a periodic Hann
window, power spectrogram ``|STFT|^2``, ``10 log10(max(mel, amin))`` with ``top_db`` clipping, an
orthonormal DCT-II for MFCCs. Deltas use the HTK regression formula over +-``width`` frames
(librosa's ``delta`` uses a Savitzky-Golay filter of width 9 instead: a choice, written here).
Shared by the studies that need acoustic features (slm_scaling's speech units; later JavisDiT).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..errors import ConfigError, NonFiniteError, ShapeError


@dataclass(frozen=True)
class FrontEndConfig:
    sample_rate: int = 16_000  # Hz of the input waveform
    n_fft: int = 1024  # FFT size (and window length unless win_length is set)
    hop_length: int = 640  # samples between frames: 640 at 16 kHz = 40 ms = 25 Hz, mHuBERT-25Hz's unit rate
    win_length: int | None = None  # None: n_fft
    n_mels: int = 40  # mel bands
    f_min: float = 20.0  # Hz
    f_max: float | None = None  # Hz; None: Nyquist
    n_mfcc: int = 13  # cepstral coefficients kept (c0 included)
    top_db: float | None = 80.0  # log-mel dynamic range (librosa's default); None: no clipping
    amin: float = 1e-10  # floor before the log (librosa's default)
    mel_scale: str = "slaney"  # "slaney" (librosa's default) or "htk"
    norm: str | None = "slaney"  # area normalisation of each filter (librosa's default) or None

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_mfcc"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.win_length is not None and not 1 <= self.win_length <= self.n_fft:
            raise ConfigError("win_length", self.win_length, f"an integer in [1, n_fft={self.n_fft}] or None")
        if self.n_mfcc > self.n_mels:
            raise ConfigError("n_mfcc", self.n_mfcc, f"at most n_mels={self.n_mels}")
        if self.mel_scale not in ("slaney", "htk"):
            raise ConfigError("mel_scale", self.mel_scale, "'slaney' or 'htk'")

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate


@lru_cache(maxsize=16)
def _filters(cfg: FrontEndConfig) -> np.ndarray:
    from transformers.audio_utils import mel_filter_bank

    fb = mel_filter_bank(num_frequency_bins=cfg.n_fft // 2 + 1, num_mel_filters=cfg.n_mels, min_frequency=cfg.f_min,
                         max_frequency=cfg.f_max if cfg.f_max is not None else cfg.sample_rate / 2, sampling_rate=cfg.sample_rate,
                         norm=cfg.norm, mel_scale=cfg.mel_scale)
    return np.ascontiguousarray(fb.T)  # (n_mels, n_freq), librosa's layout


def mel_filters(cfg: FrontEndConfig = FrontEndConfig(), device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The mel filter bank (n_mels, n_fft // 2 + 1) of ``transformers.audio_utils.mel_filter_bank``."""
    return torch.as_tensor(_filters(cfg), dtype=dtype, device=device)


def _check_wave(wave: torch.Tensor) -> torch.Tensor:
    if not isinstance(wave, torch.Tensor):
        wave = torch.as_tensor(np.asarray(wave), dtype=torch.float32)
    if wave.dim() not in (1, 2):
        raise ShapeError("waveform", tuple(wave.shape), "(samples,) or (batch, samples)")
    if wave.shape[-1] == 0:
        raise ShapeError("waveform", tuple(wave.shape), "at least one sample")
    if not torch.isfinite(wave).all():
        raise NonFiniteError("waveform", "NaN or inf samples", fix="check the audio file (a corrupt or float WAV with NaNs)")
    return wave if wave.is_floating_point() else wave.float()


def power_spectrogram(wave: torch.Tensor, cfg: FrontEndConfig = FrontEndConfig()) -> torch.Tensor:
    """|STFT|^2 of ``wave`` (..., samples) -> (..., n_fft // 2 + 1, frames); centred, reflect-padded, Hann window."""
    wave = _check_wave(wave)
    win = cfg.win_length or cfg.n_fft
    window = torch.hann_window(win, periodic=True, device=wave.device, dtype=wave.dtype)
    pad_mode = "reflect" if wave.shape[-1] > cfg.n_fft // 2 else "constant"
    spec = torch.stft(wave, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=win, window=window, center=True,
                      pad_mode=pad_mode, return_complex=True)
    return spec.abs() ** 2


def log_mel(wave: torch.Tensor, cfg: FrontEndConfig = FrontEndConfig()) -> torch.Tensor:
    """Log-mel power in dB (..., n_mels, frames): 10 log10(max(mel, amin)), clipped to ``top_db`` below the peak."""
    spec = power_spectrogram(wave, cfg)
    mel = torch.matmul(mel_filters(cfg, spec.device, spec.dtype), spec)  # (..., n_mels, frames)
    db = 10.0 * torch.log10(mel.clamp_min(cfg.amin))
    if cfg.top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - cfg.top_db)
    return db


def dct_matrix(n_mfcc: int, n_mels: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Orthonormal DCT-II (n_mfcc, n_mels): C[k, n] = s_k cos(pi k (2n + 1) / (2 N)), s_0 = sqrt(1/N), s_k = sqrt(2/N)."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    c = torch.cos(math.pi * k * (2 * n + 1) / (2 * n_mels)) * math.sqrt(2.0 / n_mels)
    c[0] /= math.sqrt(2.0)
    return c.to(device=device, dtype=dtype)


def mfcc(wave: torch.Tensor, cfg: FrontEndConfig = FrontEndConfig()) -> torch.Tensor:
    """MFCCs (..., n_mfcc, frames): the orthonormal DCT-II of the log-mel spectrogram (librosa.feature.mfcc's recipe)."""
    db = log_mel(wave, cfg)
    return torch.matmul(dct_matrix(cfg.n_mfcc, cfg.n_mels, db.device, db.dtype), db)


def deltas(features: torch.Tensor, width: int = 2) -> torch.Tensor:
    """HTK deltas along the last (time) axis: d_t = sum_k k (c_{t+k} - c_{t-k}) / (2 sum_k k^2), k = 1..width, edges repeated."""
    if width < 1:
        raise ConfigError("width", width, "a positive integer")
    padded = torch.cat([features[..., :1].expand(*features.shape[:-1], width), features,
                        features[..., -1:].expand(*features.shape[:-1], width)], dim=-1)
    T = features.shape[-1]
    num = sum(k * (padded[..., width + k: width + k + T] - padded[..., width - k: width - k + T]) for k in range(1, width + 1))
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def mfcc_with_deltas(wave: torch.Tensor, cfg: FrontEndConfig = FrontEndConfig()) -> torch.Tensor:
    """MFCC + delta (..., frames, 2 n_mfcc): one row per frame, ready for clustering."""
    c = mfcc(wave, cfg)
    return torch.cat([c, deltas(c)], dim=-2).transpose(-1, -2)
