"""MAYE's evaluation scheme (paper Sec. 4; official ``eval`` and ``log_reflection_analysis``), reusable.

- accuracy per epoch on validation and test in three generation settings (:data:`SETTINGS`):
  pass@8 at T = 1.0, pass@1 at T = 0.6 (top_p 1.0), pass@1 at T = 0.01 (top_p 0.001);
- tables of the mean and the max over epochs, each averaged over runs (:func:`epoch_table`);
- train accuracy per epoch and response length per generation step (:class:`SchemeLog`);
- reflection: the 15 words (:data:`REFLECTION_WORDS`, lower-cased substring match) and the five ratios
  (:func:`reflection_ratios`). As in the official code an empty denominator gives 0.0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError, ShapeError


@dataclass(frozen=True)
class GenerationSetting:
    name: str
    k: int  # pass@k
    temperature: float
    top_p: float


SETTINGS = (
    GenerationSetting("pass@8 T=1.0", 8, 1.0, 1.0),
    GenerationSetting("pass@1 T=0.6", 1, 0.6, 1.0),
    GenerationSetting("pass@1 T=0.01", 1, 0.01, 0.001),
)

REFLECTION_WORDS = ("re-check", "re-evaluate", "re-examine", "re-think", "recheck", "reevaluate", "reexamine", "reevaluation", "rethink",
                    "check again", "think again", "try again", "verify", "wait", "yet")

RATIO_NAMES = ("reflection_ratio", "reflection_ratio_in_correct", "reflection_ratio_in_incorrect", "correct_ratio_in_reflection", "correct_ratio_in_no_reflection")


def has_reflection(text: str, words: Sequence[str] = REFLECTION_WORDS) -> bool:
    low = text.lower()
    return any(w in low for w in words)


def reflection_ratios(texts: Sequence[str], correct: Sequence[bool], words: Sequence[str] = REFLECTION_WORDS) -> dict[str, float]:
    """The five ratios: N_ref/N, N_ref+/N+, (N_ref - N_ref+)/(N - N+), N_ref+/N_ref, (N+ - N_ref+)/(N - N_ref)."""
    if len(texts) != len(correct):
        raise ShapeError("correct", len(correct), f"one flag per text ({len(texts)})")
    ref = np.array([has_reflection(t, words) for t in texts], dtype=bool)
    ok = np.asarray(correct, dtype=bool)
    n, n_ref, n_pos, n_ref_pos = len(ref), int(ref.sum()), int(ok.sum()), int((ref & ok).sum())

    def div(a: int, b: int) -> float:
        return a / b if b else 0.0

    return {"reflection_ratio": div(n_ref, n), "reflection_ratio_in_correct": div(n_ref_pos, n_pos),
            "reflection_ratio_in_incorrect": div(n_ref - n_ref_pos, n - n_pos), "correct_ratio_in_reflection": div(n_ref_pos, n_ref),
            "correct_ratio_in_no_reflection": div(n_pos - n_ref_pos, n - n_ref)}


def pass_at_k(correct: np.ndarray) -> np.ndarray:
    """Per question: 1 if any of its k samples is correct. ``correct`` is (questions, k) bool."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise ShapeError("correct", correct.shape, "(questions, k) booleans")
    return correct.any(axis=1)


def evaluate(answer_fn: Callable[[float, float, int], np.ndarray], settings: Sequence[GenerationSetting] = SETTINGS) -> dict[str, np.ndarray]:
    """Per setting, per question 0/1 (pass@k). ``answer_fn(temperature, top_p, k)`` returns the judge's
    (questions, k) correctness of ``k`` sampled responses per question."""
    return {s.name: pass_at_k(answer_fn(s.temperature, s.top_p, s.k)).astype(float) for s in settings}


def epoch_table(runs: Sequence[Sequence[float]]) -> dict[str, float]:
    """``{"mean": .., "max": ..}``: per run the mean and the max of its per-epoch accuracies, averaged over runs
    (paper Table 3's "mean / max over epochs, averaged over three runs")."""
    arr = [np.asarray(r, dtype=float) for r in runs]
    if not arr or any(a.ndim != 1 or a.size == 0 for a in arr):
        raise ConfigError("runs", runs, "a non-empty list of non-empty per-epoch accuracy lists")
    if any(not np.isfinite(a).all() for a in arr):
        raise ConfigError("runs", runs, "finite accuracies")
    return {"mean": float(np.mean([a.mean() for a in arr])), "max": float(np.mean([a.max() for a in arr]))}


@dataclass
class SchemeLog:
    """What a run logs for the scheme: per generation step (train accuracy, response length, reflection
    ratios) and per epoch (train accuracy, val/test accuracy per setting)."""

    steps: list[dict[str, float]] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)

    def log_step(self, step: int, texts: Sequence[str], correct: Sequence[bool], lengths: Sequence[float], **extra: float) -> dict[str, float]:
        row = {"step": float(step), "accuracy": float(np.mean(correct)) if len(correct) else 0.0, "response_length": float(np.mean(lengths)) if len(lengths) else 0.0,
               **reflection_ratios(texts, correct), **{k: float(v) for k, v in extra.items()}}
        self.steps.append(row)
        return row

    def log_epoch(self, epoch: int, train_accuracy: float | None, accuracies: Mapping[str, float]) -> dict[str, float]:
        """``train_accuracy`` None: not measured (an SFT arm, the vanilla model)."""
        row = {"epoch": float(epoch), "train_accuracy": None if train_accuracy is None else float(train_accuracy), **{k: float(v) for k, v in accuracies.items()}}
        self.epochs.append(row)
        return row

    def series(self, key: str, per: str = "steps") -> list[float]:
        return [r[key] for r in getattr(self, per) if key in r]

    def to_json(self) -> dict:
        return {"steps": self.steps, "epochs": self.epochs}
