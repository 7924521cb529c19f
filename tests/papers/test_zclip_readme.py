"""The README's usage example runs as written and clips the planted bad batch, and only it."""

from __future__ import annotations

import re

from tests.readme_examples import run_readme_example

PAPER = "zclip"


def test_readme_usage_example_runs(capsys):
    run_readme_example(PAPER)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("step 15: spike, norm ")
    norm, clipped = (float(v) for v in re.findall(r"[\d.]+", out[0].split("norm ")[1]))
    assert clipped < norm / 5
