"""Extending a text LM's vocabulary with speech units (TWIST init) and the textless variant.

Paper Sec. 3 ("initialisation"), slamkit ``InterleavingTokeniser._init_text_tokeniser`` and ``UnitLM``:
- interleaved SLM, TWIST init: the text tokenizer gains ``<Un0>..<Un{K-1}>`` then ``<speech>``,
  ``<text>`` (``add_tokens``), and the TextLM's embeddings are resized to the new length
  (``resize_token_embeddings``), keeping every text row;
- textless SLM (TWIST): the TextLM's embeddings are resized to K + 2 (slamkit ``vocab_size: 502`` for 500
  units): id 0 is padding, id 1 the begin/end token ``<S>``, units at 2..K+1 (slamkit
  ``UnitTokeniser``: units follow the special tokens); the rows kept are the TextLM's first K + 2.

One code path for any Hugging Face causal LM and tokenizer and for ``reprolab.nn.gpt.GPT`` with
:class:`ByteTokenizer` (bytes 0..255 plus added tokens): both expose ``add_tokens``/``__len__`` and
``resize_token_embeddings``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from ...errors import ConfigError
from .interleaving import SPEECH_TOKEN, TEXT_TOKEN, unit_tokens

Init = Literal["twist", "textless"]


class ByteTokenizer:
    """Bytes (ids 0..255) plus added tokens (ids 256, 257, ...), matched before bytes: the tokenizer of
    ``nn/gpt.py`` models, with the slice of the Hugging Face tokenizer API that :func:`extend_vocabulary` uses."""

    def __init__(self) -> None:
        self.added: dict[str, int] = {}
        self._pattern: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return 256 + len(self.added)

    def add_tokens(self, tokens: list[str]) -> int:
        n = 0
        for t in tokens:
            if t not in self.added:
                self.added[t] = 256 + len(self.added)
                n += 1
        self._pattern = re.compile("|".join(re.escape(t) for t in sorted(self.added, key=len, reverse=True))) if self.added else None
        return n

    def convert_tokens_to_ids(self, token: str) -> int:
        if token not in self.added:
            raise ConfigError("token", token, f"an added token ({len(self.added)} added)")
        return self.added[token]

    def encode(self, text: str) -> list[int]:
        if self._pattern is None:
            return list(text.encode("utf-8"))
        out: list[int] = []
        pos = 0
        for m in self._pattern.finditer(text):
            out += text[pos: m.start()].encode("utf-8")
            out.append(self.added[m.group(0)])
            pos = m.end()
        return out + list(text[pos:].encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        inv = {v: k for k, v in self.added.items()}
        out, buf = [], bytearray()
        for i in ids:
            if i < 256:
                buf.append(i)
            else:
                out.append(buf.decode("utf-8", errors="replace") + inv[i])
                buf = bytearray()
        return "".join(out) + buf.decode("utf-8", errors="replace")


class UnitTokenizer:
    """The textless SLM's vocabulary (slamkit ``UnitTokeniser``): ``<PAD>`` = 0, ``<S>`` = 1, ``<Un{k}>`` = k + 2.
    A leading ``<speech>`` (our speech-only documents) is read as ``<S>``; anything else but units is refused."""

    PAD, BOS = 0, 1
    _UNIT = re.compile(r"<Un(\d+)>")

    def __init__(self, num_units: int):
        if num_units < 1:
            raise ConfigError("num_units", num_units, "a positive number of units")
        self.num_units = num_units

    def __len__(self) -> int:
        return self.num_units + 2

    def encode(self, text: str) -> list[int]:
        body = text[len(SPEECH_TOKEN):] if text.startswith(SPEECH_TOKEN) else text
        ids = [int(k) for k in self._UNIT.findall(body)]
        if self._UNIT.sub("", body).strip():
            raise ConfigError("text", text[:60], "a speech-only string of <Un{k}> tokens (a textless model reads no text)")
        if any(k >= self.num_units for k in ids):
            raise ConfigError("unit", max(ids), f"a unit below num_units={self.num_units}")
        return [self.BOS] + [k + 2 for k in ids]


def extend_vocabulary(model: Any, tokenizer: Any, num_units: int, init: Init = "twist") -> tuple[Any, Any]:
    """Make a text LM an SLM (in place where the classes allow; returns ``(model, tokenizer)``).

    ``init="twist"``: add ``<Un0>..<Un{K-1}>``, ``<speech>``, ``<text>`` to ``tokenizer`` and resize the
    model's embeddings to ``len(tokenizer)`` (new rows: transformers' mean resizing). ``init="textless"``:
    return a :class:`UnitTokenizer` and resize the embeddings to K + 2.
    ``model``: any ``transformers`` causal LM or ``reprolab.nn.gpt.GPT``; ``tokenizer``: its tokenizer
    (a Hugging Face tokenizer or :class:`ByteTokenizer`).
    """
    if num_units < 1:
        raise ConfigError("num_units", num_units, "a positive number of units")
    if not hasattr(model, "resize_token_embeddings"):
        raise ConfigError("model", type(model).__name__, "a transformers causal LM or reprolab.nn.gpt.GPT (resize_token_embeddings)")
    if init == "twist":
        if not hasattr(tokenizer, "add_tokens"):
            raise ConfigError("tokenizer", type(tokenizer).__name__, "a tokenizer with add_tokens (Hugging Face or ByteTokenizer)")
        tokenizer.add_tokens(unit_tokens(num_units) + [SPEECH_TOKEN, TEXT_TOKEN])
        model.resize_token_embeddings(len(tokenizer))
        return model, tokenizer
    if init == "textless":
        units = UnitTokenizer(num_units)
        model.resize_token_embeddings(len(units))
        return model, units
    raise ConfigError("init", init, "'twist' or 'textless'")


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """``text`` as ids without special tokens added, for a Hugging Face tokenizer or ours."""
    if isinstance(tokenizer, (ByteTokenizer, UnitTokenizer)):
        return tokenizer.encode(text)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
