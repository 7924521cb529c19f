"""Audio features for ACTalker: the Whisper tiny encoder (the paper's audio encoder) through CTranslate2, with a log-mel
fallback, cached, and cut into per-video-frame windows.

ACTalker encodes the audio with Whisper-tiny's encoder, takes for each video frame a window of 10 encoder frames
around it and projects it to 32 audio tokens (official ``Inference.py``/projector; the projector is part of the
model). Offline, the only Whisper tiny is the English-only tiny.en CTranslate2 asset (``reprolab assets install
whisper-tiny.en``); its encoder is the same architecture (4 layers, 384-d, 50 frames per second over a 30 s
window). The clip is padded to 30 s as Whisper requires and the frames covering the clip are kept.

    feats = audio_features(wave, 16000, kind="whisper", cache_dir="runs/cache")   # (T, 384) at 50 Hz
    win = frame_windows(feats, n_frames=25, fps=12.5)                              # (25, 10, 384)
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from ...errors import ConfigError, MissingExtra, NonFiniteError, ShapeError
from ...runtime import atomic_write_bytes

__all__ = ["FEATURE_RATE", "audio_features", "frame_windows", "mel_features", "whisper_features"]

FEATURE_RATE = 50.0  # Whisper encoder frames per second (and the mel fallback's, hop 320 at 16 kHz)
SAMPLE_RATE = 16_000
_MODELS: dict[str, object] = {}


def _check_wave(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim != 1 or len(w) == 0:
        raise ShapeError("wave", w.shape, "(samples,) mono")
    if sample_rate != SAMPLE_RATE:
        raise ConfigError("sample_rate", sample_rate, f"{SAMPLE_RATE} (resample first; Whisper takes 16 kHz)")
    if not np.isfinite(w).all():
        raise NonFiniteError("wave", "NaN or inf samples", fix="clean the audio before extracting features")
    if len(w) > 30 * SAMPLE_RATE:
        raise ShapeError("wave", w.shape, "at most 30 s (480,000 samples): Whisper's window; cut the audio into clips")
    return w


def _n_frames(n_samples: int) -> int:
    return int(np.ceil(n_samples / SAMPLE_RATE * FEATURE_RATE))


def mel_features(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mels: int = 80) -> np.ndarray:
    """(T, n_mels) log-mel in dB at 50 frames per second (hop 320, window 400 as Whisper's front end)."""
    import torch

    from ...nn.audio import FrontEndConfig, log_mel

    w = _check_wave(wave, sample_rate)
    cfg = FrontEndConfig(sample_rate=SAMPLE_RATE, n_fft=400, hop_length=320, n_mels=n_mels, f_min=0.0, top_db=80.0)
    mel = log_mel(torch.from_numpy(w), cfg).numpy().T  # (frames, n_mels)
    return mel[: _n_frames(len(w))].astype(np.float32)


def whisper_features(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, model: str | os.PathLike = "whisper-tiny.en") -> np.ndarray:
    """(T, 384) Whisper encoder states for the frames covering the clip (the 30 s window, padded, then cut)."""
    try:
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor
    except ImportError:
        raise MissingExtra("faster-whisper", "whisper_lm") from None
    w = _check_wave(wave, sample_rate)
    key = str(model)
    if key not in _MODELS:
        folder = Path(model) if (Path(model) / "model.bin").exists() else None
        if folder is None:
            from ... import assets

            folder = Path(assets.path(key))
        threads = int(os.environ.get("REPROLAB_THREADS", "0")) or 0
        _MODELS[key] = ctranslate2.models.Whisper(str(folder), device="cpu", compute_type="float32", intra_threads=threads)
    if "features" not in _MODELS:  # its mel filters are computed once
        _MODELS["features"] = FeatureExtractor(feature_size=80)
    mel = _MODELS["features"](w)
    padded = np.zeros((80, 3000), np.float32)
    padded[:, : min(3000, mel.shape[1])] = mel[:, :3000]
    out = np.asarray(_MODELS[key].encode(ctranslate2.StorageView.from_array(padded[None]), to_cpu=True))[0]
    return out[: _n_frames(len(w))].astype(np.float32)


def audio_features(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, *, kind: str = "whisper", cache_dir: str | os.PathLike | None = None,
                   model: str = "whisper-tiny.en") -> np.ndarray:
    """Whisper encoder states or log-mel frames (50 Hz), cached as .npy under ``cache_dir`` by the audio's hash."""
    if kind not in ("whisper", "mel"):
        raise ConfigError("kind", kind, "'whisper' (the paper's encoder) or 'mel' (the fallback)")
    w = _check_wave(wave, sample_rate)
    path = None
    if cache_dir is not None:
        digest = hashlib.sha1(w.tobytes() + f"{kind}:{model}".encode()).hexdigest()[:20]
        path = Path(cache_dir) / f"{kind}-{digest}.npy"
        if path.is_file():
            return np.load(path)
    feats = whisper_features(w, sample_rate, model) if kind == "whisper" else mel_features(w, sample_rate)
    if path is not None:
        buf = io.BytesIO()
        np.save(buf, feats)
        atomic_write_bytes(path, buf.getvalue())
    return feats


def frame_windows(feats: np.ndarray, n_frames: int, fps: float = 12.5, window: int = 10, rate: float = FEATURE_RATE) -> np.ndarray:
    """(n_frames, window, dim): for video frame f at time f / fps, the ``window`` feature frames centred there (edges
    repeated), as ACTalker's audio projector takes them."""
    f = np.asarray(feats)
    if f.ndim != 2 or len(f) == 0:
        raise ShapeError("feats", f.shape, "(T, dim) feature frames")
    centre = np.round(np.arange(n_frames) / fps * rate).astype(int)
    offsets = np.arange(window) - window // 2
    idx = np.clip(centre[:, None] + offsets[None, :], 0, len(f) - 1)
    return f[idx]
