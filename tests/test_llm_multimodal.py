"""Messages with images (reprolab.llm.multimodal): the parts, the request body an OpenAI-compatible VLM endpoint
receives (on a loopback stub), caching and tracing of such chats, and the typed refusal of text-only backends."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from reprolab.agents import Budget, Meter, MeteredLLM, Trace
from reprolab.errors import ConfigError, MalformedFile, ShapeError
from reprolab.llm import CachedLLM, Sampling
from reprolab.llm.fake import ScriptedLLM
from reprolab.llm.multimodal import ImagesUnsupported, has_images, image_part, message_text, user_message
from reprolab.llm.openai_http import OpenAICompatLLM
from tests.openai_stub import openai_stub


def _decode(url: str):
    from PIL import Image

    head, b64 = url.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_parts_encode_arrays_shrink_and_pass_encoded_bytes_through():
    frame = np.zeros((60, 200, 3), np.uint8)
    frame[:, :100] = (255, 0, 0)
    msg = user_message("What is shown?", [frame, frame], max_side=100)
    assert msg["role"] == "user" and [p["type"] for p in msg["content"]] == ["text", "image_url", "image_url"]
    im = _decode(msg["content"][1]["image_url"]["url"])
    assert im.size == (100, 30)  # longest side 200 -> 100, aspect kept
    r, g, b = im.convert("RGB").getpixel((10, 15))
    assert r > 200 and g < 60 and b < 60  # RGB order kept (red stays red)
    png = io.BytesIO()
    from PIL import Image

    Image.fromarray(frame).save(png, format="PNG")
    part = image_part(png.getvalue())
    assert part["image_url"]["url"].startswith("data:image/png;base64,")
    assert image_part("https://example.org/a.jpg", detail="low") == {"type": "image_url", "image_url": {"url": "https://example.org/a.jpg", "detail": "low"}}
    assert has_images([msg]) and not has_images([{"role": "user", "content": "x"}])
    assert message_text(msg) == "What is shown?<image><image>"


def test_bad_images_are_typed_errors(tmp_path):
    with pytest.raises(ShapeError):
        image_part(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(MalformedFile):
        image_part(b"not an image at all")
    with pytest.raises(MalformedFile):
        image_part(tmp_path / "missing.jpg")
    with pytest.raises(ConfigError):
        image_part(np.zeros((4, 4, 3), np.uint8), max_side=2)


@pytest.fixture
def stub():
    with openai_stub("a red square", usage={"prompt_tokens": 300, "completion_tokens": 3}) as (url, seen):
        yield url, seen


def test_images_go_to_the_chat_endpoint_even_with_a_chat_template(stub, tmp_path):
    stub, seen = stub
    tmpl = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    llm = OpenAICompatLLM(stub, model="vlm", chat_template=tmpl)
    frame = np.full((8, 8, 3), 200, np.uint8)
    msgs = [{"role": "system", "content": "You see images."}, user_message("Colour?", [frame])]
    (c,) = llm.chat(msgs, Sampling(max_tokens=5))
    path, body = seen[-1]
    assert c.text == "a red square" and path == "/v1/chat/completions"
    assert body["messages"][0] == {"role": "system", "content": "You see images."}
    parts = body["messages"][1]["content"]
    assert parts[0] == {"type": "text", "text": "Colour?"} and parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    llm.chat([{"role": "user", "content": "text only"}], Sampling(max_tokens=5))
    assert seen[-1][0] == "/v1/completions"  # text chats still go through the template
    # cached by the messages: the second identical chat makes no request
    cached = CachedLLM(OpenAICompatLLM(stub, model="vlm"), tmp_path / "c.sqlite")
    n = len(seen)
    a = cached.chat(msgs, Sampling(max_tokens=5))[0]
    b = cached.chat(msgs, Sampling(max_tokens=5))[0]
    assert len(seen) == n + 1 and a.text == b.text and b.cached and cached.stats.cache_hits == 1
    # traces keep a placeholder, not 100 KB of base64
    trace = Trace()
    MeteredLLM(OpenAICompatLLM(stub, model="vlm"), Meter(Budget(max_calls=2)), trace).chat(msgs)
    (ev,) = trace.of("llm_call")
    assert ev["prompt"][1]["content"] == "Colour?<image>"


def test_text_only_backends_refuse_images_with_a_typed_error():
    llm = ScriptedLLM(lambda p, s: "x")
    msg = user_message("What?", [np.zeros((4, 4, 3), np.uint8)])
    with pytest.raises(ImagesUnsupported):
        llm.chat([msg])
    with pytest.raises(ConfigError):
        llm.chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}])
    assert llm.prompts == []
