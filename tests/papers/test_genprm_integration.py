"""The same GenPRM call through a real OpenAI-compatible server on loopback and through llama.cpp in-process.

The server is llama-cpp-python's own (``python -m llama_cpp.server``) on the smallest offline
GGUF (Gemma 3 270M, a base model: both sides use reprolab's plain chat template, so both send
the same raw prompts)."""

from __future__ import annotations

import math

import pytest

from reprolab.data.math_steps import corrupt, make_problems
from reprolab.llm import load_llm
from reprolab.llm.chat_template import PLAIN_TEMPLATE
from reprolab.papers.genprm.genprm import GenerativePRM, GenPRMConfig

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: make setup")
pytest.importorskip("uvicorn", reason="llama-cpp-python[server] is not installed: make setup")


@pytest.fixture(scope="module")
def gemma_path():
    from reprolab import assets

    if not assets.is_installed("gemma-3-270m"):
        pytest.skip("offline asset gemma-3-270m is not installed: run `make assets`")
    return assets.path("gemma-3-270m")


@pytest.fixture(scope="module")
def server(gemma_path):
    from reprolab.llm.server import llama_server

    with llama_server(gemma_path, n_ctx=1024, n_threads=1, startup_s=60) as url:
        yield url


def _well_formed(s, n_steps):
    assert len(s.rewards) == n_steps and 1 <= s.judged_steps <= n_steps
    for t in range(s.judged_steps):
        r = s.rewards[t]
        assert (0.0 <= r <= 1.0) or (math.isnan(r) and s.malformed > 0)
        for p in s.paths[t]:
            assert p.code and p.execution_status  # code was written and run in the sandbox
            assert p.malformed or 0.0 <= p.p_yes <= 1.0


def test_same_genprm_call_over_http_and_in_process(server, gemma_path):
    p = make_problems(1, seed=0)[0]
    steps = corrupt(p, 0, "arithmetic").steps[:1]
    cfg = GenPRMConfig(n=1, max_tokens_analyze=12, max_tokens_code=16)
    http = load_llm(server, model="gemma", chat_template=PLAIN_TEMPLATE, timeout_s=60)
    local = load_llm("gemma-3-270m", n_ctx=1024, n_threads=1)
    try:
        s_http = GenerativePRM(http, cfg).score_steps(p.question, steps, stop_at_first_error=False)
        s_local = GenerativePRM(local, cfg).score_steps(p.question, steps, stop_at_first_error=False)
    finally:
        local.close()
        http.close()
    _well_formed(s_http, 1)
    _well_formed(s_local, 1)
    assert s_http.reward_source == s_local.reward_source == "logprobs"
    assert http.stats.calls > 0 and http.stats.completion_tokens > 0


def test_readme_http_example_runs_as_written(server):
    """The README's HTTP block, with only the server's address (and, for speed, the smallest model's
    vocabulary for the chat template and short token budgets) substituted."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "reprolab/papers/genprm/README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    (code,) = [b for b in blocks if "http://127.0.0.1:8000/v1" in b]
    code = (code.replace("http://127.0.0.1:8000/v1", server)
                .replace('"qwen2.5-coder-1.5b"', '"qwen2.5-coder-0.5b"')
                .replace("GenPRMConfig(n=1)", "GenPRMConfig(n=1, max_tokens_analyze=12, max_tokens_code=16)"))
    from reprolab import assets

    if not assets.is_installed("qwen2.5-coder-0.5b"):
        pytest.skip("offline asset qwen2.5-coder-0.5b is not installed: run `make assets`")
    scope: dict = {}
    exec(compile(code, "README.md (genprm, HTTP)", "exec"), scope)
    s = scope["scores"]
    assert len(s.rewards) == 2 and s.judged_steps >= 1
