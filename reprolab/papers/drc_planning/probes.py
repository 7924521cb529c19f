"""Spatial linear probes for plan concepts, their macro-F1, and the scikit-learn ``LogisticRegression`` format.

Paper (arXiv 2504.01871, Sec. 4 and App. C; official ``train_conv_probe``): a probe is ``Conv2d(C -> 5, kernel k,
padding k//2, bias=False)`` over the cell state c of one layer at the last tick of a step, trained with cross-entropy
over the 64 squares, AdamW (lr 1e-3, weight decay 1e-3), batch 16, 10 epochs (the README's value; the script's
default is 30), 5 seeds; scored by macro-F1 over squares (scikit-learn, ``zero_division=1``). The baseline is the same
probe on the observation. A 1x1 probe is multinomial logistic regression per square without an intercept, so it
converts exactly to and from scikit-learn's ``LogisticRegression`` (:func:`to_sklearn`, :func:`from_sklearn`).

Macro-F1 is computed from a confusion matrix (:func:`confusion`, :func:`macro_f1`): per class ``2 tp / (2 tp + fp + fn)``,
1 when the class is absent from both labels and predictions (scikit-learn's ``zero_division=1``), averaged over the
5 classes. Per-episode confusion matrices let the study bootstrap F1 over episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from .concepts import N_CLASSES


@dataclass(frozen=True)
class ProbeConfig:
    kernel: int = 1  # 1 or 3 (paper: both)
    epochs: int = 10  # official README
    batch: int = 16  # official
    lr: float = 1e-3  # official AdamW
    weight_decay: float = 1e-3  # official AdamW
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError("kernel", self.kernel, "an odd kernel size (1 or 3 in the paper)")
        if self.epochs < 1 or self.batch < 1:
            raise ConfigError("epochs, batch", (self.epochs, self.batch), "positive integers")


class ConvProbe(nn.Module):
    """Conv2d(in_channels -> 5, kernel, padding kernel//2, bias=False): per-square logits of a concept's 5 classes."""

    def __init__(self, in_channels: int, kernel: int = 1, classes: int = N_CLASSES):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, classes, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)  # (N, 5, H, W)

    def predict(self, x: torch.Tensor | np.ndarray, batch: int = 4096) -> np.ndarray:
        """(N, H, W) predicted classes."""
        x = torch.as_tensor(np.asarray(x, np.float32) if isinstance(x, np.ndarray) else x)
        with torch.no_grad():
            return torch.cat([self(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]).numpy()

    def class_vectors(self) -> torch.Tensor:
        """(5, C): the 1x1 probe's weight per class (the direction the interventions add); the centre tap for k > 1."""
        w = self.conv.weight
        k = w.shape[-1] // 2
        return w[:, :, k, k].detach().clone()


def fit_probe(features: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, config: ProbeConfig = ProbeConfig()) -> ConvProbe:
    """Train a :class:`ConvProbe` on features (N, C, H, W) and labels (N, H, W) in 0..4 (see the module docstring)."""
    x = torch.as_tensor(np.asarray(features, np.float32)) if isinstance(features, np.ndarray) else features.float()
    y = torch.as_tensor(np.asarray(labels, np.int64)) if isinstance(labels, np.ndarray) else labels.long()
    if x.dim() != 4 or y.shape != (x.shape[0],) + tuple(x.shape[2:]):
        raise ShapeError("features / labels", (tuple(x.shape), tuple(y.shape)), "(N, C, H, W) and (N, H, W)")
    if len(x) == 0:
        raise ConfigError("features", "0 rows", "at least one step of data")
    if not torch.isfinite(x).all():
        raise NonFiniteError("probe features", "NaN/inf", fix="check the recorded cell states")
    if y.min() < 0 or y.max() >= N_CLASSES:
        raise ConfigError("labels", f"range {int(y.min())}..{int(y.max())}", f"classes 0..{N_CLASSES - 1}")
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    probe = ConvProbe(x.shape[1], config.kernel)
    opt = torch.optim.AdamW(probe.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), config.batch):
            b = order[i:i + config.batch]
            loss = F.cross_entropy(probe(x[b]), y[b])  # mean over the batch's squares
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe.eval()


def confusion(pred: np.ndarray, labels: np.ndarray, classes: int = N_CLASSES) -> np.ndarray:
    """(classes, classes) counts, rows = true class, columns = predicted."""
    p, y = np.asarray(pred).ravel(), np.asarray(labels).ravel()
    if p.shape != y.shape:
        raise ShapeError("pred", p.shape, f"the labels' shape {y.shape}")
    return np.bincount(y * classes + p, minlength=classes * classes).reshape(classes, classes)


def macro_f1(conf: np.ndarray) -> float:
    """Macro-F1 of a confusion matrix (rows true, columns predicted); an absent class scores 1 (``zero_division=1``)."""
    conf = np.asarray(conf, np.float64)
    tp = np.diag(conf)
    fp = conf.sum(0) - tp
    fn = conf.sum(1) - tp
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1e-12), 1.0)
    return float(f1.mean())


def episode_confusions(pred: np.ndarray, labels: np.ndarray, episode: np.ndarray, n_episodes: int) -> np.ndarray:
    """(n_episodes, 5, 5): each episode's confusion matrix (for a bootstrap of macro-F1 over episodes)."""
    out = np.zeros((n_episodes, N_CLASSES, N_CLASSES), np.int64)
    for k in range(n_episodes):
        m = episode == k
        if m.any():
            out[k] = confusion(pred[m], labels[m])
    return out


def pooled_f1(confusions: np.ndarray) -> float:
    """Macro-F1 of the summed confusion matrices (the statistic bootstrapped over episodes)."""
    return macro_f1(np.asarray(confusions).sum(0))


def to_sklearn(probe: ConvProbe) -> Any:
    """The 1x1 probe as a fitted scikit-learn ``LogisticRegression`` over per-square feature vectors (C,):
    ``coef_`` = the probe's (5, C) weight, ``intercept_`` = 0, ``classes_`` = 0..4; ``predict_proba`` equals the
    probe's softmax at each square."""
    from sklearn.linear_model import LogisticRegression

    w = probe.conv.weight.detach().cpu().numpy()
    if w.shape[-1] != 1 or w.shape[-2] != 1:
        raise ConfigError("probe kernel", w.shape[-2:], "1x1 (only a 1x1 probe is a per-square logistic regression)")
    lr = LogisticRegression(fit_intercept=False)
    lr.coef_ = w[:, :, 0, 0].astype(np.float64)
    lr.intercept_ = np.zeros(w.shape[0])
    lr.classes_ = np.arange(w.shape[0])
    lr.n_features_in_ = w.shape[1]
    return lr


def from_sklearn(model: Any) -> ConvProbe:
    """A 1x1 :class:`ConvProbe` from a fitted multinomial ``LogisticRegression`` on per-square vectors with classes 0..4.
    A fitted intercept cannot be represented (the paper's probe has no bias): it is refused."""
    coef = getattr(model, "coef_", None)
    classes = getattr(model, "classes_", None)
    if coef is None or classes is None:
        raise MalformedFile("<LogisticRegression>", "not fitted (no coef_ / classes_)", fix="fit it first, or pass a fitted model")
    if list(np.asarray(classes)) != list(range(N_CLASSES)) or coef.shape[0] != N_CLASSES:
        raise MalformedFile("<LogisticRegression>", f"classes {list(classes)}", fix=f"fit on labels with all classes 0..{N_CLASSES - 1}")
    if np.any(np.asarray(getattr(model, "intercept_", 0.0)) != 0):
        raise MalformedFile("<LogisticRegression>", "has a non-zero intercept", fix="fit with fit_intercept=False (the probe has no bias)")
    probe = ConvProbe(coef.shape[1], 1)
    with torch.no_grad():
        probe.conv.weight.copy_(torch.as_tensor(coef, dtype=torch.float32)[:, :, None, None])
    return probe.eval()


def squares_as_rows(features: np.ndarray, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, C, H, W) -> (N*H*W, C) rows (and labels (N*H*W,)): the per-square table a ``LogisticRegression`` fits."""
    f = np.asarray(features)
    rows = f.transpose(0, 2, 3, 1).reshape(-1, f.shape[1])
    return rows, (None if labels is None else np.asarray(labels).reshape(-1))
