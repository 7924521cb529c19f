"""A loopback OpenAI-compatible stub for tests: it records every request and answers each with one fixed text,
as a chat completion and as a raw completion alike.

    with openai_stub("a red square", usage={"prompt_tokens": 300, "completion_tokens": 3}) as (url, seen):
        OpenAICompatLLM(url, model="vlm").chat(...)
        path, body = seen[-1]          # "/v1/chat/completions", the JSON body sent

``text`` may instead be a function ``reply(body) -> dict``: the whole JSON answer, per request.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextlib.contextmanager
def openai_stub(text: str | Callable[[Any], dict[str, Any]] = "ok",
                usage: dict[str, int] | None = None) -> Iterator[tuple[str, list[tuple[str, Any]]]]:
    seen: list[tuple[str, Any]] = []
    fixed = None if callable(text) else json.dumps({
        "choices": [{"text": text, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage or {"prompt_tokens": 10, "completion_tokens": 2}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, body))
            answer = fixed if fixed is not None else json.dumps(text(body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1", seen
    finally:
        srv.shutdown()
        srv.server_close()
