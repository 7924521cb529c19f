"""A tiny diffusion transformer for video with an optional audio branch, and adapters for diffusers' video DiTs.

The block follows OpenSora's STDiT3 and JavisDiT's joint block (Liu et al. 2025, Sec. 3.2), at CPU size:

- video (B, T, C, H, W) -> patches of ``patch`` x ``patch`` -> tokens (B, T, S, D), S = (H/p)(W/p);
  audio mel (B, C, M, L) -> patches of ``audio_patch`` = (mel, time) -> tokens (B, L/pt, M/pm, D):
  the mel axis plays the role of space, as in JavisDiT's audio branch;
- per block and modality: spatial self-attention (each time step's tokens), temporal self-attention
  (each position's time series), then the named cross-attention slots, then (with audio) the
  bidirectional audio<->video cross-attention over all tokens, then an MLP;
- time conditioning by adaLN-single (PixArt-alpha Sec. 2.3): one MLP maps the timestep embedding
  to 9 modulation vectors (shift, scale, gate for spatial attention, temporal attention and MLP),
  and each block adds its own learned table;
- sinusoidal positions for space and time computed on the fly, so any frame count and any size
  divisible by the patch works (audio: time and mel axis in separate halves of the channels, :func:`audio_positions`).

Every path added on top of the two self-attention branches starts at zero: the named slots'
output projections and the audio<->video gates (per channel, as JavisDiT's ``a2v``/``v2a`` gates)
are zero-initialised, so adding a slot or the AV cross-attention to a trained model leaves its
output unchanged until training moves them.

Named slots (``slots={"text": 384}``): cross-attention of all of a modality's tokens to a condition
sequence (B, L, width), projected once to the token width by a per-name MLP (PixArt's caption
projection); a dropped condition (classifier-free guidance) is replaced by a learned null token
repeated L times before the projection. A paper can attach its own slot (:meth:`TinyAVDiT.attach_slot`), e.g.
JavisDiT's ST-prior block, which sees the (B, T, S, D) layout and the time embedding.

The model is a denoiser in the sense of :mod:`reprolab.nn.flow`: ``model(x_t, t, conditions, dropped)``
with ``x_t = {"video": ..., "audio": ...}`` (or a tensor for a video-only model) and ``t`` in [0, 1].

    from reprolab.nn.avdit import AVDiTConfig, TinyAVDiT
    model = TinyAVDiT(AVDiTConfig(dim=64, depth=4, audio_mels=64, slots={"text": 384}))
    v = model({"video": x_v, "audio": x_a}, t, {"text": tokens}, {"text": torch.zeros(B, dtype=torch.bool)})

Seconds per training step (forward + backward + AdamW, batch 16, 2 threads of a shared 2-core machine, from the
studies' own timings): javisdit v2 (8 frames 16x16 RGB in 4x4 patches + a 64 x 100 mel in 8 x 4 patches -> 128 + 200
tokens, dim 48, 3 blocks, a 384-d text slot, 0.40M parameters): 0.163 s (full run, stage A, 1100 steps); without
the AV cross-attention 0.11 s. v1's 16 x 4 mel patches (100 audio tokens, a bottleneck) took 0.13 s. SkyReels-A2
trains diffusers' ``WanTransformer3DModel`` through :mod:`reprolab.nn.flow` rather than this DiT: at its study's size
(3 reference slots + 8 frames 32x32 RGB in 4x4 patches = 704 tokens, 3 heads x 16, 2 layers, batch 8) 0.22 s per step
(its first quick run, 2026-12-02, shared cores). ACTalker puts its PCM layer between each block's spatial and
temporal attention (:meth:`TinyAVDiT.attach_after_spatial`, with per-call inputs through ``forward(..., context=)``)
and gives the reference frame as channels concatenated to every noisy frame (``video_cond_channels``, SVD's image
conditioning). Keep every patch narrower than the token (:class:`BottleneckWarning`).

:func:`diffusers_denoiser` wraps diffusers' ``WanTransformer3DModel`` (video) and
``LTX2VideoTransformer3DModel`` (video + audio) in the same interface, for baselines trained by the
same :func:`reprolab.nn.flow.train_flow`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ConfigError, ShapeError

__all__ = ["AVDiTConfig", "BottleneckWarning", "CrossAttentionSlot", "TinyAVDiT", "diffusers_denoiser", "patchify_audio", "patchify_video",
           "audio_positions", "sinusoidal", "timestep_embedding", "unpatchify_audio", "unpatchify_video"]


@dataclass(frozen=True)
class AVDiTConfig:
    video_channels: int = 3  # channels of a video frame
    patch: int = 4  # spatial patch of the video (H and W divisible by it)
    audio_channels: int = 1  # channels of the audio mel "image"
    audio_mels: int | None = 64  # mel bins of the audio branch (None: video only)
    audio_patch: tuple[int, int] = (16, 4)  # audio patch (mel bins, mel frames)
    dim: int = 64  # token width
    depth: int = 4  # blocks
    heads: int = 4  # attention heads
    mlp_ratio: float = 4.0  # MLP hidden width / dim
    av_cross_attention: bool = True  # bidirectional audio<->video cross-attention (needs the audio branch)
    video_cond_channels: int = 0  # channels concatenated to every frame before the patch embedding (SVD's image conditioning)
    slots: Mapping[str, int] = field(default_factory=dict)  # named cross-attention slots: name -> condition width

    def __post_init__(self) -> None:
        if self.dim % self.heads:
            raise ConfigError("dim", self.dim, f"a multiple of heads={self.heads}")
        if self.video_cond_channels < 0:
            raise ConfigError("video_cond_channels", self.video_cond_channels, "0 (none) or the channels of the frame condition")
        if self.audio_mels is not None and self.audio_mels % self.audio_patch[0]:
            raise ConfigError("audio_mels", self.audio_mels, f"a multiple of audio_patch[0]={self.audio_patch[0]}")
        narrow = {m: n for m, n in self.patch_values.items() if n >= self.dim}
        if narrow:  # the output LayerNorm removes each token's mean: a token carries at most dim - 1 directions to the output
            warnings.warn(f"AVDiTConfig: {' and '.join(f'the {m} patch holds {n} values' for m, n in narrow.items())} but tokens are "
                          f"dim={self.dim} wide and carry at most dim - 1 = {self.dim - 1} directions (the output LayerNorm removes "
                          f"the mean): the patch embedding is a bottleneck, and a flow denoiser cannot carry the noise through it "
                          f"(the lost directions stay noise in every sample); use a smaller patch or dim >= {max(narrow.values()) + 1}",
                          BottleneckWarning, stacklevel=3)

    @property
    def has_audio(self) -> bool:
        return self.audio_mels is not None

    @property
    def patch_values(self) -> dict[str, int]:
        """Values per token of each modality (channels x patch area): ``dim`` or more makes the embedding a bottleneck
        (a token reaches the output through a LayerNorm, which leaves ``dim - 1`` directions)."""
        out = {"video": self.video_channels * self.patch * self.patch}
        if self.has_audio:
            out["audio"] = self.audio_channels * self.audio_patch[0] * self.audio_patch[1]
        return out


class BottleneckWarning(UserWarning):
    """A patch holds more values than a token's width (see :attr:`AVDiTConfig.patch_values`)."""


# ----------------------------------------------------------------------------- layout helpers
def patchify_video(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, S, C p p) with S = (H/p)(W/p), rows first."""
    if x.dim() != 5 or x.shape[-1] % p or x.shape[-2] % p:
        raise ShapeError("video", tuple(x.shape), f"(B, T, C, H, W) with H and W divisible by the patch {p}")
    return rearrange(x, "b t c (h p) (w q) -> b t (h w) (c p q)", p=p, q=p)


def unpatchify_video(tokens: torch.Tensor, c: int, h: int, w: int, p: int) -> torch.Tensor:
    return rearrange(tokens, "b t (h w) (c p q) -> b t c (h p) (w q)", h=h // p, w=w // p, c=c, p=p, q=p)


def patchify_audio(x: torch.Tensor, patch: tuple[int, int]) -> torch.Tensor:
    """(B, C, M, L) mel -> (B, L/pt, M/pm, C pm pt): time first, the mel axis as space."""
    pm, pt = patch
    if x.dim() != 4 or x.shape[-2] % pm or x.shape[-1] % pt:
        raise ShapeError("audio", tuple(x.shape), f"(B, C, mels, frames) with mels divisible by {pm} and frames by {pt}")
    return rearrange(x, "b c (m p) (l q) -> b l m (c p q)", p=pm, q=pt)


def unpatchify_audio(tokens: torch.Tensor, c: int, patch: tuple[int, int]) -> torch.Tensor:
    pm, pt = patch
    return rearrange(tokens, "b l m (c p q) -> b c (m p) (l q)", c=c, p=pm, q=pt)


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoidal features (N, dim) of real positions (N,) (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    ang = positions.float()[:, None] * freqs[None]
    out = torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)
    return F.pad(out, (0, dim - 2 * half))


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of t in [0, 1] scaled to [0, 1000] (the scale DiT and diffusers use)."""
    return sinusoidal(t * 1000.0, dim)


def _pos2d(h: int, w: int, dim: int, device: torch.device) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.cat([sinusoidal(ys.flatten(), dim // 2), sinusoidal(xs.flatten(), dim - dim // 2)], dim=-1)


def audio_positions(frames: int, mels: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """(frames, mels, dim) positions of the audio tokens: time in the first half of the channels, the mel axis in the
    second (as :func:`_pos2d` splits rows and columns). A sum of two full-width sinusoids of the same frequencies would
    make token (mel m, time l) indistinguishable from (mel l, time m), the first version's encoding."""
    return _pos2d(frames, mels, dim, device).view(frames, mels, dim)


# ----------------------------------------------------------------------------- layers
class Attention(nn.Module):
    """Multi-head attention (self when ``context`` is None) on ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None, zero_out: bool = False):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(context_dim or dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        if zero_out:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        ctx = x if context is None else context
        q = rearrange(self.q(x), "b n (h d) -> b h n d", h=self.heads)
        k, v = rearrange(self.kv(ctx), "b n (two h d) -> two b h n d", two=2, h=self.heads)
        return self.out(rearrange(F.scaled_dot_product_attention(q, k, v), "b h n d -> b n (h d)"))


class CrossAttentionSlot(nn.Module):
    """A named cross-attention slot: all tokens of a modality attend to a condition sequence; zero-init output.

    The condition arrives already projected to the token width by the model's per-name projection
    (PixArt's caption projection), with dropped rows replaced by the name's learned null token.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads, dim, zero_out=True)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, temb: torch.Tensor, modality: str) -> torch.Tensor:
        b, t, s, d = x.shape
        return self.attn(self.norm(x.reshape(b, t * s, d)), cond).view(b, t, s, d)


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None, None]) + shift[:, None, None]


class _Branch(nn.Module):
    """One modality's half of a block: spatial attn, temporal attn, slots, MLP (adaLN-single modulated)."""

    def __init__(self, cfg: AVDiTConfig):
        super().__init__()
        d = cfg.dim
        self.norm_s = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn_s = Attention(d, cfg.heads)
        self.norm_t = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn_t = Attention(d, cfg.heads)
        self.norm_m = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        hidden = int(d * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, d))
        self.table = nn.Parameter(torch.randn(9, d) / d**0.5)  # adaLN-single: per-block table added to the shared 9 x d
        self.slots = nn.ModuleDict()
        self.after_spatial = nn.ModuleDict()  # named layers between spatial and temporal attention (TinyAVDiT.attach_after_spatial)

    def mods(self, t9: torch.Tensor) -> list[torch.Tensor]:
        return list((t9 + self.table[None]).unbind(1))  # 9 x (B, d)

    def self_attention(self, x: torch.Tensor, m: list[torch.Tensor], context: Any = None) -> torch.Tensor:
        b, t, s, d = x.shape
        h = _modulate(self.norm_s(x), m[0], m[1]).reshape(b * t, s, d)
        x = x + m[2][:, None, None] * self.attn_s(h).view(b, t, s, d)
        for layer in self.after_spatial.values():
            x = layer(x, context)
        h = rearrange(_modulate(self.norm_t(x), m[3], m[4]), "b t s d -> (b s) t d")
        return x + m[5][:, None, None] * rearrange(self.attn_t(h), "(b s) t d -> b t s d", b=b)

    def mlp_out(self, x: torch.Tensor, m: list[torch.Tensor]) -> torch.Tensor:
        return x + m[8][:, None, None] * self.mlp(_modulate(self.norm_m(x), m[6], m[7]))


class _Block(nn.Module):
    def __init__(self, cfg: AVDiTConfig):
        super().__init__()
        self.video = _Branch(cfg)
        self.audio = _Branch(cfg) if cfg.has_audio else None
        self.av = cfg.has_audio and cfg.av_cross_attention
        if self.av:
            d = cfg.dim
            self.norm_va = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.norm_av = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.a2v = Attention(d, cfg.heads)  # video queries, audio keys/values
            self.v2a = Attention(d, cfg.heads)  # audio queries, video keys/values
            self.gate_a2v = nn.Parameter(torch.zeros(d))  # zero-init per-channel gates (JavisDiT)
            self.gate_v2a = nn.Parameter(torch.zeros(d))


class TinyAVDiT(nn.Module):
    """The denoiser of the module docstring; ``forward(x_t, t, conditions=None, dropped=None)``."""

    def __init__(self, config: AVDiTConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.dim
        p = cfg.patch
        self.video_in = nn.Linear((cfg.video_channels + cfg.video_cond_channels) * p * p, d)
        self.video_out_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.video_out = nn.Linear(d, cfg.video_channels * p * p)
        self.video_out_table = nn.Parameter(torch.randn(2, d) / d**0.5)
        if cfg.has_audio:
            pm, pt = cfg.audio_patch
            self.audio_in = nn.Linear(cfg.audio_channels * pm * pt, d)
            self.audio_out_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.audio_out = nn.Linear(d, cfg.audio_channels * pm * pt)
            self.audio_out_table = nn.Parameter(torch.randn(2, d) / d**0.5)
        self.t_embed = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 9 * d))  # adaLN-single
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.slot_names: list[str] = []
        self.cond_proj = nn.ModuleDict()  # per slot name: condition width -> dim (caption projection)
        self.null = nn.ParameterDict()  # per slot name: the learned null condition token (classifier-free guidance)
        for name, cond_dim in cfg.slots.items():
            self.attach_slot(name, cond_dim, lambda dim, heads, modality: CrossAttentionSlot(dim, heads))

    # --------------------------------------------------------------------- slots
    def attach_slot(self, name: str, cond_dim: int, factory: Callable[[int, int, str], nn.Module]) -> None:
        """Add a named slot to every block and modality: ``factory(dim, heads, modality) -> module`` with
        ``module(tokens (B, T, S, D), cond (B, L, D), temb (B, D), modality) -> delta``. The condition
        (B, L, cond_dim) is projected to D once per forward (an MLP of this slot name) after dropped rows
        are replaced by the name's learned null token. The delta is added to the tokens; it must be zero
        at initialisation for the model to be unchanged (zero-init the module's output)."""
        if name in self.slot_names:
            raise ConfigError("slot name", name, f"a name not already attached ({self.slot_names})")
        device = next(self.parameters()).device
        d = self.config.dim
        self.cond_proj[name] = nn.Sequential(nn.Linear(cond_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d)).to(device)
        self.null[name] = nn.Parameter(torch.randn(1, 1, cond_dim, device=device) * 0.02)
        for blk in self.blocks:
            blk.video.slots[name] = factory(self.config.dim, self.config.heads, "video").to(device)
            if blk.audio is not None:
                blk.audio.slots[name] = factory(self.config.dim, self.config.heads, "audio").to(device)
        self.slot_names.append(name)

    def attach_after_spatial(self, name: str, factory: Callable[[int, int, int], nn.Module]) -> None:
        """Put a layer between every video block's spatial and temporal attention: ``factory(dim, heads, block) ->
        module`` with ``module(tokens (B, T, S, D), context) -> tokens (B, T, S, D)``, where ``context`` is what the
        caller passed as ``forward(..., context=...)`` (per-call inputs such as region masks or per-frame condition
        tokens). The module's output *replaces* the tokens (a layer that wants a residual adds its input itself), the
        placement ACTalker's PCM layer has in SVD's spatio-temporal transformer (after the spatial block, before the
        temporal one). Layers run in the order attached."""
        if any(name in blk.video.after_spatial for blk in self.blocks):
            raise ConfigError("after-spatial layer name", name, "a name not already attached")
        device = next(self.parameters()).device
        for k, blk in enumerate(self.blocks):
            blk.video.after_spatial[name] = factory(self.config.dim, self.config.heads, k).to(device)

    def after_spatial_parameters(self, names: list[str] | None = None) -> list[nn.Parameter]:
        """The parameters of the named after-spatial layers (all by default)."""
        return [p for blk in self.blocks for n, m in blk.video.after_spatial.items() if names is None or n in names for p in m.parameters()]

    def slot_parameters(self, names: list[str] | None = None) -> list[nn.Parameter]:
        """The parameters of the named slots (all slots by default), e.g. to fine-tune them alone."""
        names = self.slot_names if names is None else names
        out = []
        for blk in self.blocks:
            for br in (blk.video, blk.audio):
                if br is not None:
                    for n in names:
                        out += list(br.slots[n].parameters())
        for n in names:
            out += list(self.cond_proj[n].parameters()) + [self.null[n]]
        return out

    def av_parameters(self) -> list[nn.Parameter]:
        """The audio<->video cross-attention's parameters (empty without it)."""
        return [p for blk in self.blocks if blk.av for m in (blk.norm_va, blk.norm_av, blk.a2v, blk.v2a) for p in m.parameters()] + \
            [p for blk in self.blocks if blk.av for p in (blk.gate_a2v, blk.gate_v2a)]

    # --------------------------------------------------------------------- forward
    def _conditions(self, conditions: Mapping[str, torch.Tensor], dropped: Mapping[str, torch.Tensor] | None, B: int) -> dict[str, Any]:
        unknown = set(conditions) - set(self.slot_names)
        if unknown:
            raise ConfigError("conditions", sorted(unknown), f"names of attached slots {self.slot_names}")
        out = {}
        for n, c in conditions.items():
            width = self.null[n].shape[-1]
            if c.dim() != 3 or c.shape[0] != B or c.shape[-1] != width:
                raise ShapeError(f"condition {n!r}", tuple(c.shape), f"(B={B}, length, {width})")
            if dropped is not None and n in dropped:
                c = torch.where(dropped[n].to(c.device).view(-1, 1, 1), self.null[n].to(c.dtype).expand_as(c), c)
            out[n] = self.cond_proj[n](c)
        return out

    def forward(self, x_t: torch.Tensor | Mapping[str, torch.Tensor], t: torch.Tensor, conditions: Mapping[str, torch.Tensor] | None = None,
                dropped: Mapping[str, torch.Tensor] | None = None, *, video_cond: torch.Tensor | None = None,
                context: Any = None) -> torch.Tensor | dict[str, torch.Tensor]:
        """``video_cond``: (B, Cc, H, W) (repeated over frames) or (B, T, Cc, H, W), concatenated to the noisy frames'
        channels before the patch embedding when ``video_cond_channels = Cc`` (SVD's image conditioning; to drop it for
        guidance pass zeros, as SVD does). ``context``: handed to the after-spatial layers."""
        cfg = self.config
        single = isinstance(x_t, torch.Tensor)
        xs = {"video": x_t} if single else dict(x_t)
        if "video" not in xs or (cfg.has_audio and "audio" not in xs) or (not cfg.has_audio and "audio" in xs):
            raise ShapeError("the sample", sorted(xs), "{'video', 'audio'}" if cfg.has_audio else "a video tensor or {'video'}")
        video = xs["video"]
        B, T, C, H, W = video.shape if video.dim() == 5 else (None,) * 5
        if video.dim() != 5 or C != cfg.video_channels:
            raise ShapeError("video", tuple(video.shape), f"(B, T, {cfg.video_channels}, H, W)")
        if t.shape != (B,):
            raise ShapeError("t", tuple(t.shape), f"({B},) in [0, 1]")
        conds = self._conditions(conditions or {}, dropped, B)
        d, p = cfg.dim, cfg.patch
        dev = video.device
        if cfg.video_cond_channels:
            if video_cond is None:
                raise ConfigError("video_cond", None, f"a (B, {cfg.video_cond_channels}, H, W) or (B, T, {cfg.video_cond_channels}, H, W) frame "
                                  "condition (the config has video_cond_channels; pass zeros to drop it)")
            vc = video_cond[:, None].expand(-1, T, -1, -1, -1) if video_cond.dim() == 4 else video_cond
            if vc.shape != (B, T, cfg.video_cond_channels, H, W):
                raise ShapeError("video_cond", tuple(video_cond.shape), f"(B={B}, {cfg.video_cond_channels}, {H}, {W}) or (B, T={T}, ...)")
            video = torch.cat([video, vc.to(video.dtype)], dim=2)
        elif video_cond is not None:
            raise ConfigError("video_cond", tuple(video_cond.shape), "None: this config has video_cond_channels=0")
        tok = {"video": self.video_in(patchify_video(video, p))}
        tok["video"] = tok["video"] + _pos2d(H // p, W // p, d, dev)[None, None] + sinusoidal(torch.arange(T, device=dev), d)[None, :, None]
        if cfg.has_audio:
            audio = xs["audio"]
            if audio.dim() != 4 or audio.shape[:3] != (B, cfg.audio_channels, cfg.audio_mels):
                raise ShapeError("audio", tuple(audio.shape), f"(B={B}, {cfg.audio_channels}, {cfg.audio_mels}, frames)")
            a = self.audio_in(patchify_audio(audio, cfg.audio_patch))
            La, Ma = a.shape[1], a.shape[2]
            tok["audio"] = a + audio_positions(La, Ma, d, dev)[None]
        temb = self.t_embed(timestep_embedding(t, d).to(video.dtype))
        t9 = self.t_block(temb).view(B, 9, d)
        for blk in self.blocks:
            branches = {"video": blk.video, "audio": blk.audio}
            mods = {}
            for mod in tok:
                br = branches[mod]
                mods[mod] = br.mods(t9)
                tok[mod] = br.self_attention(tok[mod], mods[mod], context)
                for n, c in conds.items():
                    tok[mod] = tok[mod] + br.slots[n](tok[mod], c, temb, mod)
            if blk.av:
                v, a = tok["video"], tok["audio"]
                vf, af = v.flatten(1, 2), a.flatten(1, 2)
                nv, na = blk.norm_va(vf), blk.norm_av(af)
                tok["video"] = v + (blk.gate_a2v * blk.a2v(nv, na)).view_as(v)
                tok["audio"] = a + (blk.gate_v2a * blk.v2a(na, nv)).view_as(a)
            for mod in tok:
                tok[mod] = branches[mod].mlp_out(tok[mod], mods[mod])
        out = {}
        sh, sc = (self.video_out_table[None] + temb[:, None]).unbind(1)
        out["video"] = unpatchify_video(self.video_out(_modulate(self.video_out_norm(tok["video"]), sh, sc)), C, H, W, p)
        if cfg.has_audio:
            sh, sc = (self.audio_out_table[None] + temb[:, None]).unbind(1)
            out["audio"] = unpatchify_audio(self.audio_out(_modulate(self.audio_out_norm(tok["audio"]), sh, sc)), cfg.audio_channels, cfg.audio_patch)
        return out["video"] if single else out


# ----------------------------------------------------------------------------- diffusers adapters
class _DiffusersDenoiser(nn.Module):
    """The flow-denoiser interface over a diffusers video transformer (see :func:`diffusers_denoiser`)."""

    def __init__(self, transformer: nn.Module, *, text: str | None, text_dim: int | None, patch: int, audio_patch_time: int, fps: float):
        super().__init__()
        self.transformer = transformer
        self.text = text
        self.patch = patch
        self.audio_patch_time = audio_patch_time
        self.fps = fps
        self.kind = type(transformer).__name__
        if self.kind not in ("WanTransformer3DModel", "LTX2VideoTransformer3DModel"):
            raise ConfigError("transformer", self.kind, "a diffusers WanTransformer3DModel or LTX2VideoTransformer3DModel")
        self.null_text = nn.Parameter(torch.zeros(1, 1, text_dim)) if text is not None and text_dim else None

    def _text(self, conditions: Mapping[str, torch.Tensor] | None, dropped: Mapping[str, torch.Tensor] | None, B: int, like: torch.Tensor) -> torch.Tensor:
        conditions = conditions or {}
        if self.text is None or self.text not in conditions:
            dim = self.null_text.shape[-1] if self.null_text is not None else self.transformer.config.get("text_dim", self.transformer.config.get("caption_channels"))
            return torch.zeros(B, 1, dim, device=like.device, dtype=like.dtype)
        c = conditions[self.text]
        if dropped is not None and self.text in dropped and self.null_text is not None:
            c = torch.where(dropped[self.text].view(-1, 1, 1), self.null_text.to(c.dtype).expand_as(c), c)
        return c

    def forward(self, x_t: Any, t: torch.Tensor, conditions: Mapping[str, torch.Tensor] | None = None,
                dropped: Mapping[str, torch.Tensor] | None = None) -> Any:
        single = isinstance(x_t, torch.Tensor)
        video = x_t if single else x_t["video"]
        if video.dim() != 5:
            raise ShapeError("video", tuple(video.shape), "(B, T, C, H, W)")
        B, T, C, H, W = video.shape
        text = self._text(conditions, dropped, B, video)
        if self.kind == "WanTransformer3DModel":
            if not single and set(x_t) != {"video"}:
                raise ShapeError("the sample", sorted(x_t), "video only for a WanTransformer3DModel")
            out = self.transformer(hidden_states=video.permute(0, 2, 1, 3, 4), timestep=t * 1000.0, encoder_hidden_states=text).sample
            out = out.permute(0, 2, 1, 3, 4)
            return out if single else {"video": out}
        # LTX-2: patchified token sequences (the pipeline packs latents the same way), timestep scaled by 1000
        if single or "audio" not in x_t:
            raise ShapeError("the sample", "video only", "{'video', 'audio'} for an LTX2VideoTransformer3DModel")
        audio = x_t["audio"]  # (B, Ca, M, L)
        p, q = self.patch, self.audio_patch_time
        v_tok = rearrange(video, "b t c (h p) (w q) -> b (t h w) (c p q)", p=p, q=p)
        a_tok = rearrange(audio, "b c m (l q) -> b l (c m q)", q=q)
        out = self.transformer(hidden_states=v_tok, audio_hidden_states=a_tok, encoder_hidden_states=text, audio_encoder_hidden_states=text,
                               timestep=t * 1000.0, num_frames=T, height=H // p, width=W // p, audio_num_frames=a_tok.shape[1], fps=self.fps)
        v = rearrange(out.sample, "b (t h w) (c p q) -> b t c (h p) (w q)", t=T, h=H // p, w=W // p, c=C, p=p, q=p)
        a = rearrange(out.audio_sample, "b l (c m q) -> b c m (l q)", c=audio.shape[1], m=audio.shape[2], q=q)
        return {"video": v, "audio": a}


def diffusers_denoiser(transformer: nn.Module, *, text: str | None = "text", text_dim: int | None = None, patch: int = 1,
                       audio_patch_time: int = 1, fps: float = 8.0) -> nn.Module:
    """Wrap a diffusers ``WanTransformer3DModel`` or ``LTX2VideoTransformer3DModel`` as a flow denoiser.

    Timesteps: ours are t in [0, 1]; both models take ``1000 t`` (their pipelines pass the flow
    scheduler's timesteps). Text: the condition named ``text`` (B, L, text_dim) is the
    transformer's ``encoder_hidden_states`` (``text_dim`` = Wan's ``text_dim`` / LTX-2's
    ``caption_channels``); a dropped text becomes a learned null token (``text_dim`` required for
    CFG dropout). LTX-2 takes packed tokens: video (B, T, C, H, W) -> (B, T (H/p)(W/p), C p p) with
    ``in_channels = C p^2``, audio mel (B, C, M, L) -> (B, L/q, C M q) with ``audio_in_channels = C M q``.
    Wan patchifies itself (its ``patch_size``); its input is (B, C, T, H, W).
    """
    return _DiffusersDenoiser(transformer, text=text, text_dim=text_dim, patch=patch, audio_patch_time=audio_patch_time, fps=fps)
