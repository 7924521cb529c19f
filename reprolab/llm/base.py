"""The one small interface every language-model backend speaks.

    llm = load_llm("qwen2.5-coder-0.5b")                     # an offline asset, via llama.cpp
    out = llm.complete("def fib(n):", Sampling(max_tokens=64, temperature=0.7, n=4, seed=1))
    out = llm.chat([{"role": "user", "content": "2+2?"}], Sampling(logprobs=5))
    out[0].text, out[0].tokens[0].top            # generated text; top-5 alternatives per position
    llm.next_token_logprobs("The answer is \\\\boxed{", top_k=20)   # distribution at a chosen position
    llm.score(" world", prefix="Hello")          # sum of ln p(token) of the text after the prefix

Sampling semantics shared by all backends: ``n`` samples are drawn one by one with seeds
``seed, seed + 1, ...`` (so sample i is reproducible on its own and a cache can resume a
partial batch); ``temperature == 0`` is greedy; ``stop`` strings end a sample (the stop string
is not included in ``text``; ``finish_reason`` says "stop" or "length"); ``logprobs = k`` asks for
each generated token's log-probability and its top-k alternatives (natural log), as OpenAI's
``top_logprobs``. Backends that cannot give log-probabilities raise :class:`LogprobsUnavailable`
so callers can fall back explicitly (GenPRM falls back to vote fractions and says so).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, ReprolabError

# {"role": "system" | "user" | "assistant", "content": "..."}; content may also be a list of OpenAI content parts
# (text and images, see reprolab.llm.multimodal), which only backends that can see accept
Message = dict[str, Any]


class LLMError(ReprolabError, RuntimeError):
    """A backend failed: the server is down, answered garbage, or the model could not load."""


class ImagesUnsupported(LLMError):
    """The backend renders a text chat template and cannot see images."""


class LogprobsUnavailable(LLMError):
    """The backend cannot return token log-probabilities (e.g. an endpoint without ``logprobs``)."""


class ChoicesNotInTopK(LLMError):
    """None of the asked choices is among the top-k next tokens an endpoint returned: there is
    nothing to compare (flooring both would make them equal, i.e. p = 0.5). Callers count the
    judgement as malformed."""


def check_logprob(value: float, where: str) -> float:
    """A log-probability as a float, or :class:`LLMError` when it is NaN, +inf or positive (a
    server that answers garbage must not pass silently into a reward)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise LLMError(f"non-numeric log-probability {value!r} at {where}", fix="check the server's logprobs output") from None
    if math.isnan(v) or v == math.inf or v > 1e-6:
        raise LLMError(f"invalid log-probability {v!r} at {where}", fix="check the server's logprobs output (must be finite and <= 0)")
    return v


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters; defaults are greedy, one sample, 256 new tokens."""

    max_tokens: int = 256  # new tokens per sample
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    n: int = 1  # samples, drawn with seeds seed, seed+1, ...
    seed: int = 0
    stop: tuple[str, ...] = ()  # stop strings (not included in the text)
    logprobs: int | None = None  # None: no log-probs; k >= 0: each token's log-prob and top-k alternatives

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ConfigError("max_tokens", self.max_tokens, "an integer >= 1")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ConfigError("temperature", self.temperature, "a finite number >= 0")
        if not 0 < self.top_p <= 1:
            raise ConfigError("top_p", self.top_p, "a number in (0, 1]")
        if self.n < 1:
            raise ConfigError("n", self.n, "an integer >= 1")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError("top_k", self.top_k, "an integer >= 0 (0 = off)")
        if not isinstance(self.seed, int):
            raise ConfigError("seed", self.seed, "an integer")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise ConfigError("logprobs", self.logprobs, "None or an integer in [0, 20] (OpenAI's limit)")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if any(not isinstance(x, str) or not x for x in self.stop):
            raise ConfigError("stop", self.stop, "non-empty strings")

    def one(self, i: int) -> Sampling:
        """The parameters of sample ``i`` alone (n = 1, seed + i)."""
        from dataclasses import replace

        return replace(self, n=1, seed=self.seed + i)

    def key(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TokenLogprob:
    token: str
    logprob: float  # ln p of the generated token
    top: dict[str, float] = field(default_factory=dict)  # top-k alternatives (token text -> ln p)


@dataclass
class Completion:
    text: str
    finish_reason: str = "stop"  # "stop" | "length"
    tokens: list[TokenLogprob] | None = None  # when Sampling.logprobs is set
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False
    # prompt tokens the backend did not evaluate again: served from its KV cache of an earlier call's prefix
    # (llama.cpp in process: the longest common prefix with the context; HTTP: usage.prompt_tokens_details.cached_tokens)
    cached_prompt_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cached")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Completion:
        toks = d.get("tokens")
        return cls(
            text=d["text"], finish_reason=d.get("finish_reason", "stop"),
            tokens=[TokenLogprob(**t) for t in toks] if toks is not None else None,
            prompt_tokens=d.get("prompt_tokens", 0), completion_tokens=d.get("completion_tokens", 0),
            seconds=d.get("seconds", 0.0), cached=True, cached_prompt_tokens=d.get("cached_prompt_tokens", 0),
        )


@dataclass
class UsageStats:
    """What a backend did: calls, tokens, seconds; tokens/s over generated tokens (cache hits excluded).

    ``cache_hits`` are whole completions answered by a :class:`ResponseCache`; ``cached_prompt_tokens``
    are prompt tokens the backend reused from its KV cache (prefix caching), so ``prompt_reuse`` is the
    share of prompt tokens that cost nothing."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    cache_hits: int = 0
    cached_prompt_tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else float("nan")

    @property
    def prompt_reuse(self) -> float:
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens > 0 else float("nan")

    def add(self, c: Completion) -> None:
        if c.cached:
            self.cache_hits += 1
            return
        self.calls += 1
        self.prompt_tokens += c.prompt_tokens
        self.completion_tokens += c.completion_tokens
        self.cached_prompt_tokens += c.cached_prompt_tokens
        self.seconds += c.seconds

    def to_json(self) -> dict[str, float]:
        return {**asdict(self), "tokens_per_second": self.tokens_per_second, "prompt_reuse": self.prompt_reuse}


class LLM:
    """Base class of the backends. Subclasses implement ``_complete_one`` (one sample of a raw
    completion), ``format_chat`` (messages -> the model's raw prompt) and ``next_token_logprobs``
    / ``score`` where they can; ``complete`` and ``chat`` are shared."""

    name: str = "llm"  # identifies the model in cache keys and reports (e.g. "llama.cpp:qwen2.5-coder-0.5b@1d96146")
    supports_logprobs: bool = True

    def __init__(self) -> None:
        self.stats = UsageStats()

    # -- to implement --
    def _complete_one(self, prompt: str, sampling: Sampling) -> Completion:  # pragma: no cover - abstract
        raise NotImplementedError

    def format_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:  # pragma: no cover
        raise NotImplementedError

    def next_token_logprobs(self, prompt: str, top_k: int = 20) -> dict[str, float]:  # pragma: no cover
        """ln p of the ``top_k`` most likely next tokens after the raw ``prompt``."""
        raise LogprobsUnavailable(f"{self.name} cannot give next-token log-probabilities", fix="use a llama.cpp or transformers backend")

    def score(self, text: str, prefix: str = "") -> float:  # pragma: no cover
        """Sum of ln p(token) over the tokens of ``text`` given ``prefix`` (natural log)."""
        raise LogprobsUnavailable(f"{self.name} cannot score text", fix="use a llama.cpp or transformers backend")

    def choice_logprobs(self, prompt: str, choices: Sequence[str]) -> dict[str, float]:
        """ln p of the first token of each choice right after ``prompt`` (e.g. "Yes" / "No").
        Default: read them from the top-20 next tokens; a choice outside them gets the smallest
        listed value (an upper bound, as the official GenPRM code does). Local backends are exact."""
        top = {t: check_logprob(v, f"next token {t!r}") for t, v in self.next_token_logprobs(prompt, top_k=20).items()}
        if not top:
            raise LogprobsUnavailable(f"{self.name} returned no next-token log-probabilities", fix="use a server that supports logprobs")
        found = {c: [lp for t, lp in top.items() if t.strip() == c.strip()] for c in choices}
        if not any(found.values()):
            raise ChoicesNotInTopK(f"none of {list(choices)} is among the top {len(top)} next tokens of {self.name}",
                                   fix="count the judgement as malformed (or use a local backend, which is exact)")
        floor = min(top.values())
        return {c: max(v, default=floor) for c, v in found.items()}

    # -- shared --
    def complete(self, prompt: str, sampling: Sampling | None = None) -> list[Completion]:
        """``sampling.n`` raw completions of ``prompt`` (seeds seed, seed+1, ...)."""
        sampling = sampling or Sampling()
        if not isinstance(prompt, str):
            raise ConfigError("prompt", type(prompt).__name__, "a string (use chat() for a list of messages)")
        if not prompt:
            raise ConfigError("prompt", prompt, "a non-empty string")
        out = []
        for i in range(sampling.n):
            t0 = time.perf_counter()
            c = self._complete_one(prompt, sampling.one(i))
            if not c.cached and not c.seconds:
                c.seconds = time.perf_counter() - t0
            self.stats.add(c)
            out.append(c)
        return out

    def chat(self, messages: Sequence[Message], sampling: Sampling | None = None, *, prefill: str = "") -> list[Completion]:
        """Complete the assistant's next turn; ``prefill`` starts the assistant's text (continued, not repeated)."""
        _check_messages(messages)
        if not self.renders_chat(messages):
            raise ImagesUnsupported(f"{self.name} renders a text chat template and cannot read images (content parts)",
                                    fix="send images to an OpenAI-compatible VLM endpoint: load_llm('http://HOST/v1', model=...)")
        return self.complete(self.format_chat(messages) + prefill, sampling)

    def renders_chat(self, messages: Sequence[Message]) -> bool:
        """Whether :meth:`chat` turns these messages into a raw prompt through :meth:`format_chat` (text-only
        messages on a backend with a chat template); backends that send messages as they are (an HTTP chat
        endpoint) override it. Caches key such chats by their raw prompt, the others by the messages."""
        return not has_images(messages)

    def close(self) -> None:
        pass

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_messages(messages: Sequence[Message]) -> None:
    if isinstance(messages, str) or not messages:
        raise ConfigError("messages", messages if isinstance(messages, str) else "[]", 'a non-empty list of {"role": ..., "content": ...}')
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), (str, list)):
            raise ConfigError("message", m, '{"role": "system" | "user" | "assistant", "content": str or a list of content parts}')
        if isinstance(m["content"], list):
            check_parts(m["content"])


def has_images(messages: Sequence[dict[str, Any]]) -> bool:
    """Whether any message carries a list of content parts (with or without images)."""
    return any(isinstance(m, dict) and isinstance(m.get("content"), list) for m in messages)


def check_parts(content: list[Any]) -> None:
    """Refuse a list content that is not made of well-formed text / image_url parts."""
    if not content:
        raise ConfigError("content", "[]", "a string or a non-empty list of content parts")
    for p in content:
        if not isinstance(p, dict):
            raise ConfigError("content part", p, '{"type": "text", "text": str} or {"type": "image_url", "image_url": {"url": str}}')
        if p.get("type") == "text" and isinstance(p.get("text"), str):
            continue
        url = (p.get("image_url") or {}).get("url") if p.get("type") == "image_url" and isinstance(p.get("image_url"), dict) else None
        if not (isinstance(url, str) and url.startswith(("http://", "https://", "data:image/"))):
            shown = {k: (v[:40] + "..." if isinstance(v, str) and len(v) > 40 else v) for k, v in p.items()}
            raise ConfigError("content part", shown, '{"type": "text", "text": str} or {"type": "image_url", "image_url": {"url": '
                                                     '"data:image/...;base64,..." or an http(s) URL}}')


def apply_stops(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first stop string; returns (text, stopped)."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token sequences."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def continuation_positions(prefix: Sequence[int], full: Sequence[int]) -> range:
    """The positions i of ``full`` whose next-token distribution scores a token of the continuation
    (``full[i + 1]``, for the tokens after the shared prefix). The first token of a sequence without
    BOS has no context and is not scored."""
    start = max(common_prefix_len(prefix, full), 1)
    return range(start - 1, len(full) - 1)
