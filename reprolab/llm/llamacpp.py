"""llama.cpp backend (llama-cpp-python) on a local GGUF file: the default backend.

Generation goes through ``Llama.create_completion`` with llama.cpp's own samplers set so they
match the other backends (``min_p=0``, ``repeat_penalty=1``; ``top_k=0`` = off). Log-probabilities
are NOT taken from ``create_completion(logprobs=...)``: that path needs ``logits_all=True``
(a ``n_ctx x vocab`` float matrix, 2.4 GB for Qwen at 4k context) and sorts the whole vocabulary
in Python for every token. Instead we re-run the chosen positions through the model with
logits requested only there (one batched forward, the shared prefix's KV cache reused) and
take a NumPy log-softmax; this gives the same numbers (the model's distribution before
temperature, as OpenAI and vLLM report them) at a fraction of the cost.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MissingExtra
from .base import LLM, Completion, LLMError, Message, Sampling, TokenLogprob, common_prefix_len, continuation_positions
from .chat_template import PLAIN_TEMPLATE, render_chat


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as exc:
        raise MissingExtra("llama-cpp-python", "llm") from exc
    return llama_cpp


def _log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    m = row.max()
    return row - (m + np.log(np.exp(row - m).sum()))


def sampler_kwargs(s: Sampling, max_tokens: int | None = None) -> dict:
    """``create_completion``'s sampling arguments for ``s`` as :class:`LlamaCppLLM` sends them: temperature, top-p and
    top-k as given, and llama.cpp's own extra samplers switched off (``min_p=0``, ``repeat_penalty=1``)."""
    return {"max_tokens": s.max_tokens if max_tokens is None else max_tokens, "temperature": s.temperature, "top_p": s.top_p,
            "top_k": s.top_k, "min_p": 0.0, "repeat_penalty": 1.0, "stop": list(s.stop) or None, "seed": s.seed}


class LlamaCppLLM(LLM):
    """A GGUF model in this process.

    Args:
        model_path: the ``.gguf`` file (use ``load_llm(asset_name)`` for a verified offline asset).
        n_ctx: context length in tokens (prompt + generation).
        n_threads: CPU threads (default ``$REPROLAB_THREADS`` or all cores).
        chat_template: a Jinja template overriding the one in the GGUF metadata; models without one
            (Gemma 270M base) get :data:`PLAIN_TEMPLATE`.
        name: the model's identity in cache keys (default: file name + the first 12 hex digits of its sha256,
            hashed once and stamped).
    """

    def __init__(self, model_path: str | os.PathLike, *, n_ctx: int = 4096, n_threads: int | None = None,
                 n_batch: int = 512, chat_template: str | None = None, name: str | None = None, verbose: bool = False):
        super().__init__()
        llama_cpp = _import_llama_cpp()
        path = Path(model_path)
        if not path.is_file():
            raise ConfigError("model_path", str(path), "an existing .gguf file (see `reprolab assets list`)")
        threads = n_threads or int(os.environ.get("REPROLAB_THREADS", 0) or os.cpu_count() or 1)
        try:
            self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                        n_batch=n_batch, logits_all=False, verbose=verbose)
        except ValueError as exc:
            raise LLMError(f"llama.cpp could not load {path}: {exc}", fix="check the file with `reprolab assets verify`") from exc
        self._lock = threading.Lock()  # one llama context: one call at a time
        self.n_ctx = n_ctx
        self.path = path
        if name is None:  # a GGUF given by path is named by its content: a changed file never meets a stale cache
            from ..assets import stamped_sha256

            name = f"llama.cpp:{path.name}@{stamped_sha256(path)[:12]}"
        self.name = name
        _OPEN.add(self)  # closed at interpreter exit, before llama.cpp's own teardown (no Llama.__del__ traceback)
        meta = self._llm.metadata or {}
        self.chat_template = chat_template or meta.get("tokenizer.chat_template") or PLAIN_TEMPLATE
        self.has_chat_template = bool(chat_template or meta.get("tokenizer.chat_template"))
        self._bos = self._token_text(self._llm.token_bos())
        self._eos = self._token_text(self._llm.token_eos())

    def _token_text(self, tok: int) -> str:
        if tok is None or tok < 0:
            return ""
        try:
            return self._llm._model.token_get_text(tok)
        except Exception:  # noqa: BLE001 - older builds
            return ""

    # -- interface --
    def format_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        return render_chat(self.chat_template, messages, bos_token=self._bos, eos_token=self._eos,
                           add_generation_prompt=add_generation_prompt)

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def _complete_one(self, prompt: str, s: Sampling) -> Completion:
        toks = self.tokenize(prompt)
        n_prompt = len(toks)
        if n_prompt + 1 > self.n_ctx:
            raise LLMError(f"prompt of {n_prompt} tokens does not fit the context of {self.n_ctx}",
                           fix="shorten the prompt or load the model with a larger n_ctx")
        t0 = time.perf_counter()
        with self._lock:
            reused = self._reusable_prefix(toks)
            try:
                r = self._llm.create_completion(prompt, **sampler_kwargs(s, max_tokens=min(s.max_tokens, self.n_ctx - n_prompt)))
            except (ValueError, RuntimeError) as exc:
                raise LLMError(f"llama.cpp failed on a prompt of {n_prompt} tokens: {exc}", fix="shorten the prompt") from exc
        seconds = time.perf_counter() - t0
        choice = r["choices"][0]
        text = choice["text"]
        usage = r.get("usage", {})
        tokens = self._generated_logprobs(prompt, text, s.logprobs) if s.logprobs is not None else None
        return Completion(text=text, finish_reason=choice.get("finish_reason") or "stop", tokens=tokens,
                          prompt_tokens=usage.get("prompt_tokens", n_prompt), completion_tokens=usage.get("completion_tokens", 0),
                          seconds=seconds, cached_prompt_tokens=reused)

    def next_token_logprobs(self, prompt: str, top_k: int = 20) -> dict[str, float]:
        toks = self.tokenize(prompt)
        (row,) = self._rows(toks, [len(toks) - 1])
        return self._top(row, top_k, toks)

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, float]:
        """Exact ln p of the first token of each choice (e.g. "Yes", "No") right after ``prompt``."""
        toks = self.tokenize(prompt)
        (row,) = self._rows(toks, [len(toks) - 1])
        out = {}
        for c in choices:
            full = self.tokenize(prompt + c)
            k = common_prefix_len(toks, full)
            if k >= len(full):
                raise ConfigError("choice", c, "a non-empty continuation")
            if k < len(toks):  # the choice merged with the prompt's last token: score the merged token instead
                out[c] = float("nan")
                continue
            out[c] = float(row[full[k]])
        return out

    def score(self, text: str, prefix: str = "") -> float:
        full = self.tokenize(prefix + text)
        positions = continuation_positions(self.tokenize(prefix), full)
        if not positions:
            return 0.0
        return float(sum(r[full[i + 1]] for r, i in zip(self._rows(full, list(positions)), positions)))

    # -- internals --
    def _reusable_prefix(self, tokens: list[int]) -> int:
        """Prompt tokens ``Llama.generate`` will take from the KV cache instead of evaluating: the longest
        common prefix with the context's tokens (one fewer when the whole prompt matches, since the last
        token is replayed to refresh the logits). This is llama-cpp-python's own prefix caching: calls that
        share a prefix (the k samples of one prompt, a solution's later steps) pay only for the new suffix
        when they run one after another."""
        llm = self._llm
        if llm.n_tokens <= 0:
            return 0
        k = common_prefix_len(llm._input_ids.tolist(), tokens)
        return k - 1 if k == len(tokens) else k

    def _generated_logprobs(self, prompt: str, text: str, k: int) -> list[TokenLogprob]:
        full = self.tokenize(prompt + text)
        positions = list(continuation_positions(self.tokenize(prompt), full))
        rows = self._rows(full, positions) if positions else []
        out = []
        for r, i in zip(rows, positions):
            tok = full[i + 1]
            out.append(TokenLogprob(token=self._piece(tok, full[: i + 1]), logprob=float(r[tok]),
                                    top=self._top(r, k, full[: i + 1]) if k else {}))
        return out

    def _piece(self, tok: int, prev: Sequence[int]) -> str:
        return self._llm.detokenize([tok], prev_tokens=list(prev)).decode("utf-8", errors="replace")

    def _top(self, row: np.ndarray, k: int, prev: Sequence[int]) -> dict[str, float]:
        k = min(k, row.shape[0])
        idx = np.argpartition(-row, k - 1)[:k]
        idx = idx[np.argsort(-row[idx])]
        out: dict[str, float] = {}
        for i in idx:
            out.setdefault(self._piece(int(i), prev), float(row[i]))  # two ids with one text: keep the likelier
        return out

    def _rows(self, tokens: list[int], positions: list[int]) -> list[np.ndarray]:
        """Log-softmax rows of the model's next-token distribution at ``positions`` of ``tokens``
        (position i predicts token i+1), reusing the KV cache of the longest evaluated prefix."""
        llama_cpp = _import_llama_cpp()
        if len(tokens) > self.n_ctx:
            raise LLMError(f"{len(tokens)} tokens do not fit the context of {self.n_ctx}", fix="shorten the text")
        want = set(positions)
        rows: dict[int, np.ndarray] = {}
        with self._lock:
            llm = self._llm
            start = min(common_prefix_len(llm._input_ids.tolist(), tokens), min(positions))
            llm.n_tokens = start
            llm._ctx.kv_cache_seq_rm(-1, start, -1)
            n_vocab = llm.n_vocab()
            for b in range(start, len(tokens), llm.n_batch):
                chunk = tokens[b: b + llm.n_batch]
                llm._batch.set_batch(batch=chunk, n_past=b, logits_all=True)
                llm._ctx.decode(llm._batch)
                for j in range(len(chunk)):
                    if b + j in want:
                        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, j)
                        rows[b + j] = _log_softmax(np.ctypeslib.as_array(ptr, shape=(n_vocab,)).copy())
                llm.input_ids[b: b + len(chunk)] = chunk
                llm.n_tokens = b + len(chunk)
        return [rows[p] for p in positions]

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None
        _OPEN.discard(self)


_OPEN: weakref.WeakSet[LlamaCppLLM] = weakref.WeakSet()


@atexit.register
def _close_open_models() -> None:
    """Close every model a script left open: llama-cpp-python's ``Llama.__del__`` run during
    interpreter shutdown prints a traceback (its modules are half torn down by then)."""
    for m in list(_OPEN):
        try:
            m.close()
        except Exception:  # noqa: BLE001 - nothing useful to do at exit
            pass
