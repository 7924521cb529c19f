"""Any OpenAI-compatible HTTP endpoint (llama-cpp-python's server, vLLM, llama.cpp's llama-server,
Ollama, OpenAI itself): ``/v1/completions`` for raw prompts, ``/v1/chat/completions`` for chat.

    llm = OpenAICompatLLM("http://127.0.0.1:8000/v1", model="qwen", api_key_env="OPENAI_API_KEY")

Timeouts you set (``connect_timeout_s``, ``timeout_s`` for reading an answer) and a total
``deadline_s`` per call that no retry can stretch; retries with exponential backoff on connection
errors, 429 and 5xx, never on a read timeout (a server that accepted the request and went quiet
is hung, not busy); a clear :class:`LLMError` when the server is down, hung, or answers something
that is not a completion (non-finite log-probabilities included).
Raw completions of chat prompts need the model's chat template on our side: pass
``chat_template=`` (a Jinja string) or ``chat_template_from=`` (a GGUF path or asset name whose
metadata holds it). Without one, :meth:`chat` uses the server's chat endpoint and a prefilled
assistant turn is not possible.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError
from .base import LLM, Completion, LLMError, LogprobsUnavailable, Message, Sampling, TokenLogprob, _check_messages, check_logprob
from .chat_template import render_chat

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def _template_from(source: str) -> tuple[str, str, str]:
    """(template, bos, eos) from a GGUF file's metadata (vocab only: loads in a fraction of a second)."""
    from pathlib import Path

    from .llamacpp import _import_llama_cpp

    path = Path(source)
    if not path.is_file():
        from .. import assets

        path = assets.path(source)
    llama_cpp = _import_llama_cpp()
    m = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    try:
        tmpl = (m.metadata or {}).get("tokenizer.chat_template")
        if not tmpl:
            raise ConfigError("chat_template_from", str(path), "a GGUF file whose metadata has tokenizer.chat_template")
        bos = m._model.token_get_text(m.token_bos()) if m.token_bos() >= 0 else ""
        eos = m._model.token_get_text(m.token_eos()) if m.token_eos() >= 0 else ""
        return tmpl, bos, eos
    finally:
        m.close()


class OpenAICompatLLM(LLM):
    def __init__(self, base_url: str, model: str = "default", *, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 120.0, retries: int = 3, backoff_s: float = 0.5, connect_timeout_s: float = 10.0,
                 deadline_s: float | None = None,
                 chat_template: str | None = None, chat_template_from: str | None = None, name: str | None = None):
        super().__init__()
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ConfigError("base_url", base_url, "an http(s) URL such as http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        for arg, v in (("timeout_s", timeout_s), ("connect_timeout_s", connect_timeout_s), ("backoff_s", backoff_s)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(arg, v, "a positive number of seconds")
        if not isinstance(retries, int) or retries < 0:
            raise ConfigError("retries", retries, "an integer >= 0")
        self.model = model
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        # A call never takes longer than this, retries and backoff included (default: one read timeout + 30 s).
        self.deadline_s = deadline_s if deadline_s is not None else timeout_s + 30.0
        if not (math.isfinite(self.deadline_s) and self.deadline_s > 0):
            raise ConfigError("deadline_s", deadline_s, "a positive number of seconds")
        key = os.environ.get(api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)), headers=headers,
                                    trust_env=False)
        self.name = name or f"openai:{self.base_url}:{model}"
        self._bos = self._eos = ""
        if chat_template_from:
            chat_template, self._bos, self._eos = _template_from(chat_template_from)
        self.chat_template = chat_template

    # -- transport --
    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        url = self.base_url + path
        last: str = ""
        end = time.monotonic() + self.deadline_s
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), max(0.0, end - time.monotonic())))
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                r = self._client.post(url, json=body, timeout=httpx.Timeout(min(self.timeout_s, left),
                                                                              connect=min(self._client.timeout.connect or left, left)))
            except httpx.ReadTimeout as exc:  # accepted, then silent: hung, not busy; retrying only multiplies the wait
                raise LLMError(f"{url} accepted the request but sent no answer within {min(self.timeout_s, left):.0f} s ({exc})",
                               fix="check the server (is it stuck or far too slow?) or raise timeout_s / deadline_s") from None
            except httpx.TransportError as exc:  # refused, reset, connect timeout
                last = f"{type(exc).__name__}: {exc}"
                continue
            if r.status_code in RETRY_STATUS:
                last = f"HTTP {r.status_code}: {r.text[:200]}"
                continue
            if r.status_code != 200:
                raise LLMError(f"{url} answered HTTP {r.status_code}: {r.text[:300]}",
                               fix="check the model name and the request parameters the server accepts")
            try:
                data = r.json()
            except json.JSONDecodeError:
                raise LLMError(f"{url} answered with something that is not JSON: {r.text[:200]!r}",
                               fix="check that base_url points at an OpenAI-compatible /v1 API") from None
            if not isinstance(data, dict) or not data.get("choices"):
                raise LLMError(f"{url} answered JSON without 'choices': {str(data)[:200]}",
                               fix="check that base_url points at an OpenAI-compatible /v1 API")
            return data
        raise LLMError(f"no answer from {url} within {self.deadline_s:g} s and {self.retries + 1} tries ({last or 'deadline reached'})",
                       fix="start the server (e.g. `python -m llama_cpp.server --model FILE`) or fix base_url")

    # -- interface --
    def format_chat(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        if not self.chat_template:
            raise ConfigError("chat_template", None, "a template (chat_template= or chat_template_from=) to build raw chat prompts")
        return render_chat(self.chat_template, messages, bos_token=self._bos, eos_token=self._eos,
                           add_generation_prompt=add_generation_prompt)

    def renders_chat(self, messages: Sequence[Message]) -> bool:
        """With a chat template, text-only chats become raw completions (a prefill is possible); messages with
        images, or any chat without a template, go to the server's chat endpoint as they are."""
        return bool(self.chat_template) and super().renders_chat(messages)

    def chat(self, messages: Sequence[Message], sampling: Sampling | None = None, *, prefill: str = "") -> list[Completion]:
        _check_messages(messages)
        if self.renders_chat(messages):
            return super().chat(messages, sampling, prefill=prefill)
        if prefill:
            raise ConfigError("prefill", prefill[:40], "empty, or give the backend the model's chat_template (and no images)")
        sampling = sampling or Sampling()
        out = []
        for i in range(sampling.n):
            s = sampling.one(i)
            body = self._body(s) | {"messages": list(messages)}
            if s.logprobs is not None:
                body |= {"logprobs": True, "top_logprobs": s.logprobs}
            t0 = time.perf_counter()
            data = self._post("/chat/completions", body)
            c = self._parse(data, chat=True, seconds=time.perf_counter() - t0)
            self.stats.add(c)
            out.append(c)
        return out

    def _body(self, s: Sampling) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "max_tokens": s.max_tokens, "temperature": s.temperature,
                                "top_p": s.top_p, "seed": s.seed}
        if s.top_k:
            body["top_k"] = s.top_k
        if s.stop:
            body["stop"] = list(s.stop)
        return body

    def _complete_one(self, prompt: str, s: Sampling) -> Completion:
        body = self._body(s) | {"prompt": prompt}
        if s.logprobs is not None:
            body["logprobs"] = s.logprobs
        t0 = time.perf_counter()
        data = self._post("/completions", body)
        return self._parse(data, chat=False, seconds=time.perf_counter() - t0)

    def _parse(self, data: dict[str, Any], chat: bool, seconds: float) -> Completion:
        try:
            ch = data["choices"][0]
            text = ch["message"]["content"] if chat else ch["text"]
            if not isinstance(text, str):
                raise TypeError(f"text is {type(text).__name__}")
            tokens = _parse_logprobs(ch.get("logprobs"), chat)
            usage = data.get("usage") or {}
            return Completion(text=text, finish_reason=ch.get("finish_reason") or "stop", tokens=tokens,
                              prompt_tokens=int(usage.get("prompt_tokens", 0)), completion_tokens=int(usage.get("completion_tokens", 0)),
                              seconds=seconds,
                              cached_prompt_tokens=int((usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0) or 0))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise LLMError(f"malformed completion from {self.base_url}: {exc} in {str(data)[:200]}",
                           fix="check that the server speaks the OpenAI completions format") from exc

    def next_token_logprobs(self, prompt: str, top_k: int = 20) -> dict[str, float]:
        s = Sampling(max_tokens=1, temperature=0.0, logprobs=top_k)
        c = self._complete_one(prompt, s)
        if not c.tokens or not c.tokens[0].top:
            raise LogprobsUnavailable(f"{self.base_url} returned no logprobs", fix="use a server that supports `logprobs` on /v1/completions")
        return c.tokens[0].top

    def close(self) -> None:
        self._client.close()


def _parse_logprobs(lp: Any, chat: bool) -> list[TokenLogprob] | None:
    if not lp:
        return None
    if chat:  # {"content": [{"token", "logprob", "top_logprobs": [{"token", "logprob"}]}]}
        return [TokenLogprob(t["token"], check_logprob(t["logprob"], f"token {i}"),
                             {a["token"]: check_logprob(a["logprob"], f"token {i}, alternative {a['token']!r}") for a in t.get("top_logprobs") or []})
                for i, t in enumerate(lp.get("content") or [])]
    toks = lp["tokens"]
    vals = lp["token_logprobs"]
    tops = lp.get("top_logprobs") or [None] * len(toks)
    out = []
    for i, (t, v, top) in enumerate(zip(toks, vals, tops)):
        out.append(TokenLogprob(t, check_logprob(v, f"token {i}"),
                                {k: check_logprob(x, f"token {i}, alternative {k!r}") for k, x in (top or {}).items()}))
    return out
