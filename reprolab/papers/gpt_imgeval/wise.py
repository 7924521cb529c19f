"""WISE's WiScore (Niu et al. 2025), as GPT-ImgEval reports it.

Per image, a judge scores consistency, realism and aesthetic quality each on 0-2; WiScore =
(0.7 consistency + 0.2 realism + 0.1 aesthetics) / 2, in [0, 1]. A category's WiScore is the
mean over its images; the overall score weights the categories by their share of WISE's 1000
prompts: cultural 0.4, time 0.167, space 0.133, biology / physics / chemistry 0.1 each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ...errors import ConfigError, NonFiniteError

WEIGHTS = {"consistency": 0.7, "realism": 0.2, "aesthetic": 0.1}
CATEGORY_WEIGHTS = {"culture": 0.4, "time": 0.167, "space": 0.133, "biology": 0.1, "physics": 0.1, "chemistry": 0.1}


def wiscore(consistency: float | Sequence[float], realism: float | Sequence[float], aesthetic: float | Sequence[float]) -> float | np.ndarray:
    """(0.7 consistency + 0.2 realism + 0.1 aesthetic) / 2 per image; each judged score in [0, 2]."""
    c, r, a = (np.asarray(v, dtype=np.float64) for v in (consistency, realism, aesthetic))
    for name, v in (("consistency", c), ("realism", r), ("aesthetic", a)):
        if not np.all(np.isfinite(v)):
            raise NonFiniteError(f"the {name} score", v, fix="judge the image again; scores are 0, 1 or 2")
        if np.any((v < 0) | (v > 2)):
            raise ConfigError(name, v.tolist() if v.ndim else float(v), "judged scores in [0, 2]")
    s = (WEIGHTS["consistency"] * c + WEIGHTS["realism"] * r + WEIGHTS["aesthetic"] * a) / 2.0
    return float(s) if s.ndim == 0 else s


def overall_wiscore(per_category: Mapping[str, float]) -> float:
    """WISE's overall score: the category WiScores weighted by :data:`CATEGORY_WEIGHTS` (all six needed)."""
    missing = sorted(set(CATEGORY_WEIGHTS) - set(per_category))
    if missing:
        raise ConfigError("per_category", sorted(per_category), f"all of {', '.join(CATEGORY_WEIGHTS)} (missing {', '.join(missing)})")
    return float(sum(CATEGORY_WEIGHTS[k] * float(per_category[k]) for k in CATEGORY_WEIGHTS))
