"""The README's usage example runs as written."""

from __future__ import annotations

from tests.readme_examples import run_readme_example

PAPER = "ags"


def test_readme_usage_example_runs(capsys):
    run_readme_example(PAPER)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "published True"
    assert out[1] == "True"
    assert out[2].startswith("$$")
