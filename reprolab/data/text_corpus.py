"""Real text that every machine has: the Python standard library's own source files.

No text corpus (tinyshakespeare, wikitext, ...) can be downloaded here, but every Python
install carries some tens of megabytes of real, human-written code and docstrings. We read
the ``.py`` files of the running interpreter's standard library in sorted path order
(deterministic for one Python version), as bytes, so the vocabulary is 256 and no tokenizer
is needed. The corpus differs slightly between Python versions: its sha256 is recorded.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import ReprolabError

_SKIP_PARTS = {"site-packages", "dist-packages", "__pycache__", "idlelib", "turtledemo"}


def stdlib_source_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = [p for p in root.rglob("*.py") if not _SKIP_PARTS.intersection(p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def python_stdlib_bytes(max_bytes: int) -> bytes:
    """The first ``max_bytes`` bytes of the concatenated standard-library sources."""
    chunks, total = [], 0
    for path in stdlib_source_files():
        try:
            data = path.read_bytes()
        except OSError:
            continue
        chunks.append(data)
        total += len(data)
        if total >= max_bytes:
            break
    text = b"".join(chunks)[:max_bytes]
    if len(text) < min(max_bytes, 1 << 16):
        raise ReprolabError(
            f"found only {len(text)} bytes of standard-library source under {sysconfig.get_paths()['stdlib']!r}",
            fix="run with a full CPython install (some slim images strip the .py sources)",
        )
    return text


@dataclass
class ByteCorpus:
    """A byte string as a token tensor with a train/validation split and random batches."""

    tokens: torch.Tensor  # (N,) int64 byte values
    sha256: str

    @classmethod
    def python_stdlib(cls, max_bytes: int = 4_000_000) -> ByteCorpus:
        data = python_stdlib_bytes(max_bytes)
        return cls(torch.frombuffer(bytearray(data), dtype=torch.uint8).long(), hashlib.sha256(data).hexdigest())

    def split(self, val_fraction: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
        """Contiguous split: the last ``val_fraction`` of the bytes is held out."""
        n = int(len(self.tokens) * (1 - val_fraction))
        return self.tokens[:n], self.tokens[n:]

    @staticmethod
    def batch(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows: inputs (B, T) and next-byte targets (B, T)."""
        starts = torch.randint(0, len(data) - block_size - 1, (batch_size,), generator=generator)
        offsets = torch.arange(block_size + 1)
        windows = data[starts[:, None] + offsets]  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]
