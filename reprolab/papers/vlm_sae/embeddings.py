"""The second image encoder that MS needs (paper: DINOv2 ViT-B), in two offline stand-ins.

MS of a latent is the similarity, under a *different* image encoder, of the images that activate
it (Eq. 7). The paper uses DINOv2 so that "similar" means "semantically similar". Offline we have
no DINOv2, so the study offers two encoders for the shapes images and reports MS under both:

- :class:`AttributeCNN` (the *semantic* embedding, the study's headline for claims (a)-(c)): a
  small CNN trained by the study on the shapes attributes (shape, colour, size, position,
  texture) of a split disjoint from the SAE's training and evaluation images; its penultimate
  features (128-d, after ReLU) are the embedding, so two images look alike when they share the
  *concepts* the data are made of, as DINOv2 features do for natural images. Its held-out
  accuracy per attribute is reported (and checked as a precondition: an encoder that did not
  learn the concepts cannot say whether a latent is monosemantic). It shares no weights, data or
  training signal with EfficientNet-Lite0 or the SAEs.
- :func:`pixel_statistics_embedding` (parameter free): colour histogram, gradient orientations,
  object area, foreground layout, texture statistics. Less semantic, but it never saw a label.

Why claim (d) (MS tracks ground-truth purity) uses the pixel-statistics MS and not the CNN's: the
CNN was trained to separate exactly the attribute values that purity counts, so images that share
an attribute value are close under it *by construction*; a correlation between CNN-MS and purity
would partly restate the CNN's training objective (circular). The pixel-statistics encoder never
saw a label, so its agreement with purity is evidence about MS, not about the encoder's training.

Centring: the official ``metric.py`` takes cosines of the raw (uncentred) DINOv2 embeddings (its
centring line is commented out); both encoders here return uncentred embeddings, and
:func:`~reprolab.papers.vlm_sae.monosemanticity.monosemanticity_score` centres on request
(``centre_embeddings=True``), which the study reports beside the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError, ShapeError
from ...runtime import track


# ----------------------------------------------------------------------------- pixel statistics


def _soft_bins(v: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    """(N,) values -> (N, bins) Gaussian soft one-hot over [lo, hi] (nearby values look alike)."""
    centres = torch.linspace(lo, hi, bins)
    width = (hi - lo) / (bins - 1)
    return torch.exp(-0.5 * ((v[:, None] - centres[None]) / width) ** 2)


def pixel_statistics_embedding(images: np.ndarray, centre: bool = False) -> np.ndarray:
    """Parameter-free image embedding for MS; images (N, 3, H, W) in [0, 1].

    Five blocks, each L2-normalised (so each weighs the same in a cosine), then concatenated:
    colour (4x4x4 histogram of foreground pixels), orientation (16-bin histogram of gradient
    orientations over the image, magnitude weighted: edges of a square vs a diamond vs a
    circle), size (soft bins of sqrt(foreground area)), layout (4x4 foreground occupancy) and
    texture (soft bins of the share of dark foreground pixels and of edge density).
    ``centre=True`` (study version <= 2) also centres each block on the batch mean and
    re-normalises it; the default is uncentred, as the official metric takes DINOv2 features.
    """
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if x.dim() != 4 or x.shape[1] != 3:
        raise ShapeError("images", tuple(x.shape), "(N, 3, H, W) RGB in [0, 1]")
    n, _, h, w = x.shape
    fg = (x - 0.1).abs().amax(1) > 0.05  # (N, H, W): not background
    area = fg.float().mean((1, 2))
    q = (x.clamp(0, 0.999) * 4).long()
    code = q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]
    colour = torch.zeros(n, 64).scatter_add_(1, code.reshape(n, -1), fg.reshape(n, -1).float())
    gray = x.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]
    gx = torch.nn.functional.conv2d(gray, kx, padding=1)[:, 0]
    gy = torch.nn.functional.conv2d(gray, kx.transpose(2, 3), padding=1)[:, 0]
    mag = (gx * gx + gy * gy).sqrt()
    ang = (torch.atan2(gy, gx) % math.pi) / math.pi
    b = (ang * 16).long().clamp(max=15)
    orient = torch.zeros(n, 16).scatter_add_(1, b.reshape(n, -1), mag.reshape(n, -1))
    size = _soft_bins(area.sqrt(), 0.0, 0.6, 8)
    layout = torch.nn.functional.adaptive_avg_pool2d(fg.float()[:, None], 4).reshape(n, -1)
    bright = x.amax(1)
    peak = (bright * fg).amax((1, 2)).clamp_min(1e-6)
    dark_share = ((bright < 0.6 * peak[:, None, None]) & fg).float().sum((1, 2)) / fg.float().sum((1, 2)).clamp_min(1)
    edge_density = (mag * fg).sum((1, 2)) / fg.float().sum((1, 2)).clamp_min(1)
    texture = torch.cat([_soft_bins(dark_share, 0.0, 0.7, 8), _soft_bins(edge_density, 0.0, float(edge_density.max().clamp_min(1e-6)), 8)], 1)
    blocks = []
    for v in (colour, orient, size, layout, texture):
        v = torch.nn.functional.normalize(v, dim=1)
        blocks.append(torch.nn.functional.normalize(v - v.mean(0, keepdim=True), dim=1) if centre else v)
    return torch.cat(blocks, 1).numpy()


# ----------------------------------------------------------------------------- the attribute CNN


class AttributeCNN(nn.Module):
    """Four stride-2 3x3 convolutions (16, 32, 64, 64 channels, batch norm, ReLU), a global max pool
    beside a 2x2 average pool, a ``feature_dim`` ReLU layer (the embedding) and one linear head per attribute."""

    def __init__(self, n_values: Mapping[str, int], feature_dim: int = 128, width: int = 16):
        super().__init__()
        if not n_values or any(int(v) < 2 for v in n_values.values()):
            raise ConfigError("n_values", dict(n_values), "a mapping attribute -> number of values (>= 2 each)")
        c = (width, 2 * width, 4 * width, 4 * width)
        layers: list[nn.Module] = []
        prev = 3
        for ch in c:
            layers += [nn.Conv2d(prev, ch, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
            prev = ch
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(prev * 5, feature_dim), nn.ReLU())
        self.heads = nn.ModuleDict({a: nn.Linear(feature_dim, int(v)) for a, v in n_values.items()})

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, feature_dim): the penultimate features (the MS embedding).

        The conv map is read twice: a global max pool (what is there, wherever it is: shape,
        colour, texture) and a 2x2 average pool (where it is)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError("images", tuple(images.shape), "(B, 3, H, W) RGB in [0, 1]")
        h = self.convs(images - 0.5)
        pooled = torch.cat([h.amax((2, 3)), nn.functional.adaptive_avg_pool2d(h, 2).flatten(1)], 1)
        return self.fc(pooled)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(images)
        return {a: head(f) for a, head in self.heads.items()}


def train_attribute_cnn(
    images: np.ndarray,
    labels: Mapping[str, np.ndarray],
    n_values: Mapping[str, int],
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> AttributeCNN:
    """Train an :class:`AttributeCNN` (sum of the per-attribute cross-entropies, Adam, seeded
    minibatches) on ``images`` (N, 3, H, W) and integer ``labels[attribute]`` (N,)."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if x.dim() != 4 or x.shape[1] != 3:
        raise ShapeError("images", tuple(x.shape), "(N, 3, H, W) RGB in [0, 1]")
    ys = {a: torch.from_numpy(np.asarray(labels[a], dtype=np.int64)) for a in n_values}
    for a, y in ys.items():
        if y.shape != (len(x),) or int(y.min()) < 0 or int(y.max()) >= int(n_values[a]):
            raise ShapeError(f"labels[{a!r}]", tuple(y.shape), f"({len(x)},) integers in [0, {n_values[a]})")
    if int(steps) < 1:
        raise ConfigError("steps", steps, "a positive integer")
    torch.manual_seed(seed)
    model = AttributeCNN(n_values).to(device or "cpu")
    dev = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in track(range(int(steps)), "attribute CNN (MS embedding)"):
        idx = torch.from_numpy(rng.integers(0, len(x), min(batch_size, len(x))))
        out = model(x[idx].to(dev))
        loss = sum(nn.functional.cross_entropy(out[a], ys[a][idx].to(dev)) for a in out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def cnn_embedding(model: AttributeCNN, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The penultimate features of ``images`` (N, 3, H, W) in [0, 1]: (N, feature_dim) float32, uncentred."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    dev = next(model.parameters()).device
    return torch.cat([model.features(x[i : i + batch_size].to(dev)).cpu() for i in range(0, len(x), batch_size)]).numpy()


@torch.no_grad()
def attribute_accuracy(model: AttributeCNN, images: np.ndarray, labels: Mapping[str, np.ndarray], batch_size: int = 256) -> dict[str, int]:
    """Correct predictions per attribute on ``images`` (counts, for exact binomial intervals)."""
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    dev = next(model.parameters()).device
    correct = {a: 0 for a in model.heads}
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size].to(dev))
        for a, logits in out.items():
            correct[a] += int((logits.argmax(1).cpu() == torch.from_numpy(np.asarray(labels[a][i : i + batch_size]))).sum())
    return correct
