"""mp4 and wav reading and writing (OpenCV, soundfile), JavisBench-style sample folders, and a mel resynthesiser.

JavisBench's evaluation reads a folder of generated pairs ``sample_0000.mp4`` + ``sample_0000.wav`` (video
and audio of the same clip, the audio at 16 kHz). :func:`write_pair` / :func:`read_pairs` write and read
that layout; every write is atomic (a temporary file in the same folder, then ``os.replace``), so an
interrupted run never leaves half a file behind.

- video arrays are (T, 3, H, W) float32 RGB in [0, 1] (OpenCV's BGR uint8 is converted on the way);
  mp4 uses OpenCV's ``mp4v`` codec (lossy: at 16x16 a round trip moves pixels by 0.05 on average);
- audio arrays are (samples,) float32 mono; wav is 16-bit PCM (soundfile).

:func:`mel_to_wave` turns a (n_mels, frames) power mel spectrogram back into a waveform by additive
synthesis (one sinusoid per mel band at its centre frequency, its amplitude the band's envelope) -- a
stand-in vocoder for tiny models that generate mel spectrograms, good enough for tone-burst audio.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import MalformedFile, MissingExtra, ShapeError
from ..runtime import readable_file

__all__ = ["mel_to_wave", "read_pairs", "read_video", "read_wav", "write_pair", "write_video", "write_wav"]

PAIR_RE = re.compile(r"^sample_(\d{4,})\.mp4$")


def _cv2():
    try:
        import cv2

        return cv2
    except ImportError:
        raise MissingExtra("opencv-python-headless", "javisdit") from None


def _sf():
    try:
        import soundfile

        return soundfile
    except ImportError:
        raise MissingExtra("soundfile", "javisdit") from None


def _tmp_beside(path: Path, suffix: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


def write_video(path: str | os.PathLike, video: np.ndarray, fps: float) -> Path:
    """Write (T, 3, H, W) RGB in [0, 1] as an mp4 (atomic)."""
    cv2 = _cv2()
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[1] != 3 or len(video) == 0:
        raise ShapeError("video", video.shape, "(T >= 1, 3, H, W) RGB in [0, 1]")
    if not np.isfinite(video).all():
        raise ShapeError("video", "NaN or inf pixels", "finite values in [0, 1]")
    path = Path(path)
    tmp = _tmp_beside(path, ".mp4")
    T, _, H, W = video.shape
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (W, H))
    try:
        if not writer.isOpened():
            raise MalformedFile(str(path), "OpenCV could not open an mp4v writer", fix="check the folder and that OpenCV has its video codecs")
        frames = (np.clip(video, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)[..., ::-1]  # RGB -> BGR, (T, H, W, 3)
        for f in frames:
            writer.write(np.ascontiguousarray(f))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """(T, 3, H, W) float32 RGB in [0, 1] and the fps of an mp4 (any container OpenCV reads)."""
    cv2 = _cv2()
    p = readable_file(path, "video file", "pass the path of an existing .mp4")
    cap = cv2.VideoCapture(str(p))
    frames = []
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        while True:
            ok, f = cap.read()
            if not ok:
                break
            frames.append(f[..., ::-1].transpose(2, 0, 1))
    finally:
        cap.release()
    if not frames:
        raise MalformedFile(str(p), "no decodable video frames", fix="re-export the clip as an mp4 (e.g. with write_video)")
    return np.stack(frames).astype(np.float32) / 255.0, fps


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int) -> Path:
    """Write (samples,) mono float audio as 16-bit PCM wav (atomic); values are clipped to [-1, 1]."""
    sf = _sf()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or len(audio) == 0:
        raise ShapeError("audio", audio.shape, "(samples,) mono")
    if not np.isfinite(audio).all():
        raise ShapeError("audio", "NaN or inf samples", "finite samples in [-1, 1]")
    path = Path(path)
    tmp = _tmp_beside(path, ".wav")
    sf.write(str(tmp), np.clip(audio, -1, 1), int(sample_rate), subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
    return path


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """(samples,) float32 mono (channels averaged) and the sample rate of a wav file."""
    sf = _sf()
    p = readable_file(path, "audio file", "pass the path of an existing .wav")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises its own LibsndfileError / RuntimeError
        raise MalformedFile(str(p), f"not a readable wav ({exc})", fix="re-export the audio as wav (e.g. with write_wav)") from None
    if len(data) == 0:
        raise MalformedFile(str(p), "no audio samples")
    return data.mean(axis=1).astype(np.float32), int(sr)


def write_pair(folder: str | os.PathLike, index: int, video: np.ndarray, audio: np.ndarray, *, fps: float, sample_rate: int) -> tuple[Path, Path]:
    """Write ``sample_<index:04d>.mp4`` and ``.wav`` into ``folder`` (JavisBench's layout)."""
    folder = Path(folder)
    return (write_video(folder / f"sample_{index:04d}.mp4", video, fps), write_wav(folder / f"sample_{index:04d}.wav", audio, sample_rate))


def read_pairs(folder: str | os.PathLike) -> list[tuple[int, np.ndarray, float, np.ndarray, int]]:
    """Every ``sample_XXXX.mp4`` of ``folder`` with its ``.wav``, in index order: (index, video, fps, audio, sample_rate).

    A video without its wav is an error (JavisBench scores pairs)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MalformedFile(str(folder), "not a folder", fix="pass the folder holding sample_XXXX.mp4 + sample_XXXX.wav pairs")
    out = []
    for p in sorted(folder.iterdir()):
        m = PAIR_RE.match(p.name)
        if not m:
            continue
        wav = p.with_suffix(".wav")
        if not wav.exists():
            raise MalformedFile(str(wav), "missing: every sample_XXXX.mp4 needs its sample_XXXX.wav", fix="write the audio of each clip beside its video")
        video, fps = read_video(p)
        audio, sr = read_wav(wav)
        out.append((int(m.group(1)), video, fps, audio, sr))
    if not out:
        raise MalformedFile(str(folder), "no sample_XXXX.mp4 files", fix="write the generated clips with write_pair")
    return out


def mel_to_wave(mel_power: np.ndarray, *, sample_rate: int, hop_length: int, n_samples: int, f_min: float = 0.0,
                f_max: float | None = None, mel_scale: str = "slaney") -> np.ndarray:
    """Additive resynthesis of a (n_mels, frames) *power* mel spectrogram: sum over bands of
    ``sqrt(power_b(t)) sin(2 pi f_b t)``, f_b the band's centre, envelopes linearly interpolated from frame
    centres (frame j at sample j * hop_length, as a centred STFT). Returns (n_samples,) float32, peak <= 1."""
    from transformers.audio_utils import hertz_to_mel, mel_to_hertz

    mel_power = np.asarray(mel_power, dtype=np.float64)
    if mel_power.ndim != 2 or not np.isfinite(mel_power).all():
        raise ShapeError("mel_power", mel_power.shape, "a finite (n_mels, frames) power spectrogram")
    n_mels, frames = mel_power.shape
    f_max = f_max or sample_rate / 2
    edges = mel_to_hertz(np.linspace(hertz_to_mel(f_min, mel_scale), hertz_to_mel(f_max, mel_scale), n_mels + 2), mel_scale)
    centres = edges[1:-1]
    t = np.arange(n_samples)
    env = np.stack([np.interp(t, np.arange(frames) * hop_length, np.sqrt(np.maximum(mel_power[b], 0))) for b in range(n_mels)])
    wave = (env * np.sin(2 * np.pi * centres[:, None] * t[None] / sample_rate)).sum(0)
    peak = np.abs(wave).max()
    return (wave / peak if peak > 1 else wave).astype(np.float32)
