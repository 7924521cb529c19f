"""The whisper_lm study's rules (issue 14) on synthetic per-utterance numbers: a control with no effect is never
reproduced, a planted effect is, a failed precondition is "not testable"; a smoke run's verdicts survive
`reprolab rejudge`; the CLI turns a missing or unreadable input file into a one-line error with exit 2."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from reprolab.errors import MalformedFile
from reprolab.papers.whisper_lm.study import WhisperLMStudy
from reprolab.study import Verdict

N = 30  # utterances per language
WORDS = 9


def _metrics(arms: dict[str, list[int]] | None = None, *, seed: int = 0, plain_rate: float = 0.35, alpha: float = 1.0,
             models: tuple[str, ...] = ("whisper-base",), per_model: dict[str, dict[str, list[int]]] | None = None,
             languages: tuple[str, ...] = ("es", "ca")) -> dict:
    """Per-utterance word errors for two languages (``languages``; the same numbers for both halves of ``arms``).

    ``arms`` maps an arm ("rescore/id", "fusion/id", "official/id", ...) to its errors on the 2N pooled utterances;
    "plain" defaults to a binomial draw at ``plain_rate`` per word; ``per_model`` overrides arms per model."""
    plain = _plain(seed, plain_rate)
    m: dict = {"utterances": {}, "tuned": {}, "seconds_per_utterance": {"whisper-base": {"plain": 1.0, "fusion": 1.2, "official": 1.2}}}
    tags = ("id/formula", "id/official", "ood/formula", "llm/formula")
    for model in models:
        all_arms = {"plain": plain, **(arms or {}), **((per_model or {}).get(model, {}))}
        for k, lang in enumerate(languages):
            sl = slice(k * N, (k + 1) * N)
            errors = {a: list(v[sl]) for a, v in all_arms.items()}
            m["utterances"].setdefault(model, {})[lang] = {"words": [WORDS] * N, "errors": errors}
            m["tuned"].setdefault(model, {})[lang] = {t: {"alpha": alpha, "beta": 0.5, "dev_wer": 0.3} for t in tags}
    return m


def _plain(seed: int = 0, plain_rate: float = 0.35) -> list[int]:
    """Plain Whisper's word errors on the 2N pooled utterances: a binomial draw at ``plain_rate`` per word."""
    rng = random.Random(seed)
    return [sum(rng.random() < plain_rate for _ in range(WORDS)) for _ in range(2 * N)]


def _better(errors: list[int], by: int = 1) -> list[int]:
    """A planted improvement: ``by`` fewer word errors on every utterance that has any."""
    return [max(0, e - by) for e in errors]


def _worse(errors: list[int], by: int = 2) -> list[int]:
    return [min(WORDS, e + by) for e in errors]


def _shuffled(errors: list[int], seed: int = 1) -> list[int]:
    out = list(errors)
    random.Random(seed).shuffle(out)
    return out


def _verdict(key: str, m: dict) -> Verdict:
    claim = {c.key: c for c in WhisperLMStudy.claims}[key]
    return claim.judge(m).verdict


# ----------------------------------------------------------------------------- in_domain (both decoders)


@pytest.mark.parametrize("claim,arm", [("in_domain", "official/id"), ("in_domain_formula", "fusion/id")])
def test_in_domain_control_is_not_reproduced_and_a_planted_gain_is(claim, arm):
    p = _plain()
    assert _verdict(claim, _metrics({arm: list(p)})) != Verdict.REPRODUCED  # fusion = plain
    assert _verdict(claim, _metrics({arm: _shuffled(p)})) != Verdict.REPRODUCED  # a random arm
    assert _verdict(claim, _metrics({arm: _worse(p)})) == Verdict.NOT_REPRODUCED  # an LM that hurts
    assert _verdict(claim, _metrics({arm: _better(p)})) == Verdict.REPRODUCED
    other = "fusion/id" if arm == "official/id" else "official/id"
    assert _verdict(claim, _metrics({other: _better(p)})) == Verdict.NOT_RUN  # judged on its own arm only


def test_in_domain_preconditions_make_it_not_testable():
    p = _plain(plain_rate=0.95)
    deaf = _metrics({"official/id": _better(p)}, plain_rate=0.95)  # Whisper does not hear the speech
    assert _verdict("in_domain", deaf) == Verdict.NOT_TESTABLE
    no_lm = _metrics({"official/id": _better(_plain())}, alpha=0.0)  # tuning dropped the LM
    assert _verdict("in_domain", no_lm) == Verdict.NOT_TESTABLE


def test_in_domain_effect_is_the_corpus_wer_difference_over_utterances():
    p = _plain()
    j = {c.key: c for c in WhisperLMStudy.claims}["in_domain"].judge(_metrics({"official/id": _better(p, by=3)}))
    assert j.headline.n == 2 * N and "utterances" in j.headline.unit
    fused = [max(0, e - 3) for e in p]
    assert j.headline.effect == pytest.approx((sum(p) - sum(fused)) / (2 * N * WORDS))


def test_a_language_whisper_does_not_hear_is_shown_not_pooled():
    p = _plain()
    m = _metrics({"official/id": _better(p)})
    m["utterances"]["whisper-base"]["ca"]["errors"]["plain"] = [WORDS] * N  # Catalan: every word wrong
    j = {c.key: c for c in WhisperLMStudy.claims}["in_domain"].judge(m)
    assert j.headline.n == N and "(es)" in j.headline.unit and "not pooled" in j.ours and "ca " in j.ours.split("per language:")[1]
    for lang in ("es", "ca"):
        m["utterances"]["whisper-base"][lang]["errors"]["plain"] = [WORDS] * N
    assert _verdict("in_domain", m) == Verdict.NOT_TESTABLE  # no language heard


def test_no_fusion_decodes_is_not_run():
    assert _verdict("in_domain", _metrics()) == Verdict.NOT_RUN


# ----------------------------------------------------------------------------- size (English, tiny.en vs base)


def _english(tiny: list[int], base: list[int], plain_tiny: list[int] | None = None, alpha: float = 1.0, plain_rate: float = 0.35) -> dict:
    p = _plain(plain_rate=plain_rate)
    models = ("whisper-tiny.en", "whisper-base")
    per = {"whisper-tiny.en": {"official/id": tiny, "plain": plain_tiny or p}, "whisper-base": {"official/id": base}}
    return _metrics(models=models, per_model=per, languages=("en", "xx"), alpha=alpha, plain_rate=plain_rate)


def test_size_rule_control_fails_and_a_planted_larger_relative_gain_passes():
    p = _plain()
    # the same relative gain for both models: not reproduced either way
    assert _verdict("smaller_for_larger", _english(_better(p), _better(p))) != Verdict.REPRODUCED
    # tiny gains 2 words per utterance, base none: a larger RER for tiny
    assert _verdict("smaller_for_larger", _english(_better(p, 2), list(p))) == Verdict.REPRODUCED
    # the reverse: base gains more
    assert _verdict("smaller_for_larger", _english(list(p), _better(p, 2))) == Verdict.NOT_REPRODUCED
    # random (shuffled) LM outputs for both: never reproduced
    assert _verdict("smaller_for_larger", _english(_shuffled(p, 3), _shuffled(p, 4))) != Verdict.REPRODUCED


def test_size_rule_is_relative_not_absolute():
    p = _plain()
    # tiny hears worse (twice the plain errors) and gains twice as many words: the same RER, no claim
    p2 = [min(WORDS, 2 * e) for e in p]
    tiny = [max(0, a - 2 * (a > 0 and b > 0)) for a, b in zip(p2, p)]
    base = [max(0, b - (b > 0)) for b in p]
    j = {c.key: c for c in WhisperLMStudy.claims}["smaller_for_larger"].judge(_english(tiny, base, plain_tiny=p2))
    assert j.verdict != Verdict.REPRODUCED


def test_size_preconditions_and_missing_model():
    p = _plain()
    assert _verdict("smaller_for_larger", _english(_better(p, 2), list(p), alpha=0.0)) == Verdict.NOT_TESTABLE
    assert _verdict("smaller_for_larger", _english(_better(p, 2), list(p), plain_rate=0.95)) == Verdict.NOT_TESTABLE
    assert _verdict("smaller_for_larger", _metrics({"official/id": _better(p)})) == Verdict.NOT_RUN


# ----------------------------------------------------------------------------- ood, llm, fusion vs rescoring


def test_ood_control_and_planted():
    p = _plain()
    same = _metrics({"rescore/id": _better(p), "rescore/ood": _better(p)})
    assert _verdict("ood", same) != Verdict.REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _better(p), "rescore/ood": _shuffled(_better(p))})) != Verdict.REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _better(p), "rescore/ood": _worse(p)})) == Verdict.REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _worse(p), "rescore/ood": _better(p)})) == Verdict.NOT_REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _better(p), "rescore/ood": _worse(p)}, alpha=0.0)) == Verdict.NOT_TESTABLE
    # English is pooled with es and ca
    j = {c.key: c for c in WhisperLMStudy.claims}["ood"].judge(_metrics({"rescore/id": _better(p), "rescore/ood": _worse(p)}, languages=("en", "es")))
    assert j.headline.n == 2 * N and "en" in j.headline.unit


def test_llm_control_and_planted():
    p = _plain()
    assert _verdict("llm", _metrics({"rescore/id": _better(p, 2), "rescore/llm": list(p)})) != Verdict.REPRODUCED
    # a positive gain smaller than the 5-gram's: reproduced; as large as the 5-gram's: the supporting check fails
    assert _verdict("llm", _metrics({"rescore/id": _better(p, 2), "rescore/llm": _better(p, 1)})) == Verdict.REPRODUCED
    assert _verdict("llm", _metrics({"rescore/id": _better(p, 1), "rescore/llm": _better(p, 1)})) == Verdict.PARTLY
    assert _verdict("llm", _metrics({"rescore/id": _better(p), "rescore/llm": _better(p)}, plain_rate=0.95)) == Verdict.NOT_TESTABLE


def test_fusion_vs_rescoring_is_a_non_inferiority_rule_and_time_is_not_judged():
    p = _plain()
    resc = _better(p)
    # fusion equal to rescoring: within the 2-point margin -> reproduced; fusion writing garbage -> not reproduced
    assert _verdict("fusion_vs_rescoring", _metrics({"rescore/id": resc, "fusion/id": list(resc)})) == Verdict.REPRODUCED
    assert _verdict("fusion_vs_rescoring", _metrics({"rescore/id": resc, "fusion/id": [WORDS] * (2 * N)})) == Verdict.NOT_REPRODUCED
    assert _verdict("fusion_vs_rescoring", _metrics({"rescore/id": resc, "fusion/id": _worse(resc, 1)})) == Verdict.NOT_REPRODUCED
    # the time per utterance is a metric: a fusion 100x slower or faster does not change the verdict
    for t in (0.01, 100.0):
        m = _metrics({"rescore/id": resc, "fusion/id": list(resc)})
        m["seconds_per_utterance"]["whisper-base"]["fusion"] = t
        assert _verdict("fusion_vs_rescoring", m) == Verdict.REPRODUCED
    assert not any("slower" in c.rule or "faster" in c.rule for c in WhisperLMStudy.claims)


# ----------------------------------------------------------------------------- CLI


def test_cli_missing_or_unreadable_inputs_are_typed_errors(tmp_path):
    from typer.testing import CliRunner

    from reprolab.papers.whisper_lm.cli import app

    r = CliRunner().invoke(app, ["transcribe", str(tmp_path / "absent.wav")])
    assert r.exit_code != 0 and isinstance(r.exception, MalformedFile) and "no such audio file" in str(r.exception)
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    r = CliRunner().invoke(app, ["transcribe", str(wav), "--lm", str(tmp_path)])  # a folder is not an LM file
    assert isinstance(r.exception, MalformedFile) and "language-model" in str(r.exception)
    r = CliRunner().invoke(app, ["build-lm", str(tmp_path / "absent.txt"), "--out", str(tmp_path / "lm.arpa")])
    assert isinstance(r.exception, MalformedFile)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("una canci\u00f3n para el coraz\u00f3n\n".encode("latin-1"))
    r = CliRunner().invoke(app, ["build-lm", str(latin1), "--out", str(tmp_path / "lm.arpa")])
    assert isinstance(r.exception, MalformedFile) and "UTF-8" in str(r.exception)


def test_cli_missing_audio_exits_2_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "reprolab.cli", "whisper-lm", "transcribe", str(tmp_path / "absent.wav")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "absent.wav" in lines[0] and "fix:" in lines[0]


# ----------------------------------------------------------------------------- a smoke run and `reprolab rejudge`


def test_smoke_run_keeps_per_utterance_numbers_and_rejudges_to_the_same_verdicts(smoke_run):
    from reprolab.study import Result, rejudge

    result, out = smoke_run("whisper_lm")
    assert result.status == "ok", result.reason  # make assets installs everything the smoke run needs
    u = result.metrics["utterances"]["whisper-tiny.en"]["en"]
    assert len(u["words"]) == 2 and set(u["errors"]) == {"plain", "rescore/id", "fusion/id", "official/id"}
    assert len(set(u["voice"])) == 2  # two espeak-ng voices at smoke scale
    t = result.metrics["seconds_per_utterance"]["whisper-tiny.en"]
    assert set(t) >= {"encoder", "plain", "fusion", "official"} and all(v > 0 for v in t.values())  # time is a metric
    saved = Result.load(out / "whisper_lm" / "smoke" / "result.json")
    assert [(c.key, c.verdict, c.headline) for c in rejudge(saved).claims] == [(c.key, c.verdict, c.headline) for c in result.claims]
