"""The igpg README's usage example runs as written and prints what the README says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[2] / "reprolab" / "papers" / "igpg" / "README.md"


def test_readme_usage_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        text = README.read_text()
        block = re.findall(r"```python\n(.*?)```", text, re.S)[0]
        printed = re.findall(r"prints\n\n```\n(.*?)```", text, re.S)[0].splitlines()
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    finally:
        torch.set_num_threads(n)
    assert capsys.readouterr().out.splitlines() == printed
    assert (tmp_path / "mlp.safetensors").exists()
