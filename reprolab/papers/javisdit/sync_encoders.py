"""Small frame and audio-window encoders for JavisScore / AVHScore where ImageBind is not available offline.

JavisScore (JavisDiT Sec. 4) scores a clip with a joint audio-visual embedding (ImageBind). No such
weights exist offline, so the study trains a pair of tiny encoders by symmetric InfoNCE (CLIP's loss,
Radford et al. 2021) on *true* pairs of held-out clips: a video frame at time ``j / fps`` against the audio
window of ``window`` seconds it falls in, the other pairs of the batch as negatives (several windows of
the same clip per batch, so timing matters, not only which clip). The encoders are frozen before any
generator is trained or scored.

- :class:`FrameEncoder`: (N, 3, H, W) in [0, 1] -> unit (N, D): two strided convolutions, a linear head.
- :class:`AudioWindowEncoder`: (N, samples) -> unit (N, D): log-mel (:mod:`reprolab.nn.audio`), a 1-D
  convolution over time with the mel bins as channels, max over time (any window length), a linear head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...data.av_events import AVClip
from ...errors import ConfigError
from ...nn.audio import FrontEndConfig, log_mel
from ...runtime import track

__all__ = ["AudioWindowEncoder", "FrameEncoder", "SyncEncoderConfig", "train_sync_encoders"]


@dataclass(frozen=True)
class SyncEncoderConfig:
    dim: int = 32  # embedding width
    window: float = 1.0  # seconds of audio per window (JavisScore's window at our clip length)
    steps: int = 300  # InfoNCE steps
    clips_per_batch: int = 16
    windows_per_clip: int = 4
    lr: float = 2e-3
    temperature: float = 0.1
    n_mels: int = 32
    hop: int = 160  # 10 ms at 16 kHz


class FrameEncoder(nn.Module):
    def __init__(self, dim: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.GELU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GELU(),
                                 nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(512, dim))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(frames.float()), dim=-1)


class AudioWindowEncoder(nn.Module):
    def __init__(self, dim: int = 32, *, sample_rate: int = 16000, n_mels: int = 32, hop: int = 160):
        super().__init__()
        self.fe = FrontEndConfig(sample_rate=sample_rate, n_fft=4 * hop, hop_length=hop, n_mels=n_mels, f_min=0.0, top_db=None)
        self.net = nn.Sequential(nn.Conv1d(n_mels, 64, 5, padding=2), nn.GELU(), nn.Conv1d(64, 64, 5, padding=2), nn.GELU())
        self.head = nn.Linear(64, dim)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        db = log_mel(waves.float(), self.fe)  # (N, n_mels, frames)
        x = ((db.clamp(-80.0, 20.0) + 30.0) / 50.0)
        return F.normalize(self.head(self.net(x).amax(dim=-1)), dim=-1)


def train_sync_encoders(clips: Sequence[AVClip], config: SyncEncoderConfig = SyncEncoderConfig(), seed: int = 0,
                        device: torch.device | str = "cpu") -> tuple[FrameEncoder, AudioWindowEncoder, list[float]]:
    """Train the two encoders on true pairs of ``clips`` (see the module docstring); returns them frozen, in
    eval mode, and the loss per step."""
    if len(clips) < 2:
        raise ConfigError("clips", len(clips), "at least 2 clips")
    cfg0 = clips[0].config
    if config.window > cfg0.duration:
        raise ConfigError("window", config.window, f"at most the clip duration {cfg0.duration} s")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    fenc = FrameEncoder(config.dim).to(device)
    aenc = AudioWindowEncoder(config.dim, sample_rate=cfg0.sample_rate, n_mels=config.n_mels, hop=config.hop).to(device)
    params = list(fenc.parameters()) + list(aenc.parameters())
    opt = torch.optim.AdamW(params, lr=config.lr)
    videos = torch.as_tensor(np.stack([c.video for c in clips]))
    audios = torch.as_tensor(np.stack([c.audio for c in clips]))
    L = int(round(config.window * cfg0.sample_rate))
    starts_max = cfg0.duration - config.window
    losses = []
    for _ in track(range(config.steps), "JavisScore encoders (InfoNCE)", total=config.steps):
        ci = torch.randint(len(clips), (config.clips_per_batch,), generator=g).repeat_interleave(config.windows_per_clip)
        s = torch.rand(len(ci), generator=g) * starts_max
        s = (s * cfg0.fps).floor() / cfg0.fps  # window starts on frame times
        frames_in = int(round(config.window * cfg0.fps))
        j = (s * cfg0.fps).round().long() + torch.randint(frames_in, (len(ci),), generator=g)
        j = j.clamp(max=cfg0.frames - 1)
        a0 = (s * cfg0.sample_rate).round().long()
        waves = torch.stack([audios[c, a: a + L] for c, a in zip(ci.tolist(), a0.tolist())])
        fr = videos[ci, j]
        zf, za = fenc(fr.to(device)), aenc(waves.to(device))
        logits = zf @ za.T / config.temperature
        same = (ci[:, None] == ci[None]) & (s[:, None] == s[None])  # identical windows of one clip are not negatives
        target = torch.arange(len(ci), device=logits.device)
        mask = same.to(logits.device) & ~torch.eye(len(ci), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(mask, -1e4)
        loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    for m in (fenc, aenc):
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
    return fenc, aenc, losses
