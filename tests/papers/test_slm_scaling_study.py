"""slm_scaling's study at smoke scale: the plan is printed before training, every claim is judged,
the figures are drawn, and the metrics hold what the rules read."""

from __future__ import annotations

import pytest

from reprolab.data import tts
from reprolab.study import Verdict, run_study

pytestmark = pytest.mark.usefixtures("one_thread")


def test_smoke_study_runs_and_judges(tmp_path, capsys):
    if not tts.espeak_available():
        pytest.skip("libespeak-ng is not installed (make assets)")
    from reprolab.data import speech_text
    from reprolab.errors import AssetMissing

    try:
        speech_text.source_files("es", "libreoffice")
    except AssetMissing:
        pytest.skip("libreoffice-help-es is not installed (make assets)")
    res, reused = run_study("slm_scaling", "smoke", out=tmp_path)
    out = capsys.readouterr().out
    assert not reused and res.status == "ok"
    assert out.index("slm_scaling plan") < out.index("total:")  # the ISO-FLOP plan, with total 6ND
    assert {c.key for c in res.claims} == {"scaling", "twist", "allocation", "tsc"}
    assert all(c.verdict != Verdict.NOT_RUN for c in res.claims)
    m = res.metrics
    assert len(m["grid"]["interleaved"]) == 9 and len(m["grid"]["interleaved"][0]) == 6  # runs x utterances
    assert m["plan"]["total_flops"] > 0 and m["plan"]["textlm_flops"] > 0
    assert set(m["cloze_largest"]["interleaved"]) >= {"tsc", "ssc", "sblimp", "tsc_voices"}
    assert {f.file for f in res.figures} == {"figures/loss_vs_compute.png", "figures/isoflop.png", "figures/cloze_vs_compute.png"}
    for f in res.figures:
        assert (tmp_path / "slm_scaling" / "smoke" / f.file).stat().st_size > 1000
