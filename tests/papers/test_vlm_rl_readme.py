"""The README's usage example runs as written and prints what the README says."""

from __future__ import annotations

import pytest

from tests.readme_examples import printed, run_readme_example

PAPER = "vlm_rl"


@pytest.mark.usefixtures("one_thread")
def test_readme_usage_example_runs(capsys):
    text = run_readme_example(PAPER)
    assert capsys.readouterr().out.splitlines() == printed(text)
