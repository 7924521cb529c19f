"""The README's first usage example runs as written."""

from __future__ import annotations

from tests.readme_examples import run_readme_example

PAPER = "foundation_agents"


def test_readme_usage_example_runs(capsys):
    run_readme_example(PAPER)
    out = capsys.readouterr().out.splitlines()
    assert out == ["['a', 'b']", "5 finished 1 2"]
