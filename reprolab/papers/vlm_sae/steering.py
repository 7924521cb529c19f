"""Steering a vision encoder through an SAE spliced into one of its modules (paper Sec. 5).

The paper replaces the output h of a CLIP layer inside LLaVA by the SAE's reconstruction
with one latent clamped (official ``SAEWrapper``: z = encode(h); z[..., j] = value;
h' = decode(z)), leaving the language model untouched. We expose that as a function
``h -> h'`` for :func:`reprolab.nn.hooks.splice`:

    from reprolab.nn.hooks import splice
    edit = LatentEdit(latent=123, value=100.0, mode="set")            # the paper's clamp
    with splice(clip, "encoder.layers.22", SAESplice(sae, edit)):        # transformers 5 CLIPVisionModel
        out = clip(pixel_values=x)

Choices (the paper does not spell them out):
- ``keep_error`` (default False, as the official code) adds back the SAE's reconstruction
  error h - decode(encode(h)), so with no edit the splice is the identity and an edit
  moves h by exactly decode(z') - decode(z) = (z'_j - z_j) W_dec[j];
- ``channel_dim`` lets a conv feature map (B, C, H, W) be edited per spatial position
  (channels moved last, SAE applied to every position, moved back); a ViT's (B, T, d)
  tokens need nothing;
- ``positions`` (default all) restricts the edit to some tokens (e.g. the class token 0).

The DiffMean baseline (Sec. 5): a steering vector equal to the mean activation of the
images that show a concept minus the mean of all images, added to h with a chosen norm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ...errors import ConfigError, ShapeError
from .sae import BatchTopKSAE


@dataclass(frozen=True)
class LatentEdit:
    """Edit latent ``latent``: ``set`` it to ``value`` (the paper) or ``add`` ``value`` to it."""

    latent: int
    value: float
    mode: str = "set"

    def __post_init__(self) -> None:
        if self.mode not in ("set", "add"):
            raise ConfigError("mode", self.mode, "'set' or 'add'")
        if not torch.isfinite(torch.tensor(float(self.value))):
            raise ConfigError("value", self.value, "a finite number")

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        if not (0 <= self.latent < z.shape[-1]):
            raise ConfigError("latent", self.latent, f"an index in [0, {z.shape[-1]})")
        z = z.clone()
        if self.mode == "set":
            z[..., self.latent] = self.value
        else:
            z[..., self.latent] += self.value
        return z


class SAESplice:
    """``h -> h'``: encode with the SAE, apply ``edit`` to the code, decode (see module docstring)."""

    def __init__(
        self,
        sae: BatchTopKSAE,
        edit: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        keep_error: bool = False,
        channel_dim: int | None = None,
        positions: slice | list[int] | None = None,
    ):
        self.sae, self.edit, self.keep_error, self.channel_dim, self.positions = sae, edit, keep_error, channel_dim, positions

    @torch.no_grad()
    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        x = h.movedim(self.channel_dim, -1) if self.channel_dim is not None else h
        if x.shape[-1] != self.sae.config.d_in:
            where = f"dim {self.channel_dim}" if self.channel_dim is not None else "the last dim"
            raise ShapeError("spliced module output", tuple(h.shape), f"{self.sae.config.d_in} features in {where} (the SAE's d_in); set channel_dim for conv maps")
        xf = x.to(self.sae.W_dec.dtype)
        z = self.sae.encode(xf)
        z_new = self.edit(z) if self.edit is not None else z
        x_new = self.sae.decode(z_new)
        if self.keep_error:
            x_new = x_new + (xf - self.sae.decode(z))
        if self.positions is not None:  # only the chosen tokens change (dim -2 of (..., T, d))
            out = xf.clone()
            out[..., self.positions, :] = x_new[..., self.positions, :]
            x_new = out
        x_new = x_new.to(h.dtype)
        return x_new.movedim(-1, self.channel_dim) if self.channel_dim is not None else x_new


class AddVector:
    """``h -> h + v`` along the feature axis (``channel_dim`` for conv maps): DiffMean steering."""

    def __init__(self, vector: torch.Tensor, channel_dim: int | None = None):
        self.vector, self.channel_dim = vector, channel_dim

    @torch.no_grad()
    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        x = h.movedim(self.channel_dim, -1) if self.channel_dim is not None else h
        if x.shape[-1] != self.vector.shape[-1]:
            raise ShapeError("steering vector", tuple(self.vector.shape), f"({x.shape[-1]},) to match the module output")
        x = x + self.vector.to(x)
        return x.movedim(-1, self.channel_dim) if self.channel_dim is not None else x


def diffmean_vector(activations: torch.Tensor, concept_mask: torch.Tensor, norm: float | None = None) -> torch.Tensor:
    """DiffMean: mean(activations | concept) - mean(activations), rescaled to ``norm`` if given.

    ``activations`` (N, d); ``concept_mask`` (N,) bool (e.g. the images that most activate a
    latent). The paper compares against DiffMean at the same intervention strength; we match
    the L2 norm of the two steering vectors.
    """
    if activations.dim() != 2 or concept_mask.shape != activations.shape[:1]:
        raise ShapeError("activations / concept_mask", (tuple(activations.shape), tuple(concept_mask.shape)), "(N, d) and (N,)")
    if not bool(concept_mask.any()):
        raise ConfigError("concept_mask", "all False", "at least one image showing the concept")
    v = activations[concept_mask].mean(0) - activations.mean(0)
    if norm is not None:
        v = v / v.norm().clamp_min(1e-12) * norm
    return v


def latent_direction(sae: BatchTopKSAE, latent: int, norm: float = 1.0) -> torch.Tensor:
    """The change of the reconstruction when latent ``latent`` rises by ``norm``: norm * W_dec[latent] (unit atom)."""
    return sae.W_dec[latent].detach() * norm
