"""``reprolab gpt-imgeval``: prompts, evaluate (COCO detections) and summary; a missing file is one line, exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from typer.testing import CliRunner

from reprolab.papers.gpt_imgeval.cli import app


def test_prompts_evaluate_summary(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["prompts", str(tmp_path / "p.jsonl"), "--per-tag", "1", "--seed", "0"])
    assert res.exit_code == 0, res.output
    metas = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    from reprolab.papers.gpt_imgeval import fill_folder

    root = fill_folder(lambda prompt, n, seed: [np.zeros((8, 8, 3), np.uint8)] * n, metas, tmp_path / "images", n_samples=1)
    single = metas[0]["include"][0]["class"]
    (tmp_path / "dets.json").write_text(json.dumps([{"image_id": 0, "category_id": 1, "bbox": [1, 1, 3, 3], "score": 0.9}]))
    (tmp_path / "cats.json").write_text(json.dumps({"1": single}))
    (tmp_path / "ids.json").write_text(json.dumps({str(root / f"{i:05}" / "samples" / "0000.png"): i for i in range(6)}))  # every image, 0 = path
    res = runner.invoke(app, ["evaluate", str(root), str(tmp_path / "r.jsonl"), "--coco", str(tmp_path / "dets.json"),
                              "--categories", str(tmp_path / "cats.json"), "--ids", str(tmp_path / "ids.json")])
    assert res.exit_code == 0, res.output
    assert "single_object    = 100.00% (1 / 1)" in res.output and "two_object       = 0.00% (0 / 1)" in res.output
    res = runner.invoke(app, ["summary", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 0 and "Total images: 6" in res.output


def test_missing_results_file_is_a_one_line_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "reprolab.cli", "gpt-imgeval", "summary", str(tmp_path / "none.jsonl")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "none.jsonl" in r.stderr
