"""ACTalker's audio features: Whisper tiny.en encoder states (CTranslate2 asset) and the log-mel fallback, cached, and
per-video-frame windows."""

from __future__ import annotations

import numpy as np
import pytest

from reprolab.errors import ConfigError, NonFiniteError, ShapeError
from reprolab.papers.actalker.audio import audio_features, frame_windows, mel_features


def _tone(seconds=1.0, f=440.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_mel_fallback_runs_at_50_frames_per_second_and_caches(tmp_path):
    feats = mel_features(_tone(1.0))
    assert feats.shape == (50, 80) and np.isfinite(feats).all()
    a = audio_features(_tone(1.0), kind="mel", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("mel-*.npy"))) == 1
    np.testing.assert_array_equal(a, audio_features(_tone(1.0), kind="mel", cache_dir=tmp_path))
    assert not np.array_equal(a, audio_features(_tone(1.0, 880.0), kind="mel", cache_dir=tmp_path))


def test_whisper_encoder_states_cover_the_clip(tmp_path):
    from reprolab import assets

    if not assets.is_installed("whisper-tiny.en"):
        pytest.skip("needs `reprolab assets install whisper-tiny.en` (make assets)")
    feats = audio_features(_tone(0.6), kind="whisper", cache_dir=tmp_path)
    assert feats.shape == (30, 384) and np.isfinite(feats).all()
    np.testing.assert_array_equal(feats, audio_features(_tone(0.6), kind="whisper", cache_dir=tmp_path))
    silence = audio_features(np.zeros(9600, np.float32), kind="whisper")
    assert np.abs(feats - silence).mean() > 1e-3  # the encoder hears the tone


def test_frame_windows_centre_on_each_video_frame():
    feats = np.arange(50, dtype=np.float32)[:, None].repeat(2, 1)  # frame index as the value
    win = frame_windows(feats, n_frames=5, fps=12.5, window=4)
    assert win.shape == (5, 4, 2)
    assert win[0, :, 0].tolist() == [0, 0, 0, 1]  # frame 0 at t = 0: centre 0, left edge repeated
    assert win[2, :, 0].tolist() == [6, 7, 8, 9]  # frame 2 at t = 0.16 s: centre 8
    assert win[4, :, 0].tolist() == [14, 15, 16, 17]


def test_bad_audio_gets_typed_errors():
    with pytest.raises(ShapeError):
        mel_features(np.zeros((2, 100), np.float32))
    with pytest.raises(ConfigError):
        mel_features(_tone(), sample_rate=8000)
    bad = _tone()
    bad[3] = np.nan
    with pytest.raises(NonFiniteError):
        audio_features(bad, kind="mel")
    with pytest.raises(ConfigError):
        audio_features(_tone(), kind="hubert")
