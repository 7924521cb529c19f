"""A response cache on disk, so an interrupted study resumes without re-generating.

    llm = CachedLLM(load_llm("qwen2.5-coder-0.5b"), "runs/genprm/quick/checkpoints/llm.sqlite")

Key: sha256 of (model name, the raw prompt, the sampling parameters of ONE sample including
its seed). Samples are cached one by one (sample i of n has seed ``seed + i``), so asking for
k = 8 after k = 4 generates only the 4 new ones. Next-token and choice log-probabilities are
cached the same way. SQLite in WAL mode: every write is atomic; a killed process loses at most
the sample it was generating.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import LLM, Completion, Message, Sampling


def cache_key(model: str, kind: str, payload: Any) -> str:
    blob = json.dumps({"model": model, "kind": kind, "payload": payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: each write is still atomic and survives a killed process; only a power cut can lose the last
        # few (never corrupt the file). FULL (the default) syncs every answer to disk: seconds per thousand writes.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def get(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, json.dumps(value, ensure_ascii=False)))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class CachedLLM(LLM):
    """Wraps any backend; same interface, answers from the cache when it can."""

    def __init__(self, inner: LLM, cache: ResponseCache | str | os.PathLike):
        super().__init__()
        self.inner = inner
        self.cache = cache if isinstance(cache, ResponseCache) else ResponseCache(cache)
        self.name = inner.name
        self.stats = inner.stats  # one set of counters: hits are counted where they happen

    def format_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        return self.inner.format_chat(messages, add_generation_prompt)

    def renders_chat(self, messages: Sequence[Message]) -> bool:
        return self.inner.renders_chat(messages)

    def chat(self, messages: Sequence[Message], sampling: Sampling | None = None, *, prefill: str = "") -> list[Completion]:
        """Text chats on a backend with a template are cached by their raw prompt (as :meth:`complete`); chats the
        backend sends as messages (images, an HTTP chat endpoint without a template) by the messages themselves."""
        if self.inner.renders_chat(messages):
            return super().chat(messages, sampling, prefill=prefill)
        if prefill:  # not cacheable by messages; the backend says why it cannot continue a turn
            return self.inner.chat(messages, sampling, prefill=prefill)
        sampling = sampling or Sampling()
        out = []
        for i in range(sampling.n):
            s = sampling.one(i)
            key = cache_key(self.name, "chat", {"messages": list(messages), "sampling": s.key()})
            hit = self.cache.get(key)
            if hit is not None:
                c = Completion.from_json(hit)
                self.stats.add(c)
            else:
                (c,) = self.inner.chat(messages, s)  # counted by the inner backend
                self.cache.put(key, c.to_json())
            out.append(c)
        return out

    def _complete_one(self, prompt: str, s: Sampling) -> Completion:
        key = cache_key(self.name, "complete", {"prompt": prompt, "sampling": s.key()})
        hit = self.cache.get(key)
        if hit is not None:
            return Completion.from_json(hit)
        c = self.inner._complete_one(prompt, s)  # counted once, by our complete()
        self.cache.put(key, c.to_json())
        return c

    def _memo(self, kind: str, payload: Any, fn):
        key = cache_key(self.name, kind, payload)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        value = fn()
        self.cache.put(key, value)
        return value

    def next_token_logprobs(self, prompt: str, top_k: int = 20) -> dict[str, float]:
        return self._memo("next", {"prompt": prompt, "top_k": top_k}, lambda: self.inner.next_token_logprobs(prompt, top_k))

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, float]:
        return self._memo("choice", {"prompt": prompt, "choices": list(choices)}, lambda: self.inner.choice_logprobs(prompt, choices))

    def score(self, text: str, prefix: str = "") -> float:
        return self._memo("score", {"text": text, "prefix": prefix}, lambda: self.inner.score(text, prefix))

    def close(self) -> None:
        self.cache.close()
        self.inner.close()
