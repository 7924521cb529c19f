"""The study's talking-head denoiser: the room's video DiT with a control layer between spatial and temporal attention.

ACTalker fine-tunes SVD's spatio-temporal UNet with its PCM layer after every spatial block. At CPU size we use
:class:`reprolab.nn.avdit.TinyAVDiT` (video only; 4x4 patches: 24x24 frames in the study -> a 6x6 token grid), trained by
rectified flow (:mod:`reprolab.nn.flow`; SVD is trained with EDM, a different noise schedule: said in the README).
The reference frame enters twice, as in SVD and ACTalker: as channels concatenated to every noisy frame (SVD's image
conditioning) and as the identity token of the control layer (ACTalker's ``e_id``, here the mean of the reference's
patch embeddings instead of a CLIP embedding).

Control layers (one per block, ``fusion=``):

- ``"pcm"``: :class:`~.pcm.PCMLayer` with the paper's masks (:func:`~.pcm.gate_masks`): both gates on -> audio
  scans the mouth tokens, motion every other token; one gate -> that branch scans the face;
- ``"pcm_ones"``: the same layer without Mask-Drop: an open gate's branch scans every token (the ablation of claim
  (a); also what the released ``Inference.py`` does at sampling, ``released=True`` for a ``"pcm"`` model);
- ``"xattn"``: :class:`~.pcm.CrossAttentionFusion` (both signals by cross-attention, no masks; claim (b)'s peer).

Conditions (the :mod:`reprolab.nn.flow` interface, batch first): ``reference`` (B, 3, H, W) in [-1, 1], ``audio``
(B, T, 10, 384) Whisper windows per frame, ``motion`` (B, T, 5), and the never-dropped ``gates`` (B, 2), ``face`` and
``mouth`` (B, H, W) pixel masks. A dropped condition (classifier-free guidance) is a closed gate for audio and motion
(its tokens are multiplied by 0 and its mask follows the gate) and zeros for the reference (SVD drops its image
condition by zeroing it). Token masks come from the pixel masks on the patch grid: the mouth takes every token that
holds a mouth pixel (so no mouth pixel is left to the motion branch), the face every token at least half face, plus
the mouth's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, ShapeError
from ...nn.avdit import AVDiTConfig, TinyAVDiT, patchify_video
from .pcm import CrossAttentionFusion, PCMLayer, gate_masks

__all__ = ["FUSIONS", "TalkerConfig", "TalkingDiT", "token_masks"]

FUSIONS = ("pcm", "pcm_ones", "xattn")


@dataclass(frozen=True)
class TalkerConfig:
    fusion: str = "pcm"
    dim: int = 64
    depth: int = 2
    heads: int = 4
    patch: int = 4
    d_cond: int = 64
    d_state: int = 8  # official 16; 8 at CPU size (the spec sheet's budget)
    audio_dim: int = 384  # Whisper tiny encoder width
    audio_window: int = 10  # encoder frames per video frame (official projector input)
    motion_dim: int = 5
    residual: bool = False  # PCM only: x + s * PCM(x) with s initialised at 0 (the official layer replaces x)

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ConfigError("fusion", self.fusion, f"one of {FUSIONS}")


def token_masks(face: torch.Tensor, mouth: torch.Tensor, patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(face, mouth) token masks (B, S) from (B, H, W) pixel masks: mouth = any mouth pixel in the patch; face = at
    least half the patch face, or any mouth pixel."""
    if face.dim() != 3 or face.shape != mouth.shape:
        raise ShapeError("face / mouth masks", (tuple(face.shape), tuple(mouth.shape)), "(B, H, W) each")
    m = F.max_pool2d(mouth.float()[:, None], patch).flatten(1) > 0
    f = F.avg_pool2d(face.float()[:, None], patch).flatten(1) >= 0.5
    return f | m, m


class _ControlHook(nn.Module):
    """One block's control layer on the (B, T, S, D) video tokens; per-frame conditions come in the context."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor, ctx: dict[str, Any]) -> torch.Tensor:
        B, T, S, D = x.shape
        rep = lambda a: a.repeat_interleave(T, dim=0)  # noqa: E731  (B, ...) -> (B*T, ...) in x.reshape's order
        y = self.layer(x.reshape(B * T, S, D), rep(ctx["id"]), {"audio": ctx["audio"].flatten(0, 1), "motion": ctx["motion"].flatten(0, 1)},
                       (rep(ctx["masks"][0]), rep(ctx["masks"][1])), rep(ctx["gates"]))
        return y.view(B, T, S, D)


class TalkingDiT(nn.Module):
    """``model(x_t (B, T, 3, H, W), t, conditions, dropped) -> v``: see the module docstring."""

    def __init__(self, config: TalkerConfig | None = None, *, released: bool = False):
        super().__init__()
        self.config = c = config or TalkerConfig()
        self.released = released  # a "pcm" model sampled with the released all-ones masks
        self.dit = TinyAVDiT(AVDiTConfig(video_channels=3, video_cond_channels=3, patch=c.patch, audio_mels=None, dim=c.dim, depth=c.depth,
                                         heads=c.heads))
        self.audio_proj = nn.Linear(c.audio_dim, c.d_cond)
        self.audio_pos = nn.Parameter(torch.randn(c.audio_window, c.d_cond) * 0.02)
        self.motion_proj = nn.Linear(c.motion_dim, c.d_cond)
        self.id_proj = nn.Linear(3 * c.patch * c.patch, c.d_cond)

        def make(dim: int, heads: int, block: int) -> nn.Module:
            if c.fusion == "xattn":
                return _ControlHook(CrossAttentionFusion(dim, c.d_cond, heads=heads))
            return _ControlHook(PCMLayer(dim, c.d_cond, d_state=c.d_state, residual=c.residual))

        self.dit.attach_after_spatial("control", make)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, conditions: dict[str, torch.Tensor],
                dropped: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        c = self.config
        dropped = dropped or {}
        B, T = x_t.shape[:2]
        need = {"reference", "audio", "motion", "gates", "face", "mouth"} - set(conditions)
        if need:
            raise ConfigError("conditions", sorted(conditions), f"also {sorted(need)}")
        audio, motion = conditions["audio"], conditions["motion"]
        if audio.shape[:2] != (B, T) or audio.shape[2:] != (c.audio_window, c.audio_dim):
            raise ShapeError("audio", tuple(audio.shape), f"(B={B}, T={T}, {c.audio_window}, {c.audio_dim})")
        if motion.shape != (B, T, c.motion_dim):
            raise ShapeError("motion", tuple(motion.shape), f"(B={B}, T={T}, {c.motion_dim})")

        def keep(name: str) -> torch.Tensor:
            d = dropped.get(name)
            return torch.ones(B, device=x_t.device) if d is None else (~d.to(x_t.device)).float()

        ref = conditions["reference"] * keep("reference")[:, None, None, None]
        gates = conditions["gates"].float() * torch.stack([keep("audio"), keep("motion")], dim=1)
        face, mouth = token_masks(conditions["face"], conditions["mouth"], c.patch)
        if c.fusion == "pcm_ones" or self.released:
            masks = gate_masks(gates, face, mouth, released=True)
        else:
            masks = gate_masks(gates, face, mouth)
        ctx = {
            "id": self.id_proj(patchify_video(ref[:, None], c.patch)[:, 0]).mean(1, keepdim=True),  # (B, 1, d_cond)
            "audio": self.audio_proj(audio) + self.audio_pos,  # (B, T, 10, d_cond)
            "motion": self.motion_proj(motion)[:, :, None],  # (B, T, 1, d_cond)
            "masks": masks,
            "gates": gates,
        }
        return self.dit(x_t, t, video_cond=ref, context=ctx)
