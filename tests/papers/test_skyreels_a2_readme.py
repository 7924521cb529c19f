"""The README's usage example runs as written and prints what the README says."""

from __future__ import annotations

from tests.readme_examples import printed, run_readme_example


def test_readme_usage_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the example writes a2.mp4 in the working directory
    text = run_readme_example("skyreels_a2")
    assert capsys.readouterr().out.splitlines() == printed(text)
    assert (tmp_path / "a2.mp4").stat().st_size > 0
