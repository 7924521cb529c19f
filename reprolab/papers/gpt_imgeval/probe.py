"""``ArchitectureProbe``: which generator paradigm made an image (GPT-ImgEval, Sec. 5).

The paper fine-tunes a CLIP ViT-B/16 binary classifier (AdamW, lr 1e-5, weight decay 4e-4, 10
epochs) on 10k FLUX.1-dev (diffusion) and 10k Infinity-8B (VAR) images, then applies it to
GPT-4o's images and reports the share assigned to each class. CLIP weights are not offline
here, so the probe's backbone is EfficientNet-Lite0 with its ImageNet weights
(:func:`reprolab.nn.encoders.load_efficientnet_lite0`), frozen; its pooled 1280-d features
(``extract_features`` + global average pooling) are computed once and a head is fine-tuned on
them (choice: head only, a linear layer, AdamW with the paper's weight decay 4e-4 and 10
epochs, lr 1e-3 because only the head learns; the images are resized bilinearly to
``input_size`` and ImageNet-normalised).

    probe = ArchitectureProbe().fit(diffusion_images, ar_images)       # (N, 3, H, W) in [0, 1]
    probe.shares(gpt4o_images)   # {"diffusion": 0.8, "autoregressive": 0.2}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...errors import ConfigError, NonFiniteError, ShapeError


class ArchitectureProbe:
    """Binary classifier on frozen EfficientNet-Lite0 features with a fine-tuned linear head (see the module docstring)."""

    def __init__(self, classes: Sequence[str] = ("diffusion", "autoregressive"), *, input_size: int = 128, epochs: int = 10,
                 lr: float = 1e-3, weight_decay: float = 4e-4, batch_size: int = 64, device: torch.device | str | None = None,
                 backbone: torch.nn.Module | None = None, seed: int = 0):
        if len(classes) != 2:
            raise ConfigError("classes", classes, "two class names (the first is class 0)")
        self.classes = tuple(classes)
        self.input_size, self.epochs, self.lr, self.weight_decay, self.batch_size = input_size, epochs, lr, weight_decay, batch_size
        self.device = torch.device(device) if device is not None else None
        self._backbone = backbone
        self.seed = seed
        self.head: torch.nn.Linear | None = None
        self.losses: list[float] = []

    @property
    def backbone(self) -> torch.nn.Module:
        if self._backbone is None:
            from ...nn.encoders import load_efficientnet_lite0

            self._backbone = load_efficientnet_lite0(self.device)
        return self._backbone

    def _check(self, images: torch.Tensor | np.ndarray, what: str) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).float()
        if x.dim() == 4 and x.shape[-1] == 3 and x.shape[1] != 3:  # (N, H, W, 3) uint8 arrays
            x = x.permute(0, 3, 1, 2) / 255.0
        if x.dim() != 4 or x.shape[1] != 3 or len(x) == 0:
            raise ShapeError(what, tuple(x.shape), "(N, 3, H, W) floats in [0, 1] or (N, H, W, 3) uint8, N >= 1")
        if not torch.isfinite(x).all():
            raise NonFiniteError(what, "NaN/inf pixels", fix="drop the broken images")
        return x

    @torch.no_grad()
    def features(self, images: torch.Tensor | np.ndarray, what: str = "images") -> torch.Tensor:
        """(N, D) pooled backbone features."""
        from ...nn.encoders import imagenet_normalize

        x = self._check(images, what)
        bb = self.backbone.eval()
        dev = next(bb.parameters()).device
        out = []
        for i in range(0, len(x), self.batch_size):
            xb = torch.nn.functional.interpolate(x[i:i + self.batch_size].to(dev), size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
            f = bb.extract_features(imagenet_normalize(xb)) if hasattr(bb, "extract_features") else bb(imagenet_normalize(xb))
            out.append(f.mean(dim=(2, 3)) if f.dim() == 4 else f)
        return torch.cat(out).cpu()

    def fit(self, class0: torch.Tensor | np.ndarray, class1: torch.Tensor | np.ndarray) -> ArchitectureProbe:
        """Train the head on images of ``classes[0]`` and ``classes[1]``."""
        f0, f1 = self.features(class0, self.classes[0]), self.features(class1, self.classes[1])
        return self.fit_features(f0, f1)

    def fit_features(self, f0: torch.Tensor, f1: torch.Tensor) -> ArchitectureProbe:
        x = torch.cat([f0, f1]).float()
        y = torch.cat([torch.zeros(len(f0)), torch.ones(len(f1))]).long()
        self.mean, self.std = x.mean(0), x.std() + 1e-6  # one scale for all features: per-feature scaling blows up near-constant ones
        x = (x - self.mean) / self.std
        g = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        self.head = torch.nn.Linear(x.shape[1], 2)
        opt = torch.optim.AdamW(self.head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self.losses = []
        for _ in range(self.epochs):
            for idx in torch.randperm(len(x), generator=g).split(self.batch_size):
                loss = torch.nn.functional.cross_entropy(self.head(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.losses.append(float(loss.detach()))
        return self

    @torch.no_grad()
    def proba_features(self, f: torch.Tensor) -> np.ndarray:
        if self.head is None:
            raise ConfigError("probe", "untrained", "call fit(class0_images, class1_images) first")
        return torch.softmax(self.head((f.float() - self.mean) / self.std), -1)[:, 0].numpy()

    def proba(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """P(``classes[0]``) per image."""
        return self.proba_features(self.features(images))

    def shares(self, images: torch.Tensor | np.ndarray) -> dict[str, float]:
        """Share of ``images`` assigned to each class."""
        p0 = float(np.mean(self.proba(images) > 0.5))
        return {self.classes[0]: p0, self.classes[1]: 1.0 - p0}
