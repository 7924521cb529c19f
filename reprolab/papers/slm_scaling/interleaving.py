"""Word-level speech-text interleaving, as the official code (slamkit) does it.

Scaling Analysis of Interleaved Speech-Text Language Models (Maimon, Hassid, Roth, Adi; arXiv 2504.02398),
Sec. 3 and the official ``slamkit/tokeniser/interleaving_tokeniser.py`` (config ``interleaved_hubert_25``:
``interleave_method: poisson``, ``interleave_span: 10``, ``interleave_prob: 0.3``). A time-aligned
transcript (words with start and end times) and the speech units of the same audio (deduplicated, with
durations) become one string: ``<text>`` and ``<speech>`` open each run of one modality; a speech run of
words [w_i .. w_j] is the units whose cumulative end time lies in [start(w_i), end(w_j)].

Methods of choosing the spoken words (slamkit's ``_assign_interleaved_modality``):
- ``poisson`` (the paper's): :func:`select_spans_poisson`, spans of Poisson(lambda) words covering
  ceil(eta n) words; spans never overlap and the word right after a span never starts a span drawn
  after it (a span drawn earlier may end right before a later one starts: ~2% of neighbours touch, as
  in the official code);
- ``random`` (SpiritLM-style): each word spoken with probability 1/2, independently;
- ``span``: each word starts a speech run of ``span`` words with probability ``prob`` (runs extend).

Ours: numpy's ``Generator`` instead of the global ``np.random`` state (same distributions, seedable).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

import numpy as np

from ...errors import ConfigError, ShapeError

SPEECH_TOKEN = "<speech>"
TEXT_TOKEN = "<text>"
Method = Literal["poisson", "random", "span"]


def unit_token(k: int) -> str:
    """The token string of speech unit ``k`` (slamkit: ``<Un{k}>``)."""
    return f"<Un{k}>"


def unit_tokens(num_units: int) -> list[str]:
    """``<Un0>`` .. ``<Un{K-1}>``, the strings added to a text tokenizer."""
    return [unit_token(k) for k in range(num_units)]


@dataclass(frozen=True)
class InterleavingConfig:
    method: Method = "poisson"  # slamkit interleaved_hubert_25.yaml: interleave_method
    span: float = 10.0  # lambda, the mean span length in words (interleave_span: 10)
    prob: float = 0.3  # eta, the share of words spoken (interleave_prob: 0.3); 'span': the start probability
    unit_seconds: float = 0.04  # duration of one unit (mHuBERT-25Hz: 40 ms)

    def __post_init__(self) -> None:
        if self.method not in ("poisson", "random", "span"):
            raise ConfigError("method", self.method, "'poisson', 'random' or 'span'")
        if not self.span > 0:
            raise ConfigError("span", self.span, "a positive mean span length (words)")
        if not 0.0 < self.prob <= 1.0:
            raise ConfigError("prob", self.prob, "a probability in (0, 1]")
        if not self.unit_seconds > 0:
            raise ConfigError("unit_seconds", self.unit_seconds, "a positive duration in seconds")


def poisson_spans(n: int, lam: float, eta: float, rng: np.random.Generator) -> list[tuple[int, int]]:
    """The spoken spans [start, end) over n words, in the order drawn (slamkit ``select_spans_poisson``).

    Speak ceil(eta n) words. Repeat: draw a start uniformly from the eligible words and a length
    L ~ Poisson(lam), cut at n; reject the span if it overlaps a chosen one; else take it, and remove
    its words and the word right after it from the eligible set. Stop when enough words are spoken or
    none is eligible (so the share may exceed eta by up to one span). A later span may still end right
    before an earlier one (about 2% of neighbouring spans touch), as in the official code. A draw of
    L = 0 takes an empty span that changes nothing (the official loop does the same).
    """
    if n < 0:
        raise ConfigError("n", n, "a non-negative number of words")
    target = math.ceil(n * eta)
    mask = np.zeros(n, dtype=bool)
    eligible = set(range(n))
    spans: list[tuple[int, int]] = []
    chosen = 0
    while chosen < target and eligible:
        start = int(rng.choice(sorted(eligible)))
        end = min(start + int(rng.poisson(lam)), n)
        if mask[start:end].any():
            continue
        mask[start:end] = True
        chosen += end - start
        eligible.difference_update(range(start, end))
        if end < n:
            eligible.discard(end)
        if end > start:
            spans.append((start, end))
    return spans


def select_spans_poisson(n: int, lam: float, eta: float, rng: np.random.Generator) -> np.ndarray:
    """0/1 mask over n words, 1 = spoken, from :func:`poisson_spans`."""
    mask = np.zeros(n, dtype=np.int64)
    for a, b in poisson_spans(n, lam, eta, rng):
        mask[a:b] = 1
    return mask


def assign_modalities(n: int, cfg: InterleavingConfig, rng: np.random.Generator) -> np.ndarray:
    """0/1 mask over n words (1 = spoken) by ``cfg.method`` (slamkit ``_assign_interleaved_modality``)."""
    if cfg.method == "poisson":
        return select_spans_poisson(n, cfg.span, cfg.prob, rng)
    if cfg.method == "random":
        return (rng.random(n) >= 0.5).astype(np.int64)  # slamkit: text if rand < 0.5 else audio
    out, patience = np.zeros(n, dtype=np.int64), 0
    for i in range(n):
        if rng.random() < cfg.prob:
            patience = int(cfg.span)
        out[i] = patience > 0
        patience -= 1
    return out


def dedup(units: Sequence[int]) -> tuple[list[int], list[int]]:
    """Merge runs of equal units: (units, durations in frames); ``[5, 5, 7, 5] -> ([5, 7, 5], [2, 1, 1])``."""
    pairs = [(int(k), len(list(g))) for k, g in groupby(units)]
    return [u for u, _ in pairs], [d for _, d in pairs]


@dataclass(frozen=True)
class AlignedWord:
    text: str  # with its leading space (except the first): "".join(texts) is the transcript
    start: float  # seconds
    end: float


def serialise(words: Sequence[AlignedWord], units: Sequence[int], durations: Sequence[int], spoken: Sequence[int],
              unit_seconds: float = 0.04) -> str:
    """The interleaved string (slamkit ``_create_interleaved_text``).

    A modality token opens the document and every switch; text runs are the words' texts joined as they
    are; a speech run from word i to word j is the units u_a..u_b with a = bisect_left(T, start_i),
    b = bisect_right(T, end_j), T = cumsum(durations) * unit_seconds (each unit's end time).
    """
    if len(spoken) != len(words):
        raise ShapeError("spoken", len(spoken), f"one flag per word ({len(words)})")
    if len(units) != len(durations):
        raise ShapeError("durations", len(durations), f"one duration per unit ({len(units)})")
    ends = (np.cumsum(np.asarray(durations, dtype=np.float64)) * unit_seconds).tolist()
    out: list[str] = []
    i, n = 0, len(words)
    while i < n:
        j = i
        while j + 1 < n and bool(spoken[j + 1]) == bool(spoken[i]):
            j += 1
        if spoken[i]:
            out.append(SPEECH_TOKEN)
            a, b = bisect_left(ends, words[i].start), bisect_right(ends, words[j].end)
            out.append("".join(unit_token(int(u)) for u in units[a:b]))
        else:
            out.append(TEXT_TOKEN)
            out.append("".join(w.text for w in words[i: j + 1]))
        i = j + 1
    return "".join(out)


def speech_only(units: Sequence[int]) -> str:
    """A speech-only document: ``<speech>`` then its units (slamkit's speech-only training samples)."""
    return SPEECH_TOKEN + "".join(unit_token(int(u)) for u in units)


def text_only(text: str) -> str:
    """A text-only document: ``<text>`` then the text."""
    return TEXT_TOKEN + text


def span_lengths(mask: Sequence[int]) -> list[int]:
    """Lengths of the runs of 1s in a 0/1 mask."""
    return [len(list(g)) for k, g in groupby(int(x) for x in mask) if k == 1]
