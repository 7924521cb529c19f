"""The study's decoder (issue 21): transformers' beam search on the CTranslate2 weights read back, its exact
cache shortcut, the tuning objective of each fusion arm, the resumable decode cache and the held-out text."""

from __future__ import annotations

import shutil

import pytest

from reprolab.papers.whisper_lm import FusionConfig, Hypothesis
from reprolab.papers.whisper_lm.experiment import DecodeCache, hold_out
from reprolab.papers.whisper_lm.hf_decode import prefix_terms, rescore_as_search


class _WordLM:
    """log10 score = -1 per word (+ -0.5 for </s>): easy to add up by hand."""

    def score(self, text: str, bos: bool = True, eos: bool = False) -> float:
        return -1.0 * len(text.split()) - (0.5 if eos else 0.0)


WORDS = {1: " one", 2: " two", 3: " three", 4: " four", 5: " five."}


def _text(tokens) -> str:
    return "".join(WORDS[t] for t in tokens)


def test_official_arm_objective_adds_every_prefix_term_and_the_end_step_again():
    h = Hypothesis((1, 2, 3, 4, 5), _text((1, 2, 3, 4, 5)).strip(), -3.0, 0.0)
    a, b = 0.5, 0.25
    acc = rescore_as_search([h], _WordLM(), _text, FusionConfig(alpha=a, beta=b, accumulate_lm=True))[0]
    # prefixes of 4 and 5 tokens (the LM term starts at the 4th token): 4 words, then 5 words + "." -> </s>
    t4 = a * -4.0 + b * 4
    t5 = a * (-5.0 - 0.5) + b * 5
    assert acc.score == pytest.approx((-3.0 + t4 + t5 + t5) / 6)  # the end token's step adds the full text's term again
    once = rescore_as_search([h], _WordLM(), _text, FusionConfig(alpha=a, beta=b))[0]
    assert once.score == pytest.approx((-3.0 + t5) / 6)  # the paper's formula: the current text's term once
    assert prefix_terms(_WordLM(), _text, h.tokens, FusionConfig())[:3] == [(0.0, 0)] * 3


def test_objectives_rank_an_lm_friendly_hypothesis_first_only_with_weight():
    good = Hypothesis((1, 2, 3, 4), "one two three four", -2.0, 0.0)
    bad = Hypothesis((1, 2, 3, 4, 5), "one two three four five.", -1.0, 0.0)
    lm = _WordLM()
    assert rescore_as_search([good, bad], lm, _text, FusionConfig())[0] .tokens == bad.tokens  # no LM: Whisper's order
    cache: dict = {}
    for acc in (False, True):
        top = rescore_as_search([good, bad], lm, _text, FusionConfig(alpha=2.0, accumulate_lm=acc), cache)[0]
        assert top.tokens == good.tokens  # the LM penalises the extra word
    assert cache  # LM terms are memoised across trials


def test_decode_cache_resumes_and_ignores_a_torn_line(tmp_path):
    c = DecodeCache(tmp_path / "d.jsonl")
    c.put_many([("a", {"hyps": [[[1], "x", -1.0]]}), ("b", {"hyps": []})])
    with open(tmp_path / "d.jsonl", "a") as f:
        f.write('["c", {"hyps"')  # a run killed mid-write
    again = DecodeCache(tmp_path / "d.jsonl")
    assert again.get("a") == {"hyps": [[[1], "x", -1.0]]} and again.get("b") == {"hyps": []} and again.get("c") is None


def test_hold_out_removes_held_sentences_after_normalisation_and_reports_coverage():
    corpus = ["Click the OK button.", "click the ok button", "Then click the OK button to close it.", "Open a new file now please."]
    kept, cov = hold_out(corpus, ["Click the OK button!"], "en", 3)
    assert kept == ["Open a new file now please."]  # equal after normalisation, or containing it whole
    assert cov["dropped"] == 3 and 0.0 <= cov["heldout_3gram_coverage"] <= 1.0


# ----------------------------------------------------------------------------- on Whisper tiny.en (real weights)


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("transformers")
    pytest.importorskip("faster_whisper", reason="pip install faster-whisper")
    from reprolab import assets
    from reprolab.errors import AssetMissing

    try:
        assets.path("whisper-tiny.en")
    except AssetMissing:
        pytest.skip("reprolab assets install whisper-tiny.en")
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng/sox missing: sudo apt-get install -y espeak-ng sox")
    from reprolab.papers.whisper_lm.hf_decode import HFWhisperLM

    return HFWhisperLM("whisper-tiny.en")


@pytest.mark.slow  # ~10-20 s: two models on real audio; the smoke run covers the decoder's code path by default
def test_hf_search_matches_ctranslate2_and_its_cache_shortcut_is_exact(tiny, monkeypatch):
    from reprolab.data import tts
    from reprolab.papers.whisper_lm import WhisperLM, wer
    from reprolab.papers.whisper_lm import hf_decode
    from reprolab.runtime import torch_threads

    refs = ["The cat eats fish in the big house.", "Open the file menu and choose print."]
    wavs = [tts.synthesize(s, "en", tts.Perturbation()) for s in refs]
    with torch_threads(2):
        enc = tiny.encode(wavs)
        fast = tiny.search(enc, "en", n_best=3, max_new_tokens=30)
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        # transformers' own path: cross-attention projected from the per-beam encoder output, every cache re-ordered
        monkeypatch.setattr(hf_decode.HFWhisperLM, "_prefilled_cache", lambda self, enc, beams: EncoderDecoderCache(DynamicCache(), DynamicCache()))
        full = tiny.search(enc, "en", n_best=3, max_new_tokens=30)
    assert [[h.tokens for h in g] for g in fast] == [[h.tokens for h in g] for g in full]
    for g, f in zip(fast, full):
        assert [h.logprob for h in g] == pytest.approx([h.logprob for h in f], abs=1e-3)
        assert g[0].score >= g[-1].score and all(h.logprob < 0 for h in g)
    ct2 = WhisperLM("whisper-tiny.en", cpu_threads=2)
    ct2_text = [ct2.nbest(ct2.encode(w), "en")[0].text for w in wavs]
    assert [g[0].text for g in fast] == ct2_text  # the same transcript as CTranslate2's own beam search
    assert wer(refs, ct2_text, "en") < 0.3
