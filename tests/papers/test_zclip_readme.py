"""The README's usage example runs as written and clips the planted bad batch, and only it."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "reprolab" / "papers" / "zclip" / "README.md"


def test_readme_usage_example_runs(capsys):
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("step 15: spike, norm ")
    norm, clipped = (float(v) for v in re.findall(r"[\d.]+", out[0].split("norm ")[1]))
    assert clipped < norm / 5
