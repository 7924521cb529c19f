"""The exhaustive performance matrix: every candidate fitted on every series, twice.

Ground truth (spec sheet): fit on everything before the test window, forecast h, score test MSE,
MAE and MASE; ranks per series come from the test MSE. Exhaustive validation (the careful user's
peer): fit on everything before the validation window, forecast h, keep the candidate with the
lowest validation MSE; its cost is the sum of those fit seconds. Each series' row is cached on
disk (one ``.npz`` per series, keyed by the values, m, h, the candidate names and
``MATRIX_VERSION``) and written atomically, so a run resumes and scales share rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import MalformedFile
from ...runtime import atomic_write_bytes
from .candidates import Candidate, evaluate
from .series import TimeSeries

MATRIX_VERSION = 1
_KEYS = ("test_mse", "test_mase", "val_mse", "val_seconds", "test_seconds")


@dataclass
class PerformanceMatrix:
    """Rows: series; columns: candidates. Non-applicable cells are +inf (errors) and their seconds are kept."""

    series: list[str]
    candidates: list[str]
    test_mse: np.ndarray  # (N, |M|)
    test_mase: np.ndarray  # (N, |M|)
    val_mse: np.ndarray  # (N, |M|)
    val_seconds: np.ndarray  # (N, |M|) fit + forecast seconds on the validation window
    test_seconds: np.ndarray  # (N, |M|)

    def row(self, name: str) -> int:
        return self.series.index(name)

    def column(self, name: str) -> int:
        return self.candidates.index(name)


def _row_key(s: TimeSeries, candidates: Sequence[Candidate]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": MATRIX_VERSION, "m": s.m, "h": s.h, "c": [c.name for c in candidates]}).encode())
    h.update(np.ascontiguousarray(s.values, dtype=np.float64).tobytes())
    return h.hexdigest()[:24]


def _mase_scale(train: np.ndarray, m: int) -> float:
    lag = m if m >= 2 and len(train) > m else 1
    d = np.abs(train[lag:] - train[:-lag])
    scale = float(d.mean()) if d.size else 0.0
    return scale if scale > 0 else 1.0


def series_row(s: TimeSeries, candidates: Sequence[Candidate]) -> dict[str, np.ndarray]:
    """Fit every candidate on one series (validation and test windows)."""
    scale = _mase_scale(s.train_for_test, s.m)
    out = {k: np.empty(len(candidates)) for k in ("test_mse", "test_mase", "val_mse", "val_seconds", "test_seconds")}
    for j, c in enumerate(candidates):
        v = evaluate(c, s.train_for_validation, s.validation, s.m)
        t = evaluate(c, s.train_for_test, s.test, s.m)
        out["val_mse"][j], out["val_seconds"][j] = v.mse, v.seconds
        out["test_mse"][j], out["test_seconds"][j] = t.mse, t.seconds
        out["test_mase"][j] = t.mae / scale
    return out


def performance_matrix(series: Sequence[TimeSeries], candidates: Sequence[Candidate], cache_dir: str | os.PathLike | None = None,
                       progress: bool = False) -> PerformanceMatrix:
    """The matrix for ``series`` x ``candidates``, reading and writing per-series rows under ``cache_dir``."""
    rows = []
    it = series
    if progress:
        from ...runtime import track

        it = track(series, "ts_select: performance matrix")
    for s in it:
        path = Path(cache_dir) / f"{_row_key(s, candidates)}.npz" if cache_dir is not None else None
        row = None
        if path is not None and path.exists():
            try:
                with np.load(path) as z:
                    row = {k: z[k] for k in _KEYS}
                if any(v.shape != (len(candidates),) for v in row.values()):
                    raise ValueError(f"rows of shape {[v.shape for v in row.values()]}, expected ({len(candidates)},)")
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise MalformedFile(str(path), f"unreadable cached matrix row ({exc})", fix=f"delete {path} and rerun") from exc
        if row is None:
            row = series_row(s, candidates)
            if path is not None:
                buf = io.BytesIO()
                np.savez(buf, **row)
                atomic_write_bytes(path, buf.getvalue())
        rows.append(row)
    stack = {k: np.stack([r[k] for r in rows]) if rows else np.zeros((0, len(candidates)))
             for k in ("test_mse", "test_mase", "val_mse", "val_seconds", "test_seconds")}
    return PerformanceMatrix([s.name for s in series], [c.name for c in candidates], **stack)
