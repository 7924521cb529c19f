"""The language models Whisper-LM fuses into Whisper (arXiv 2503.23542, Sec. 3), and the text normaliser.

- :func:`normalise_text`: what the official code sends to the LM, Whisper's ``BasicTextNormalizer``
  (lower case; bracketed and parenthesised spans dropped; every Unicode mark, symbol and punctuation
  character replaced by a space; whitespace collapsed). The official code applies the same normaliser to
  every language, so the per-language table here only records that (``LANGUAGES``).
- :class:`KenLMScorer`: a KenLM ARPA or binary file, queried through the ``kenlm`` module, scores in
  **log10** as KenLM returns them (the official code adds them to Whisper's natural-log probabilities
  as they are; so do we, and alpha absorbs the base).
- :class:`ArpaLM`: our own reader of ARPA files with the same scoring rule (back-off), for users without
  the ``kenlm`` module and as the reference the tests hold KenLM to.
- :func:`train_kneser_ney` / :func:`write_arpa`: an interpolated modified Kneser-Ney estimator (Chen and
  Goodman 1999, the estimate KenLM's ``lmplz`` makes) that writes ARPA, because ``kenlm``'s Python
  package can query models but not build them.

Every scorer caches its state per word prefix (``score`` of ``"a b c d"`` after ``"a b c"`` costs one
look-up), since beam search asks for the score of every candidate's full text at every step.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ...errors import ConfigError, MalformedFile, MissingExtra
from ...runtime import atomic_write_text, readable_file

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
LANGUAGES = {"es": "basic", "ca": "basic", "eu": "basic", "gl": "basic", "en": "basic"}
"""Normaliser per language. The official code uses Whisper's BasicTextNormalizer for all of them."""


LM_FIX = "pass a readable KenLM .arpa or .bin file (`reprolab whisper-lm build-lm` writes one)"


def normalise_text(text: str, language: str | None = None) -> str:
    """Whisper's ``BasicTextNormalizer`` (``remove_diacritics=False``), as the official code applies it
    before every LM query: lower case, drop ``[...]``/``<...>`` and ``(...)`` spans, replace marks,
    symbols and punctuation (Unicode categories M, S, P) by spaces, collapse whitespace.

    Text is NFKC-normalised first so accented letters are single code points and survive."""
    if language is not None and language not in LANGUAGES:
        raise ConfigError("language", language, f"one of {sorted(LANGUAGES)}")
    s = text.lower()
    s = re.sub(r"[<\[][^>\]]*[>\]]", "", s)
    s = re.sub(r"\(([^)]+?)\)", "", s)
    s = unicodedata.normalize("NFKC", s)
    s = "".join(" " if unicodedata.category(c)[0] in "MSP" else c for c in s)
    return re.sub(r"\s+", " ", s).strip()


class LanguageModel(Protocol):
    """What fusion needs from an LM: the log score of a whole (normalised) text."""

    def score(self, text: str, bos: bool = True, eos: bool = False) -> float: ...


# ----------------------------------------------------------------------------- ARPA reading


@dataclass
class _Entry:
    logp: float
    backoff: float = 0.0


class _PrefixStateLM:
    """Scores word sequences with the LM state after every word prefix cached, so a growing beam
    hypothesis costs one word lookup per new word (its parent's state is reused). Subclasses give
    the start state and one step: ``_initial_state(bos)`` and ``_advance(state, word) -> (log10 p, state)``."""

    _cache_size: int = 2_000_000

    def _prefix(self, words: tuple[str, ...], bos: bool) -> tuple[Any, float]:
        key = (bos, words)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if not words:
            out = self._initial_state(bos), 0.0
        else:
            state, total = self._prefix(words[:-1], bos)
            lp, state = self._advance(state, words[-1])
            out = state, total + lp
        if len(self._cache) > self._cache_size:
            self._cache.clear()
        self._cache[key] = out
        return out

    def score(self, text: str, bos: bool = True, eos: bool = False) -> float:
        state, total = self._prefix(tuple(text.split()), bos)
        if eos:
            total += self._advance(state, EOS)[0]
        return total


class ArpaLM(_PrefixStateLM):
    """An ARPA back-off n-gram model in pure Python, scoring exactly as KenLM does (log10).

    ``p(w | h) = p_arpa(h w)`` if ``h w`` is listed, else ``backoff(h) * p(w | h[1:])``; an unknown word
    takes ``p(<unk>)``; ``score(text, bos, eos)`` sums ``log10 p`` over the words (and ``</s>``)."""

    def __init__(self, path: str | Path):
        self.path = readable_file(path, "ARPA", LM_FIX)
        self.ngrams: dict[tuple[str, ...], _Entry] = {}
        self.order = 0
        self._read()
        self._cache: dict[tuple[bool, tuple[str, ...]], tuple[tuple[str, ...], float]] = {}

    def _read(self) -> None:
        declared: dict[int, int] = {}
        section = None
        with open(self.path, encoding="utf-8") as f:
            for raw in f:
                line = raw.strip()
                if not line:
                    continue
                if line == "\\data\\":
                    section = "data"
                    continue
                if line == "\\end\\":
                    break
                m = re.fullmatch(r"\\(\d+)-grams:", line)
                if m:
                    section = int(m.group(1))
                    continue
                if section == "data":
                    m = re.fullmatch(r"ngram (\d+)=(\d+)", line)
                    if not m:
                        raise MalformedFile(str(self.path), f"bad header line {line!r}")
                    declared[int(m.group(1))] = int(m.group(2))
                elif isinstance(section, int):
                    parts = line.split()
                    n = section
                    if len(parts) not in (n + 1, n + 2):
                        raise MalformedFile(str(self.path), f"{n}-gram line {line!r} has {len(parts)} fields")
                    logp = float(parts[0])
                    bo = float(parts[n + 1]) if len(parts) == n + 2 else 0.0
                    self.ngrams[tuple(parts[1 : n + 1])] = _Entry(logp, bo)
                elif section is None:
                    continue
        if not declared:
            raise MalformedFile(str(self.path), "no \\data\\ header")
        got = Counter(len(k) for k in self.ngrams)
        for n, c in declared.items():
            if got.get(n, 0) != c:
                raise MalformedFile(str(self.path), f"header says {c} {n}-grams, file has {got.get(n, 0)}")
        self.order = max(declared)

    def _word_logp(self, context: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        """log10 p(word | context) with back-off, and the new state (longest listed suffix)."""
        if (word,) not in self.ngrams:
            word = UNK
        backoff = 0.0
        ctx = context
        while True:
            e = self.ngrams.get(ctx + (word,))
            if e is not None:
                full = ctx + (word,)
                break
            if not ctx:  # not even a unigram: KenLM's convention for a model without <unk>
                return -100.0 + backoff, ()
            backoff += self.ngrams[ctx].backoff if ctx in self.ngrams else 0.0
            ctx = ctx[1:]
        state = full[-(self.order - 1) :] if self.order > 1 else ()
        while state and state not in self.ngrams:
            state = state[1:]
        return e.logp + backoff, state

    def _initial_state(self, bos: bool) -> tuple[str, ...]:
        return (BOS,) if bos else ()

    def _advance(self, state: tuple[str, ...], word: str) -> tuple[float, tuple[str, ...]]:
        return self._word_logp(state, word)

    def logp(self, word: str, context: Sequence[str]) -> float:
        """log10 p(word | context) (context: the preceding words, oldest first)."""
        ctx = tuple(context)[-(self.order - 1) :] if self.order > 1 else ()
        while ctx and ctx not in self.ngrams:
            ctx = ctx[1:]
        return self._word_logp(ctx, word)[0]

    def vocabulary(self) -> list[str]:
        return [k[0] for k in self.ngrams if len(k) == 1]


class KenLMScorer(_PrefixStateLM):
    """A KenLM ARPA/binary model through the ``kenlm`` module, with states cached per word prefix.

    ``score(text, bos, eos)`` equals ``kenlm.Model.score`` (log10) and costs one ``BaseScore`` per new
    word: the state after each prefix of words is kept, so growing hypotheses in a beam reuse their
    parent's state (the official code rescored every candidate's full text at every step)."""

    def __init__(self, path: str | Path, cache_size: int = 1_000_000):
        try:
            import kenlm
        except ImportError:
            raise MissingExtra("kenlm", "whisper_lm") from None
        self.path = readable_file(path, "KenLM", LM_FIX)
        try:
            self.model = kenlm.Model(str(self.path))
        except (OSError, RuntimeError) as e:
            raise MalformedFile(str(self.path), f"KenLM cannot load it ({str(e).splitlines()[0][:200]})") from None
        self._kenlm = kenlm
        self.order = self.model.order
        self._cache: dict[tuple[bool, tuple[str, ...]], tuple[object, float]] = {}
        self._cache_size = cache_size

    def _initial_state(self, bos: bool) -> object:
        st = self._kenlm.State()
        (self.model.BeginSentenceWrite if bos else self.model.NullContextWrite)(st)
        return st

    def _advance(self, state: object, word: str) -> tuple[float, object]:
        st = self._kenlm.State()
        return self.model.BaseScore(state, word, st), st


def load_lm(path: str | Path) -> LanguageModel:
    """A KenLM file (ARPA or binary) through ``kenlm`` if installed, else an ARPA file through :class:`ArpaLM`."""
    path = readable_file(path, "language-model", LM_FIX)
    try:
        return KenLMScorer(path)
    except MissingExtra:
        with open(path, "rb") as f:
            head = f.read(4096)
        if b"\\data\\" not in head:
            raise MissingExtra("kenlm", "whisper_lm") from None  # a binary model needs the kenlm module
        return ArpaLM(path)


# ----------------------------------------------------------------------------- modified Kneser-Ney


@dataclass(frozen=True)
class KneserNeyModel:
    """An estimated model: ``probs[ngram] = log10 p``, ``backoffs[context] = log10 gamma``, and the
    discounts ``D1, D2, D3+`` of each order (Chen and Goodman 1999, eq. 26)."""

    order: int
    probs: dict[tuple[str, ...], float]
    backoffs: dict[tuple[str, ...], float]
    discounts: dict[int, tuple[float, float, float]]


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Chen and Goodman's closed-form discounts from the count-of-counts ``t_k``:
    ``Y = t1 / (t1 + 2 t2)``, ``D_k = k - (k + 1) Y t_{k+1} / t_k`` for k = 1, 2, 3.

    Departure (where KenLM stops with 'BadDiscountException'): on text too small to have counts of
    counts 1..4 we fall back to D = (0.5, 1.0, 1.5) and clamp each D_k into [0, k]."""
    t = Counter(c for c in counts if c <= 4)
    t1, t2, t3, t4 = (t.get(k, 0) for k in (1, 2, 3, 4))
    if min(t1, t2, t3, t4) == 0:
        return (0.5, 1.0, 1.5)
    y = t1 / (t1 + 2 * t2)
    d = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    return tuple(min(max(x, 0.0), float(k)) for k, x in zip((1, 2, 3), d))  # type: ignore[return-value]


def train_kneser_ney(sentences: Iterable[str], order: int = 5) -> KneserNeyModel:
    """Interpolated modified Kneser-Ney (Chen and Goodman 1999, eqs. 17 and 26), as KenLM's ``lmplz``:

    - each sentence is padded as ``<s> w1 ... wn </s>``;
    - the highest order uses raw counts, lower orders continuation counts ``N1+(. w)`` (the number of
      distinct words seen before ``w``), except n-grams starting with ``<s>``, which keep raw counts;
    - ``p(w|h) = (a(hw) - D(a(hw))) / a(h.) + gamma(h) p(w|h')``, ``gamma(h) = (D1 N1(h.) + D2 N2(h.)
      + D3 N3+(h.)) / a(h.)``; the unigrams interpolate with the uniform distribution over the
      vocabulary plus ``<unk>`` (which gets only that uniform share);
    - ``<s>`` is never predicted (log10 p = -99, as lmplz writes it).

    Sentences are whitespace-tokenised as they are (normalise them first)."""
    if order < 1:
        raise ConfigError("order", order, "an integer >= 1")
    raw: list[Counter] = [Counter() for _ in range(order + 1)]
    n_sent = 0
    for s in sentences:
        words = s.split()
        if not words:
            continue
        n_sent += 1
        toks = [BOS, *words, EOS]
        for n in range(1, order + 1):
            c = raw[n]
            for i in range(len(toks) - n + 1):
                c[tuple(toks[i : i + n])] += 1
    if n_sent == 0:
        raise ConfigError("sentences", "(empty)", "at least one non-empty sentence")
    raw[1].pop((BOS,), None)
    # adjusted counts: raw at the top order and for <s>-initial n-grams, continuation counts below
    adj: list[dict[tuple[str, ...], int]] = [dict() for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        cont: Counter = Counter()
        for g in raw[n + 1]:
            cont[g[1:]] += 1
        a = adj[n]
        for g, c in raw[n].items():
            a[g] = c if g[0] == BOS else cont.get(g, c)
    discounts = {n: _discounts(v for g, v in adj[n].items() if g[0] != BOS or n == order) for n in range(1, order + 1)}

    probs: dict[tuple[str, ...], float] = {}
    backoffs: dict[tuple[str, ...], float] = {}
    vocab = [g[0] for g in adj[1]]
    n_vocab = len(vocab) + 1  # + <unk>
    lin: dict[tuple[str, ...], float] = {}  # linear probabilities, filled order by order

    def gamma_and_totals(n: int):
        tot: dict[tuple[str, ...], float] = defaultdict(float)
        mass: dict[tuple[str, ...], float] = defaultdict(float)
        d1, d2, d3 = discounts[n]
        for g, c in adj[n].items():
            h = g[:-1]
            tot[h] += c
            mass[h] += d1 if c == 1 else d2 if c == 2 else d3
        return tot, mass

    for n in range(1, order + 1):
        tot, mass = gamma_and_totals(n)
        d1, d2, d3 = discounts[n]
        gam = {h: mass[h] / tot[h] for h in tot}
        for g, c in adj[n].items():
            h = g[:-1]
            disc = d1 if c == 1 else d2 if c == 2 else d3
            lower = 1.0 / n_vocab if n == 1 else lin[g[1:]]
            p = (c - disc) / tot[h] + gam[h] * lower
            lin[g] = p
        for h, gval in gam.items():
            if n > 1:
                backoffs[h] = math.log10(gval) if gval > 0 else -99.0
        if n == 1:
            lin[(UNK,)] = gam[()] / n_vocab
    for g, p in lin.items():
        probs[g] = math.log10(p) if p > 0 else -99.0
    probs[(BOS,)] = -99.0
    return KneserNeyModel(order, probs, backoffs, discounts)


def write_arpa(model: KneserNeyModel, path: str | Path) -> Path:
    """Write ``model`` as an ARPA file (atomically); KenLM and :class:`ArpaLM` both read it."""
    by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for g in model.probs:
        by_order[len(g)].append(g)
    lines = ["", "\\data\\"]
    for n in range(1, model.order + 1):
        lines.append(f"ngram {n}={len(by_order[n])}")
    for n in range(1, model.order + 1):
        lines += ["", f"\\{n}-grams:"]
        for g in sorted(by_order[n]):
            p = model.probs[g]
            if n < model.order and g in model.backoffs:
                lines.append(f"{p:.6f}\t{' '.join(g)}\t{model.backoffs[g]:.6f}")
            elif n < model.order:
                lines.append(f"{p:.6f}\t{' '.join(g)}\t0")
            else:
                lines.append(f"{p:.6f}\t{' '.join(g)}")
    lines += ["", "\\end\\", ""]
    return atomic_write_text(path, "\n".join(lines))


def build_arpa(sentences: Iterable[str], path: str | Path, order: int = 5, language: str | None = None) -> Path:
    """Normalise ``sentences`` as fusion will (:func:`normalise_text`), estimate modified Kneser-Ney of
    ``order`` and write it as ARPA to ``path``."""
    texts = (normalise_text(s, language) for s in sentences)
    return write_arpa(train_kneser_ney(texts, order), path)


# ----------------------------------------------------------------------------- large LM


class LLMScorer:
    """The paper's large-LM variant: a causal LM from the shared ``reprolab.llm`` room in place of KenLM.

    ``mode="sequence"`` (our default): the LM's log-probability of the whole normalised text,
    ``llm.score(text)`` (natural log) divided by ln 10, so alpha has KenLM's scale. ``mode="official"``: what
    the official ``BeamSearchDecoderWithLLM`` computes - the *probability* (not log) of the most likely
    next token after the text (``softmax(logits[-1]).max()``, although its comment speaks of log-probs).
    ``eos`` is ignored (the official code passes none to the LLM). Scores are cached per text."""

    def __init__(self, llm: object, mode: str = "sequence", cache_size: int = 200_000):
        if mode not in ("sequence", "official"):
            raise ConfigError("mode", mode, "'sequence' or 'official'")
        self.llm = llm
        self.mode = mode
        self._cache: dict[str, float] = {}
        self._cache_size = cache_size

    def score(self, text: str, bos: bool = True, eos: bool = False) -> float:
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        if not text:
            value = 0.0
        elif self.mode == "sequence":
            value = float(self.llm.score(text)) / math.log(10)  # type: ignore[attr-defined]
        else:
            top = self.llm.next_token_logprobs(text, top_k=1)  # type: ignore[attr-defined]
            value = math.exp(max(top.values()))
        if not math.isfinite(value):
            from ...errors import NonFiniteError

            raise NonFiniteError(f"LLM score of {text[:40]!r}", value, fix="check the LLM backend")
        if len(self._cache) > self._cache_size:
            self._cache.clear()
        self._cache[text] = value
        return value
