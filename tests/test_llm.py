"""The shared language-model room: interface, cache, HTTP client, and the real backends on tiny models."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reprolab.errors import ConfigError
from reprolab.llm import CachedLLM, LLMError, LogprobsUnavailable, ResponseCache, Sampling, load_llm
from reprolab.llm.base import apply_stops
from reprolab.llm.fake import ScriptedLLM
from reprolab.llm.openai_http import OpenAICompatLLM


# -- interface ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(max_tokens=0), dict(temperature=-1), dict(temperature=math.nan), dict(top_p=0),
                                dict(n=0), dict(logprobs=21), dict(top_k=-5), dict(stop=("",)), dict(seed=1.5)])
def test_sampling_rejects_bad_values(kw):
    with pytest.raises(ConfigError):
        Sampling(**kw)


def test_sample_i_has_its_own_seed():
    s = Sampling(n=4, seed=10, stop="END")
    assert [s.one(i).seed for i in range(4)] == [10, 11, 12, 13] and s.one(2).n == 1
    assert s.stop == ("END",)


def test_apply_stops_cuts_at_the_first_stop():
    assert apply_stops("abc</x>def</y>", ["</y>", "</x>"]) == ("abc", True)
    assert apply_stops("abc", ["zz"]) == ("abc", False)


def test_chat_validates_messages():
    llm = ScriptedLLM(lambda p, s: "hi")
    with pytest.raises(ConfigError):
        llm.chat("hello")
    with pytest.raises(ConfigError):
        llm.chat([{"role": "robot", "content": "x"}])
    (c,) = llm.chat([{"role": "user", "content": "2+2?"}], prefill="The answer")
    assert llm.prompts[-1].endswith("Answer: The answer")


def test_default_choice_logprobs_uses_top_k_with_the_official_floor():
    llm = ScriptedLLM(lambda p, s: "", choices=lambda p: {"Yes": -0.2, " maybe": -2.0, "No": -5.0})
    # ScriptedLLM overrides choice_logprobs; check the base-class rule through next_token_logprobs
    from reprolab.llm.base import LLM

    got = LLM.choice_logprobs(llm, "x", ["Yes", "Nope"])
    assert got == {"Yes": -0.2, "Nope": -5.0}  # missing -> smallest listed


def test_neither_choice_in_the_top_k_is_an_error_not_a_tie():
    from reprolab.llm import ChoicesNotInTopK
    from reprolab.llm.base import LLM

    llm = ScriptedLLM(lambda p, s: "", choices=lambda p: {"Maybe": -0.2, "The": -2.0})
    with pytest.raises(ChoicesNotInTopK):  # flooring both would give p(Yes) = 0.5: a judgement out of nothing
        LLM.choice_logprobs(llm, "x", ["Yes", "No"])
    bad = ScriptedLLM(lambda p, s: "", choices=lambda p: {"Yes": math.nan, "No": -1.0})
    with pytest.raises(LLMError, match="invalid log-probability"):
        LLM.choice_logprobs(bad, "x", ["Yes", "No"])


def test_empty_prompt_is_refused():
    with pytest.raises(ConfigError, match="prompt"):
        ScriptedLLM(lambda p, s: "x").complete("")


# -- cache -------------------------------------------------------------------------------------

def _counting_llm():
    calls = []

    def respond(prompt, s):
        calls.append(s.seed)
        return f"answer-{s.seed}-{s.temperature}"

    return ScriptedLLM(respond), calls


def test_cache_resumes_per_sample(tmp_path):
    inner, calls = _counting_llm()
    llm = CachedLLM(inner, tmp_path / "c.sqlite")
    a = llm.complete("p", Sampling(n=4, seed=0, temperature=0.5))
    assert calls == [0, 1, 2, 3]
    b = llm.complete("p", Sampling(n=8, seed=0, temperature=0.5))
    assert calls == [0, 1, 2, 3, 4, 5, 6, 7]  # only the 4 new samples were generated
    assert [c.text for c in b[:4]] == [c.text for c in a] and all(c.cached for c in b[:4])
    assert llm.stats.cache_hits == 4 and llm.stats.calls == 8
    # a new process (new cache object on the same file) resumes too
    inner2, calls2 = _counting_llm()
    llm2 = CachedLLM(inner2, tmp_path / "c.sqlite")
    llm2.complete("p", Sampling(n=8, seed=0, temperature=0.5))
    assert calls2 == []


def test_cache_key_separates_model_params_and_seed(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    inner, calls = _counting_llm()
    llm = CachedLLM(inner, cache)
    llm.complete("p", Sampling(seed=0, temperature=0.5))
    llm.complete("p", Sampling(seed=0, temperature=0.7))
    llm.complete("p", Sampling(seed=1, temperature=0.5))
    llm.complete("q", Sampling(seed=0, temperature=0.5))
    other, calls_other = _counting_llm()
    other.name = "another-model"
    CachedLLM(other, cache).complete("p", Sampling(seed=0, temperature=0.5))
    assert len(calls) == 4 and len(calls_other) == 1 and len(cache) == 5


def test_tokens_per_second_counts_generated_tokens_only():
    llm = ScriptedLLM(lambda p, s: "one two three")
    llm.complete("p", Sampling(n=2))
    assert llm.stats.completion_tokens == 6 and llm.stats.tokens_per_second > 0


# -- HTTP client against a fake server ----------------------------------------------------------

class _Fake(BaseHTTPRequestHandler):
    script: list = []  # (status, body) answers, popped in order; then the last repeats
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, body, self.headers.get("Authorization")))
        status, payload = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *a):
        pass


@pytest.fixture
def fake_server():
    _Fake.script, _Fake.seen = [], []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


COMPLETION = {"choices": [{"text": " 4", "finish_reason": "stop",
                           "logprobs": {"tokens": [" 4"], "token_logprobs": [-0.1], "top_logprobs": [{" 4": -0.1, " 5": -2.5}]}}],
              "usage": {"prompt_tokens": 5, "completion_tokens": 1}}


def test_http_completion_retries_then_parses(fake_server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sekret")
    _Fake.script = [(503, {"error": "busy"}), (200, COMPLETION)]
    llm = OpenAICompatLLM(fake_server, model="m", api_key_env="MY_KEY", backoff_s=0.01)
    (c,) = llm.complete("2+2=", Sampling(logprobs=2, stop=("\n",)))
    assert c.text == " 4" and c.tokens[0].top == {" 4": -0.1, " 5": -2.5}
    path, body, auth = _Fake.seen[-1]
    assert path == "/v1/completions" and body["stop"] == ["\n"] and body["logprobs"] == 2 and auth == "Bearer sekret"
    assert len(_Fake.seen) == 2  # one retry
    assert llm.next_token_logprobs("2+2=") == {" 4": -0.1, " 5": -2.5}
    assert llm.choice_logprobs("2+2=", ["4", "7"]) == {"4": -0.1, "7": -2.5}


def test_http_chat_endpoint_without_template(fake_server):
    _Fake.script = [(200, {"choices": [{"message": {"role": "assistant", "content": "Yes"}, "finish_reason": "stop",
                                        "logprobs": {"content": [{"token": "Yes", "logprob": -0.3,
                                                                  "top_logprobs": [{"token": "Yes", "logprob": -0.3}, {"token": "No", "logprob": -1.4}]}]}}]})]
    llm = OpenAICompatLLM(fake_server, model="m")
    (c,) = llm.chat([{"role": "user", "content": "ok?"}], Sampling(logprobs=2))
    assert c.text == "Yes" and c.tokens[0].top["No"] == -1.4
    assert _Fake.seen[-1][0] == "/v1/chat/completions" and _Fake.seen[-1][1]["top_logprobs"] == 2
    with pytest.raises(ConfigError):
        llm.chat([{"role": "user", "content": "ok?"}], prefill="Ye")


@pytest.mark.parametrize("answer", [(200, b"<html>not json</html>"), (200, {"result": "no choices"}),
                                    (200, {"choices": [{"text": None}]}), (400, {"error": "bad model"})])
def test_http_garbage_is_a_clear_error(fake_server, answer):
    _Fake.script = [answer]
    llm = OpenAICompatLLM(fake_server, model="m", retries=0)
    with pytest.raises(LLMError):
        llm.complete("x")


def test_http_server_down_is_a_clear_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    llm = OpenAICompatLLM(f"http://127.0.0.1:{port}/v1", retries=1, backoff_s=0.01, timeout_s=2)
    with pytest.raises(LLMError, match="no answer") as e:
        llm.complete("x")
    assert "start the server" in e.value.fix


@pytest.mark.parametrize("value", [None, "NaN", 0.5, "inf"])
def test_http_non_finite_or_positive_logprobs_are_an_error(fake_server, value):
    bad = json.loads(json.dumps(COMPLETION))
    bad["choices"][0]["logprobs"]["top_logprobs"][0][" 5"] = float(value) if isinstance(value, str) else value
    raw = json.dumps(bad).encode()  # json writes NaN / Infinity, as some servers do
    _Fake.script = [(200, raw)]
    with pytest.raises(LLMError, match="log-probability"):
        OpenAICompatLLM(fake_server, retries=0).complete("x", Sampling(logprobs=2))


def test_a_hung_server_errors_within_the_deadline():
    """A server that accepts the connection and never answers: one read timeout, no retries of it."""
    import socket
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # the kernel accepts connections; nobody reads or answers
    try:
        llm = OpenAICompatLLM(f"http://127.0.0.1:{srv.getsockname()[1]}/v1", retries=3, timeout_s=1.0, deadline_s=30)
        t0 = time.monotonic()
        with pytest.raises(LLMError, match="no answer within"):
            llm.complete("x")
        assert time.monotonic() - t0 < 5  # not 4 x the timeout
        down = OpenAICompatLLM(f"http://127.0.0.1:{srv.getsockname()[1]}/v1", timeout_s=5.0, deadline_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(LLMError):
            down.complete("x")
        assert time.monotonic() - t0 < 4  # the deadline caps the read timeout
    finally:
        srv.close()
    with pytest.raises(ConfigError):
        OpenAICompatLLM("http://127.0.0.1:1/v1", timeout_s=0)


def test_http_no_logprobs_raises_typed(fake_server):
    _Fake.script = [(200, {"choices": [{"text": "a", "finish_reason": "stop"}]})]
    with pytest.raises(LogprobsUnavailable):
        OpenAICompatLLM(fake_server).next_token_logprobs("x")


def test_load_llm_dispatch_and_errors(tmp_path, monkeypatch):
    from reprolab.errors import AssetMissing, UnknownName

    monkeypatch.setenv("REPROLAB_ASSETS", str(tmp_path / "assets"))
    with pytest.raises(UnknownName, match="did you mean"):
        load_llm("qwen2.5-coder-0.5")
    pytest.importorskip("llama_cpp")
    with pytest.raises(AssetMissing, match="reprolab assets install qwen2.5-coder-0.5b"):
        load_llm("qwen2.5-coder-0.5b")
    assert isinstance(load_llm("http://127.0.0.1:9/v1"), OpenAICompatLLM)


# -- transformers backend on a tiny random model built here ----------------------------------------

@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<eos>", "the", "cat", "sat", "on", "mat", "Yes", "No", "is", "it", "?", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, eos_token_id=1, pad_token_id=1)
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(d)
    fast.save_pretrained(d)
    return d


def test_transformers_backend_round_trip(tiny_hf):
    from reprolab.llm.hf import TransformersLLM

    llm = load_llm(tiny_hf)
    assert isinstance(llm, TransformersLLM)
    (g,) = llm.complete("the cat", Sampling(max_tokens=4, logprobs=3))
    assert g.completion_tokens >= 1 and all(t.logprob <= 0 for t in g.tokens)
    assert all(t.token.strip() in {k.strip() for k in t.top} for t in g.tokens)  # greedy: the chosen token is in the top-3
    # score(a b) = score(a) + score(b | a)
    whole = llm.score(" cat sat on", prefix="the")
    parts = llm.score(" cat", prefix="the") + llm.score(" sat on", prefix="the cat")
    assert whole == pytest.approx(parts, abs=1e-4)
    ch = llm.choice_logprobs("is it", [" Yes", " No"])
    top = llm.next_token_logprobs("is it", top_k=13)
    assert ch[" Yes"] == pytest.approx(top["Yes"], abs=1e-5)
    assert math.log(sum(math.exp(v) for v in top.values())) == pytest.approx(0.0, abs=1e-4)  # the whole vocabulary sums to 1
    # seeded sampling is reproducible
    a = llm.complete("the", Sampling(max_tokens=5, temperature=1.0, n=2, seed=3))
    b = llm.complete("the", Sampling(max_tokens=5, temperature=1.0, n=2, seed=3))
    assert [x.text for x in a] == [x.text for x in b]


# -- llama.cpp on the smallest real asset ----------------------------------------------------------

@pytest.fixture(scope="module")
def gguf():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: make setup")
    from reprolab import assets

    if not assets.is_installed("gemma-3-270m"):
        pytest.skip("offline asset gemma-3-270m is not installed: run `make assets`")
    llm = load_llm("gemma-3-270m", n_ctx=512, n_threads=1)
    yield llm
    llm.close()


def test_llamacpp_generation_is_seeded_and_logprobs_are_consistent(gguf):
    a = gguf.complete("The capital of France is", Sampling(max_tokens=6, temperature=0.9, n=2, seed=5, logprobs=3))
    b = gguf.complete("The capital of France is", Sampling(max_tokens=6, temperature=0.9, n=2, seed=5))
    assert [x.text for x in a] == [x.text for x in b]
    for t in a[0].tokens:
        assert t.logprob <= 0 and len(t.top) >= 1
    (g,) = gguf.complete("1, 2, 3, 4,", Sampling(max_tokens=3, logprobs=5))
    first = g.tokens[0]
    assert first.logprob == pytest.approx(max(first.top.values()), abs=1e-3)  # greedy picks the top token
    top = gguf.next_token_logprobs("1, 2, 3, 4,", top_k=5)
    assert max(top.values()) == pytest.approx(first.logprob, abs=0.05)
    whole = gguf.score(" Paris is nice", prefix="The capital of France is")
    assert whole < 0
    assert gguf.score(" Paris", prefix="The capital of France is") > gguf.score(" Potato", prefix="The capital of France is")


def test_a_gguf_given_by_path_is_named_by_its_sha256_and_closed_at_exit_without_a_traceback(gguf, tmp_path):
    """Cache keys of a GGUF given by path use its content hash (hashed once, stamped); a script that
    never calls close() ends without llama-cpp-python's Llama.__del__ traceback."""
    import subprocess
    import sys

    from reprolab import assets

    path = gguf.path
    script = (f"from reprolab.llm import load_llm\n"
              f"llm = load_llm({str(path)!r}, n_ctx=256, n_threads=1)\n"
              f"print(llm.name)\n")  # no close(): the interpreter's exit must handle it
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-800:]
    assert r.stdout.strip() == f"llama.cpp:{path.name}@{assets.stamped_sha256(path)[:12]}"
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr, r.stderr[-800:]
    # a copy of the file with one byte changed is a different model to the cache
    copy = tmp_path / path.name
    data = bytearray(path.read_bytes()[: 1 << 20])
    copy.write_bytes(bytes(data))
    first = assets.stamped_sha256(copy)
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    assert assets.stamped_sha256(copy) != first


def test_llamacpp_reuses_the_kv_cache_of_a_shared_prefix_without_changing_the_output(gguf):
    """Prefix caching (issue 19, item 2): a call whose prompt extends the context's tokens evaluates only the
    new suffix, and reports the reused tokens; the greedy text is the same as from a cold context."""
    prompt = "Question: list three primes.\nAnswer:"
    n = len(gguf.tokenize(prompt))
    gguf.complete("An unrelated opening line about the weather", Sampling(max_tokens=2))
    (cold,) = gguf.complete(prompt, Sampling(max_tokens=5))
    assert cold.cached_prompt_tokens <= 2  # only BOS (and maybe a token) shared with the unrelated prompt
    (warm,) = gguf.complete(prompt, Sampling(max_tokens=5))
    assert warm.cached_prompt_tokens == n - 1 and warm.text == cold.text
    longer = prompt + warm.text + "\nQuestion: and two more?\nAnswer:"
    before = gguf.stats.cached_prompt_tokens
    (ext,) = gguf.complete(longer, Sampling(max_tokens=2))
    assert ext.cached_prompt_tokens >= n and gguf.stats.cached_prompt_tokens - before == ext.cached_prompt_tokens
    assert 0 < gguf.stats.prompt_reuse < 1


def test_http_cached_prompt_tokens_are_read_from_usage(fake_server):
    _Fake.script = [(200, {**COMPLETION, "usage": {"prompt_tokens": 50, "completion_tokens": 1,
                                                   "prompt_tokens_details": {"cached_tokens": 48}}}), (200, COMPLETION)]
    llm = OpenAICompatLLM(fake_server, model="m")
    (a,) = llm.complete("2+2=")
    (b,) = llm.complete("2+2=")
    assert (a.cached_prompt_tokens, b.cached_prompt_tokens) == (48, 0)
    assert llm.stats.prompt_reuse == pytest.approx(48 / 55)


def test_recorded_requests_replayed_to_llama_cpp_generate_the_same_tokens(gguf):
    """reprolab.llm.throughput: the raw arm gets the requests the room made and, with the same seeds and
    samplers, generates the same number of tokens (so a tokens/s ratio compares like with like)."""
    from reprolab.llm.fake import ScriptedLLM
    from reprolab.llm.throughput import raw_speed, recorded

    with recorded(gguf) as requests:
        ours = gguf.complete("Once upon a time", Sampling(max_tokens=6, temperature=0.8, n=2, seed=3))
    assert [s.seed for _, s in requests] == [3, 4] and {p for p, _ in requests} == {"Once upon a time"}
    tokens, seconds = raw_speed(gguf, requests)
    assert tokens == sum(c.completion_tokens for c in ours) and seconds > 0
    with pytest.raises(ConfigError):
        raw_speed(ScriptedLLM(lambda p, s: "x"), requests)
