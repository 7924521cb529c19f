"""Whisper-LM: the language-model side (normaliser, modified Kneser-Ney ARPA writer, ARPA/KenLM scoring),
the fusion score, WER/RER, and Optuna tuning. No Whisper weights needed."""

from __future__ import annotations

import math
import random

import pytest

from reprolab.errors import ConfigError, MalformedFile
from reprolab.papers.whisper_lm import (
    ArpaLM,
    FusionConfig,
    build_arpa,
    lm_terms,
    normalise_text,
    relative_error_reduction,
    train_kneser_ney,
    tune,
    wer,
    write_arpa,
)
from reprolab.papers.whisper_lm.language_models import _discounts

WORDS = "el gato come pescado en la casa grande y perro duerme mucho".split()


def _corpus(n=300, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


@pytest.fixture(scope="module")
def arpa3(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "t3.arpa"
    write_arpa(train_kneser_ney(_corpus(), order=3), path)
    return path


def test_normaliser_matches_whisper_basic_normaliser():
    # lower case, bracketed spans removed, punctuation -> space, accents kept (BasicTextNormalizer)
    assert normalise_text("¿Qué tal, Señor? [música] (risas) ¡Bien!") == "qué tal señor bien"
    assert normalise_text("L'àrea seleccionada.") == "l àrea seleccionada"
    assert normalise_text("  Dos   espacios ") == "dos espacios"
    with pytest.raises(ConfigError):
        normalise_text("x", language="xx")


def test_discounts_follow_chen_goodman_closed_form():
    counts = [1] * 10 + [2] * 4 + [3] * 2 + [4] * 1 + [7] * 3
    y = 10 / (10 + 2 * 4)
    expect = (1 - 2 * y * 4 / 10, 2 - 3 * y * 2 / 4, 3 - 4 * y * 1 / 2)
    assert _discounts(counts) == pytest.approx(expect)


def test_kneser_ney_bigram_matches_hand_computation():
    # corpus: "a b", "a b", "b a"; order 2, small-data discounts (0.5, 1, 1.5)
    m = train_kneser_ney(["a b", "a b", "b a"], order=2)
    d1, d2, d3 = m.discounts[2]
    assert (d1, d2, d3) == (0.5, 1.0, 1.5)
    # unigram continuation counts: a <- {<s>, b} = 2, b <- {a, <s>} = 2, </s> <- {a, b} = 2; total 6
    # unigram discounts are the fallback too; gamma() = (D2 * N2) / 6 = (1 * 3) / 6
    vocab = 4  # a, b, </s>, <unk>
    g0 = (1.0 * 3) / 6
    p_b = (2 - 1.0) / 6 + g0 / vocab
    # bigrams after "a": "a b" raw 2, "a </s>" raw 1 -> a(a.) = 3; gamma(a) = (0.5*1 + 1*1)/3
    p_b_given_a = (2 - 1.0) / 3 + (0.5 * 1 + 1.0 * 1) / 3 * p_b
    assert m.probs[("a", "b")] == pytest.approx(math.log10(p_b_given_a), abs=1e-9)
    assert m.backoffs[("a",)] == pytest.approx(math.log10((0.5 + 1.0) / 3), abs=1e-9)


def test_arpa_probabilities_of_every_context_sum_to_one(arpa3):
    lm = ArpaLM(arpa3)
    vocab = [w for w in lm.vocabulary() if w != "<s>"]
    for ctx in [(), ("<s>",), ("el",), ("el", "gato"), ("perro", "duerme"), ("nunca", "visto")]:
        assert sum(10 ** lm.logp(w, ctx) for w in vocab) == pytest.approx(1.0, abs=1e-5)


def test_kenlm_loads_our_arpa_and_agrees_with_our_scorer(arpa3):
    kenlm = pytest.importorskip("kenlm", reason="pip install kenlm")
    from reprolab.papers.whisper_lm import KenLMScorer

    ours, ken, cached = ArpaLM(arpa3), kenlm.Model(str(arpa3)), KenLMScorer(arpa3)
    for text in ["el gato come", "la casa grande y perro", "zorro el gato", "gato gato gato mucho duerme"]:
        for eos in (False, True):
            ref = ken.score(text, bos=True, eos=eos)
            assert ours.score(text, True, eos) == pytest.approx(ref, abs=1e-4)
            assert cached.score(text, True, eos) == pytest.approx(ref, abs=1e-5)
    # the prefix cache returns the same as a fresh query after growing a hypothesis word by word
    for k in range(1, 6):
        text = " ".join(["el", "gato", "come", "pescado", "en"][:k])
        assert cached.score(text) == pytest.approx(ken.score(text, bos=True, eos=False), abs=1e-5)


def test_arpa_reader_rejects_a_truncated_file(tmp_path, arpa3):
    bad = tmp_path / "bad.arpa"
    bad.write_text(arpa3.read_text().replace("\\end\\", "")[: len(arpa3.read_text()) // 2])
    with pytest.raises(MalformedFile):
        ArpaLM(bad)


def test_build_arpa_normalises_its_text(tmp_path):
    path = build_arpa(["El Gato, come.", "¡El perro duerme!"] * 3, tmp_path / "n.arpa", order=2)
    assert "gato" in ArpaLM(path).vocabulary() and "Gato," not in ArpaLM(path).vocabulary()


def test_lm_term_starts_at_the_fourth_token_and_counts_words(arpa3):
    lm = ArpaLM(arpa3)
    cfg = FusionConfig(alpha=0.5, beta=1.0)
    assert lm_terms(lm, "el gato", 3, cfg) is None  # 3 tokens < token_threshold 4
    score, words = lm_terms(lm, "El gato, come.", 4, cfg)
    assert words == 3
    assert score == pytest.approx(lm.score("el gato come", bos=True, eos=True))  # '.' ends the sentence
    score, _ = lm_terms(lm, "El gato come", 4, cfg)
    assert score == pytest.approx(lm.score("el gato come", bos=True, eos=False))


def test_fusion_config_rejects_bad_values():
    with pytest.raises(ConfigError):
        FusionConfig(alpha=float("nan"))
    with pytest.raises(ConfigError):
        FusionConfig(beam_size=0)


def test_wer_and_rer():
    assert wer(["el gato come pescado"], ["El gato, come pescados."]) == pytest.approx(1 / 4)
    assert wer(["a b c"], ["x a b c y"]) == pytest.approx(2 / 3)
    assert relative_error_reduction(0.15, 0.20) == pytest.approx(25.0)
    assert relative_error_reduction(0.25, 0.20) == pytest.approx(-25.0)


def test_tune_finds_a_planted_optimum_and_resumes(tmp_path):
    pytest.importorskip("optuna", reason="pip install optuna")
    calls = []

    def objective(a, b):
        calls.append((a, b))
        return (a - 1.5) ** 2 + (b - 0.5) ** 2

    db = tmp_path / "study.db"
    first = tune(objective, n_trials=12, storage=db, seed=0)
    assert calls[0] == (0.0, 0.0)  # trial 0 is Whisper alone
    assert len(first.trials) == 12
    second = tune(objective, n_trials=30, storage=db, seed=0)
    assert len(calls) == 30 and len(second.trials) == 30  # 18 more, the first 12 reused from disk
    assert second.dev_wer <= first.dev_wer
    assert abs(second.alpha - 1.5) < 0.6 and abs(second.beta - 0.5) < 0.6


def test_llm_variant_scores_through_the_shared_llm_room():
    from reprolab.llm.base import LLM
    from reprolab.papers.whisper_lm import LLMScorer

    class UnigramLLM(LLM):  # ln p = -1 per word; next token "x" with ln p = -0.5
        name = "unigram"

        def score(self, text, prefix=""):
            return -1.0 * len(text.split())

        def next_token_logprobs(self, prompt, top_k=20):
            return {"x": -0.5, "y": -2.0}

    seq = LLMScorer(UnigramLLM())
    assert seq.score("el gato come") == pytest.approx(-3 / math.log(10))  # log10, KenLM's scale
    official = LLMScorer(UnigramLLM(), mode="official")
    assert official.score("el gato") == pytest.approx(math.exp(-0.5))  # the official code's max next-token probability
    cfg = FusionConfig(alpha=1.0, beta=0.5)
    assert lm_terms(seq, "El gato come pescado", 4, cfg) == (pytest.approx(-4 / math.log(10)), 4)
    with pytest.raises(ConfigError):
        LLMScorer(UnigramLLM(), mode="max")


def test_tune_breaks_ties_towards_the_smallest_weights():
    pytest.importorskip("optuna", reason="pip install optuna")
    flat = tune(lambda a, b: 0.5 if a + b < 3 else 0.4, n_trials=25, seed=1)  # every point with a + b >= 3 ties
    ties = [t for t in flat.trials if t[2] == flat.dev_wer]
    assert len(ties) > 1 and flat.alpha + flat.beta == pytest.approx(min(t[0] + t[1] for t in ties))
