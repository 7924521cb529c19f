"""The README's usage example runs as written (in a temporary folder: it writes acts/, sae.ckpt.pt, my_sae/)."""

from __future__ import annotations

import pytest

from tests.readme_examples import run_readme_example

PAPER = "vlm_sae"


def test_readme_usage_example_runs(tmp_path, monkeypatch, capsys, one_thread):
    pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)
    run_readme_example(PAPER)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "(256, 256) (256,) (4, 64) MatryoshkaBatchTopKSAE"
    assert (tmp_path / "my_sae" / "cfg.json").exists() and (tmp_path / "acts" / "store.json").exists()
