"""The igpg README's usage example runs as written and prints what the README says."""

from __future__ import annotations

import torch

from tests.readme_examples import printed, run_readme_example


def test_readme_usage_example_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        text = run_readme_example("igpg")
    finally:
        torch.set_num_threads(n)
    assert capsys.readouterr().out.splitlines() == printed(text)
    assert (tmp_path / "mlp.safetensors").exists()
