"""The instruction IGPG conditions on: a data-set embedding and an architecture embedding (Sec. 3.3).

- Data set: the paper embeds a class-balanced image sample with CLIP and mean-pools it. No CLIP
  weights exist offline; we use EfficientNet-Lite0's ImageNet features (mean of the 1280x7x7 map) on
  the images resized to 224 and ImageNet-normalised (:class:`EfficientNetImageEncoder`).
  *Choice where the paper is vague*: ``pooling="class_means"`` (default) keeps one mean per class, in
  label order, (K, D), because a single mean of the whole sample cannot say which output unit stands
  for which class, and our tasks differ exactly in that; ``pooling="mean"`` is the paper's single vector.
- Architecture: a standard text description generated from the module itself
  (:func:`describe_architecture`: every leaf module in order with its hyper-parameters, and each
  tensor's shape), embedded by all-MiniLM-L6-v2 (the paper's "language model"; offline).

Encoders come from :mod:`reprolab.nn.encoders`; tests and smoke runs use :class:`PixelImageEncoder`
and ``HashEmbedder`` (no model files).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, ShapeError

ImageEncoder = Callable[[torch.Tensor], torch.Tensor]  # (N, C, H, W) in [-1, 1] -> (N, D)
TextEmbedder = Callable[[Sequence[str]], np.ndarray]  # texts -> (N, D)


class PixelImageEncoder:
    """A model-free image encoder for tests and smoke runs: the image average-pooled to ``side x side``."""

    def __init__(self, side: int = 7):
        self.side = side
        self.dim = side * side

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise ShapeError("images", tuple(images.shape), "(N, C, H, W)")
        return F.adaptive_avg_pool2d(images.mean(1, keepdim=True), self.side).flatten(1)


class EfficientNetImageEncoder:
    """EfficientNet-Lite0 ImageNet features (global mean of ``extract_features``), offline, batched."""

    dim = 1280

    def __init__(self, device: torch.device | str | None = None, batch_size: int = 32):
        from ...nn.encoders import load_efficientnet_lite0

        self.model = load_efficientnet_lite0(device)
        self.device = next(self.model.parameters()).device
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        from ...nn.encoders import imagenet_normalize

        if images.dim() != 4:
            raise ShapeError("images", tuple(images.shape), "(N, C, H, W) in [-1, 1]")
        out = []
        for i in range(0, len(images), self.batch_size):
            x = (images[i:i + self.batch_size].to(self.device) + 1.0) / 2.0  # [-1, 1] -> [0, 1]
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=224, mode="bilinear", align_corners=False)
            out.append(self.model.extract_features(imagenet_normalize(x)).mean((2, 3)).cpu())
        return torch.cat(out)


def dataset_embedding(images: torch.Tensor, labels: torch.Tensor, n_classes: int, encoder: ImageEncoder, *,
                      per_class: int = 10, pooling: Literal["class_means", "mean"] = "class_means", seed: int = 0) -> torch.Tensor:
    """Embed a class-balanced sample of ``per_class`` images per class (paper Sec. 3.3).

    Returns (n_classes, D) class means in label order (``class_means``) or (1, D) (``mean``, the paper's).
    """
    if pooling not in ("class_means", "mean"):
        raise ConfigError("pooling", pooling, "'class_means' or 'mean'")
    if len(images) != len(labels):
        raise ShapeError("labels", tuple(labels.shape), f"one label per image ({len(images)})")
    g = torch.Generator().manual_seed(seed)
    sample, owner = [], []
    for c in range(n_classes):
        idx = (labels == c).nonzero().flatten()
        if len(idx) == 0:
            raise ConfigError("labels", f"no image of class {c}", f"at least one image of each of the {n_classes} classes")
        idx = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        sample.append(images[idx])
        owner += [c] * len(idx)
    feats = encoder(torch.cat(sample)).float()
    own = torch.tensor(owner)
    means = torch.stack([feats[own == c].mean(0) for c in range(n_classes)])
    return means.mean(0, keepdim=True) if pooling == "mean" else means


def describe_architecture(model: nn.Module | Mapping[str, torch.Tensor]) -> str:
    """The standard text description of an architecture, generated from the module (or state dict).

    One line per leaf module in order: ``<name>: <Class>(<its extra_repr>)``, then the parameter count;
    for a mapping (e.g. a LoRA state dict), one line per tensor with its shape. Two modules of the
    same architecture get the same text; weights do not enter it.
    """
    lines = []
    if isinstance(model, nn.Module):
        for name, mod in model.named_modules():
            if len(list(mod.children())) == 0:
                lines.append(f"{name or 'model'}: {type(mod).__name__}({mod.extra_repr()})")
        n = sum(p.numel() for p in model.parameters())
    else:
        for name, t in model.items():
            lines.append(f"{name}: tensor{tuple(t.shape)}")
        n = sum(t.numel() for t in model.values())
    return "Neural network architecture with layers in order:\n" + "\n".join(lines) + f"\nTotal parameters: {n}."
