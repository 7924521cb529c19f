"""Render a model's own chat template (the Jinja string stored in GGUF metadata or a tokenizer
config) into the raw prompt it was trained on, so every backend, HTTP included, can continue
an assistant turn that we have already started (GenPRM's staged generation needs that)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..errors import ConfigError

# A plain fallback for base models without a template (Gemma 270M base): clearly delimited turns.
PLAIN_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}Question: {{ m['content'] }}\n\n"
    "{% else %}Answer: {{ m['content'] }}\n\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Answer: {% endif %}"
)


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise ConfigError("chat_template", template[:60] + "...", f"a valid Jinja chat template ({exc})") from exc


def render_chat(template: str, messages: Sequence[dict[str, str]], *, bos_token: str = "", eos_token: str = "",
                add_generation_prompt: bool = True) -> str:
    return _compile(template).render(messages=list(messages), bos_token=bos_token, eos_token=eos_token,
                                     add_generation_prompt=add_generation_prompt)
