"""How fast the LLM room generates, against llama.cpp's own loop on the very same requests.

A study's budget is spent in generation, so the room must not waste it (issue 19, item 2). The check:
record the completion requests a method makes through a :class:`~reprolab.llm.llamacpp.LlamaCppLLM`
(:func:`recorded`), then send the same prompts with the same sampling straight to
``Llama.create_completion`` (:func:`raw_speed`), in the same order, so that both arms get the same
KV-cache reuse between consecutive prompts. The ratio of generated tokens per second (ours / raw) is
the room's efficiency; 1.0 means no overhead.

    with recorded(llm) as requests:
        prm.score_steps(question, steps)          # ours: llm.stats before/after
    tokens, seconds = raw_speed(llm, requests)    # llama.cpp alone
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence

from ..errors import ConfigError
from .base import LLM, Sampling
from .llamacpp import sampler_kwargs


@contextlib.contextmanager
def recorded(llm: LLM) -> Iterator[list[tuple[str, Sampling]]]:
    """Collect ``(prompt, sampling)`` of every completion the backend generates inside the block
    (one entry per sample; response-cache hits never reach the backend and are not recorded)."""
    seen: list[tuple[str, Sampling]] = []
    inner = llm._complete_one

    def record(prompt: str, sampling: Sampling):
        seen.append((prompt, sampling))
        return inner(prompt, sampling)

    llm._complete_one = record  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del llm._complete_one  # back to the class's method


def raw_speed(llm: LLM, requests: Sequence[tuple[str, Sampling]]) -> tuple[int, float]:
    """Generated tokens and wall seconds of ``requests`` sent to llama.cpp's ``create_completion``
    directly, with the samplers set as :class:`LlamaCppLLM` sets them (:func:`~.llamacpp.sampler_kwargs`)."""
    raw = getattr(llm, "_llm", None)
    if raw is None or not hasattr(raw, "create_completion"):
        raise ConfigError("llm", getattr(llm, "name", type(llm).__name__), "an in-process llama.cpp model (load_llm on a GGUF)")
    tokens, seconds = 0, 0.0
    for prompt, s in requests:
        t0 = time.perf_counter()
        r = raw.create_completion(prompt, **sampler_kwargs(s))
        seconds += time.perf_counter() - t0
        tokens += r["usage"]["completion_tokens"]
    return tokens, seconds
