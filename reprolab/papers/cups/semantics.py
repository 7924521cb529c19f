"""CUPS step 2: depth-guided semantic pseudo-labels (paper Sec. 3.2; official ``depth_guided_sliding_window``).

Official: DepthG (DINO ViT features distilled with a depth-guided contrastive loss) gives a code per
pixel; a cluster probe (K = 27 centroids, log-softmax of 2 x cosine similarity) turns codes into
log-probabilities. Two views of each image are combined:

- ``P_low``: the image at half resolution, averaged with its horizontal flip, upsampled;
- ``P_slide``: crops of size H/2 with stride H/4 at full resolution, averaged where they overlap;

and fused per pixel with depth: ``P = w * P_low + (1 - w) * P_slide``, ``w = 1 / (depth + 1)`` (metres):
near pixels (large in the image) trust the global view, far pixels (small) the high-resolution crops.
The official code fuses log-probabilities (``log_probs=True``), then a dense CRF and argmax.

Ours (departures, stated): features from EfficientNet-Lite0 (ImageNet-supervised, offline; no DINO
weights exist offline), MBConv block 10's output (112 channels, stride 16) for the input upsampled
``upsample`` x, so the map is dense enough for 64 x 128 images, projected
to ``dims`` dimensions by PCA (the analogue of DepthG's learned segmentation head; unsupervised) and
L2-normalised; the cluster probe is k-means (cosine) with ``k`` centroids and the official
log-softmax(2 x cosine); no CRF (pydensecrf is an unmaintained 2018 sdist).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import ConfigError, NonFiniteError, ShapeError


@dataclass(frozen=True)
class SemanticConfig:
    k: int = 27  # clusters (official K = 27 for Cityscapes' 27 classes; the study uses 8 over 4 classes)
    alpha: float = 2.0  # cluster probe temperature: log_softmax(alpha * cosine) (official 2)
    dims: int = 32  # PCA dimensions of the code
    upsample: int = 2  # input upsampling before the encoder
    block: int = 10  # features are this MBConv block's output (block 10: 112 channels at stride 16)
    batch: int = 16  # encoder batch size

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ConfigError("k", self.k, "at least 2 clusters")
        if self.upsample < 1:
            raise ConfigError("upsample", self.upsample, "an integer >= 1")


def depth_guided_fusion(log_low: np.ndarray | torch.Tensor, log_slide: np.ndarray | torch.Tensor,
                        depth: np.ndarray | torch.Tensor):
    """``w * P_low + (1 - w) * P_slide`` with ``w = 1 / (depth + 1)`` per pixel (official fusion).

    log_low, log_slide: (..., K, H, W) scores; depth: (..., H, W) in metres (>= 0). Same type as the inputs.
    """
    as_np = isinstance(log_low, np.ndarray)
    lo, sl, d = (torch.as_tensor(np.asarray(x)) if isinstance(x, np.ndarray) else x for x in (log_low, log_slide, depth))
    if lo.shape != sl.shape:
        raise ShapeError("log_slide", tuple(sl.shape), f"log_low's shape {tuple(lo.shape)}")
    if d.shape != lo.shape[:-3] + lo.shape[-2:]:
        raise ShapeError("depth", tuple(d.shape), f"{tuple(lo.shape[:-3] + lo.shape[-2:])} (scores without the class axis)")
    if not torch.isfinite(d).all() or (d < 0).any():
        raise NonFiniteError("depth", "negative or non-finite values", fix="pass metric depth >= 0 (0 where unknown)")
    w = (1.0 / (d.to(lo.dtype) + 1.0)).unsqueeze(-3)
    out = w * lo + (1 - w) * sl
    return out.numpy() if as_np else out


def random_encoder(channels: int = 32, seed: int = 0) -> torch.nn.Module:
    """A seeded, untrained conv stack with stride 16 (a stand-in for tests and the smoke scale, so they need
    no weights and run in seconds; never used for a reported number)."""
    g = torch.Generator().manual_seed(seed)
    layers, c = [], 3
    for _ in range(4):
        conv = torch.nn.Conv2d(c, channels, 3, 2, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) / (3 * c) ** 0.5)
            conv.bias.zero_()
        layers += [conv, torch.nn.Tanh()]
        c = channels
    return torch.nn.Sequential(*layers).eval()


class ClusterSemantics:
    """Unsupervised semantic clusters over frozen EfficientNet-Lite0 features (module docstring).

    ``fit(images)`` fits the PCA code and the k-means probe; ``log_probs(images)`` returns the low-res
    (+flip) and sliding-window log-probabilities, each (N, k, H, W); ``codes(images)`` the dense
    sliding-window code (N, dims, H, W) (used by the U2Seg-style MaskCut peer).
    """

    def __init__(self, config: SemanticConfig = SemanticConfig(), encoder: torch.nn.Module | None = None,
                 device: torch.device | str | None = None, seed: int = 0):
        from ...nn.encoders import load_efficientnet_lite0

        self.config = config
        self.encoder = encoder if encoder is not None else load_efficientnet_lite0(device)
        self.device = next(self.encoder.parameters()).device
        self.seed = seed
        self.mean: torch.Tensor | None = None
        self.basis: torch.Tensor | None = None
        self.centroids: torch.Tensor | None = None

    # -- encoder
    @torch.no_grad()
    def _encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) in [0, 1] -> (B, C, h', w'): block ``config.block``'s output for the upsampled input."""
        from ...nn.encoders import imagenet_normalize

        s = self.config.upsample
        out = []
        for i in range(0, len(images), self.config.batch):
            x = images[i:i + self.config.batch].to(self.device)
            x = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False) if s > 1 else x
            e = self.encoder
            if not hasattr(e, "_blocks"):  # any other encoder: a module mapping images to a feature map
                out.append(e(imagenet_normalize(x)).float())
                continue
            h = e._swish(e._bn0(e._conv_stem(imagenet_normalize(x))))
            for block in e._blocks[: self.config.block + 1]:
                h = block(h)
            out.append(h.float())
        return torch.cat(out)

    def _project(self, f: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return f
        z = torch.einsum("bchw,cd->bdhw", f - self.mean[None, :, None, None], self.basis)
        return z

    def _views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected codes of the two views, upsampled to (H, W): low (+flip) and sliding window."""
        N, _, H, W = images.shape
        half = F.interpolate(images, size=(H // 2, W // 2), mode="bilinear", align_corners=False)
        f = self._project(self._encode(half))
        ff = self._project(self._encode(half.flip(-1))).flip(-1)
        low = F.interpolate((f + ff) / 2, size=(H, W), mode="bilinear", align_corners=False)
        ch, st = max(H // 2, 1), max(H // 4, 1)
        ys = list(range(0, max(H - ch, 0) + 1, st))
        xs = list(range(0, max(W - ch, 0) + 1, st))
        if ys[-1] + ch < H:
            ys.append(H - ch)
        if xs[-1] + ch < W:
            xs.append(W - ch)
        crops = torch.stack([images[:, :, y:y + ch, x:x + ch] for y in ys for x in xs], 1).flatten(0, 1)
        codes = self._project(self._encode(crops))
        codes = F.interpolate(codes, size=(ch, ch), mode="bilinear", align_corners=False).unflatten(0, (N, len(ys) * len(xs)))
        slide = torch.zeros(N, codes.shape[2], H, W, device=codes.device)
        count = torch.zeros(1, 1, H, W, device=codes.device)
        for j, (y, x) in enumerate((y, x) for y in ys for x in xs):
            slide[:, :, y:y + ch, x:x + ch] += codes[:, j]
            count[:, :, y:y + ch, x:x + ch] += 1
        return low, slide / count

    def _check(self, images: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images)) if isinstance(images, np.ndarray) else images
        if x.dim() != 4 or x.shape[1] != 3:
            raise ShapeError("images", tuple(x.shape), "(N, 3, H, W) in [0, 1]")
        if not torch.isfinite(x).all():
            raise NonFiniteError("images", "non-finite pixels")
        return x.float()

    # -- fitting and prediction
    @torch.no_grad()
    def fit(self, images: torch.Tensor | np.ndarray, max_pixels: int = 20000) -> ClusterSemantics:
        """PCA code and k-means probe from these images' features (both views, a seeded pixel subsample)."""
        from sklearn.cluster import KMeans

        x = self._check(images)
        self.mean = self.basis = None
        g = torch.Generator().manual_seed(self.seed)
        raw = self._encode(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))
        v = raw.permute(0, 2, 3, 1).reshape(-1, raw.shape[1])
        v = v[torch.randperm(len(v), generator=g)[:max_pixels]]
        self.mean = v.mean(0)
        _, _, vt = torch.linalg.svd(v - self.mean, full_matrices=False)
        self.basis = vt[: self.config.dims].T.contiguous()
        low, slide = self._views(x)
        codes = torch.cat([low, slide]).permute(0, 2, 3, 1).reshape(-1, self.config.dims)
        codes = F.normalize(codes[torch.randperm(len(codes), generator=g)[:max_pixels]], dim=1).cpu().numpy()
        km = KMeans(self.config.k, n_init=4, random_state=self.seed).fit(codes)
        self.centroids = F.normalize(torch.as_tensor(km.cluster_centers_, dtype=torch.float32), dim=1).to(self.device)
        return self

    def _probe(self, code: torch.Tensor) -> torch.Tensor:
        sim = torch.einsum("bdhw,kd->bkhw", F.normalize(code, dim=1), self.centroids)
        return torch.log_softmax(self.config.alpha * sim, dim=1)

    @torch.no_grad()
    def log_probs(self, images: torch.Tensor | np.ndarray, chunk: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Low-view and slide-view log-probabilities (N, k, H, W) and the dense slide code (N, dims, H, W)."""
        if self.centroids is None:
            raise ConfigError("ClusterSemantics", "not fitted", "call fit(images) first")
        x = self._check(images)
        lows, slides, codes = [], [], []
        for i in range(0, len(x), chunk):
            low, slide = self._views(x[i:i + chunk])
            lows.append(self._probe(low).cpu().numpy())
            slides.append(self._probe(slide).cpu().numpy())
            codes.append(F.normalize(slide, dim=1).cpu().numpy())
        return np.concatenate(lows), np.concatenate(slides), np.concatenate(codes)
