"""SkyReels-A2's official conditioning: references laid out as a pixel video, its VAE latents, the mask and the
image tokens (``models/pipeline_a2.py`` of SkyworkAI/SkyReels-A2, ``prepare_latents`` with ``vae_combine="before"``).

The spatial path (report Sec. 3.2; official ``prepare_latents``):

* the references (character, object, background: at most three) become one pixel video of ``num_frames``
  frames: ``[ref0, ref1 x4, ref2 x4, zeros...]`` with ``vae_repeat=True`` (the default), ``[ref0, ref1, ref2,
  zeros...]`` without it, ``[ref0, ref1 x4, zeros...]`` for two references, ``[ref0, zeros...]`` for one;
* Wan's causal VAE (4x in time: latent frame 0 <- pixel frame 0, latent frame k <- pixel frames 4k-3..4k)
  encodes it; with the repeat, reference k lands alone in latent frame k, and a causal encoder leaves earlier
  latent frames untouched by later references (tested on a tiny ``AutoencoderKLWan``);
* the latents are normalised by the VAE's ``latents_mean`` / ``latents_std``;
* a 4-channel mask: Wan I2V's per-pixel-frame mask folded 4 frames per latent frame; the official code marks
  the first ``4 + 4 (n - 1)`` pixel slots with ones, i.e. latent frames ``0..n-1`` are ones with the repeat.

The transformer's input is ``[noise (C), mask (4), condition (C)]`` along channels (official
``torch.cat([latents, condition], dim=1)`` with ``condition = cat([mask, latent_condition])``).

Choices where the official code is inconsistent, written here and in the README:

* **One reference.** The official mask repeats the first frame ``4 + 4`` times and keeps ``num_frames - 1``
  zeros, giving ``num_frames + 7`` slots, one latent frame more than the condition has (81 frames: 22 vs 21),
  so one reference cannot run there. We use Wan I2V's own one-image mask (``4`` slots of ones, latent frame 0),
  which is what the pixel layout ``[ref0, zeros...]`` implies.
* **Posterior sample.** The official code draws the condition latents from the VAE posterior with the call's
  generator (``retrieve_latents`` in ``"sample"`` mode); so do we by default (``sample_mode="sample"``);
  ``"argmax"`` takes the posterior mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, ShapeError

__all__ = [
    "MAX_REFERENCES", "crop_resize", "crop_resize_pad", "image_tokens", "latent_frames_with_references", "model_input",
    "normalize_latents", "prepare_condition", "reference_mask", "reference_slots", "reference_video", "unnormalize_latents",
]

MAX_REFERENCES = 3


def _check_count(n: int) -> None:
    if not 1 <= n <= MAX_REFERENCES:
        raise ConfigError("number of references", n, f"1, 2 or 3 (SkyReels-A2 lays out at most {MAX_REFERENCES})")


def reference_slots(n_refs: int, *, vae_repeat: bool = True) -> list[int]:
    """How many pixel frames each reference occupies in the condition video (official ``prepare_latents``)."""
    _check_count(n_refs)
    if n_refs == 1:
        return [1]
    if n_refs == 2:
        return [1, 4]
    return [1, 4, 4] if vae_repeat else [1, 1, 1]


def latent_frames_with_references(n_refs: int, *, vae_repeat: bool = True, temporal: int = 4) -> int:
    """Latent frames whose mask carries ones (and that hold reference content): ``ceil`` of the mask's slots."""
    ones = _mask_ones(n_refs, vae_repeat=vae_repeat, temporal=temporal)
    return -(-ones // temporal)


def _mask_ones(n_refs: int, *, vae_repeat: bool, temporal: int) -> int:
    # Official: first_frame_mask repeated temporal + {4 (2 refs), 8 (3 refs, repeat), 2 (3 refs, no repeat)} times.
    # One reference: Wan I2V's `temporal` (the official `temporal + 4` is inconsistent, see the module docstring).
    _check_count(n_refs)
    extra = {1: 0, 2: 4, 3: 8 if vae_repeat else 2}[n_refs]
    return temporal + extra


def _check_frames(num_frames: int, temporal: int, need: int) -> None:
    if num_frames < need or (num_frames - 1) % temporal:
        raise ConfigError("num_frames", num_frames, f"1 + {temporal}k frames with at least {need} (Wan's causal VAE packs {temporal} frames per latent frame)")


def reference_video(refs: Sequence[torch.Tensor], num_frames: int, *, vae_repeat: bool = True, temporal: int = 4) -> torch.Tensor:
    """The pixel condition video (B, C, num_frames, H, W) from 1-3 reference images, each (B, C, 1, H, W) or (B, C, H, W)."""
    _check_count(len(refs))
    frames = [r.unsqueeze(2) if r.dim() == 4 else r for r in refs]
    for i, r in enumerate(frames):
        if r.dim() != 5 or r.shape[2] != 1:
            raise ShapeError(f"reference {i}", tuple(refs[i].shape), "(B, C, H, W) or (B, C, 1, H, W)")
        if r.shape[:2] != frames[0].shape[:2] or r.shape[3:] != frames[0].shape[3:]:
            raise ShapeError(f"reference {i}", tuple(r.shape), f"the shape of reference 0, {tuple(frames[0].shape)}")
    slots = reference_slots(len(refs), vae_repeat=vae_repeat)
    _check_frames(num_frames, temporal, sum(slots))
    parts = [r for r, k in zip(frames, slots) for _ in range(k)]
    b, c, _, h, w = frames[0].shape
    parts.append(frames[0].new_zeros(b, c, num_frames - sum(slots), h, w))
    return torch.cat(parts, dim=2)


def reference_mask(n_refs: int, num_frames: int, latent_height: int, latent_width: int, *, batch_size: int = 1,
                   vae_repeat: bool = True, temporal: int = 4, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The mask (B, temporal, T_latent, h, w): per pixel slot, ones where a reference sits (official layout)."""
    ones = _mask_ones(n_refs, vae_repeat=vae_repeat, temporal=temporal)
    _check_frames(num_frames, temporal, sum(reference_slots(n_refs, vae_repeat=vae_repeat)))
    t_lat = (num_frames - 1) // temporal + 1
    slots = torch.zeros(batch_size, 1, t_lat * temporal, latent_height, latent_width, device=device, dtype=dtype)
    slots[:, :, :ones] = 1
    return slots.view(batch_size, t_lat, temporal, latent_height, latent_width).transpose(1, 2).contiguous()


def _latent_stats(vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = vae.config
    c = cfg.z_dim
    mean = torch.tensor(cfg.latents_mean, device=like.device, dtype=like.dtype).view(1, c, 1, 1, 1)
    std = torch.tensor(cfg.latents_std, device=like.device, dtype=like.dtype).view(1, c, 1, 1, 1)
    return mean, std


def normalize_latents(z: torch.Tensor, vae: Any) -> torch.Tensor:
    """``(z - latents_mean) / latents_std`` (the official ``(z - mean) * (1 / std)``)."""
    mean, std = _latent_stats(vae, z)
    return (z - mean) / std


def unnormalize_latents(z: torch.Tensor, vae: Any) -> torch.Tensor:
    mean, std = _latent_stats(vae, z)
    return z * std + mean


def prepare_condition(vae: Any, refs: Sequence[torch.Tensor], num_frames: int, *, batch_size: int | None = None,
                      vae_repeat: bool = True, sample_mode: str = "sample", generator: torch.Generator | None = None) -> torch.Tensor:
    """``cat([mask (4), normalised condition latents (C)], dim=1)`` for a diffusers ``AutoencoderKLWan``.

    ``refs`` are pixel images in [-1, 1] (B, 3, H, W) or (B, 3, 1, H, W); ``batch_size`` repeats a batch of
    one (the official ``latent_condition.repeat(batch_size, ...)``).
    """
    if sample_mode not in ("sample", "argmax"):
        raise ConfigError("sample_mode", sample_mode, "'sample' (official) or 'argmax' (posterior mean)")
    temporal = 2 ** sum(vae.temperal_downsample)
    video = reference_video(refs, num_frames, vae_repeat=vae_repeat, temporal=temporal)
    param = next(vae.parameters())
    dist = vae.encode(video.to(device=param.device, dtype=param.dtype)).latent_dist
    z = dist.sample(generator) if sample_mode == "sample" else dist.mode()
    z = normalize_latents(z.float(), vae)
    if batch_size is not None and batch_size != z.shape[0]:
        if z.shape[0] != 1:
            raise ShapeError("references' batch", z.shape[0], f"1 or batch_size={batch_size}")
        z = z.repeat(batch_size, 1, 1, 1, 1)
    mask = reference_mask(len(refs), num_frames, z.shape[-2], z.shape[-1], batch_size=z.shape[0], vae_repeat=vae_repeat,
                          temporal=temporal, device=z.device, dtype=z.dtype)
    if mask.shape[2] != z.shape[2]:
        raise ShapeError("reference mask", tuple(mask.shape), f"{z.shape[2]} latent frames like the condition")
    return torch.cat([mask, z], dim=1)


def model_input(latents: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """The transformer's input: ``[noise latents (C), mask (4), condition (C)]`` along channels."""
    if latents.shape[0] != condition.shape[0] or latents.shape[2:] != condition.shape[2:]:
        raise ShapeError("condition", tuple(condition.shape), f"(B, 4 + C, T, h, w) matching latents {tuple(latents.shape)}")
    return torch.cat([latents, condition.to(latents.dtype)], dim=1)


@torch.no_grad()
def image_tokens(image_encoder: Any, pixel_values: Sequence[torch.Tensor], *, layer: int = -2) -> torch.Tensor:
    """The semantic path: each reference's ``hidden_states[-2]`` of a ``CLIPVisionModel`` (official
    ``encode_image``), concatenated along tokens: (B, n_refs x tokens, dim)."""
    _check_count(len(pixel_values))
    outs = []
    param = next(image_encoder.parameters())
    for px in pixel_values:
        hs = image_encoder(pixel_values=px.to(device=param.device, dtype=param.dtype), output_hidden_states=True).hidden_states
        outs.append(hs[layer])
    return torch.cat(outs, dim=1)


def _to_array(image: Any) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ShapeError("image", arr.shape, "(H, W, 3) RGB")
    return arr.astype(np.uint8)


def crop_resize_pad(image: Any, height: int, width: int):
    """Pad with white to the target aspect ratio (centred), then resize (official ``_crop_and_resize_pad``:
    character and object references)."""
    from PIL import Image

    arr = _to_array(image)
    h, w, _ = arr.shape
    if h / w < height / width:
        pad = int(((height / width) * w - h) / 2.0)
        out = np.full((h + 2 * pad, w, 3), 255, np.uint8)
        out[pad:pad + h] = arr
    else:
        pad = int(((width / height) * h - w) / 2.0)
        out = np.full((h, w + 2 * pad, 3), 255, np.uint8)
        out[:, pad:pad + w] = arr
    return Image.fromarray(out).resize((width, height))


def crop_resize(image: Any, height: int, width: int):
    """Centre-crop to the target aspect ratio, then resize (official ``_crop_and_resize``: the background)."""
    from PIL import Image

    arr = _to_array(image)
    h, w, _ = arr.shape
    if h / w < height / width:
        cw = int(h / height * width)
        left = (w - cw) // 2
        arr = arr[:, left:left + cw]
    else:
        ch = int(w / width * height)
        top = (h - ch) // 2
        arr = arr[top:top + ch]
    return Image.fromarray(np.ascontiguousarray(arr)).resize((width, height))
