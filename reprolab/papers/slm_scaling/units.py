"""Discrete speech units: MFCC + delta frames at 25 Hz, clustered with k-means, deduplicated.

The paper (Sec. 3, slamkit ``mhubert_25``) tokenises speech with mHuBERT-25Hz layer 11 and a 500-means
codebook. No HuBERT weights exist offline here, so ours are *acoustic* units: 13 MFCCs + deltas per
40 ms frame (:mod:`reprolab.nn.audio`, hop 640 at 16 kHz: the same 25 Hz unit rate), standardised,
then scikit-learn's ``MiniBatchKMeans`` (K = 200 by default, fewer units because the corpus is ~10^3
times smaller). Acoustic units carry far less linguistic content than HuBERT's: our absolute cloze
accuracies are not comparable with the paper's. Consecutive equal units are merged (``dedup``) and
their durations kept, as slamkit's ``audio_represent`` does.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from ...nn.audio import FrontEndConfig, mfcc_with_deltas
from .interleaving import dedup


@dataclass(frozen=True)
class UnitConfig:
    num_units: int = 200  # K, codebook size (paper: 500 HuBERT clusters; ours smaller, see the module docstring)
    front_end: FrontEndConfig = FrontEndConfig()  # 25 Hz MFCC + delta frames
    batch_size: int = 4096  # MiniBatchKMeans batch
    max_frames: int = 200_000  # frames used to fit the codebook (a seeded subsample)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_units < 2:
            raise ConfigError("num_units", self.num_units, "at least 2 clusters")

    @property
    def unit_seconds(self) -> float:
        return self.front_end.frame_seconds


class UnitTokenizer:
    """Waveform -> (units, durations): MFCC + delta frames, standardised, nearest centroid, dedup."""

    def __init__(self, cfg: UnitConfig, centroids: np.ndarray, mean: np.ndarray, std: np.ndarray):
        if centroids.shape[0] != cfg.num_units:
            raise ShapeError("centroids", centroids.shape, f"({cfg.num_units}, features)")
        self.cfg = cfg
        self.centroids = torch.as_tensor(centroids, dtype=torch.float32)
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.as_tensor(std, dtype=torch.float32)

    @property
    def num_units(self) -> int:
        return self.cfg.num_units

    def features(self, wave: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Raw MFCC + delta frames (T, 2 n_mfcc) of a mono waveform at the front-end's sample rate."""
        return mfcc_with_deltas(torch.as_tensor(np.asarray(wave, dtype=np.float32)), self.cfg.front_end)

    def units_of_features(self, feats: np.ndarray | torch.Tensor) -> list[int]:
        """Nearest centroid of each standardised frame (before dedup)."""
        f = (torch.as_tensor(np.asarray(feats, dtype=np.float32)) - self.mean) / self.std
        return torch.cdist(f, self.centroids).argmin(dim=1).tolist()

    def frame_units(self, wave: np.ndarray | torch.Tensor) -> list[int]:
        """One unit per 40 ms frame (before dedup)."""
        return self.units_of_features(self.features(wave))

    def encode(self, wave: np.ndarray | torch.Tensor) -> tuple[list[int], list[int]]:
        """Deduplicated units and their durations in frames."""
        return dedup(self.frame_units(wave))

    def save(self, path: str | Path) -> Path:
        buf = io.BytesIO()
        np.savez(buf, centroids=self.centroids.numpy(), mean=self.mean.numpy(), std=self.std.numpy(), num_units=self.cfg.num_units)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path, cfg: UnitConfig) -> UnitTokenizer:
        try:
            z = np.load(path)
            c, m, s = z["centroids"], z["mean"], z["std"]
        except (OSError, ValueError, KeyError) as e:
            raise MalformedFile(str(path), f"not a codebook file ({e})", fix="delete it; it is rebuilt on the next run") from None
        return cls(cfg, c, m, s)


def audio_features(wave: np.ndarray | torch.Tensor, cfg: UnitConfig = UnitConfig()) -> np.ndarray:
    """MFCC + delta frames (T, 2 n_mfcc) of a waveform: what the codebook is fitted on."""
    return mfcc_with_deltas(torch.as_tensor(np.asarray(wave, dtype=np.float32)), cfg.front_end).numpy()


def fit_unit_tokenizer(features: Sequence[np.ndarray], cfg: UnitConfig = UnitConfig(), cache_dir: str | Path | None = None) -> UnitTokenizer:
    """Fit the codebook on feature frames (:func:`audio_features` of each training utterance; a seeded
    subsample of ``max_frames``), standardised per dimension; cached under ``cache_dir`` by a hash of the
    config and the features, so a second call loads it."""
    from sklearn.cluster import MiniBatchKMeans

    h = hashlib.sha256(repr(cfg).encode())
    for f in features:
        h.update(np.ascontiguousarray(f, dtype=np.float32).tobytes())
    path = Path(cache_dir) / f"codebook-{h.hexdigest()[:16]}.npz" if cache_dir is not None else None
    if path is not None and path.exists():
        return UnitTokenizer.load(path, cfg)
    feats = np.concatenate([np.asarray(f, dtype=np.float32) for f in features]) if features else np.zeros((0, 1), np.float32)
    if len(feats) < cfg.num_units:
        raise ConfigError("features", f"{len(feats)} frames", f"at least num_units={cfg.num_units} frames of audio")
    if not np.isfinite(feats).all():
        raise NonFiniteError("MFCC features", "NaN or inf", fix="check the audio")
    rng = np.random.default_rng(cfg.seed)
    if len(feats) > cfg.max_frames:
        feats = feats[rng.choice(len(feats), cfg.max_frames, replace=False)]
    mean, std = feats.mean(0), feats.std(0) + 1e-6
    km = MiniBatchKMeans(n_clusters=cfg.num_units, batch_size=cfg.batch_size, random_state=cfg.seed, n_init=3, max_iter=50)
    km.fit((feats - mean) / std)
    tok = UnitTokenizer(cfg, km.cluster_centers_.astype(np.float32), mean, std)
    if path is not None:
        tok.save(path)
    return tok
