"""ACTalker's parallel-control Mamba (PCM) layer, its gate-to-mask rule and its four-pass guidance (arXiv 2504.02542;
official ``SS2D_cond_v10`` in ``src/models/base/mamba_layer.py`` and ``Inference.py`` of harlanhong/ACTalker).

The PCM layer sits in every spatio-temporal transformer of the video UNet, after the spatial block and before the
temporal one, and sees one frame's tokens ``x`` (B, L = h w, C). For each branch b in {audio, motion}:

1. ``u_b = W_in,b x`` (C -> 2C, no bias);
2. **Mask-Drop**: keep the tokens inside the branch's region mask (downsampled to the token grid), and append the
   identity tokens ``SiLU(W_id e_id)`` and the condition tokens ``SiLU(W_b c_b)`` (times the branch's gate);
3. a bidirectional selective scan over that sequence (d_state 16, d_inner 2C, dt_rank ceil(C/16), S4D-real A, D = 1,
   softplus(delta + bias); no convolution, no z-gate: the official ``SS2D_Unit`` with ``num_direction=2``);
4. **Mask-Paste**: the scan's outputs at the kept tokens overwrite ``u_b`` there (other tokens keep ``u_b``);

then ``y = W_out LN(u_audio + u_motion)``, which *replaces* the hidden states (the official code has no residual;
``residual=True`` adds ``x + s y`` with ``s`` initialised at 0, so an inserted layer starts as the identity).

Choices, each written here and in the README:
- **Per-sample Mask-Drop.** The official code selects tokens with the first sample's flattened mask
  (``xz[:, mask.view(-1).nonzero()]``), which is right only at batch size 1; we gather per sample, padding the
  samples that keep fewer tokens with skipped tokens (identity steps of the scan), so one batch scans at once (tested
  equal to gathering each sample alone).
- **Gates.** ``g = (g_audio, g_motion)`` in {0, 1}^2 multiplies each branch's condition tokens and picks the masks
  (:func:`gate_masks`): both on -> (mouth, 1 - mouth); audio only -> (face, 0); motion only -> (0, face); none ->
  (0, 0). A branch with an empty mask scans nothing and leaves ``u_b`` as is.
- **Released masks.** The released ``Inference.py`` overwrites both region masks with ones before sampling;
  ``gate_masks(..., released=True)`` does the same (both branches see every token of an open gate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ConfigError, ShapeError
from ...nn.ssm import BiMamba

__all__ = ["BRANCHES", "GUIDANCE_SCALES", "CrossAttentionFusion", "PCMLayer", "four_pass_guidance", "gate_masks", "guidance_passes"]

BRANCHES = ("audio", "motion")
GUIDANCE_SCALES = (2.0, 7.5, 3.0)  # reference, + audio, + motion (official Inference.py)


def gate_masks(gates: torch.Tensor, face: torch.Tensor, mouth: torch.Tensor, *, released: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(audio mask, motion mask), each (B, L) bool, from gates (B, 2) in {0, 1} and the face / mouth masks (B, L)."""
    if gates.dim() != 2 or gates.shape[1] != 2:
        raise ShapeError("gates", tuple(gates.shape), "(B, 2): audio gate, motion gate")
    if face.shape != mouth.shape or face.shape[0] != gates.shape[0]:
        raise ShapeError("face / mouth masks", (tuple(face.shape), tuple(mouth.shape)), f"(B={gates.shape[0]}, L) each")
    ga, gm = gates[:, 0:1].bool(), gates[:, 1:2].bool()
    face, mouth = face.bool(), mouth.bool()
    if released:
        ones = torch.ones_like(face)
        return ones & ga, ones & gm
    both = ga & gm
    audio = torch.where(both, mouth, face & ga)
    motion = torch.where(both, ~mouth, face & gm)
    return audio, motion


class PCMLayer(nn.Module):
    """The PCM layer: ``layer(x, id_tokens, {"audio": a, "motion": m}, (audio_mask, motion_mask), gates) -> (B, L, C)``.

    ``x``: (B, L, dim); ``id_tokens``: (B, n_id, d_cond); conditions: (B, n_b, d_cond) each; masks: (B, L) bool;
    ``gates``: (B, 2) (default all on) multiplies each branch's condition tokens.
    """

    def __init__(self, dim: int, d_cond: int, *, d_state: int = 16, expand: int = 2, residual: bool = False):
        super().__init__()
        self.dim, self.d_inner = dim, expand * dim
        di = self.d_inner
        dt_rank = math.ceil(dim / 16)
        self.in_proj = nn.ModuleDict({b: nn.Linear(dim, di, bias=False) for b in BRANCHES})
        self.cond_proj = nn.ModuleDict({b: nn.Linear(d_cond, di, bias=False) for b in BRANCHES})
        self.id_proj = nn.Linear(d_cond, di, bias=False)
        self.units = nn.ModuleDict({b: BiMamba(di, d_state=d_state, dt_rank=dt_rank, project=False) for b in BRANCHES})
        self.out_norm = nn.LayerNorm(di)
        self.out_proj = nn.Linear(di, dim, bias=False)
        self.res_scale = nn.Parameter(torch.zeros(())) if residual else None

    def _branch(self, b: str, u: torch.Tensor, extra: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mask-Drop, scan, Mask-Paste for one branch: each sample's kept tokens are gathered to the front in their
        order, samples that keep fewer than the longest of their group are padded with *skipped* tokens (identity steps
        of the recurrence, :class:`~reprolab.nn.ssm.BiMamba`'s ``mask``), and the extra tokens follow, so each sample's
        kept tokens get exactly the outputs of the sequence [kept tokens; extra] the official code builds (tested
        against that gather). Samples that keep nothing are left as they are; the others are scanned in at most two
        groups (those keeping at most half the longest, and the rest), so a batch mixing mouth-sized and face-sized
        masks does not pad every sample to the face."""
        counts = mask.sum(1)
        K = int(counts.max()) if mask.numel() else 0
        if K == 0:
            return u
        out = u
        small = (counts > 0) & (counts <= K // 2)
        for rows in (small.nonzero().flatten(), (counts > K // 2).nonzero().flatten()):
            if len(rows):
                out = out.index_copy(0, rows, self._scan_rows(b, u[rows], extra[rows], mask[rows]))
        return out

    def _scan_rows(self, b: str, u: torch.Tensor, extra: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        counts = mask.sum(1)
        K = int(counts.max())
        order = mask.float().argsort(dim=1, descending=True, stable=True)[:, :K]  # kept positions first, in order
        idx = order.unsqueeze(-1).expand(-1, -1, u.shape[-1])
        kept = u.gather(1, idx)
        valid = torch.arange(K, device=u.device)[None] < counts[:, None]
        keep = torch.cat([valid, torch.ones(u.shape[0], extra.shape[1], dtype=torch.bool, device=u.device)], dim=1)
        y = self.units[b](torch.cat([kept, extra], dim=1), keep)[:, :K]
        y = torch.where(valid[..., None], y, kept)  # padding slots write back what was there (Mask-Paste only inside the mask)
        return u.scatter(1, idx, y)

    def forward(self, x: torch.Tensor, id_tokens: torch.Tensor, conditions: dict[str, torch.Tensor],
                masks: Sequence[torch.Tensor], gates: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ShapeError("x", tuple(x.shape), f"(B, L, {self.dim})")
        B, L, _ = x.shape
        if len(masks) != 2 or any(tuple(m.shape) != (B, L) for m in masks):
            raise ShapeError("masks", [tuple(m.shape) for m in masks], f"two (B={B}, L={L}) masks: audio, motion")
        missing = [b for b in BRANCHES if b not in conditions]
        if missing:
            raise ConfigError("conditions", sorted(conditions), f"tokens for {', '.join(BRANCHES)}")
        gates = torch.ones(B, 2, device=x.device, dtype=x.dtype) if gates is None else gates.to(x.dtype)
        ident = torch.nn.functional.silu(self.id_proj(id_tokens))
        total = 0
        for j, b in enumerate(BRANCHES):
            u = self.in_proj[b](x)
            cond = torch.nn.functional.silu(self.cond_proj[b](conditions[b])) * gates[:, j, None, None]
            total = total + self._branch(b, u, torch.cat([ident, cond], dim=1), masks[j].bool())
        y = self.out_proj(self.out_norm(total))
        return x + self.res_scale * y if self.res_scale is not None else y


class CrossAttentionFusion(nn.Module):
    """The peer ACTalker compares PCM with: both signals fused by cross-attention, no masks (IP-Adapter style, as in
    Hallo / EchoMimic). Same call as :class:`PCMLayer`; ``masks`` are ignored, gates multiply the condition tokens:

        y = x + W_o Attn(LN(x), [SiLU(W_id e_id); g_a SiLU(W_a a); g_m SiLU(W_m m)])

    with the output projection zero-initialised (a residual path that starts as the identity, as IP-Adapter's).
    """

    def __init__(self, dim: int, d_cond: int, *, heads: int = 4):
        super().__init__()
        if dim % heads:
            raise ConfigError("heads", heads, f"a divisor of dim={dim}")
        self.dim = dim
        self.cond_proj = nn.ModuleDict({b: nn.Linear(d_cond, dim, bias=False) for b in BRANCHES})
        self.id_proj = nn.Linear(d_cond, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, x: torch.Tensor, id_tokens: torch.Tensor, conditions: dict[str, torch.Tensor],
                masks: Sequence[torch.Tensor] | None = None, gates: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ShapeError("x", tuple(x.shape), f"(B, L, {self.dim})")
        missing = [b for b in BRANCHES if b not in conditions]
        if missing:
            raise ConfigError("conditions", sorted(conditions), f"tokens for {', '.join(BRANCHES)}")
        B = x.shape[0]
        gates = torch.ones(B, 2, device=x.device, dtype=x.dtype) if gates is None else gates.to(x.dtype)
        ctx = [torch.nn.functional.silu(self.id_proj(id_tokens))]
        for j, b in enumerate(BRANCHES):
            ctx.append(torch.nn.functional.silu(self.cond_proj[b](conditions[b])) * gates[:, j, None, None])
        ctx_t = torch.cat(ctx, dim=1)
        out, _ = self.attn(self.norm(x), ctx_t, ctx_t, need_weights=False)
        return x + out


def four_pass_guidance(eps_null: torch.Tensor, eps_ref: torch.Tensor, eps_ref_audio: torch.Tensor, eps_all: torch.Tensor,
                       scales: Sequence[float] = GUIDANCE_SCALES) -> torch.Tensor:
    """eps = eps_0 + s1 (eps_ref - eps_0) + s2 (eps_ref+aud - eps_ref) + s3 (eps_all - eps_ref+aud) (official, 2.0/7.5/3.0)."""
    s1, s2, s3 = scales
    return eps_null + s1 * (eps_ref - eps_null) + s2 * (eps_ref_audio - eps_ref) + s3 * (eps_all - eps_ref_audio)


def guidance_passes(scales: Sequence[float] = GUIDANCE_SCALES, names: Sequence[str] = ("reference", "audio", "motion")) -> list[tuple[str, float]]:
    """The same guidance as :func:`reprolab.nn.flow.euler_sample`'s ordered composition: ``guidance=guidance_passes()``."""
    if len(scales) != 3 or len(names) != 3:
        raise ConfigError("scales / names", (list(scales), list(names)), "three each: reference, audio, motion")
    return list(zip(names, (float(s) for s in scales)))
