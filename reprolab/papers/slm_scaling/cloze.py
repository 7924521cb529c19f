"""Spoken cloze evaluation (sBLIMP, sStoryCloze, Topic-StoryCloze) in slamkit's folder layout.

Paper Sec. 4 ("evaluation") and slamkit ``metric/modelling_metric.py``: a set is a folder of WAV files
named ``<index>_<anything>.wav``, two per index, the true one first; the model scores each file by its
mean token NLL (``mean_nll=True``) and an item counts 1 when the true file's NLL is lower, 0.5 on a tie,
0 otherwise. Ours names the pair ``<i>_correct.wav`` / ``<i>_incorrect.wav`` and orders a pair by
(index, file name), so the true file comes first (slamkit relies on the glob order within an index).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import AssetMissing, MalformedFile, ShapeError

_NAME = re.compile(r"^(\d+)_.*\.wav$")


@dataclass(frozen=True)
class ClozePair:
    index: int
    correct: Path
    incorrect: Path


def cloze_file_names(index: int) -> tuple[str, str]:
    """The file names of item ``index``: true first in sorted order."""
    return f"{index}_correct.wav", f"{index}_incorrect.wav"


def read_cloze_folder(folder: str | Path) -> list[ClozePair]:
    """The pairs of a cloze folder (slamkit ``subfolder: false`` layout): every ``<index>_*.wav``, two per index."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AssetMissing(str(folder), fix="pass the folder of a cloze set (pairs of <index>_*.wav files)")
    groups: dict[int, list[Path]] = {}
    for f in folder.glob("*.wav"):
        m = _NAME.match(f.name)
        if m is None:
            raise MalformedFile(str(f), "a WAV whose name does not start with '<index>_'", fix="rename it <index>_correct.wav / <index>_incorrect.wav")
        groups.setdefault(int(m.group(1)), []).append(f)
    if not groups:
        raise AssetMissing(str(folder), fix="the folder holds no <index>_*.wav files")
    pairs = []
    for i in sorted(groups):
        files = sorted(groups[i], key=lambda p: p.name)
        if len(files) != 2:
            raise MalformedFile(str(folder), f"item {i} has {len(files)} files ({[p.name for p in files]})",
                                fix="give every index exactly two files: the true one and the false one")
        pairs.append(ClozePair(i, files[0], files[1]))
    return pairs


def pair_outcomes(nll_correct: Sequence[float], nll_incorrect: Sequence[float]) -> np.ndarray:
    """Per item: 1 when the true file's mean NLL is lower, 0.5 on a tie, 0 otherwise (slamkit)."""
    a, b = np.asarray(nll_correct, dtype=float), np.asarray(nll_incorrect, dtype=float)
    if a.shape != b.shape:
        raise ShapeError("nll_incorrect", b.shape, f"the shape of nll_correct {a.shape}")
    return np.where(a < b, 1.0, np.where(a == b, 0.5, 0.0))


def evaluate_cloze(folder: str | Path, score: Callable[[list[Path]], list[float]]) -> np.ndarray:
    """Per-item outcomes of a cloze folder; ``score`` maps WAV paths to mean NLLs (one per file)."""
    pairs = read_cloze_folder(folder)
    nll = score([p.correct for p in pairs] + [p.incorrect for p in pairs])
    if len(nll) != 2 * len(pairs):
        raise ShapeError("scores", len(nll), f"one mean NLL per file ({2 * len(pairs)})")
    return pair_outcomes(nll[: len(pairs)], nll[len(pairs):])
