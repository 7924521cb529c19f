"""Chat messages that carry images, in OpenAI's content-part format, for any backend that can see.

    from reprolab.llm.multimodal import user_message
    msg = user_message("What happens in these frames?", images=[frame0, frame1], max_side=768)
    llm = load_llm("http://127.0.0.1:8000/v1", model="qwen2.5-vl")    # any OpenAI-compatible VLM endpoint
    llm.chat([msg])         # POST /v1/chat/completions with base64 ``image_url`` parts

A message's ``content`` is either a string (every backend) or a list of parts::

    {"type": "text", "text": "..."}
    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,..." | "https://...", "detail": "auto"}}

An image is given as an RGB ``uint8`` array (H, W, 3) or (H, W), encoded bytes (JPEG/PNG/WebP), a path to an
image file, or a ready URL; arrays and files are re-encoded with Pillow (JPEG by default), shrunk so that the
longest side is at most ``max_side`` pixels when it is given. Backends that render a text chat template
(llama.cpp, transformers, scripted) cannot read images and refuse such messages with a typed error
(:class:`ImagesUnsupported`) instead of printing a Python list into the prompt.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, MalformedFile
from .base import ImagesUnsupported, check_parts, has_images  # re-exported: the message checks live with the interface

ContentPart = dict[str, Any]  # {"type": "text", "text": ...} | {"type": "image_url", "image_url": {"url": ...}}

_MAGIC = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"RIFF": "image/webp", b"GIF8": "image/gif"}


def text_part(text: str) -> ContentPart:
    if not isinstance(text, str):
        raise ConfigError("text", type(text).__name__, "a string")
    return {"type": "text", "text": text}


def image_part(image: Any, *, max_side: int | None = None, fmt: str = "jpeg", quality: int = 90,
               detail: str | None = None) -> ContentPart:
    """One ``image_url`` part: arrays and files become a base64 data URL (re-encoded as ``fmt``, shrunk to
    ``max_side``); encoded bytes are sent as they are unless ``max_side`` asks for a resize; an http(s) or
    data URL string is passed through."""
    if isinstance(image, str) and image.startswith(("http://", "https://", "data:image/")):
        url = image
    else:
        mime, data = _encode(image, max_side=max_side, fmt=fmt, quality=quality)
        url = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    part: ContentPart = {"type": "image_url", "image_url": {"url": url}}
    if detail is not None:
        if detail not in ("auto", "low", "high"):
            raise ConfigError("detail", detail, "'auto', 'low' or 'high' (OpenAI's image detail)")
        part["image_url"]["detail"] = detail
    return part


def user_message(text: str, images: Iterable[Any] = (), *, images_first: bool = False, **image_options: Any) -> dict[str, Any]:
    """A user turn with ``text`` and images (``image_options`` go to :func:`image_part`). Images follow the
    text by default; ``images_first`` puts them before it (some VLMs are trained that way)."""
    parts = [image_part(im, **image_options) for im in images]
    content = [*parts, text_part(text)] if images_first else [text_part(text), *parts]
    return {"role": "user", "content": content}


def message_text(message: dict[str, Any], image_placeholder: str = "<image>") -> str:
    """The text of a message, images replaced by a placeholder (for logs, traces and text-only backends)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(p["text"] if p.get("type") == "text" else image_placeholder for p in content)


def _encode(image: Any, *, max_side: int | None, fmt: str, quality: int) -> tuple[str, bytes]:
    import numpy as np
    from PIL import Image

    if max_side is not None and (not isinstance(max_side, int) or max_side < 8):
        raise ConfigError("max_side", max_side, "None or an integer >= 8 (pixels)")
    fmt = fmt.lower()
    if fmt not in ("jpeg", "png", "webp"):
        raise ConfigError("fmt", fmt, "'jpeg', 'png' or 'webp'")
    if not 1 <= quality <= 100:
        raise ConfigError("quality", quality, "an integer in [1, 100]")
    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.is_file():
            raise MalformedFile(str(p), "no such image file", fix="pass an existing image file, an array or encoded bytes")
        image = p.read_bytes()
    if isinstance(image, (bytes, bytearray)):
        raw = bytes(image)
        mime = next((m for sig, m in _MAGIC.items() if raw.startswith(sig)), None)
        if mime is None:
            raise MalformedFile("<image bytes>", f"not a JPEG, PNG, WebP or GIF (starts with {raw[:8]!r})",
                                fix="pass encoded image bytes or an RGB uint8 array")
        if max_side is None:
            return mime, raw
        try:
            pil = Image.open(io.BytesIO(raw))
            pil.load()
        except OSError as exc:
            raise MalformedFile("<image bytes>", f"cannot be decoded ({exc})", fix="pass a complete image file") from None
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))) or 0 in arr.shape:
            from ..errors import ShapeError

            raise ShapeError("image", f"{arr.dtype} {arr.shape}", "a uint8 array (H, W), (H, W, 3) RGB or (H, W, 4) RGBA")
        pil = Image.fromarray(arr)
    if pil.mode not in ("RGB", "L"):
        pil = pil.convert("RGB")
    if max_side is not None and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        pil = pil.resize((max(1, round(pil.size[0] * scale)), max(1, round(pil.size[1] * scale))), Image.LANCZOS)
    buf = io.BytesIO()
    pil.save(buf, format=fmt.upper(), **({"quality": quality} if fmt in ("jpeg", "webp") else {}))
    return f"image/{fmt}", buf.getvalue()


__all__ = ["ContentPart", "ImagesUnsupported", "check_parts", "has_images", "image_part", "message_text", "text_part", "user_message"]
