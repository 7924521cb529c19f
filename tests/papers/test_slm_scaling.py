"""slm_scaling: the official interleaving, the serialiser, vocabulary extension on real HF models, cloze
scoring, units, scaling fits, and each claim's rule against a control that must fail and a planted effect."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from reprolab.errors import ConfigError, MalformedFile, ShapeError
from reprolab.papers.slm_scaling import (SPEECH_TOKEN, TEXT_TOKEN, AlignedWord, ByteTokenizer, InterleavingConfig, TextlessTokenizer,
                                         UnitConfig, assign_modalities, dedup, evaluate_cloze, extend_vocabulary, fit_power_law,
                                         fit_unit_tokenizer, isoflop_optimum, pair_outcomes, poisson_spans, read_cloze_folder,
                                         scaling_fit, select_spans_poisson, sequence_nll, serialise, span_lengths)
from reprolab.study import Verdict

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- interleaving

def test_serialiser_hand_made_example_exactly():
    words = [AlignedWord("hola", 0.0, 0.2), AlignedWord(" mundo", 0.2, 0.5), AlignedWord(" que", 0.5, 0.6), AlignedWord(" tal", 0.6, 0.9)]
    units, durs = dedup([3, 3, 1, 1, 1, 4, 4, 2, 2, 2, 2, 5, 5, 5, 5, 6, 6, 6, 6, 6, 0, 0, 7])  # 40 ms frames
    assert units == [3, 1, 4, 2, 5, 6, 0, 7] and durs == [2, 3, 2, 4, 4, 5, 2, 1]
    # unit end times: 0.08 0.20 0.28 0.44 0.60 0.80 0.88 0.92; speech words 2..3 span [0.2, 0.9] -> units ending in it
    s = serialise(words, units, durs, [0, 1, 1, 0])
    assert s == "<text>hola<speech><Un1><Un4><Un2><Un5><text> tal"
    assert serialise(words, units, durs, [1, 0, 0, 1]) == "<speech><Un3><Un1><text> mundo que<speech><Un5><Un6><Un0>"
    assert serialise(words, units, durs, [0, 0, 0, 0]) == "<text>hola mundo que tal"


def test_poisson_spans_match_the_official_statistics():
    rng = np.random.default_rng(0)
    fractions, lengths, touching, neighbours = [], [], 0, 0
    for _ in range(300):
        spans = poisson_spans(1000, 10, 0.3, rng)  # in the order drawn
        covered = np.zeros(1000, int)
        for i, (a, b) in enumerate(spans):
            assert not covered[a:b].any()  # no overlap
            covered[a:b] = 1
            assert b not in {s for s, _ in spans[i + 1:]}  # the word right after a span never starts a later one
        fractions.append(covered.mean())
        lengths += [b - a for a, b in spans]
        ordered = sorted(spans)
        neighbours += len(ordered) - 1
        touching += sum(b == a2 for (_, b), (a2, _) in zip(ordered, ordered[1:]))  # an earlier span right after a later one
    assert 0.3 <= min(fractions) and max(fractions) <= 0.33
    assert abs(np.mean(lengths) - 10) <= 0.5
    assert 0 < touching / neighbours < 0.05  # the official code lets ~2% of neighbouring spans touch
    mask = select_spans_poisson(50, 10, 0.3, np.random.default_rng(1))
    assert mask.sum() >= math.ceil(50 * 0.3) and set(mask.tolist()) <= {0, 1}


def test_random_and_span_methods():
    rng = np.random.default_rng(0)
    r = assign_modalities(20_000, InterleavingConfig(method="random"), rng)
    assert abs(r.mean() - 0.5) < 0.02
    s = assign_modalities(20_000, InterleavingConfig(method="span", span=5, prob=0.05), rng)
    assert min(span_lengths(s)) >= 5  # a run lasts at least `span` words
    with pytest.raises(ConfigError):
        InterleavingConfig(method="bogus")


def test_serialiser_refuses_mismatched_inputs():
    w = [AlignedWord("a", 0, 0.1)]
    with pytest.raises(ShapeError):
        serialise(w, [1, 2], [1], [1])
    with pytest.raises(ShapeError):
        serialise(w, [1], [1], [1, 0])


# ----------------------------------------------------------------------------- vocabulary (real formats)

def _tiny_qwen():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    vocab = {"<unk>": 0, "<pad>": 1, "hola": 2, "mundo": 3, "que": 4, "tal": 5}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>")
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=64, tie_word_embeddings=True)
    return Qwen2ForCausalLM(cfg), tokenizer


def test_extend_vocabulary_twist_on_qwen2():
    model, tok = _tiny_qwen()
    old = model.get_input_embeddings().weight.detach().clone()
    model, tok = extend_vocabulary(model, tok, num_units=7, init="twist")
    assert len(tok) == 6 + 7 + 2 and model.get_input_embeddings().weight.shape[0] == len(tok)
    torch.testing.assert_close(model.get_input_embeddings().weight[:6], old)  # text rows kept (TWIST)
    ids = tok("hola <Un3><speech> tal", add_special_tokens=False)["input_ids"]
    assert ids == [2, tok.convert_tokens_to_ids("<Un3>"), tok.convert_tokens_to_ids(SPEECH_TOKEN), 5]
    assert tok.convert_tokens_to_ids("<Un0>") == 6 and tok.convert_tokens_to_ids(TEXT_TOKEN) == 14
    assert model(torch.tensor([ids])).logits.shape == (1, 4, 15)


def test_extend_vocabulary_textless_on_qwen2_and_gpt_same_path():
    from reprolab.nn.gpt import GPT, GPTConfig

    model, _ = _tiny_qwen()
    old = model.get_input_embeddings().weight.detach().clone()
    model, units = extend_vocabulary(model, None, num_units=4, init="textless")
    assert isinstance(units, TextlessTokenizer) and model.get_input_embeddings().weight.shape[0] == 6
    torch.testing.assert_close(model.get_input_embeddings().weight, old[:6])
    assert units.encode("<speech><Un0><Un3>") == [1, 2, 5]
    with pytest.raises(ConfigError):
        units.encode("<text>hola")
    gpt = GPT(GPTConfig(vocab_size=256, block_size=16, n_layer=1, n_head=2, n_embd=8))
    byte_rows = gpt.tok_emb.weight.detach().clone()
    gpt, tok = extend_vocabulary(gpt, ByteTokenizer(), num_units=5, init="twist")
    assert len(tok) == 263 and gpt.cfg.vocab_size == 263 and gpt.head.weight is gpt.tok_emb.weight
    torch.testing.assert_close(gpt.tok_emb.weight[:256], byte_rows)
    ids = tok.encode("<text>hé<speech><Un4>")
    assert ids == [262, 104, 195, 169, 261, 260] and tok.decode(ids) == "<text>hé<speech><Un4>"
    assert gpt(torch.tensor([ids]))[0].shape == (1, 6, 263)
    with pytest.raises(ConfigError):
        extend_vocabulary(gpt, tok, 5, init="bogus")


def test_sequence_nll_masks_and_restricts():
    from reprolab.nn.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=1, n_embd=8))
    full = sequence_nll(gpt, [[1, 2, 3, 4]])
    only = sequence_nll(gpt, [[1, 2, 3, 4]], scored=[4])
    restricted = sequence_nll(gpt, [[1, 2, 3, 4]], scored=[4], allowed=[3, 4])
    with torch.no_grad():
        logits, _ = gpt(torch.tensor([[1, 2, 3]]))
    lp = torch.log_softmax(logits[0, 2], -1)
    assert abs(only[0] + float(lp[4])) < 1e-5
    assert abs(restricted[0] + float(torch.log_softmax(logits[0, 2, [3, 4]], -1)[1])) < 1e-5
    assert restricted[0] < only[0] and len(full) == 1


# ----------------------------------------------------------------------------- cloze (slamkit layout)

def test_cloze_folder_scoring_with_ties(tmp_path):
    from reprolab.data.tts import write_wav

    for i, (a, b) in enumerate([(0.1, 0.3), (0.3, 0.1), (0.2, 0.2)]):
        write_wav(tmp_path / f"{i}_correct.wav", np.full(160, a), 16_000)
        write_wav(tmp_path / f"{i}_incorrect.wav", np.full(160, b), 16_000)
    pairs = read_cloze_folder(tmp_path)
    assert [p.correct.name for p in pairs] == ["0_correct.wav", "1_correct.wav", "2_correct.wav"]
    from reprolab.data.tts import read_wav

    out = evaluate_cloze(tmp_path, lambda paths: [float(read_wav(p)[0][0]) for p in paths])  # "NLL" = amplitude
    assert out.tolist() == [1.0, 0.0, 0.5]
    assert pair_outcomes([1.0], [1.0]).tolist() == [0.5]
    write_wav(tmp_path / "2_extra.wav", np.zeros(10), 16_000)
    with pytest.raises(MalformedFile):
        read_cloze_folder(tmp_path)
    (tmp_path / "2_extra.wav").write_bytes(b"not a wav")
    with pytest.raises(MalformedFile):
        read_wav(tmp_path / "2_extra.wav")


# ----------------------------------------------------------------------------- units

def test_units_dedup_and_codebook_cache(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    waves = [np.sin(2 * np.pi * f * t) * 0.3 + 0.01 * rng.standard_normal(len(t)) for f in (200, 500, 1200)]
    from reprolab.papers.slm_scaling import audio_features

    cfg = UnitConfig(num_units=4)
    feats = [audio_features(w, cfg) for w in waves]
    tok = fit_unit_tokenizer(feats, cfg, cache_dir=tmp_path)
    again = fit_unit_tokenizer(feats, cfg, cache_dir=tmp_path)  # loaded from the cache
    torch.testing.assert_close(tok.centroids, again.centroids)
    assert len(list(tmp_path.glob("codebook-*.npz"))) == 1
    units, durs = tok.encode(np.concatenate(waves))
    assert sum(durs) == len(tok.frame_units(np.concatenate(waves))) and all(a != b for a, b in zip(units, units[1:]))
    assert len(set(units)) >= 3  # three tones, three kinds of unit


# ----------------------------------------------------------------------------- scaling fits

def test_power_law_and_isoflop_fits():
    C = np.array([1e9, 4e9, 1.6e10])
    k, _ = fit_power_law(C, 3 * C ** -0.1)
    assert abs(k + 0.1) < 1e-9
    N = np.array([1e4, 4e4, 1.6e5])
    opt = isoflop_optimum(N, (np.log(N) - np.log(3e4)) ** 2 + 2)
    assert abs(opt.n_star - 3e4) / 3e4 < 1e-6 and not opt.on_edge
    assert isoflop_optimum(N, [1.0, 2.0, 3.0]).on_edge
    fit = scaling_fit(C, N, np.array([[2.0, 2.2, 2.5], [1.8, 1.7, 1.9], [1.7, 1.5, 1.45]]))
    assert fit.frontier == [2.0, 1.7, 1.45] and fit.a > 0 and fit.gamma < 0


# ----------------------------------------------------------------------------- the rules: control fails, planted passes

B = [1e9, 4e9, 1.6e10]
NS = [1e4, 4e4, 1.6e5]


def _grid_rows(gamma: float, shift: float, rng: np.random.Generator, n_utt: int = 60, noise: float = 0.05, base=None) -> list[list[float]]:
    """Per-run rows (budget-major) of per-utterance NLL: mean loss from a parabola in log N whose vertex moves
    with C^shift and whose floor falls as C^gamma; utterance effects shared across runs (paired)."""
    utt = rng.normal(0, 0.3, n_utt) if base is None else base
    rows = []
    for c in B:
        ns = 3e4 * (c / B[1]) ** shift
        floor = 2.0 * (c / B[0]) ** gamma
        for n in NS:
            mean = floor + 0.05 * (np.log(n) - np.log(ns)) ** 2
            rows.append((mean + utt + noise * rng.standard_normal(n_utt)).tolist())
    return rows


def _metrics(inter_rows, textless_rows) -> dict:
    m = {"num_units": 50, "budgets": B, "sizes_n": NS, "grid": {"interleaved": inter_rows, "textless": textless_rows}, "fits": {},
         "frontier": {}}
    for r, rows in m["grid"].items():
        loss = np.asarray([np.mean(x) for x in rows]).reshape(3, 3)
        f = scaling_fit(B, NS, loss)
        m["fits"][r] = dataclasses.asdict(f)
        m["frontier"][r] = f.frontier
    return m


def test_rule_scaling_control_fails_planted_passes():
    from reprolab.papers.slm_scaling.study import judge_scaling

    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.3, 60)
    planted = _metrics(_grid_rows(-0.10, 0.3, rng, base=base), _grid_rows(-0.03, 0.3, rng, base=base))
    assert judge_scaling(planted).verdict == Verdict.REPRODUCED
    same = _grid_rows(-0.05, 0.3, rng, base=base)
    control = _metrics(same, [list(np.asarray(r) + 0.02 * rng.standard_normal(60)) for r in same])  # one regime twice
    assert judge_scaling(control).verdict != Verdict.REPRODUCED
    untrained = _metrics([[math.log(50) + 0.1] * 60] * 9, same)
    assert judge_scaling(untrained).verdict == Verdict.NOT_TESTABLE


def test_rule_allocation_control_fails_planted_passes_edge_inconclusive():
    from reprolab.papers.slm_scaling.study import judge_allocation

    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.3, 60)
    planted = _metrics(_grid_rows(-0.05, 0.45, rng, base=base, noise=0.01), _grid_rows(-0.05, 0.05, rng, base=base, noise=0.01))
    assert judge_allocation(planted).verdict == Verdict.REPRODUCED
    same = _grid_rows(-0.05, 0.2, rng, base=base, noise=0.01)
    control = _metrics(same, [list(np.asarray(r) + 0.01 * rng.standard_normal(60)) for r in same])
    assert judge_allocation(control).verdict != Verdict.REPRODUCED
    edge = _metrics(_grid_rows(-0.05, 2.0, rng, base=base, noise=0.01), _grid_rows(-0.05, 0.0, rng, base=base, noise=0.01))
    assert judge_allocation(edge).verdict == Verdict.INCONCLUSIVE


def test_rule_twist_and_tsc_control_fails_planted_passes():
    from reprolab.papers.slm_scaling.study import judge_tsc, judge_twist

    rng = np.random.default_rng(2)
    tw = rng.normal(2.0, 0.3, 80)
    ok = {"budgets": B, "textlm_val_nll": [1.5, 1.4], "text_unigram_nll": 3.0}
    planted = {**ok, "twist": {"size": "s", "twist": tw.tolist(), "scratch": (tw + 0.1 + 0.02 * rng.standard_normal(80)).tolist()}}
    assert judge_twist(planted).verdict == Verdict.REPRODUCED
    control = {**ok, "twist": {"size": "s", "twist": tw.tolist(), "scratch": (tw + 0.05 * rng.standard_normal(80)).tolist()}}
    assert judge_twist(control).verdict != Verdict.REPRODUCED
    untrained_text = {**planted, "textlm_val_nll": [3.1, 1.0]}  # one TextLM knows no more than byte frequencies
    assert judge_twist(untrained_text).verdict == Verdict.NOT_TESTABLE

    n = 150
    good = (rng.random(n) < 0.8).astype(float).tolist()
    chance = lambda: (rng.random(n) < 0.5).astype(float).tolist()  # noqa: E731 - random choices
    m = {"cloze_largest": {"interleaved": {"size": "a", "tsc": good}, "textless": {"size": "b", "tsc": chance()}}}
    assert judge_tsc(m).verdict == Verdict.REPRODUCED
    m = {"cloze_largest": {"interleaved": {"size": "a", "tsc": chance()}, "textless": {"size": "b", "tsc": chance()}}}
    assert judge_tsc(m).verdict != Verdict.REPRODUCED
    m = {"cloze_largest": {"interleaved": {"size": "a", "tsc": good[:5]}, "textless": {"size": "b", "tsc": good[:5]}}}
    assert judge_tsc(m).verdict == Verdict.NOT_TESTABLE


def test_bench_is_registered_with_the_three_variants():
    from reprolab.papers.slm_scaling.bench import VARIANTS
    from reprolab.study import get_bench

    assert get_bench("slm_scaling").name == "slm_scaling"
    assert VARIANTS["poisson"][1] == "poisson" and VARIANTS["random"][1] == "random" and VARIANTS["textless"][0] == "textless"
