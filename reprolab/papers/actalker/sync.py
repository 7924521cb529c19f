"""A SyncNet-like audio-visual offset classifier (the judge of ACTalker's lip-sync claim, trained on true clips first).

SyncNet (Chung & Zisserman 2016), as the Sync-C / Sync-D metrics use it, finds the audio-video offset that best
matches mouth motion to sound. Ours is the classifier form at toy scale: for ``span`` consecutive frames it sees the
mouth region's pixels (a crop of the clip's mouth box, each frame) and the audio features of the frames ``o`` later,
and predicts ``o`` in ``-max_offset..max_offset``: the audio's *lead* in frames (positive: the sound comes early;
negative: it comes late). Trained on true clips with random shifts (the
truth is offset 0), it reads a generated clip's offset as the class with the highest mean logit over its windows;
a clip in sync reads 0.

    clf = train_offset_classifier(mouths, audio, steps=400)   # (N, F, D_m) mouth crops flattened, (N, F, D_a)
    offsets = clf.clip_offsets(mouths_generated, audio)       # (N,) ints
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, ShapeError
from ...runtime import track

__all__ = ["OffsetClassifier", "mouth_crops", "train_offset_classifier"]


def mouth_crops(video: np.ndarray, mouth_mask: np.ndarray, box: tuple[int, int] | None = None) -> np.ndarray:
    """(F, 3 * h * w) pixels of the mouth region in every frame of a (F, 3, H, W) clip: the mask's bounding box, or a
    fixed ``box`` = (h, w) centred on the box's centre (kept inside the frame), so that clips of different faces give
    crops of one size."""
    ys, xs = np.nonzero(mouth_mask)
    if len(ys) == 0:
        raise ShapeError("mouth_mask", "empty", "a mask with at least one pixel")
    if box is None:
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    else:
        H, W = mouth_mask.shape
        h, w = box
        if not (0 < h <= H and 0 < w <= W):
            raise ShapeError("box", box, f"(h, w) within the frame ({H}, {W})")
        cy, cx = (ys.min() + ys.max() + 1) // 2, (xs.min() + xs.max() + 1) // 2
        y0, x0 = min(max(0, cy - h // 2), H - h), min(max(0, cx - w // 2), W - w)
        y1, x1 = y0 + h, x0 + w
    crop = np.asarray(video)[:, :, y0:y1, x0:x1]
    return crop.reshape(len(crop), -1).astype(np.float32)


class OffsetClassifier(nn.Module):
    def __init__(self, mouth_dim: int, audio_dim: int, *, span: int = 5, max_offset: int = 2, width: int = 64):
        super().__init__()
        if span < 1 or max_offset < 1:
            raise ConfigError("span / max_offset", (span, max_offset), "positive integers")
        self.span, self.max_offset = span, max_offset
        self.mouth = nn.Sequential(nn.Linear(mouth_dim, width), nn.GELU(), nn.Linear(width, width))
        self.audio = nn.Sequential(nn.Linear(audio_dim, width), nn.GELU(), nn.Linear(width, width))
        self.head = nn.Sequential(nn.Linear(2 * width * span, 2 * width), nn.GELU(), nn.Linear(2 * width, 2 * max_offset + 1))
        self.register_buffer("m_mean", torch.zeros(mouth_dim))
        self.register_buffer("m_std", torch.ones(mouth_dim))
        self.register_buffer("a_mean", torch.zeros(audio_dim))
        self.register_buffer("a_std", torch.ones(audio_dim))

    def forward(self, mouth: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Logits over offsets -max..max for windows: mouth (B, span, D_m), audio (B, span, D_a)."""
        m = self.mouth((mouth - self.m_mean) / self.m_std)
        a = self.audio((audio - self.a_mean) / self.a_std)
        return self.head(torch.cat([m, a], dim=-1).flatten(1))

    def _windows(self, mouth: torch.Tensor, audio: torch.Tensor, offset: int, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows of ``span`` frames at ``starts`` with the audio taken ``offset`` frames later (start index >= max_offset)."""
        idx = starts[:, None] + torch.arange(self.span)[None, :]
        return mouth[:, idx], audio[:, idx + offset]

    @torch.no_grad()
    def clip_offsets(self, mouth: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N,) the audio's lead (frames) each clip reads as: argmax of the mean logits over all its windows; 0 = in sync,
        -2 = the sound arrives two frames late."""
        m, a = torch.as_tensor(np.asarray(mouth), dtype=torch.float32), torch.as_tensor(np.asarray(audio), dtype=torch.float32)
        F = m.shape[1]
        starts = torch.arange(self.max_offset, F - self.span - self.max_offset + 1)
        if len(starts) == 0:
            raise ShapeError("clips", F, f"at least {self.span + 2 * self.max_offset} frames")
        mw, aw = self._windows(m, a, 0, starts)  # (N, W, span, D)
        logits = self(mw.flatten(0, 1), aw.flatten(0, 1)).reshape(len(m), len(starts), -1).mean(1)
        return (logits.argmax(-1) - self.max_offset).numpy()


def train_offset_classifier(mouth: np.ndarray, audio: np.ndarray, *, steps: int = 400, span: int = 5, max_offset: int = 2, batch: int = 128,
                            lr: float = 2e-3, seed: int = 0) -> OffsetClassifier:
    """Train on true clips (N, F, D): each example a random window and a random offset of the audio against the video."""
    m = torch.as_tensor(np.asarray(mouth), dtype=torch.float32)
    a = torch.as_tensor(np.asarray(audio), dtype=torch.float32)
    if m.dim() != 3 or a.dim() != 3 or m.shape[:2] != a.shape[:2]:
        raise ShapeError("mouth / audio", (tuple(m.shape), tuple(a.shape)), "(N, F, D_m) and (N, F, D_a) for the same clips and frames")
    N, F, _ = m.shape
    if F < span + 2 * max_offset:
        raise ShapeError("clips", F, f"at least span + 2 max_offset = {span + 2 * max_offset} frames")
    torch.manual_seed(seed)
    clf = OffsetClassifier(m.shape[-1], a.shape[-1], span=span, max_offset=max_offset)
    clf.m_mean.copy_(m.mean((0, 1)))
    clf.m_std.copy_(m.std((0, 1)).clamp_min(1e-3))
    clf.a_mean.copy_(a.mean((0, 1)))
    clf.a_std.copy_(a.std((0, 1)).clamp_min(1e-3))
    opt = torch.optim.Adam(clf.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in track(range(steps), "offset classifier (true clips)", total=steps):
        i = torch.randint(N, (batch,), generator=g)
        off = torch.randint(-max_offset, max_offset + 1, (batch,), generator=g)
        start = torch.randint(max_offset, F - span - max_offset + 1, (batch,), generator=g)
        idx = start[:, None] + torch.arange(span)[None, :]
        mw = m[i[:, None], idx]
        aw = a[i[:, None], idx + off[:, None]]
        loss = nn.functional.cross_entropy(clf(mw, aw), off + max_offset)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clf.eval()
