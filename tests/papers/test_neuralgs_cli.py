"""``reprolab neuralgs`` on the command line (example -> compress -> decompress), the views file, and
the study's and benchmark's registration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from reprolab.errors import MalformedFile
from reprolab.gaussians import load_views, look_at, read_ply, save_views
from reprolab.papers.neuralgs.cli import app


pytestmark = pytest.mark.usefixtures("one_thread")


def test_example_compress_decompress(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["example", str(tmp_path), "--gaussians", "150", "--size", "16", "--views", "4", "--iterations", "10"])
    assert r.exit_code == 0, r.output
    ply, views = tmp_path / "scene.ply", tmp_path / "views.npz"
    n = len(read_ply(ply))
    r = runner.invoke(app, ["compress", str(ply), "--views", str(views), "--clusters", "2", "--width", "8", "--fit-iterations", "20", "--finetune-iterations", "2", "--out", str(tmp_path / "s.ngs")])
    assert r.exit_code == 0, r.output
    assert "smaller" in r.output and (tmp_path / "s.ngs").stat().st_size < ply.stat().st_size
    r = runner.invoke(app, ["decompress", str(tmp_path / "s.ngs"), "--out", str(tmp_path / "back.ply")])
    assert r.exit_code == 0, r.output
    back = read_ply(tmp_path / "back.ply")
    assert len(back) == n - round(0.4 * n) and back.sh_degree == 3


def test_compress_refuses_a_corrupt_ply(tmp_path):
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nend_header\n\0\0")
    cams = [look_at((3, 0, 1), (0, 0, 0), width=8, height=8)]
    save_views(tmp_path / "v.npz", cams, torch.zeros(1, 8, 8, 3))
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "bad.ply"), "--views", str(tmp_path / "v.npz")])
    assert r.exit_code != 0 and isinstance(r.exception, MalformedFile)


def test_views_file_round_trip_and_errors(tmp_path):
    cams = [look_at((3, 0.5, 1), (0, 0, 0), width=10, height=6), look_at((0, 3, 1), (0, 0, 0), width=10, height=6)]
    imgs = torch.rand(2, 6, 10, 3, generator=torch.Generator().manual_seed(0))
    save_views(tmp_path / "v.npz", cams, imgs)
    c2, i2 = load_views(tmp_path / "v.npz")
    assert (i2 - imgs).abs().max() <= 0.5 / 255 + 1e-6
    torch.testing.assert_close(c2[1].R, cams[1].R)
    assert (c2[0].fx, c2[0].width, c2[0].height) == (cams[0].fx, 10, 6)
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 6, 10, 3)))
    with pytest.raises(MalformedFile, match="viewmats"):
        load_views(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MalformedFile, match="readable"):
        load_views(tmp_path / "junk.npz")


def test_study_and_bench_are_registered_with_rules():
    from reprolab.study import benches, studies

    s = studies()["neuralgs"]
    assert {c.key for c in s.claims} == {"size_quality", "ablation_order", "beats_peers"}
    assert "neuralgs" in benches()
    # the rules judge planted metrics as written
    methods = {k: {"bytes": b, "psnr": p, "ratio": 500 / b, "psnr_loss": 25 - p} for k, b, p in [("original", 500, 25.0), ("fp16_zip", 200, 25.0), ("prune_vq", 60, 24.9), ("single_mlp", 20, 21.0), ("clustered", 45, 24.5), ("clustered_importance", 45, 24.6), ("neuralgs", 45, 24.7)]}
    verdicts = {c.key: c.judge({"methods": methods}).verdict.value for c in s.claims}
    assert verdicts == {"size_quality": "reproduced", "ablation_order": "reproduced", "beats_peers": "reproduced"}
    methods["neuralgs"]["psnr_loss"] = 0.6
    methods["clustered"]["psnr"] = 24.8
    verdicts = {c.key: c.judge({"methods": methods}).verdict.value for c in s.claims}
    assert verdicts["size_quality"] == "partly" and verdicts["ablation_order"] == "partly"
