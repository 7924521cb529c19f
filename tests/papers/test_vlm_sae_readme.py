"""The README's usage example runs as written (in a temporary folder: it writes acts/, sae.ckpt.pt, my_sae/)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "reprolab" / "papers" / "vlm_sae" / "README.md"


def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys, one_thread):
    pytest.importorskip("transformers")
    block = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "(256, 256) (256,) (4, 64) MatryoshkaBatchTopKSAE"
    assert (tmp_path / "my_sae" / "cfg.json").exists() and (tmp_path / "acts" / "store.json").exists()
