"""The README's usage example runs as written and prints what the README says."""

from __future__ import annotations

from tests.readme_examples import printed, run_readme_example


def test_readme_usage_example_runs(capsys):
    text = run_readme_example("risebench")
    assert capsys.readouterr().out.splitlines() == printed(text)
