"""HiST-Sypo: JavisDiT's hierarchical spatio-temporal synchronised prior (Liu et al. 2025, arXiv 2503.23377, Sec. 3.2-3.3).

- :class:`HiSTSypoEstimator` (Sec. 3.3, official ``prior_encoder``): text hidden states -> Linear -> a pre-norm
  ``nn.Transformer`` (4 encoder + 4 decoder layers, 4 heads, FF 4x) whose decoder reads ``n_spatial`` +
  ``n_temporal`` learned queries -> Linear to 2 x ``prior_dim`` (mean, log-variance) -> a Gaussian sample
  (reparameterised); the KL to N(0, I) is weighted 1e-6. A learned *null prior* stands in for the prior
  under classifier-free guidance.
- :class:`VAEncoder`: patch-embeds video (B, T, 3, H, W) and audio mel (B, 1, M, L), resamples each to
  ``n_spatial`` tokens on the spatial axis (mean over time, linear resampling of the positions) and to
  ``n_temporal`` tokens on the temporal axis (mean over space), and merges the two modalities per axis
  (bi-attention video<->audio, mean of both, MLP) into the target embedding ``e``.
- :func:`prior_loss_terms` (Sec. 3.3, Eq. 3-5; the four terms of the official loss, per axis):
  ``0.5 [mean relu(1 - cos(p, e+)) + mean relu(1 + cos(p, e-))]`` (contrast), the BCE of an
  :class:`AttentionDiscriminator` on ``[p; e]`` (1 for e+, 0 for e-), ``MSE(p, e+)``, and
  ``mean relu(1 + cos(e+, e-))`` (keeps the synchronised and the asynchronous embeddings apart),
  plus ``kl_weight * KL``.
- :class:`STPriorBlock` (Sec. 3.2): ST-prior cross-attention for one modality of a block: each frame's
  tokens attend to the spatial prior tokens, each position's time series to the temporal ones; adaLN
  (shift/scale from the time embedding) before each attention and zero-initialised outputs, so attaching
  it leaves a trained model unchanged. It plugs into :meth:`reprolab.nn.avdit.TinyAVDiT.attach_slot`
  (:func:`attach_st_prior`) and, through forward hooks, into diffusers' ``LTX2VideoTransformer3DModel``
  (:func:`attach_st_prior_ltx2`).

Choices where the paper is vague (each also in the docstring where it is made):
- the text states come from all-MiniLM-L6-v2 (384-d, offline) instead of ImageBind (77 x 1024, not offline);
- the VA encoder acts on our raw normalised video and mel (no VAE latents exist at our scale);
- cosines are per token over channels, then averaged over the tokens of the axis;
- the discriminator pools its transformer layer's output by the mean over tokens before a linear logit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ...errors import ConfigError, ShapeError
from ...nn.avdit import Attention, patchify_audio, patchify_video

__all__ = ["AttentionDiscriminator", "HiSTSypoConfig", "HiSTSypoEstimator", "PriorOutput", "STPriorBlock", "VAEncoder", "attach_st_prior",
           "attach_st_prior_ltx2", "prior_loss", "prior_loss_terms"]


@dataclass(frozen=True)
class HiSTSypoConfig:
    text_dim: int = 1024  # width of the text hidden states (ImageBind: 1024; our MiniLM: 384)
    d_model: int = 512  # the transformer's width (official: Linear 1024 -> 512)
    n_encoder: int = 4  # encoder layers
    n_decoder: int = 4  # decoder layers
    heads: int = 4  # attention heads
    ff_mult: int = 4  # feed-forward width / d_model
    n_spatial: int = 32  # spatial prior tokens
    n_temporal: int = 32  # temporal prior tokens
    prior_dim: int = 128  # channels of a prior token (official st_prior_channel)
    kl_weight: float = 1e-6  # weight of KL(q || N(0, I))
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ConfigError("d_model", self.d_model, f"a multiple of heads={self.heads}")

    @property
    def n_tokens(self) -> int:
        return self.n_spatial + self.n_temporal


@dataclass
class PriorOutput:
    prior: torch.Tensor  # (B, n_spatial + n_temporal, prior_dim): the sampled (or mean) prior, spatial tokens first
    mean: torch.Tensor
    logvar: torch.Tensor
    kl: torch.Tensor  # scalar: mean over the batch of KL(N(mean, var) || N(0, I)) summed over tokens and channels

    def spatial(self, n_spatial: int) -> torch.Tensor:
        return self.prior[:, :n_spatial]

    def temporal(self, n_spatial: int) -> torch.Tensor:
        return self.prior[:, n_spatial:]


class HiSTSypoEstimator(nn.Module):
    """Text hidden states (B, L, text_dim) -> spatio-temporal prior (B, n_spatial + n_temporal, prior_dim)."""

    def __init__(self, config: HiSTSypoConfig = HiSTSypoConfig()):
        super().__init__()
        self.config = c = config
        self.text_in = nn.Linear(c.text_dim, c.d_model)
        with warnings.catch_warnings():  # torch warns that pre-norm layers cannot use nested tensors (a speed path, not a result)
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(d_model=c.d_model, nhead=c.heads, num_encoder_layers=c.n_encoder, num_decoder_layers=c.n_decoder,
                                              dim_feedforward=c.ff_mult * c.d_model, dropout=c.dropout, batch_first=True, norm_first=True)
        self.queries = nn.Parameter(torch.randn(1, c.n_tokens, c.d_model) * 0.02)  # spatial queries, then temporal ones
        self.query_type = nn.Parameter(torch.randn(2, c.d_model) * 0.02)  # which axis a query serves
        self.out = nn.Linear(c.d_model, 2 * c.prior_dim)
        self.null_prior = nn.Parameter(torch.randn(1, c.n_tokens, c.prior_dim) * 0.02)  # for classifier-free guidance

    def forward(self, text: torch.Tensor, text_mask: torch.Tensor | None = None, *, sample: bool | None = None,
                generator: torch.Generator | None = None) -> PriorOutput:
        """``text_mask`` (B, L) bool, True for real tokens. ``sample``: draw from N(mean, var) (default: in
        training mode), else return the mean."""
        c = self.config
        if text.dim() != 3 or text.shape[-1] != c.text_dim:
            raise ShapeError("text hidden states", tuple(text.shape), f"(B, L, {c.text_dim})")
        B = text.shape[0]
        pad = None if text_mask is None else ~text_mask.bool()
        q = self.queries.expand(B, -1, -1) + torch.cat([self.query_type[:1].expand(c.n_spatial, -1), self.query_type[1:].expand(c.n_temporal, -1)])[None]
        h = self.transformer(self.text_in(text), q, src_key_padding_mask=pad, memory_key_padding_mask=pad)
        mean, logvar = self.out(h).chunk(2, dim=-1)
        logvar = logvar.clamp(-30.0, 20.0)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=(1, 2)).mean()
        if sample is None:
            sample = self.training
        if sample:
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device) if generator is not None else torch.randn_like(mean)
            prior = mean + (0.5 * logvar).exp() * eps
        else:
            prior = mean
        return PriorOutput(prior, mean, logvar, kl)

    def null(self, batch: int) -> torch.Tensor:
        """The learned null prior (batch, n_tokens, prior_dim)."""
        return self.null_prior.expand(batch, -1, -1)


def _resample_tokens(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, N, D) -> (B, n, D) by linear interpolation along the tokens."""
    return F.interpolate(x.transpose(1, 2), size=n, mode="linear", align_corners=True).transpose(1, 2)


class VAEncoder(nn.Module):
    """(video, audio mel) -> spatial and temporal embeddings e (B, n, prior_dim) each (see the module docstring)."""

    def __init__(self, config: HiSTSypoConfig, *, video_channels: int = 3, patch: int = 4, audio_patch: tuple[int, int] = (16, 4),
                 dim: int = 64, heads: int = 4):
        super().__init__()
        self.config, self.patch, self.audio_patch = config, patch, audio_patch
        self.video_in = nn.Linear(video_channels * patch * patch, dim)
        self.audio_in = nn.Linear(audio_patch[0] * audio_patch[1], dim)
        self.merge = nn.ModuleDict()
        for axis in ("spatial", "temporal"):
            self.merge[axis] = nn.ModuleDict({
                "pos": nn.Embedding(max(config.n_spatial, config.n_temporal), dim),
                "v2a": Attention(dim, heads), "a2v": Attention(dim, heads),
                "norm_v": nn.LayerNorm(dim), "norm_a": nn.LayerNorm(dim),
                "mlp": nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, config.prior_dim)),
            })

    def forward(self, video: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        v = self.video_in(patchify_video(video, self.patch))  # (B, T, S, D)
        a = self.audio_in(patchify_audio(audio, self.audio_patch))  # (B, La, Ma, D)
        out = {}
        for axis, n, vv, aa in (("spatial", c.n_spatial, v.mean(1), a.mean(1)), ("temporal", c.n_temporal, v.mean(2), a.mean(2))):
            m = self.merge[axis]
            pos = m["pos"].weight[:n][None]
            vv = _resample_tokens(vv, n) + pos
            aa = _resample_tokens(aa, n) + pos
            nv, na = m["norm_v"](vv), m["norm_a"](aa)
            vv = vv + m["a2v"](nv, na)  # video attends audio
            aa = aa + m["v2a"](na, nv)  # audio attends video
            out[axis] = m["mlp"]((vv + aa) / 2)
        return out


class AttentionDiscriminator(nn.Module):
    """Logit that ``e`` is the synchronised embedding for prior ``p``: one transformer layer over [p; e], mean-pooled."""

    def __init__(self, prior_dim: int, heads: int = 4):
        super().__init__()
        self.role = nn.Parameter(torch.randn(2, prior_dim) * 0.02)  # which half is the prior, which the embedding
        self.layer = nn.TransformerEncoderLayer(prior_dim, heads if prior_dim % heads == 0 else 1, 2 * prior_dim, dropout=0.0,
                                                batch_first=True, norm_first=True)
        self.head = nn.Linear(prior_dim, 1)

    def forward(self, p: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        x = torch.cat([p + self.role[0], e + self.role[1]], dim=1)
        return self.head(self.layer(x).mean(1)).squeeze(-1)


def prior_loss_terms(p: torch.Tensor, e_pos: torch.Tensor, e_neg: torch.Tensor, discriminator: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The four terms of the estimator loss on one axis (tokens (B, n, C); ``e_neg`` may hold K negatives
    per item as (B, K, n, C)). Cosines are per token over channels, averaged over tokens, negatives and batch."""
    if p.shape != e_pos.shape:
        raise ShapeError("e_pos", tuple(e_pos.shape), f"the prior's shape {tuple(p.shape)}")
    if e_neg.dim() == 3:
        e_neg = e_neg[:, None]
    if e_neg.shape[0] != p.shape[0] or e_neg.shape[2:] != p.shape[1:]:
        raise ShapeError("e_neg", tuple(e_neg.shape), f"(B, K, {p.shape[1]}, {p.shape[2]})")
    cos_pos = F.cosine_similarity(p, e_pos, dim=-1)  # (B, n)
    cos_neg = F.cosine_similarity(p[:, None], e_neg, dim=-1)  # (B, K, n)
    terms = {"contrast": 0.5 * (F.relu(1 - cos_pos).mean() + F.relu(1 + cos_neg).mean())}
    if discriminator is not None:
        K = e_neg.shape[1]
        lp = discriminator(p, e_pos)
        ln = discriminator(p[:, None].expand(-1, K, -1, -1).flatten(0, 1), e_neg.flatten(0, 1))
        terms["discriminator"] = F.binary_cross_entropy_with_logits(torch.cat([lp, ln]), torch.cat([torch.ones_like(lp), torch.zeros_like(ln)]))
    terms["mse"] = F.mse_loss(p, e_pos)
    terms["separation"] = F.relu(1 + F.cosine_similarity(e_pos[:, None], e_neg, dim=-1)).mean()
    return terms


def prior_loss(out: PriorOutput, e_pos: dict[str, torch.Tensor], e_neg: dict[str, torch.Tensor], discriminators: nn.ModuleDict | None,
               config: HiSTSypoConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum over the spatial and temporal axes of :func:`prior_loss_terms`, plus ``kl_weight * KL``."""
    total = config.kl_weight * out.kl
    parts = {"kl": float(out.kl.detach())}
    for axis, p in (("spatial", out.spatial(config.n_spatial)), ("temporal", out.temporal(config.n_spatial))):
        terms = prior_loss_terms(p, e_pos[axis], e_neg[axis], None if discriminators is None else discriminators[axis])
        for k, v in terms.items():
            total = total + v
            parts[f"{axis}_{k}"] = float(v.detach())
    return total, parts


class STPriorBlock(nn.Module):
    """ST-prior cross-attention for one modality (tokens (B, T, S, D)); condition = prior tokens (B, n_s + n_t, D).

    Spatial: each of the T frames' S tokens attends to the n_s spatial prior tokens; temporal: each of the
    S positions' T tokens attends to the n_t temporal ones. Each attention is preceded by an adaLN
    (shift, scale from the time embedding, zero-initialised) and ends in a zero-initialised projection.
    """

    def __init__(self, dim: int, heads: int, n_spatial: int = 32):
        super().__init__()
        self.n_spatial = n_spatial
        self.norm_s = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm_t = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn_s = Attention(dim, heads, dim, zero_out=True)
        self.attn_t = Attention(dim, heads, dim, zero_out=True)
        self.ada = nn.Linear(dim, 4 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, temb: torch.Tensor | None = None, modality: str = "video") -> torch.Tensor:
        if x.dim() != 4:
            raise ShapeError("tokens", tuple(x.shape), "(B, T, S, D)")
        b, t, s, d = x.shape
        if cond.shape[0] != b or cond.shape[1] <= self.n_spatial or cond.shape[2] != d:
            raise ShapeError("prior", tuple(cond.shape), f"(B={b}, {self.n_spatial} spatial + temporal tokens, {d})")
        sp, tp = cond[:, : self.n_spatial], cond[:, self.n_spatial:]
        if temb is not None:
            sh_s, sc_s, sh_t, sc_t = (v[:, None, None] for v in self.ada(F.silu(temb)).chunk(4, dim=-1))
        else:
            sh_s = sc_s = sh_t = sc_t = torch.zeros((), device=x.device, dtype=x.dtype)
        hs = (self.norm_s(x) * (1 + sc_s) + sh_s).reshape(b * t, s, d)
        delta = self.attn_s(hs, sp.repeat_interleave(t, dim=0)).view(b, t, s, d)
        ht = rearrange(self.norm_t(x + delta) * (1 + sc_t) + sh_t, "b t s d -> (b s) t d")
        delta = delta + rearrange(self.attn_t(ht, tp.repeat_interleave(s, dim=0)), "(b s) t d -> b t s d", b=b)
        return delta


def attach_st_prior(model, config: HiSTSypoConfig, name: str = "prior") -> None:
    """Attach :class:`STPriorBlock` as the named slot ``name`` of a :class:`reprolab.nn.avdit.TinyAVDiT`
    (every block, video and audio). The prior (B, n_tokens, prior_dim) is then passed as
    ``conditions[name]``; the model projects it to its width, and replaces dropped rows by its learned null."""
    model.attach_slot(name, config.prior_dim, lambda dim, heads, modality: STPriorBlock(dim, heads, config.n_spatial))


class _LTX2PriorHooks(nn.Module):
    """ST-prior blocks on an ``LTX2VideoTransformer3DModel`` through forward hooks (see :func:`attach_st_prior_ltx2`)."""

    def __init__(self, transformer: nn.Module, config: HiSTSypoConfig):
        super().__init__()
        tc = transformer.config
        vdim = tc.num_attention_heads * tc.attention_head_dim
        adim = tc.audio_num_attention_heads * tc.audio_attention_head_dim
        n = len(transformer.transformer_blocks)
        self.video_proj = nn.Linear(config.prior_dim, vdim)
        self.audio_proj = nn.Linear(config.prior_dim, adim)
        self.video_blocks = nn.ModuleList(STPriorBlock(vdim, tc.num_attention_heads, config.n_spatial) for _ in range(n))
        self.audio_blocks = nn.ModuleList(STPriorBlock(adim, tc.audio_num_attention_heads, config.n_spatial) for _ in range(n))
        self.prior: torch.Tensor | None = None
        self.layout: tuple[int, int] | None = None  # (frames, tokens per frame) of the video sequence
        self.handles = [blk.register_forward_hook(self._hook(i)) for i, blk in enumerate(transformer.transformer_blocks)]

    def set_prior(self, prior: torch.Tensor | None, frames: int, tokens_per_frame: int) -> None:
        """The prior for the next forward passes (None: no prior) and the video token layout (T, h w)."""
        self.prior, self.layout = prior, (frames, tokens_per_frame)

    def _hook(self, i: int):
        def hook(module, args, output):
            if self.prior is None:
                return output
            video, audio = output
            T, S = self.layout
            b = video.shape[0]
            v = video.view(b, T, S, -1)
            v = v + self.video_blocks[i](v, self.video_proj(self.prior))
            a = audio[:, :, None]  # audio tokens: time only (mel packed in channels) -> S = 1
            a = a + self.audio_blocks[i](a, self.audio_proj(self.prior))
            return v.reshape_as(video), a[:, :, 0]
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def attach_st_prior_ltx2(transformer: nn.Module, config: HiSTSypoConfig) -> _LTX2PriorHooks:
    """Add ST-prior blocks after every block of a diffusers ``LTX2VideoTransformer3DModel`` (forward hooks).

    Returns the module holding the new parameters (train it, or ``.remove()`` the hooks); call
    ``set_prior(prior, frames, tokens_per_frame)`` before a forward pass. Video tokens are laid out
    ``(t h w)`` as LTX-2's pipelines pack them; audio tokens are a time series (S = 1).
    """
    if type(transformer).__name__ != "LTX2VideoTransformer3DModel":
        raise ConfigError("transformer", type(transformer).__name__, "a diffusers LTX2VideoTransformer3DModel")
    hooks = _LTX2PriorHooks(transformer, config)
    return hooks.to(next(transformer.parameters()).device)
