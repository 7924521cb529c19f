"""The README's usage example runs as written: the example scene, the Python block, then the CLI lines."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reprolab.papers.neuralgs.cli import app

README = Path(__file__).resolve().parents[2] / "reprolab" / "papers" / "neuralgs" / "README.md"


def _cli(line: str):
    args = shlex.split(line)
    assert args[:2] == ["reprolab", "neuralgs"], line
    return CliRunner().invoke(app, args[2:])


def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys, one_thread):
    text = README.read_text()
    usage = text[text.index("## Usage"): text.index("## Result of record")]
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", usage, re.S | re.M)
    shell = [ln for lang, block in blocks if not lang for ln in block.splitlines() if ln.startswith("reprolab neuralgs")]
    assert len(shell) == 4
    monkeypatch.chdir(tmp_path)
    r = _cli(shell[0])  # the example scene
    assert r.exit_code == 0, r.output
    block = next(b for lang, b in blocks if lang == "python")
    exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "Gaussians in" in out and (tmp_path / "demo" / "scene.ngs").stat().st_size <= 8_000
    for line in shell[1:]:
        r = _cli(line)
        assert r.exit_code == 0, (line, r.output)
        assert any(w in r.output for w in ("smaller", "not compressed", "Gaussians, SH degree")), r.output
    assert (tmp_path / "demo" / "decoded.ply").exists()
