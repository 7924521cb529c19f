"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (read offline, never downloaded).

Install once (``make assets`` does it)::

    apt-get install -y dataset-fashion-mnist      # files under /usr/share/datasets/fashion-mnist/

The package ships Zalando's original IDX files, gzip-compressed: ``train-images-idx3-ubyte.gz``
(60,000 x 28 x 28 uint8), ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` (10,000)
and ``t10k-labels-idx1-ubyte.gz``. We read them with a small IDX parser that checks the magic
number, the dimensions and the byte count, so a truncated or foreign file is refused with a
:class:`~reprolab.errors.MalformedFile` rather than read as garbage. Another location can be
given with ``root=`` or the ``REPROLAB_FASHION_MNIST`` variable (plain or ``.gz`` files).

    from reprolab.data.fashion_mnist import load_fashion_mnist
    train = load_fashion_mnist("train")            # FashionMNIST(images uint8 (N, 28, 28), labels int64 (N,))
    x = train.tensors(size=32)                     # float32 (N, 1, 32, 32) in [-1, 1], zero-padded
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import AssetMissing, ConfigError, MalformedFile

INSTALL_COMMAND = "apt-get install -y dataset-fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def candidate_dirs(root: str | os.PathLike | None = None) -> list[Path]:
    if root is not None:
        return [Path(root)]
    dirs = [Path(os.environ["REPROLAB_FASHION_MNIST"])] if os.environ.get("REPROLAB_FASHION_MNIST") else []
    return dirs + [DEBIAN_DIR]


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def find_fashion_mnist(root: str | os.PathLike | None = None) -> Path:
    """The folder holding all four IDX files, or :class:`AssetMissing` with the install command."""
    for folder in candidate_dirs(root):
        if all(_find_file(folder, stem) for pair in _FILES.values() for stem in pair):
            return folder
    where = ", ".join(str(d) for d in candidate_dirs(root))
    raise AssetMissing(f"fashion-mnist (looked in {where})", fix=f"{INSTALL_COMMAND} (or set REPROLAB_FASHION_MNIST to a folder with the four IDX files)")


def is_available(root: str | os.PathLike | None = None) -> bool:
    try:
        find_fashion_mnist(root)
        return True
    except AssetMissing:
        return False


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip): magic ``0x0000 <dtype> <ndim>``, ndim big-endian uint32 sizes, data."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise MalformedFile(str(path), f"cannot be read as {'gzip' if path.suffix == '.gz' else 'IDX'} ({e})", fix=f"reinstall it: {INSTALL_COMMAND.replace('install', 'install --reinstall')}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise MalformedFile(str(path), f"not an IDX file (header {raw[:4].hex() or 'empty'})", fix=f"reinstall it: {INSTALL_COMMAND.replace('install', 'install --reinstall')}")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise MalformedFile(str(path), f"truncated header ({len(raw)} bytes for {ndim} dimensions)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims)) * dtype.itemsize
    body = len(raw) - 4 - 4 * ndim
    if body != expected:
        raise MalformedFile(str(path), f"holds {body} data bytes, its header {dims} promises {expected} (truncated or corrupt)", fix=f"reinstall it: {INSTALL_COMMAND.replace('install', 'install --reinstall')}")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims).astype(dtype.newbyteorder("="))


@dataclass
class FashionMNIST:
    """One split: ``images`` uint8 (N, 28, 28), ``labels`` int64 (N,) in 0..9 (names in ``CLASSES``)."""

    images: np.ndarray
    labels: np.ndarray
    split: str

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, size: int = 28) -> torch.Tensor:
        """float32 (N, 1, size, size) in [-1, 1]; ``size > 28`` zero-pads (background -1) symmetrically, ``size < 28`` resizes (area)."""
        x = torch.from_numpy(self.images.astype(np.float32) / 127.5 - 1.0)[:, None]
        if size > 28:
            p = size - 28
            x = torch.nn.functional.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), value=-1.0)
        elif size < 28:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="area")
        return x

    def label_tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.labels.astype(np.int64))

    def subset(self, n: int, seed: int = 0, balanced: bool = True) -> FashionMNIST:
        """``n`` examples drawn without replacement (class-balanced by default), deterministic in ``seed``."""
        rng = np.random.default_rng(seed)
        if n >= len(self):
            return self
        if balanced:
            idx = np.concatenate([rng.permutation(np.flatnonzero(self.labels == c))[: n // 10 + (c < n % 10)] for c in range(10)])
            idx = rng.permutation(idx)
        else:
            idx = rng.permutation(len(self))[:n]
        return FashionMNIST(self.images[idx], self.labels[idx], self.split)


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None, limit: int | None = None) -> FashionMNIST:
    """Read one split (``"train"``: 60,000, ``"test"``: 10,000); ``limit`` keeps the first ``limit`` examples."""
    if split not in _FILES:
        raise ConfigError("split", split, "'train' or 'test'")
    folder = find_fashion_mnist(root)
    img_path, lab_path = (_find_file(folder, stem) for stem in _FILES[split])
    images, labels = read_idx(img_path), read_idx(lab_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise MalformedFile(str(img_path), f"holds {images.dtype} {images.shape}, expected uint8 (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise MalformedFile(str(lab_path), f"holds {labels.shape} labels for {len(images)} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise MalformedFile(str(lab_path), f"labels outside 0..9 (min {labels.min()}, max {labels.max()})")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return FashionMNIST(np.ascontiguousarray(images), labels.astype(np.int64), split)
