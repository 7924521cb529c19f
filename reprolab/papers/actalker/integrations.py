"""ACTalker's PCM layer in a diffusers ``UNetSpatioTemporalConditionModel`` (SVD's UNet), where the official code puts
it: in every ``TransformerSpatioTemporalModel``, after each spatial transformer block and before its temporal block
(official ``TransformerSpatioTemporalModel_new_mambaID_v10_two_ip``: ``block -> mamba_block -> temporal_block``).

    pcm = attach_pcm(unet, d_cond=768)                    # one PCMLayer per spatial block, registered on the UNet
    pcm.set(id_tokens, {"audio": a, "motion": m}, face, mouth, gates)   # per call: (B*F, ...) tensors
    noise_pred = unet(latents, t, encoder_hidden_states=clip_emb, added_time_ids=ids).sample

The conditions are per frame (batch x frames first, as the UNet's spatial blocks see them); the face and mouth masks
are given once at latent resolution (B*F, H, W) and downsampled to each block's token grid by area averaging with
a 0.5 threshold (the official ``IPAdapterMaskProcessor.downsample`` resizes the mask to the token count the same
way). The layers become modules of the UNet (each wraps its spatial block), so the UNet's ``parameters()`` and
``state_dict`` include them; ``controller.layers`` lists them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, ShapeError
from .pcm import PCMLayer, gate_masks

__all__ = ["PCMController", "attach_pcm"]


class PCMController:
    """Holds the PCM conditions for the next UNet call and the layers it inserted."""

    def __init__(self, layers: nn.ModuleList):
        self.layers = layers
        self.state: dict[str, Any] | None = None

    def set(self, id_tokens: torch.Tensor, conditions: dict[str, torch.Tensor], face: torch.Tensor, mouth: torch.Tensor,
            gates: torch.Tensor | None = None, *, released: bool = False) -> None:
        if face.dim() != 3 or face.shape != mouth.shape:
            raise ShapeError("face / mouth masks", (tuple(face.shape), tuple(mouth.shape)), "(B*F, H, W) each, at latent resolution")
        n = face.shape[0]
        gates = torch.ones(n, 2, device=face.device) if gates is None else gates
        for name, t in (("id_tokens", id_tokens), *conditions.items(), ("gates", gates)):
            if t.shape[0] != n:
                raise ShapeError(name, tuple(t.shape), f"batch x frames = {n} first, like the masks")
        self.state = {"id": id_tokens, "conditions": conditions, "face": face.float(), "mouth": mouth.float(), "gates": gates.float(),
                      "released": released, "cache": {}}

    def clear(self) -> None:
        self.state = None

    def masks_for(self, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = self._need()
        if n_tokens not in s["cache"]:
            H, W = s["face"].shape[-2:]
            f = math.sqrt(H * W / n_tokens)
            h, w = round(H / f), round(W / f)
            if h * w != n_tokens:
                raise ShapeError("block tokens", n_tokens, f"a downsampling of the {H}x{W} latent masks")
            face, mouth = (F.interpolate(m[:, None], size=(h, w), mode="area")[:, 0].flatten(1) > 0.5 for m in (s["face"], s["mouth"]))
            s["cache"][n_tokens] = gate_masks(s["gates"], face, mouth, released=s["released"])
        return s["cache"][n_tokens]

    def _need(self) -> dict[str, Any]:
        if self.state is None:
            raise ConfigError("PCM conditions", None, "pcm.set(id_tokens, conditions, face, mouth, gates) before calling the UNet")
        return self.state


class _SpatialThenPCM(nn.Module):
    """A spatial transformer block followed by its PCM layer (the temporal block comes after, in diffusers' loop)."""

    def __init__(self, block: nn.Module, pcm: PCMLayer, controller: PCMController):
        super().__init__()
        self.block, self.pcm = block, pcm
        self._controller = [controller]  # not a submodule

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        h = self.block(hidden_states, *args, **kwargs)
        ctl = self._controller[0]
        s = ctl._need()
        masks = ctl.masks_for(h.shape[1])
        return self.pcm(h, s["id"], s["conditions"], masks, s["gates"])


def attach_pcm(unet: nn.Module, d_cond: int, **layer_kw: Any) -> PCMController:
    """Insert a :class:`PCMLayer` after every spatial block of every ``TransformerSpatioTemporalModel`` of ``unet``."""
    from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel

    controller = PCMController(nn.ModuleList())
    found = 0
    for module in unet.modules():
        if not isinstance(module, TransformerSpatioTemporalModel):
            continue
        for i, block in enumerate(module.transformer_blocks):
            if isinstance(block, _SpatialThenPCM):
                raise ConfigError("unet", "already has PCM layers", "attach_pcm once per UNet")
            dim = block.norm1.normalized_shape[0]
            pcm = PCMLayer(dim, d_cond, **layer_kw)
            controller.layers.append(pcm)
            module.transformer_blocks[i] = _SpatialThenPCM(block, pcm, controller)
            found += 1
    if not found:
        raise ConfigError("unet", type(unet).__name__, "a diffusers UNetSpatioTemporalConditionModel (with spatio-temporal transformers)")
    return controller
