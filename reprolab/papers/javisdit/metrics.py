"""JavisBench's synchrony metrics: JavisScore, AVHScore and AV-Align (JavisDiT, arXiv 2503.23377, Sec. 4; ``eval/javisbench``).

- :func:`javis_score` (official defaults ``window=2.0`` s, ``overlap=1.5`` s, ``lowest=0.4``): slide windows of
  ``window`` seconds with stride ``window - overlap`` over the clip; in each, embed the audio window and every
  video frame inside it, take the cosines frame-vs-audio, average the lowest ``k = int(lowest * N)`` of them
  (at least one), and average over windows. A clip is only as synchronous as its worst-aligned frames.
- :func:`avh_score`: the mean over frames of cos(E(frame), E(whole audio)) (audio-visual harmony; no timing).
- :func:`av_align`: onsets of the audio (peaks of the positive log-mel flux) against peaks of the video's
  optical-flow magnitude (OpenCV Farneback), intersection over union with a match when they are within
  ``tolerance_frames`` frames (the official code's ``+-`` window; the spec sheet asks +-3 frames).

Encoders are pluggable callables: ``frame_encoder(frames (N, 3, H, W) float in [0, 1]) -> (N, D)`` and
``audio_encoder(waves (N, samples) float) -> (N, D)`` (ImageBind in the paper; our study trains small ones,
see :mod:`.sync_encoders`). :func:`score_folder` reads JavisBench-style ``sample_XXXX.mp4`` + ``.wav`` pairs.

Choices where the paper is vague: the last window is dropped when it would run past the clip (windows start
at 0, stride ``window - overlap``, while ``start + window <= duration``; a clip shorter than one window is one
window); a frame belongs to a window when its time ``j / fps`` lies in ``[start, start + window)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...data.av_io import read_pairs
from ...errors import ConfigError, NonFiniteError, ShapeError

Encoder = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["SyncScores", "audio_onsets", "av_align", "av_align_peaks", "avh_score", "flow_peaks", "javis_score", "score_clip", "score_folder", "windows"]


def windows(duration: float, window: float, overlap: float) -> list[float]:
    """Start times of the JavisScore windows."""
    if window <= 0 or not 0 <= overlap < window:
        raise ConfigError("window/overlap", (window, overlap), "window > 0 and 0 <= overlap < window")
    stride = window - overlap
    starts = []
    s = 0.0
    while s + window <= duration + 1e-9:
        starts.append(round(s, 9))
        s += stride
    return starts or [0.0]


def _check(video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    video = torch.as_tensor(np.asarray(video) if not isinstance(video, torch.Tensor) else video, dtype=torch.float32)
    audio = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio, dtype=torch.float32)
    if video.dim() != 4 or video.shape[1] != 3:
        raise ShapeError("video", tuple(video.shape), "(T, 3, H, W) RGB in [0, 1]")
    if audio.dim() != 1:
        raise ShapeError("audio", tuple(audio.shape), "(samples,) mono")
    if not (torch.isfinite(video).all() and torch.isfinite(audio).all()):
        raise NonFiniteError("the clip", "NaN or inf values", fix="check the generator's output before scoring it")
    return video, audio


def _cos_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ShapeError("encoder output", (tuple(a.shape), tuple(b.shape)), "(N, D) frame and audio embeddings of the same width D")
    out = F.cosine_similarity(a[:, None], b[None], dim=-1)
    if not torch.isfinite(out).all():
        raise NonFiniteError("encoder output", "NaN or inf embeddings", fix="check the encoders (a zero embedding has no cosine)")
    return out


@torch.no_grad()
def javis_score(video, audio, *, fps: float, sample_rate: int, frame_encoder: Encoder, audio_encoder: Encoder, window: float = 2.0,
                overlap: float = 1.5, lowest: float = 0.4) -> float:
    """JavisScore of one clip (see the module docstring); ``video`` (T, 3, H, W) in [0, 1], ``audio`` (samples,)."""
    video, audio = _check(video, audio)
    if not 0 < lowest <= 1:
        raise ConfigError("lowest", lowest, "a fraction in (0, 1]")
    duration = len(video) / fps
    frame_emb = frame_encoder(video)
    segs, members = [], []
    for s in windows(duration, window, overlap):
        a0, a1 = int(round(s * sample_rate)), int(round((s + window) * sample_rate))
        seg = audio[a0:a1]
        if len(seg) < a1 - a0:
            seg = F.pad(seg, (0, a1 - a0 - len(seg)))
        idx = [j for j in range(len(video)) if s - 1e-9 <= j / fps < s + window - 1e-9]
        if idx:
            segs.append(seg)
            members.append(idx)
    audio_emb = audio_encoder(torch.stack(segs))  # every window in one call
    per_window = []
    for w, idx in enumerate(members):
        cos = _cos_rows(frame_emb[idx], audio_emb[w: w + 1])[:, 0]
        k = max(1, int(lowest * len(idx)))
        per_window.append(float(torch.sort(cos).values[:k].mean()))
    return float(np.mean(per_window))


@torch.no_grad()
def avh_score(video, audio, *, frame_encoder: Encoder, audio_encoder: Encoder) -> float:
    """AVHScore: mean over frames of cos(E(frame), E(whole audio))."""
    video, audio = _check(video, audio)
    return float(_cos_rows(frame_encoder(video), audio_encoder(audio[None]))[:, 0].mean())


def audio_onsets(audio: np.ndarray, sample_rate: int, *, hop: int = 160, n_mels: int = 64) -> np.ndarray:
    """Onset times (s): peaks of the positive log-mel flux above its mean + 1 std (a 3-hop local maximum)."""
    from ...nn.audio import FrontEndConfig, log_mel

    fe = FrontEndConfig(sample_rate=sample_rate, n_fft=4 * hop, hop_length=hop, n_mels=n_mels, f_min=0.0)
    db = log_mel(torch.as_tensor(np.asarray(audio, dtype=np.float32)), fe).numpy()
    flux = np.maximum(np.diff(db, axis=1), 0).sum(0)
    thr = flux.mean() + flux.std()
    peaks = [i for i in range(len(flux)) if flux[i] > thr and flux[i] == flux[max(0, i - 3): i + 4].max()]
    return (np.asarray(peaks, dtype=float) + 1) * hop / sample_rate


def flow_peaks(video: np.ndarray, fps: float) -> np.ndarray:
    """Times (s) of local maxima of the mean Farneback optical-flow magnitude above its mean (AV-Align's video side)."""
    import cv2

    video = np.asarray(video)
    gray = [cv2.cvtColor((np.clip(f.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY) for f in video]
    mag = np.array([np.linalg.norm(cv2.calcOpticalFlowFarneback(gray[i - 1], gray[i], None, 0.5, 1, 5, 3, 5, 1.1, 0), axis=-1).mean()
                    for i in range(1, len(gray))])
    if len(mag) == 0:
        return np.zeros(0)
    thr = mag.mean()
    peaks = [i for i in range(len(mag)) if mag[i] > thr and mag[i] == mag[max(0, i - 1): i + 2].max()]
    return (np.asarray(peaks, dtype=float) + 1) / fps


def av_align_peaks(a: np.ndarray, v: np.ndarray, tolerance: float) -> float:
    """(audio peaks with a video peak within ``tolerance`` s + video peaks with an audio peak within it) / (all peaks)."""
    a, v = np.asarray(a, dtype=float), np.asarray(v, dtype=float)
    if len(a) + len(v) == 0:
        return 0.0
    ma = sum(1 for t in a if len(v) and np.min(np.abs(v - t)) <= tolerance + 1e-9)
    mv = sum(1 for t in v if len(a) and np.min(np.abs(a - t)) <= tolerance + 1e-9)
    return float((ma + mv) / (len(a) + len(v)))


def av_align(video, audio, *, fps: float, sample_rate: int, tolerance_frames: int = 3) -> float:
    """AV-Align in [0, 1]: :func:`av_align_peaks` of the audio onsets and the flow peaks, tolerance +-tolerance_frames / fps.

    The official code divides the audio peaks that find a video peak by |a| + |v| - matches (an IoU that
    exceeds 1 when several onsets share one peak); we count matches from both sides over |a| + |v|,
    which is the same when matches are one-to-one and stays in [0, 1] otherwise."""
    return av_align_peaks(audio_onsets(np.asarray(audio), sample_rate), flow_peaks(np.asarray(video), fps), tolerance_frames / fps)


@dataclass
class SyncScores:
    index: int
    javis: float
    avh: float
    av_align: float


def score_clip(video, audio, *, fps: float, sample_rate: int, frame_encoder: Encoder, audio_encoder: Encoder, window: float = 2.0,
               overlap: float = 1.5, lowest: float = 0.4, index: int = 0) -> SyncScores:
    """The three metrics of one clip."""
    return SyncScores(index,
                      javis_score(video, audio, fps=fps, sample_rate=sample_rate, frame_encoder=frame_encoder, audio_encoder=audio_encoder,
                                  window=window, overlap=overlap, lowest=lowest),
                      avh_score(video, audio, frame_encoder=frame_encoder, audio_encoder=audio_encoder),
                      av_align(video, audio, fps=fps, sample_rate=sample_rate))


def score_folder(folder: str | os.PathLike, *, frame_encoder: Encoder, audio_encoder: Encoder, sample_rate: int | None = None,
                 window: float = 2.0, overlap: float = 1.5, lowest: float = 0.4) -> list[SyncScores]:
    """Score every ``sample_XXXX.mp4`` + ``.wav`` pair of ``folder`` (JavisBench's layout). ``sample_rate``:
    the rate the audio encoder expects; a wav at another rate is an error (resample it first)."""
    out = []
    for index, video, fps, audio, sr in read_pairs(folder):
        if sample_rate is not None and sr != sample_rate:
            raise ConfigError(f"sample rate of sample_{index:04d}.wav", sr, f"{sample_rate} Hz (resample the audio first)")
        out.append(score_clip(video, audio, fps=fps, sample_rate=sr, frame_encoder=frame_encoder, audio_encoder=audio_encoder,
                              window=window, overlap=overlap, lowest=lowest, index=index))
    return out
