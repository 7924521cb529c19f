"""The drc_planning README's usage example runs as written and prints what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "reprolab" / "papers" / "drc_planning" / "README.md"

pytestmark = pytest.mark.usefixtures("one_thread")


def test_readme_usage_example_runs(capsys):
    text = README.read_text()
    block = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    printed = re.findall(r"prints\n\n```\n(.*?)```", text, re.S)[0].splitlines()
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    assert capsys.readouterr().out.splitlines() == printed
