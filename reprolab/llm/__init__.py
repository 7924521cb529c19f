"""The shared language-model room: one interface, three backends, an on-disk response cache.

    from reprolab.llm import load_llm, Sampling
    llm = load_llm("qwen2.5-coder-0.5b")                       # offline asset -> llama.cpp (default)
    llm = load_llm("/models/any.gguf")                         # a GGUF file -> llama.cpp
    llm = load_llm("/models/my-hf-folder")                     # a save_pretrained folder -> transformers
    llm = load_llm("http://127.0.0.1:8000/v1", model="qwen")   # any OpenAI-compatible server
    llm = load_llm("qwen2.5-coder-0.5b", cache="runs/x/llm.sqlite")   # resumable: answers cached on disk
    llm.chat([user_message("What is shown?", images=[frame], max_side=768)])   # images: OpenAI-compatible VLM endpoints only

See :mod:`reprolab.llm.base` for the interface (complete, chat, next_token_logprobs,
choice_logprobs, score, stats.tokens_per_second).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .base import LLM, ChoicesNotInTopK, Completion, LLMError, LogprobsUnavailable, Message, Sampling, TokenLogprob, UsageStats
from .cache import CachedLLM, ResponseCache
from .multimodal import ImagesUnsupported, image_part, text_part, user_message

__all__ = ["LLM", "CachedLLM", "ChoicesNotInTopK", "load_for_study", "Completion", "ImagesUnsupported", "LLMError", "LogprobsUnavailable",
           "Message", "ResponseCache", "Sampling", "TokenLogprob", "UsageStats", "image_part", "load_llm", "text_part", "user_message"]


def load_llm(spec: str | os.PathLike, *, cache: str | os.PathLike | ResponseCache | None = None, **kwargs: Any) -> LLM:
    """Open a model by asset name, GGUF path, transformers folder or http(s) URL (see module doc).

    ``kwargs`` go to the backend (``n_ctx``, ``n_threads`` for llama.cpp; ``model``, ``api_key_env``,
    ``chat_template_from`` for HTTP; ``device`` for transformers). Prefixes ``llama:``, ``hf:`` and
    ``openai:`` force a backend."""
    spec = str(spec)
    backend = None
    for prefix in ("llama:", "hf:", "openai:"):
        if spec.startswith(prefix):
            backend, spec = prefix[:-1], spec[len(prefix):]
    llm: LLM
    if backend == "openai" or spec.startswith(("http://", "https://")):
        from .openai_http import OpenAICompatLLM

        llm = OpenAICompatLLM(spec, **kwargs)
    elif backend == "hf" or (backend is None and Path(spec).is_dir()):
        from .hf import TransformersLLM

        llm = TransformersLLM(spec, **kwargs)
    else:
        from .llamacpp import LlamaCppLLM

        p = Path(spec)
        if p.suffix == ".gguf" or p.is_file():
            llm = LlamaCppLLM(p, **kwargs)
        else:
            from .. import assets

            a = assets.get(spec)  # UnknownName with did-you-mean for a typo
            path = assets.path(spec)  # AssetMissing with the install command; sha256 checked
            llm = LlamaCppLLM(path, name=kwargs.pop("name", f"llama.cpp:{spec}@{next(iter(a.sha256.values()), '')[:12]}"), **kwargs)
    return CachedLLM(llm, cache) if cache is not None else llm


def load_for_study(model: str, **kwargs: Any) -> LLM:
    """:func:`load_llm` of an offline asset for a study or benchmark: raises ``StudySkipped`` (recorded
    as "not run", with the fix) when llama-cpp-python or the asset is missing, instead of failing."""
    from .. import assets
    from ..errors import StudySkipped

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise StudySkipped("llama-cpp-python is not installed", fix="make setup") from None
    if not assets.is_installed(model):
        raise StudySkipped(f"offline asset {model!r} is not installed", fix=f"reprolab assets install {model}")
    return load_llm(model, **kwargs)
