"""Whisper-LM on a real CTranslate2 Whisper (tiny.en, the smallest offline asset) and real espeak-ng audio:
our beam search equals CTranslate2's own at alpha = beta = 0; a planted LM moves the output; typed errors;
the CLI; the Debian-text splits and the TTS cache. Skips with the install command when an asset is absent."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from reprolab.data import speech_text, tts
from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from reprolab.papers.whisper_lm import FusionConfig, build_arpa, load_lm, wer

SENTENCE = "The cat eats fish in the big house."


def _asset(name: str):
    pytest.importorskip("faster_whisper", reason="pip install faster-whisper")
    from reprolab import assets
    from reprolab.errors import AssetMissing

    try:
        return assets.path(name)
    except AssetMissing:
        pytest.skip(f"{name} is not installed: reprolab assets install {name}")


@pytest.fixture(scope="module")
def audio():
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng/sox missing: sudo apt-get install -y espeak-ng sox")
    return tts.synthesize(SENTENCE, "en", tts.Perturbation())


@pytest.fixture(scope="module")
def whisper():
    from reprolab.papers.whisper_lm import WhisperLM

    return WhisperLM(_asset("whisper-tiny.en"), cpu_threads=1)


@pytest.fixture(scope="module")
def encoded(whisper, audio):
    return whisper.encode(audio)


def test_zero_weights_reproduce_ctranslate2_beam_search_exactly(whisper, encoded):
    ct2 = whisper.nbest(encoded, "en")
    ours = whisper.fusion_search(encoded, "en", FusionConfig(alpha=0.0, beta=0.0))
    assert ours[0].tokens == ct2[0].tokens
    assert ours[0].text == ct2[0].text
    # and rescoring with zero weights keeps CTranslate2's order
    assert [h.tokens for h in whisper.rescore(ct2, FusionConfig())] == [h.tokens for h in ct2]


def test_next_token_logprobs_are_normalised_and_batch_invariant(whisper, encoded):
    prompt = whisper.prompt("en")
    best = whisper.nbest(encoded, "en")[0].tokens
    batch = whisper.next_logprobs(encoded, prompt, [best[:3], best[:3]])
    single = whisper.next_logprobs(encoded, prompt, [best[:3]])
    assert np.allclose(np.exp(batch).sum(1), 1.0, atol=1e-6)
    assert np.allclose(batch[0], single[0], atol=1e-4)
    assert int(np.argmax(single[0])) == best[3]  # greedy continuation of the beam's best prefix


def test_a_planted_lm_changes_the_fused_search_towards_its_text(whisper, encoded, tmp_path):
    lm = load_lm(build_arpa([SENTENCE] * 30 + ["a dog runs in the park."] * 3, tmp_path / "planted.arpa", order=3))
    whisper.lm = lm
    try:
        plain = whisper.fusion_search(encoded, "en", FusionConfig())[0]
        fused = whisper.fusion_search(encoded, "en", FusionConfig(alpha=2.0, beta=1.0))[0]
    finally:
        whisper.lm = None
    assert fused.text != plain.text  # the LM term changed the search ...
    assert fused.lm_score >= plain.lm_score  # ... towards text the LM likes at least as much ...
    assert wer([SENTENCE], [fused.text]) <= wer([SENTENCE], [plain.text])  # ... and no worse for the reference


def test_bad_audio_and_language_raise_typed_errors(whisper):
    with pytest.raises(ShapeError):
        whisper.encode(np.zeros(31 * 16000, dtype=np.float32))
    with pytest.raises(NonFiniteError):
        whisper.encode(np.full(16000, np.nan, dtype=np.float32))
    with pytest.raises(ConfigError):
        whisper.prompt("es")  # tiny.en is English-only
    with pytest.raises(ConfigError):
        whisper.transcribe(np.zeros(16000, dtype=np.float32), "en", method="greedy")


def test_missing_or_undecodable_audio_is_a_typed_error(whisper, tmp_path):
    with pytest.raises(MalformedFile, match="no such audio file"):
        whisper.encode(tmp_path / "absent.wav")
    with pytest.raises(MalformedFile, match="not a regular file"):
        whisper.encode(tmp_path)
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF\x00\x01not really a wave file" * 10)
    with pytest.raises(MalformedFile, match="cannot decode it as audio"):
        whisper.encode(bad)


def test_cli_builds_an_lm_and_transcribes(tmp_path, audio):
    _asset("whisper-tiny.en")
    from typer.testing import CliRunner

    from reprolab.papers.whisper_lm.cli import app

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join([SENTENCE] * 5 + ["A dog runs in the park."] * 2))
    r = CliRunner().invoke(app, ["build-lm", str(text), "--out", str(tmp_path / "lm.arpa"), "--order", "3"])
    assert r.exit_code == 0, r.output
    assert load_lm(tmp_path / "lm.arpa").score("the cat eats fish") > load_lm(tmp_path / "lm.arpa").score("fish the eats cat")
    r = CliRunner().invoke(app, ["transcribe", str(audio), "--model", "whisper-tiny.en", "--lm", str(tmp_path / "lm.arpa"),
                                 "--language", "en", "--alpha", "0.5", "--beta", "0.5", "--method", "rescore"])
    assert r.exit_code == 0, r.output
    assert "cat" in r.output.lower()


def test_splits_are_disjoint_and_stable():
    items = [f"Frase número {i} con varias palabras." for i in range(200)]
    a = speech_text.split_sentences(items, 10, 20)
    assert len(a.dev) == 10 and len(a.test) == 20 and len(a.train) == 170
    assert not (set(a.dev) & set(a.test)) and not ((set(a.dev) | set(a.test)) & set(a.train))
    b = speech_text.split_sentences(list(reversed(items)), 10, 20)
    assert a == b  # by hash, not by position
    with pytest.raises(ConfigError):
        speech_text.split_sentences(items, 100, 100)


def test_debian_corpora_are_clean_sentences():
    try:
        es = speech_text.sentences("es", "libreoffice")
    except Exception as e:  # AssetMissing names the apt-get command
        pytest.skip(str(e))
    assert len(es) > 5000
    assert len(set(s.lower() for s in es)) == len(es)
    assert all(s[-1] in ".!?" and len(s.split()) >= 5 for s in es[:500])
    english = sum(" the " in f" {s.lower()} " for s in es)
    assert english / len(es) < 0.01


def test_english_corpora_in_and_out_of_domain():
    try:
        lo = speech_text.sentences("en", "libreoffice")
        fo = speech_text.sentences("en", "fortunes")
    except Exception as e:  # AssetMissing names the apt-get command
        pytest.skip(str(e))
    assert len(lo) > 5000 and len(fo) > 5000  # fortune's .dat index files are skipped, not read as text
    assert all(s[-1] in ".!?" and len(s.split()) >= 5 and "\x00" not in s for s in lo[:500] + fo[:500])
    assert len(set(lo) & set(fo)) < 0.001 * len(lo)  # two different sources


def test_tts_voice_variants_are_distinct_cached_files(tmp_path, monkeypatch, audio):
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path))
    plain = tts.synthesize("Hello there, this is a test.", "en")
    other = tts.synthesize("Hello there, this is a test.", "en", variant="f2")
    assert plain != other and plain.read_bytes() != other.read_bytes()
    with pytest.raises(ConfigError):
        tts.synthesize("Hello there.", "en", variant="f2; rm")


def test_tts_is_cached_and_16k_mono(tmp_path, monkeypatch, audio):
    monkeypatch.setenv("REPROLAB_CACHE", str(tmp_path))
    p1 = tts.synthesize("Hola mundo, esto es una prueba.", "es", tts.Perturbation(speed=1.1, reverb=20, noise_db=-35), seed=1)
    mtime = p1.stat().st_mtime_ns
    p2 = tts.synthesize("Hola mundo, esto es una prueba.", "es", tts.Perturbation(speed=1.1, reverb=20, noise_db=-35), seed=1)
    assert p1 == p2 and p2.stat().st_mtime_ns == mtime
    import wave

    with wave.open(str(p1)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getnframes() > 16000
    with pytest.raises(ConfigError):
        tts.synthesize("Bos días", "gl")


def test_cli_transcribes_common_formats_to_jsonl_and_srt(tmp_path, audio):
    _asset("whisper-tiny.en")
    import json

    import soundfile as sf
    from typer.testing import CliRunner

    from reprolab.papers.whisper_lm.cli import app

    wave, sr = tts.read_wav(audio)
    paths = []
    for ext in ("wav", "flac", "ogg", "mp3"):  # libsndfile writes all four (Vorbis and MP3 lossy)
        paths.append(tmp_path / f"speech.{ext}")
        sf.write(str(paths[-1]), wave, sr)
    out = tmp_path / "t.jsonl"
    r = CliRunner().invoke(app, ["transcribe", *map(str, paths), "--model", "whisper-tiny.en", "--language", "en", "--method", "plain",
                                 "--format", "jsonl", "--out", str(out)])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [rec["audio"] for rec in recs] == list(map(str, paths))
    for rec in recs:
        assert "house" in rec["text"].lower() and rec["method"] == "plain" and abs(rec["audio_seconds"] - len(wave) / sr) < 0.1
    # SRT beside the audio: one cue over the utterance
    r = CliRunner().invoke(app, ["transcribe", str(paths[0]), "--model", "whisper-tiny.en", "--language", "en", "--method", "plain",
                                 "--format", "srt"])
    assert r.exit_code == 0, r.output
    cue = paths[0].with_suffix(".srt").read_text().splitlines()
    assert cue[0] == "1" and cue[1].startswith("00:00:00,000 --> 00:00:0") and "cat" in cue[2].lower()
    r = CliRunner().invoke(app, ["transcribe", str(paths[0]), "--model", "whisper-tiny.en", "--format", "xml"])
    assert isinstance(r.exception, ConfigError) and "--format" in str(r.exception)


def test_ct2_weights_read_back_into_transformers_give_ctranslate2s_numbers(audio, whisper, tmp_path):
    _asset("whisper-tiny.en")
    import torch

    from reprolab.papers.whisper_lm.ct2_to_hf import load_ct2_whisper, read_ct2_variables

    hf = load_ct2_whisper("whisper-tiny.en")
    wave, _ = tts.read_wav(audio)
    enc = whisper.encode(wave)
    feats = whisper.fw.feature_extractor(wave)[:, :3000]
    feats = np.pad(feats, ((0, 0), (0, 3000 - feats.shape[1])))
    with torch.no_grad():
        e_hf = hf.model.encoder(torch.from_numpy(feats[None].astype(np.float32))).last_hidden_state
    np.testing.assert_allclose(e_hf.numpy(), np.asarray(enc), atol=1e-3)  # float16 weights, float32 compute on both sides
    prompt = whisper.prompt("en")
    prefix = whisper.tokenizer.encode(" The cat", add_special_tokens=False).ids
    ct2 = whisper.next_logprobs(enc, prompt, [prefix])[0]
    with torch.no_grad():
        lp = torch.log_softmax(hf(encoder_outputs=(e_hf,), decoder_input_ids=torch.tensor([prompt + prefix])).logits[0, -1], -1).numpy()
    top = np.argsort(-ct2)[:5]
    assert np.array_equal(top, np.argsort(-lp)[:5])
    np.testing.assert_allclose(lp[top], ct2[top], atol=1e-3)
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"\x06\x00\x00\x00\x0b\x00TransformerS")
    with pytest.raises(MalformedFile):
        read_ct2_variables(bad)
