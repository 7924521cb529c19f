"""Whisper-LM's LogitsProcessor on a tiny random HF ``WhisperForConditionalGeneration`` built here,
checked against a hand computation, against plain beam search at alpha = beta = 0, on a planted effect,
and against the official ``whisper-lm-transformers`` processor when that package is installed."""

from __future__ import annotations

import importlib
import random
import sys
import types

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from reprolab.papers.whisper_lm import ArpaLM, FusionConfig, normalise_text, train_kneser_ney, write_arpa  # noqa: E402
from reprolab.papers.whisper_lm.integrations import WhisperLMLogitsProcessor  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

WORDS = "el gato come pescado en la casa grande y perro duerme mucho".split()


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<|endoftext|>", "<|startoftranscript|>", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<|endoftext|>", bos_token="<|startoftranscript|>")


@pytest.fixture(scope="module")
def model(tokenizer):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=8, max_source_positions=8,
                        max_target_positions=32, pad_token_id=0, eos_token_id=1, bos_token_id=2, decoder_start_token_id=2,
                        suppress_tokens=[], begin_suppress_tokens=[])
    torch.manual_seed(0)
    return WhisperForConditionalGeneration(cfg).eval()


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    # planted: the LM has only ever seen one sentence, many times
    path = tmp_path_factory.mktemp("lm") / "planted.arpa"
    write_arpa(train_kneser_ney(["el gato come pescado en la casa grande"] * 20 + ["y perro duerme mucho"] * 2, order=3), path)
    return ArpaLM(path)


def _generate(model, procs=None, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(1, 8, 16)
    from transformers import LogitsProcessorList

    return model.generate(x, num_beams=3, max_new_tokens=8, do_sample=False, logits_processor=LogitsProcessorList(procs or []))


def test_processor_adds_alpha_lm_plus_beta_words_to_the_top_tokens(tokenizer, lm):
    cfg = FusionConfig(alpha=0.7, beta=0.3, beam_size=3, accumulate_lm=True)
    proc = WhisperLMLogitsProcessor(tokenizer, lm, cfg)
    ids = torch.tensor([[2, 3, 4, 5], [2, 3, 4, 4]])  # "<sot> el gato come", "<sot> el gato gato"
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(2, len(tokenizer), generator=gen)
    out = proc(ids, scores)
    logp = torch.log_softmax(scores, -1)
    for j in range(2):
        finite = torch.isfinite(out[j]).nonzero().flatten().tolist()
        assert len(finite) == cfg.beam_size + 1
        assert set(finite) == set(torch.topk(logp[j], cfg.beam_size + 1).indices.tolist())
        for t in finite:
            text = tokenizer.decode([i for i in ids[j].tolist() + [t] if i > 2])
            n_tok = len([i for i in ids[j].tolist() + [t] if i > 2])
            expect = logp[j, t].item()
            if n_tok >= 4 and t != 1:
                norm = normalise_text(text)
                expect += 0.7 * lm.score(norm, bos=True, eos=False) + 0.3 * len(norm.split())
            assert out[j, t].item() == pytest.approx(expect, abs=1e-4)


def test_zero_weights_leave_beam_search_unchanged(model, tokenizer, lm):
    plain = _generate(model)
    fused = _generate(model, [WhisperLMLogitsProcessor(tokenizer, lm, FusionConfig(alpha=0.0, beta=0.0, beam_size=3), top_k=len(tokenizer))])
    assert torch.equal(plain, fused)


def test_a_strong_lm_pulls_the_output_towards_its_text(model, tokenizer, lm):
    # the random model prefers one token; with every token a candidate (top_k = vocab), the LM term from the
    # first token, alpha = 5 and a word bonus beta = 5 (without it the accumulated LM term favours stopping early,
    # which is what beta is for) the LM - which has seen only 'el gato come pescado ...' - must win
    plain = tokenizer.decode(_generate(model)[0], skip_special_tokens=True)
    cfg = FusionConfig(alpha=5.0, beta=5.0, beam_size=3, token_threshold=0, accumulate_lm=True)
    proc = WhisperLMLogitsProcessor(tokenizer, lm, cfg, top_k=len(tokenizer))
    fused = tokenizer.decode(_generate(model, [proc])[0], skip_special_tokens=True)
    assert fused != plain
    per_word = lambda s: lm.score(normalise_text(s)) / max(1, len(s.split()))  # noqa: E731
    assert len(fused.split()) >= 4 and per_word(fused) > per_word(plain) + 0.5


def test_non_accumulating_mode_telescopes_to_the_lm_term_of_the_final_text(tokenizer, lm):
    # paper formula: the sum over steps of the processor's outputs = sum log p + F(final text)
    cfg = FusionConfig(alpha=0.8, beta=0.2, beam_size=3)
    proc = WhisperLMLogitsProcessor(tokenizer, lm, cfg, top_k=len(tokenizer))
    seq = [2, 3, 4, 5, 6, 7, 8]
    gen = torch.Generator().manual_seed(3)
    total = whisper = 0.0
    for k in range(1, len(seq)):
        scores = torch.randn(1, len(tokenizer), generator=gen)
        out = proc(torch.tensor([seq[:k]]), scores)
        total += out[0, seq[k]].item()
        whisper += torch.log_softmax(scores, -1)[0, seq[k]].item()
    norm = normalise_text(tokenizer.decode(seq[1:]))
    assert total == pytest.approx(whisper + 0.8 * lm.score(norm) + 0.2 * len(norm.split()), abs=1e-4)


def test_matches_the_official_whisper_lm_transformers_processor(tokenizer, lm, monkeypatch, tmp_path):
    """Parity with ``whisper-lm-transformers`` 0.2.0 (install it with ``pip install --no-deps
    whisper-lm-transformers==0.2.0 kenlm``). Its only import we cannot satisfy offline without openai-whisper's
    numba/triton stack is ``whisper.normalizers.BasicTextNormalizer``; if openai-whisper is absent we stand in
    our re-implementation of it (tested against the normaliser's rules above)."""
    pytest.importorskip("kenlm", reason="pip install kenlm")
    if "whisper" not in sys.modules:
        try:
            importlib.import_module("whisper.normalizers")
        except ImportError:
            shim = types.ModuleType("whisper")
            norm = types.ModuleType("whisper.normalizers")
            norm.BasicTextNormalizer = lambda: normalise_text  # type: ignore[attr-defined]
            shim.normalizers = norm  # type: ignore[attr-defined]
            monkeypatch.setitem(sys.modules, "whisper", shim)
            monkeypatch.setitem(sys.modules, "whisper.normalizers", norm)
    try:
        from whisper_lm_transformers.logits_processor import WhisperLMLogitsProcessor as Official
    except ImportError:
        pytest.skip("whisper-lm-transformers is not installed: pip install --no-deps whisper-lm-transformers==0.2.0")
    import kenlm

    official = Official(tokenizer, kenlm.Model(str(lm.path)), lm_alpha=0.6, lm_beta=0.4, top_k=4)
    ours = WhisperLMLogitsProcessor(tokenizer, lm, FusionConfig(alpha=0.6, beta=0.4, beam_size=3, accumulate_lm=True), top_k=4)
    rng = random.Random(0)
    for _ in range(5):
        ids = torch.tensor([[2] + [rng.randrange(3, len(tokenizer)) for _ in range(rng.randint(1, 6))] for _ in range(1)])
        scores = torch.randn(1, len(tokenizer), generator=torch.Generator().manual_seed(rng.randrange(1000)))
        a, b = official(ids, scores.clone()), ours(ids, scores.clone())
        assert torch.equal(torch.isfinite(a), torch.isfinite(b))
        assert torch.allclose(a[torch.isfinite(a)], b[torch.isfinite(b)], atol=1e-4)
