"""RISEBench's scoring, as the official ``gpt_eval.py`` computes it (arXiv 2504.02826, Sec. 3.3; code
github.com/PhoenixZ810/RISEBench, ``extract``, ``calculate_score``, ``calculate_completion`` and ``main``).

Each sample gets up to three judgements from an LMM judge, each ending with a "Final Score" line:

- ``judge1`` appearance consistency C (input vs output; absent for ``consistency_free`` samples),
- ``judge2`` instruction reasoning R (output vs the reference text or image),
- ``judge3`` visual plausibility P (output alone; not asked for logical samples).

Temporal, causal and spatial samples are scored 1-5 on each; logical samples get binary 0/1 for C and R,
mapped to ``4 * min(s, 1) + 1`` (so {1, 5}). The sample's score (``calculate_score``)::

    s = 0.3 C + 0.5 R + 0.2 P      temporal / causal / spatial
    s = 0.8 R + 0.2 P              ... when consistency_free
    s = 0.3 C + 0.7 R              logical
    s = max(1, s / 2)              when R = 1
    percentage = 25 (s - 1)        (``trans_to_percent``)

A sample is *complete* (accuracy) when every applicable dimension is 5. A judgement whose text has no
readable "Final Score" leaves the sample without scores: its score is missing (left out of every mean,
as pandas' ``mean`` skips NaN) and it counts as not complete (0 in the accuracy). The result table
(``<model>_judge.csv``) has the rows Overall, the four categories, the overall and per-category dimension
means, and one row per subtask present (``"Temp-Life Progression"``, ...), with the columns
``-, Score-Origin, Score-Percentage, Accuracy`` (accuracy only for overall, categories and subtasks).

Where we depart from the official code, on purpose (each with its reason):

- The official ``calculate_score`` tests ``row['consistency_free']`` by truthiness, so once the column
  exists (any sample has the key) a missing value (NaN, truthy) also selects ``0.8 R + 0.2 P``, whereas
  ``calculate_completion`` tests ``not isna``. We use ``not isna`` in both (the documented semantics:
  "consistency-free 0.8R + 0.2P"); ``nan_consistency_free_quirk=True`` restores the official behaviour.
- A judgement with two numbers after "Final Score" (e.g. ``"Final Score: 4, 5"``) makes the official score
  list the wrong length and ``main`` then fails on a column of the wrong length; we count that sample as
  incomplete (malformed) instead of stopping the whole evaluation.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...runtime import atomic_write_text

CATEGORIES = ("temporal_reasoning", "causal_reasoning", "spatial_reasoning", "logical_reasoning")
CATEGORY_ROW = {"temporal_reasoning": "Temporal", "causal_reasoning": "Causal", "spatial_reasoning": "Spatial",
                "logical_reasoning": "Logical"}
# gpt_eval.py's ``subtask_dic``: row-name prefix -> subtasks, in the table's order
SUBTASKS: dict[str, tuple[str, ...]] = {
    "Temp": ("Life Progression", "Material Progression", "Environmental Cycles", "Societal Transformation"),
    "Causal": ("Structural Deformation", "State Transition", "Chemical and Biological Transformation", "Physics Manifestation"),
    "Spa": ("Component Assembly", "Object Arrangement", "Viewpoint Generation", "Structural Inference", "Layout Reasoning"),
    "Logic": ("Pattern Prediction", "Mathematical Derivation", "Puzzle Solving"),
}
JUDGE_KEYS = {"consistency": "judge1", "reasoning": "judge2", "plausibility": "judge3"}
CSV_COLUMNS = ("-", "Score-Origin", "Score-Percentage", "Accuracy")

_FINAL_SCORE = re.compile(r"\*?\*?Final Score\*?\*?:?\s*([\d*\s,\n]*)", re.IGNORECASE)
_FINAL_SCORES = re.compile(r"\*?\*?Final Scores\*?\*?:?\s*([\d*\s,\n]*)", re.IGNORECASE)


def extract_final_score(answer: str) -> list[int] | None:
    """The numbers after the first "Final Score" that has any (bold and colon optional), as the official
    ``extract``: ``None`` when no "Final Score(s)" appears, ``[]`` when it appears without a number."""
    if not isinstance(answer, str):
        raise ConfigError("answer", type(answer).__name__, "the judge's text (a string)")
    for pattern, last in ((_FINAL_SCORE, False), (_FINAL_SCORES, True)):
        matches = pattern.findall(answer)
        if not matches:
            if last:
                return None
            continue
        for m in matches:
            numbers = [int(x) for x in re.findall(r"\d+", m.replace("\n", " "))]
            if numbers:
                return numbers
        if last:
            return []
    return None  # pragma: no cover - the loop returns


@dataclass(frozen=True)
class DimensionScores:
    """C, R, P of one sample on the 1-5 scale (None: not applicable); logical C/R already mapped to {1, 5}."""

    consistency: float | None
    reasoning: float
    plausibility: float | None


def parse_judgements(judge: Mapping[str, str | None]) -> DimensionScores | None:
    """C, R, P from one sample's judge texts (``judge1``/``judge2``/``judge3`` as gpt_eval.py stores them), or
    None when a needed judgement is unparsable (the sample is then incomplete). Which layout: ``judge1`` None
    -> consistency-free (R, P); no ``judge3`` -> logical (binary C, R); else C, R, P."""
    j1, j2, j3 = judge.get("judge1"), judge.get("judge2"), judge.get("judge3")
    if j2 is None:
        raise ConfigError("judge2", None, "the reasoning judgement's text (every sample has one)")
    if j1 is None:  # consistency-free: [None] + score2 + score3
        if j3 is None:
            raise ConfigError("judge3", None, "a plausibility judgement for a consistency-free sample")
        s2, s3 = extract_final_score(j2), extract_final_score(j3)
        if not s2 or not s3:
            return None
        nums: list[Any] = [None] + s2 + s3
    elif j3 is None:  # logical: score1 + score2
        s1, s2 = extract_final_score(j1), extract_final_score(j2)
        if not s1 or not s2:
            return None
        nums = s1 + s2
        if len(nums) == 2:
            # logical judgements are binary; 4 * min(s, 1) + 1 maps 0 -> 1 and anything >= 1 -> 5
            return DimensionScores(4 * min(nums[0], 1) + 1, 4 * min(nums[1], 1) + 1, None)
        return None  # departure: the official code fails on a list of the wrong length (module docstring)
    else:
        s1, s2, s3 = extract_final_score(j1), extract_final_score(j2), extract_final_score(j3)
        if not s1 or not s2 or not s3:
            return None
        nums = s1 + s2 + s3
    if len(nums) != 3:
        return None  # departure: see the module docstring
    return DimensionScores(nums[0], nums[1], nums[2])


def _present(v: Any) -> bool:
    """Not missing, as pandas' ``isna`` sees it (None or NaN)."""
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def sample_score(category: str, dims: DimensionScores | None, consistency_free: Any = None, *,
                 nan_consistency_free_quirk: bool = False) -> float | None:
    """The official ``calculate_score`` (1-5 scale; None when the sample has no scores)."""
    if category not in CATEGORIES:
        raise ConfigError("category", category, f"one of {', '.join(CATEGORIES)}")
    if dims is None:
        return None
    C, R, P = dims.consistency, dims.reasoning, dims.plausibility
    if category == "logical_reasoning":
        if C is None:
            return None
        s = 0.3 * C + 0.7 * R
    else:
        # ours: ``not isna`` (as calculate_completion); the quirk: truthiness, where NaN counts as True
        free = (consistency_free is not None and bool(consistency_free)) if nan_consistency_free_quirk else _present(consistency_free)
        if P is None:
            return None
        if free:
            s = 0.2 * P + 0.8 * R
        else:
            if C is None:
                return None
            s = 0.3 * C + 0.5 * R + 0.2 * P
    if R == 1:  # the score halved, floor 1
        s = max(1.0, s * 0.5)
    return s


def sample_complete(category: str, dims: DimensionScores | None, consistency_free: Any = None) -> int:
    """The official ``calculate_completion``: 1 when every applicable dimension is 5 (0 without scores)."""
    if dims is None:
        return 0
    if category == "logical_reasoning":
        return int(dims.consistency == 5 and dims.reasoning == 5)
    if _present(consistency_free):
        return int(dims.reasoning == 5 and dims.plausibility == 5)
    return int(dims.consistency == 5 and dims.reasoning == 5 and dims.plausibility == 5)


def to_percent(s: float | None) -> float | None:
    """``trans_to_percent``: 25 (s - 1), the 1-5 scale read as 0-100."""
    return None if s is None else 25.0 * (s - 1.0)


@dataclass(frozen=True)
class ScoredSample:
    index: str
    category: str
    subtask: str | None
    dims: DimensionScores | None
    score: float | None
    complete: int

    @property
    def matched(self) -> bool:
        """gpt_eval.py's ``match_log``: 'succeed' when every needed judgement was parsed."""
        return self.dims is not None


def score_samples(samples: Sequence[Any], judgements: Mapping[str, Mapping[str, str | None]], *,
                  nan_consistency_free_quirk: bool = False) -> list[ScoredSample]:
    """Score every sample (objects with ``index``, ``category`` and optional ``consistency_free``/``subtask``)
    from ``judgements[index]``; a sample without judgements is an error (run the judge first)."""
    out = []
    for s in samples:
        if s.index not in judgements:
            raise ConfigError("judgements", f"no entry for sample {s.index!r}", "a judgement dict for every sample (run the judge first)")
        dims = parse_judgements(judgements[s.index])
        cf = getattr(s, "consistency_free", None)
        out.append(ScoredSample(s.index, s.category, getattr(s, "subtask", None), dims,
                                sample_score(s.category, dims, cf, nan_consistency_free_quirk=nan_consistency_free_quirk),
                                sample_complete(s.category, dims, cf)))
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    """pandas' ``Series.mean``: missing values skipped; None (NaN) when nothing is left."""
    xs = [float(v) for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


def result_table(scored: Sequence[ScoredSample]) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Rows of the official ``<model>_judge.csv``: name -> (Score-Origin, Score-Percentage, Accuracy)."""
    def block(rows: Sequence[ScoredSample]) -> tuple[float | None, float | None, float | None]:
        m = _mean([r.score for r in rows])
        return m, to_percent(m), _mean([float(r.complete) for r in rows])

    def dim(rows: Sequence[ScoredSample], name: str) -> tuple[float | None, float | None, None]:
        m = _mean([getattr(r.dims, name) if r.dims is not None else None for r in rows])
        return m, to_percent(m), None

    by_cat = {c: [r for r in scored if r.category == c] for c in CATEGORIES}
    table: dict[str, tuple[float | None, float | None, float | None]] = {"Overall": block(scored)}
    for c in CATEGORIES:
        table[CATEGORY_ROW[c]] = block(by_cat[c])
    table["Overall_Reasoning"] = dim(scored, "reasoning")
    table["Overall_ApprConsistency"] = dim(scored, "consistency")
    table["Overall_VisualPlausibility_total"] = dim(scored, "plausibility")
    for c in CATEGORIES:
        name = CATEGORY_ROW[c]
        table[f"{name}_Reasoning"] = dim(by_cat[c], "reasoning")
        table[f"{name}_Consistency"] = dim(by_cat[c], "consistency")
        if c != "logical_reasoning":
            table[f"{name}_Quality"] = dim(by_cat[c], "plausibility")
    for prefix, subtasks in SUBTASKS.items():
        for sub in subtasks:
            rows = [r for r in scored if r.subtask == sub]
            if rows:
                table[f"{prefix}-{sub}"] = block(rows)
    return table


def _cell(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def table_csv(table: Mapping[str, Sequence[float | None]]) -> str:
    """The table as the official CSV text (header ``-,Score-Origin,Score-Percentage,Accuracy``; missing cells empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for name, (a, b, c) in table.items():
        w.writerow([name, _cell(a), _cell(b), _cell(c)])
    return buf.getvalue()


def write_table_csv(table: Mapping[str, Sequence[float | None]], path: str | Path) -> Path:
    """Write :func:`table_csv` atomically."""
    return atomic_write_text(Path(path), table_csv(table))


__all__ = ["CATEGORIES", "CSV_COLUMNS", "DimensionScores", "JUDGE_KEYS", "SUBTASKS", "ScoredSample", "extract_final_score",
           "parse_judgements", "result_table", "sample_complete", "sample_score", "score_samples", "table_csv", "to_percent",
           "write_table_csv"]
