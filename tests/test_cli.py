"""The command line: teaching --help, one-line errors with a fix, non-zero exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "reprolab.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**__import__("os").environ, "REPROLAB_PROGRESS": "0", "COLUMNS": "200"})


def test_help_teaches():
    r = cli("--help")
    assert r.returncode == 0
    for word in ("list", "run", "report", "bench", "smoke", "quick", "full"):
        assert word in r.stdout
    r = cli("run", "--help")
    assert r.returncode == 0 and "--scale" in r.stdout and "--force" in r.stdout and "--seed" in r.stdout


def test_list_shows_zclip():
    r = cli("list")
    assert r.returncode == 0 and "zclip" in r.stdout and "2504.02507" in r.stdout


@pytest.mark.parametrize(
    "args, words",
    [
        (("run", "zclp"), ["unknown study 'zclp'", "did you mean 'zclip'", "fix:"]),
        (("run", "zclip", "--scale", "huge"), ["unknown scale 'huge'", "fix: use --scale smoke, quick or full"]),
        (("bench", "nope"), ["unknown benchmark 'nope'", "fix:"]),
        (("run", "zclip", "--scale", "smoke", "--out", "/dev/null/runs"), ["cannot write to output folder", "fix: pass --out"]),
        (("run",), ["no study named", "fix:"]),
        (("record", "zclip", "--out", "/nonexistent-runs"), ["no full result of 'zclip'", "fix: run `reprolab run zclip --scale full`"]),
        (("rejudge", "zclp"), ["unknown study 'zclp'", "fix:"]),
        (("assets", "add", "mine", "/nonexistent/model.gguf"), ["/nonexistent/model.gguf", "fix:"]),
    ],
)
def test_errors_are_one_line_with_a_fix(args, words):
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0]


def test_run_and_report_end_to_end(tmp_path):
    r = cli("run", "zclip", "--scale", "smoke", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "zclip" in r.stdout and "paper" in r.stdout
    assert (tmp_path / "zclip" / "smoke" / "result.json").exists()
    r2 = cli("run", "zclip", "--scale", "smoke", "--out", str(tmp_path))
    assert r2.returncode == 0 and "reused" in r2.stdout
    r3 = cli("report", "--out", str(tmp_path))
    assert r3.returncode == 0 and (tmp_path / "report" / "index.html").exists()
    assert "report:" in r3.stdout
    r4 = cli("rejudge", "zclip", "--runs", "--scale", "smoke", "--out", str(tmp_path))  # same rules: same verdicts
    assert r4.returncode == 0 and "zclip." in r4.stdout and "CHANGED" not in r4.stdout, r4.stdout + r4.stderr


def test_each_study_runs_in_its_own_process_with_threads_fixed_before_libraries_load(monkeypatch, tmp_path):
    from reprolab import executor

    monkeypatch.setenv("REPROLAB_THREADS", "1")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # the user's own setting wins
    env = executor.child_environment()
    assert env["OMP_NUM_THREADS"] == "1" and env["OPENBLAS_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "3"

    seen = []

    def fake_popen(args, env):
        seen.append((args, env["OMP_NUM_THREADS"]))

        class Done:
            def wait(self, timeout=None):
                return 3

        return Done()

    monkeypatch.setattr(executor.subprocess, "Popen", fake_popen)
    done = executor.run_in_process("zclip", executor.Scale.SMOKE, 0, False, tmp_path, "cmd")
    assert done.result is None and done.returncode == 3 and not done.reused
    assert seen[0][0][1:6] == ["-m", "reprolab.cli", "run", "zclip", "--in-process"] and seen[0][1] == "1"
