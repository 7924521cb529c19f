"""llama-cpp-python's OpenAI-compatible server on loopback, for anything that talks HTTP (agents, judges, peers).

    with llama_server(assets.path("qwen2.5-coder-0.5b"), chat_format="chatml-function-calling") as url:
        llm = load_llm(url, model="local")                 # http://127.0.0.1:PORT/v1

``chat_format="chatml-function-calling"`` turns on the server's native tool calling (OpenAI ``tools``).
The server binds 127.0.0.1 on a free port and is terminated on exit.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

from ..errors import ConfigError, MissingExtra
from .base import LLMError


@contextlib.contextmanager
def llama_server(model_path: str | os.PathLike, *, chat_format: str | None = None, n_ctx: int = 4096, n_threads: int | None = None,
                 startup_s: float = 120.0) -> Iterator[str]:
    try:
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingExtra("llama-cpp-python[server]", "llm") from exc
    if not os.path.isfile(model_path):
        raise ConfigError("model_path", str(model_path), "an existing .gguf file (see `reprolab assets list`)")
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    threads = n_threads or int(os.environ.get("REPROLAB_THREADS", 0) or os.cpu_count() or 1)
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", str(n_ctx), "--n_threads", str(threads), "--verbose", "False"]
    if chat_format:
        cmd += ["--chat_format", chat_format]
    # The server's log goes to a file, never a pipe: uvicorn writes a line per request and llama.cpp its
    # timings, and a pipe nobody reads fills (64 KiB) and blocks the server mid-run.
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)

    def tail() -> str:
        log.seek(0)
        return log.read().decode(errors="replace")[-500:]

    try:
        deadline = time.time() + startup_s
        while True:
            if proc.poll() is not None:
                raise LLMError(f"llama_cpp.server exited: {tail()}", fix="check the model file and the flags")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise LLMError(f"llama_cpp.server did not come up in {startup_s:g} s", fix="give it more time or fewer threads")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
