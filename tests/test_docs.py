from __future__ import annotations

import re
from pathlib import Path

from reprolab.docs import ROOT, read_status, readme_table

PAPERS = Path(ROOT).parent / "shared" / "papers" / "README.md"


def test_status_lists_all_23_papers():
    rows = read_status()
    assert [int(r.number) for r in rows] == list(range(1, 24))
    assert len({r.folder for r in rows}) == 23
    if PAPERS.exists():  # names as in the spec sheets' index
        folders = re.findall(r"^\| \d+ \| (`\w+`) \|", PAPERS.read_text(), flags=re.M)
        assert [r.folder for r in rows] == folders


def test_readme_table_is_generated_from_status():
    readme = (ROOT / "README.md").read_text()
    assert readme_table(read_status()) in readme, "README.md is stale: run `make readme`"
    assert readme.index("make demo") < readme.index("## The papers") and readme.index("make test") < readme.index("## The papers")


def test_generated_docs_agree_with_the_results_of_record():
    """Every README record block, docs/status.md's study column and README's table are what
    `make readme` generates from results/<name>/result.json: no hand-copied figure can disagree."""
    from reprolab.docs import main

    assert main(["--check"]) == 0, "run `make readme`"


def test_record_block_and_status_cell_come_from_the_result_file(toy_study, tmp_path):
    from reprolab import study as study_mod
    from reprolab.docs import record_block, status_cell

    assert "No result of record yet" in record_block("toy", tmp_path / "results")
    study_mod.run_study("toy", "full", out=tmp_path / "runs")
    study_mod.save_record("toy", tmp_path / "runs", tmp_path / "results")
    block = record_block("toy", tmp_path / "results")
    rec = study_mod.load_record("toy", tmp_path / "results")
    h = rec.claims[0].headline
    assert f"over {h['n']} draws" in block and "**reproduced**" in block and rec.command in block
    assert status_cell("toy", tmp_path / "results").startswith("reproduced (record")


def test_a_new_record_keeps_the_files_beside_it_and_replaces_the_figures(toy_study, tmp_path):
    """`reprolab record` replaces result.json and figures/, never the calibration data committed beside them."""
    from reprolab import study as study_mod

    study_mod.run_study("toy", "full", out=tmp_path / "runs")
    study_mod.save_record("toy", tmp_path / "runs", tmp_path / "results")
    rec = tmp_path / "results" / "toy"
    (rec / "calibration.jsonl").write_text('{"seed": 0}\n')
    (rec / "figures" / "stale.png").write_bytes(b"old")
    study_mod.save_record("toy", tmp_path / "runs", tmp_path / "results")
    assert (rec / "calibration.jsonl").read_text() == '{"seed": 0}\n'
    assert not (rec / "figures" / "stale.png").exists() and (rec / "result.json").exists()
