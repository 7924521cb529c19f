"""The shared torch speech front-end against transformers' numpy reference and (when installed) librosa."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.errors import NonFiniteError, ShapeError
from reprolab.nn.audio import FrontEndConfig, deltas, log_mel, mel_filters, mfcc, mfcc_with_deltas, power_spectrogram

CFG = FrontEndConfig()


def _chirp(n: int = 16_000, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / 16_000
    rng = np.random.default_rng(seed)
    return (0.5 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.05 * rng.standard_normal(n)).astype(np.float64)


def test_power_mel_matches_transformers_numpy_spectrogram():
    from transformers.audio_utils import spectrogram, window_function

    x = _chirp()
    ref = spectrogram(x, window_function(CFG.n_fft, "hann", periodic=True), frame_length=CFG.n_fft, hop_length=CFG.hop_length,
                      power=2.0, center=True, pad_mode="reflect", mel_filters=mel_filters(CFG, dtype=torch.float64).numpy().T,
                      mel_floor=CFG.amin, log_mel="dB", db_range=CFG.top_db)
    ours = log_mel(torch.as_tensor(x), CFG).numpy()
    assert ours.shape == ref.shape == (CFG.n_mels, len(x) // CFG.hop_length + 1)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_frame_rate_is_25_hz_and_batches_agree():
    x = torch.as_tensor(_chirp(32_000), dtype=torch.float32)
    feats = mfcc_with_deltas(torch.stack([x, x.flip(0)]))
    assert feats.shape == (2, 32_000 // 640 + 1, 2 * CFG.n_mfcc)
    torch.testing.assert_close(feats[0], mfcc_with_deltas(x), atol=1e-4, rtol=1e-4)
    assert abs(CFG.frame_seconds - 0.04) < 1e-12


def test_dct_is_orthonormal_and_deltas_of_a_ramp_are_its_slope():
    from reprolab.nn.audio import dct_matrix

    d = dct_matrix(40, 40, dtype=torch.float64)
    torch.testing.assert_close(d @ d.T, torch.eye(40, dtype=torch.float64))
    ramp = torch.arange(20.0)[None] * 3.0
    assert torch.allclose(deltas(ramp)[0, 2:-2], torch.full((16,), 3.0))


def test_bad_waveforms_are_refused():
    with pytest.raises(ShapeError):
        power_spectrogram(torch.zeros(2, 2, 100))
    with pytest.raises(NonFiniteError):
        mfcc(torch.tensor([0.0, float("nan")] * 600))


def test_filters_match_librosa_when_installed():
    librosa = pytest.importorskip("librosa", reason="librosa is not installed (optional reference)")
    ours = mel_filters(CFG, dtype=torch.float64).numpy()
    ref = librosa.filters.mel(sr=CFG.sample_rate, n_fft=CFG.n_fft, n_mels=CFG.n_mels, fmin=CFG.f_min, fmax=CFG.sample_rate / 2)
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    x = _chirp()
    ref_mfcc = librosa.feature.mfcc(y=x, sr=CFG.sample_rate, n_mfcc=CFG.n_mfcc, n_fft=CFG.n_fft, hop_length=CFG.hop_length,
                                    n_mels=CFG.n_mels, fmin=CFG.f_min, window="hann", center=True, pad_mode="reflect")
    np.testing.assert_allclose(mfcc(torch.as_tensor(x), CFG).numpy(), ref_mfcc, atol=1e-4)
