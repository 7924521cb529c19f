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
             n_fusion: int = N, models: tuple[str, ...] = ("whisper-base",), per_model: dict[str, dict[str, list[int]]] | None = None) -> dict:
    """Per-utterance word errors for es and ca (the same numbers for both languages' halves of ``arms``).

    ``arms`` maps an arm ("rescore/id", "fusion/id", ...) to its errors on the 2N pooled utterances (es then ca);
    "plain" defaults to a binomial draw at ``plain_rate`` per word."""
    plain = _plain(seed, plain_rate)
    m: dict = {"utterances": {}, "tuned": {}, "seconds_per_utterance": {"whisper-base": {"plain": 1.0, "rescore": 1.0, "fusion": 15.0}}}
    for model in models:
        all_arms = {"plain": plain, **(arms or {}), **((per_model or {}).get(model, {}))}
        for k, lang in enumerate(("es", "ca")):
            sl = slice(k * N, (k + 1) * N)
            errors = {a: list(v[sl]) for a, v in all_arms.items()}
            for a in errors:
                if a.startswith("fusion/"):
                    errors[a] = errors[a][:n_fusion]
            m["utterances"].setdefault(model, {})[lang] = {"words": [WORDS] * N, "errors": errors}
            m["tuned"].setdefault(model, {})[lang] = {t: {"alpha": alpha, "beta": 0.5, "dev_wer": 0.3} for t in ("id", "ood", "llm")}
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


# ----------------------------------------------------------------------------- in_domain


def test_in_domain_control_is_not_reproduced_and_a_planted_gain_is():
    p = _plain()
    assert _verdict("in_domain", _metrics({"fusion/id": list(p)})) != Verdict.REPRODUCED  # fusion = plain
    assert _verdict("in_domain", _metrics({"fusion/id": _shuffled(p)})) != Verdict.REPRODUCED  # a random arm
    assert _verdict("in_domain", _metrics({"fusion/id": _worse(p)})) == Verdict.NOT_REPRODUCED  # an LM that hurts
    assert _verdict("in_domain", _metrics({"fusion/id": _better(p)})) == Verdict.REPRODUCED


def test_in_domain_preconditions_make_it_not_testable():
    p = _plain(plain_rate=0.95)
    deaf = _metrics({"fusion/id": _better(p)}, plain_rate=0.95)  # Whisper does not hear the speech
    assert _verdict("in_domain", deaf) == Verdict.NOT_TESTABLE
    no_lm = _metrics({"fusion/id": _better(_plain())}, alpha=0.0)  # tuning dropped the LM
    assert _verdict("in_domain", no_lm) == Verdict.NOT_TESTABLE


def test_in_domain_uses_only_the_fused_utterances_and_keeps_the_unit():
    p = _plain()
    # fusion ran on the first 5 utterances per language: the headline compares those 10, not the 60
    j = {c.key: c for c in WhisperLMStudy.claims}["in_domain"].judge(_metrics({"fusion/id": _better(p, by=3)}, n_fusion=5))
    assert j.headline.n == 10 and "utterances" in j.headline.unit
    # the effect is the corpus-WER difference of those utterances
    plain10 = p[:5] + p[N:N + 5]
    fused10 = [max(0, e - 3) for e in plain10]
    assert j.headline.effect == pytest.approx((sum(plain10) - sum(fused10)) / (10 * WORDS))


def test_no_fusion_decodes_is_not_run():
    assert _verdict("in_domain", _metrics()) == Verdict.NOT_RUN


# ----------------------------------------------------------------------------- ood, llm, fusion vs rescoring, size


def test_ood_control_and_planted():
    p = _plain()
    same = _metrics({"rescore/id": _better(p), "rescore/ood": _better(p)})
    assert _verdict("ood", same) != Verdict.REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _better(p), "rescore/ood": _shuffled(_better(p))})) != Verdict.REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _better(p), "rescore/ood": _worse(p)})) == Verdict.REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _worse(p), "rescore/ood": _better(p)})) == Verdict.NOT_REPRODUCED
    assert _verdict("ood", _metrics({"rescore/id": _better(p), "rescore/ood": _worse(p)}, alpha=0.0)) == Verdict.NOT_TESTABLE


def test_llm_control_and_planted():
    p = _plain()
    assert _verdict("llm", _metrics({"rescore/id": _better(p, 2), "rescore/llm": list(p)})) != Verdict.REPRODUCED
    # a positive gain smaller than the 5-gram's: reproduced; as large as the 5-gram's: the supporting check fails
    assert _verdict("llm", _metrics({"rescore/id": _better(p, 2), "rescore/llm": _better(p, 1)})) == Verdict.REPRODUCED
    assert _verdict("llm", _metrics({"rescore/id": _better(p, 1), "rescore/llm": _better(p, 1)})) == Verdict.PARTLY
    assert _verdict("llm", _metrics({"rescore/id": _better(p), "rescore/llm": _better(p)}, plain_rate=0.95)) == Verdict.NOT_TESTABLE


def test_fusion_vs_rescoring_is_a_non_inferiority_rule():
    p = _plain()
    resc = _better(p)
    # fusion equal to rescoring: within the 2-point margin -> reproduced; fusion writing garbage -> not reproduced
    assert _verdict("fusion_vs_rescoring", _metrics({"rescore/id": resc, "fusion/id": list(resc)})) == Verdict.REPRODUCED
    assert _verdict("fusion_vs_rescoring", _metrics({"rescore/id": resc, "fusion/id": [WORDS] * (2 * N)})) == Verdict.NOT_REPRODUCED
    assert _verdict("fusion_vs_rescoring", _metrics({"rescore/id": resc, "fusion/id": _worse(resc, 1)})) == Verdict.NOT_REPRODUCED


def test_size_is_not_run_without_small_and_judged_with_it():
    p = _plain()
    assert _verdict("smaller_for_larger", _metrics({"rescore/id": _better(p)})) == Verdict.NOT_RUN
    both = ("whisper-base", "whisper-small")
    planted = _metrics(models=both, per_model={"whisper-base": {"rescore/id": _better(p, 2)}, "whisper-small": {"rescore/id": _better(p, 0)}})
    assert _verdict("smaller_for_larger", planted) == Verdict.REPRODUCED
    control = _metrics(models=both, per_model={m: {"rescore/id": _better(p, 1)} for m in both})
    assert _verdict("smaller_for_larger", control) != Verdict.REPRODUCED


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
    u = result.metrics["utterances"]["whisper-base"]["es"]
    assert len(u["words"]) == 1 and set(u["errors"]) == {"plain", "rescore/id", "fusion/id"}
    saved = Result.load(out / "whisper_lm" / "smoke" / "result.json")
    assert [(c.key, c.verdict, c.headline) for c in rejudge(saved).claims] == [(c.key, c.verdict, c.headline) for c in result.claims]
