"""select() through a real OpenAI-compatible server on loopback and through llama.cpp in-process.

The server is llama-cpp-python's own on the smallest offline GGUF (Gemma 3 270M, a base model: both
sides use reprolab's plain chat template, so both send the same raw prompt and, greedy, get the same reply)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("statsforecast", reason="statsforecast is not installed: make setup")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: make setup")
pytest.importorskip("uvicorn", reason="llama-cpp-python[server] is not installed: make setup")

from reprolab.llm import load_llm  # noqa: E402
from reprolab.llm.chat_template import PLAIN_TEMPLATE  # noqa: E402
from reprolab.papers.ts_select import Candidate, select  # noqa: E402

SPACE = [Candidate.parse(n) for n in ("Naive[season=1,repr=raw]", "SeasonalNaive[season=m,repr=raw]", "AutoETS[model=ZZZ,season=m,repr=log]")]


@pytest.fixture(scope="module")
def gemma_path():
    from reprolab import assets

    if not assets.is_installed("gemma-3-270m"):
        pytest.skip("offline asset gemma-3-270m is not installed: run `make assets`")
    return assets.path("gemma-3-270m")


@pytest.mark.slow  # ~18 s (server start, two model loads): over this paper's share of `make test`
def test_same_selection_over_http_and_in_process(gemma_path):
    from reprolab.llm.server import llama_server

    t = np.arange(48.0)
    series = pd.Series(100 + 10 * np.sin(2 * np.pi * t / 12) + t, index=pd.date_range("2000-01-01", periods=48, freq="MS"))
    kw = dict(candidates=SPACE, max_values=24, max_tokens=12)
    with llama_server(gemma_path, n_ctx=2048, n_threads=1, startup_s=60) as url:
        http = load_llm(url, model="gemma", chat_template=PLAIN_TEMPLATE, timeout_s=60)
        try:
            a = select(series, http, "values+meta", **kw)
        finally:
            http.close()
    local = load_llm(gemma_path, n_ctx=2048, n_threads=1, chat_template=PLAIN_TEMPLATE)
    try:
        b = select(series, local, "values+meta", **kw)
    finally:
        local.close()
    for s in (a, b):
        assert s.m == 12 and s.prompt == "values+meta" and s.prompt_tokens > 0 and s.completion_tokens > 0 and s.seconds > 0
        assert s.status in ("exact", "fuzzy", "mentioned", "invalid") and (s.candidate is None) == (s.status == "invalid")
    assert a.raw == b.raw and a.status == b.status  # the same greedy reply from the same raw prompt
