"""NeuralGS operating points: size targets, quality targets, never a file larger than the input,
time budgets, minibatch fitting, and the CLI's choices (issue 18, item 2)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from reprolab.errors import ConfigError
from reprolab.gaussians import look_at, random_scene, read_ply, render, save_views, write_ply
from reprolab.papers.neuralgs import NeuralGSConfig, choose_operating_point, compress, mlp_parameters, predicted_bytes
from reprolab.papers.neuralgs import operating
from reprolab.papers.neuralgs.cli import app
from reprolab.papers.neuralgs.operating import compress_to_quality, compress_to_target, holdout_split, input_bytes_of

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = dict(fit_iterations=20, finetune_iterations=0, kmeans_restarts=1)


def scene_and_views(n=120, degree=3, views=3, size=10, seed=0):
    s = random_scene(n, degree, torch.Generator().manual_seed(seed), extent=0.6)
    s.log_scales.add_(0.5)
    cams = [look_at((2.5 * math.cos(a), 2.5 * math.sin(a), 1.0), (0, 0, 0), width=size, height=size) for a in np.linspace(0, 2 * math.pi, views, endpoint=False)]
    with torch.no_grad():
        imgs = torch.stack([render(s, c).image.clamp(0, 1) for c in cams])
    return s, cams, imgs


def test_mlp_parameters_by_hand():
    # in 63 (3 + 6*10), width 128, 5 layers, out 56 (degree 3): 63*128+128 + 3*(128*128+128) + 128*56+56
    assert mlp_parameters(1, 128) == 63 * 128 + 128 + 3 * (128 * 128 + 128) + 128 * 56 + 56
    assert mlp_parameters(8, 128) == 8 * mlp_parameters(1, 128)
    assert mlp_parameters(1, 16, sh_degree=0) == 63 * 16 + 16 + 3 * (16 * 16 + 16) + 16 * 11 + 11


@pytest.mark.parametrize("target", [9_000, 20_000, 60_000, 400_000, 3_000_000])
def test_chosen_operating_point_fits_and_grows_with_the_target(target):
    op = choose_operating_point(400, 3, target)
    assert op.predicted_bytes <= target and 1 <= op.num_clusters <= 8 and 4 <= op.mlp_width <= 128
    bigger = choose_operating_point(400, 3, 2 * target)
    assert mlp_parameters(bigger.num_clusters, bigger.mlp_width) >= mlp_parameters(op.num_clusters, op.mlp_width)


def test_target_below_the_positions_floor_is_a_typed_error():
    with pytest.raises(ConfigError, match="fp16 positions alone"):
        choose_operating_point(100_000, 3, 100_000)  # 60k kept x 6 bytes > 100 kB


def test_predicted_bytes_bound_the_written_file():
    s, cams, imgs = scene_and_views(150)
    for c, w in ((1, 8), (3, 24)):
        f = compress(s, cams, imgs, NeuralGSConfig(num_clusters=c, mlp_width=w, **FAST))
        pred = predicted_bytes(f.stats["kept_gaussians"], f.stats["clusters"], w, sh_degree=3)
        assert f.num_bytes <= pred and f.num_bytes > 0.8 * pred, (c, w, f.num_bytes, pred)


def test_the_issue_case_never_grows_the_scene(tmp_path):
    """8 MLPs of width 128 on a 400-Gaussian scene would be ~1 MB against a 100 kB .ply: kept."""
    s, cams, imgs = scene_and_views(400, views=2, size=8)
    res = compress_to_target(s, cams, imgs, None, NeuralGSConfig(**FAST), clusters=8, width=128)
    assert res.kept_input and "not less than the input" in res.reason and res.tried[0]["predicted_bytes"] > input_bytes_of(s)
    # the default (a tenth of the input) compresses, and the file is at most that
    res = compress_to_target(s, cams, imgs, None, NeuralGSConfig(**FAST))
    n_in = input_bytes_of(s)
    assert not res.kept_input and res.file.num_bytes <= n_in / 10


def test_a_given_cluster_count_or_width_is_kept_and_the_other_fits_the_target():
    s, cams, imgs = scene_and_views(400, views=2, size=8)
    cfg = NeuralGSConfig(**{**FAST, "fit_iterations": 5})
    res = compress_to_target(s, cams, imgs, 20_000, cfg, clusters=3)
    assert res.tried[0]["clusters"] == 3 and res.tried[0]["predicted_bytes"] <= 20_000 and res.file.num_bytes <= 20_000
    res = compress_to_target(s, cams, imgs, 20_000, cfg, width=12)
    assert res.tried[0]["width"] == 12 and res.tried[0]["predicted_bytes"] <= 20_000


def test_a_written_file_larger_than_the_input_is_dropped(monkeypatch):
    s, cams, imgs = scene_and_views(60, views=2, size=8)
    monkeypatch.setattr(operating, "predicted_bytes", lambda *a, **k: 1)  # a wrong estimate lets it compress
    res = compress_to_target(s, cams, imgs, 10**9, NeuralGSConfig(**FAST), clusters=4, width=64)
    assert res.kept_input and "is not smaller than the input" in res.reason and res.tried[0]["bytes"] >= input_bytes_of(s)


def test_quality_target_takes_the_smallest_passing_rung_or_keeps_the_input(monkeypatch):
    s, cams, imgs = scene_and_views(300, views=9, size=8)
    assert holdout_split(9) == ([1, 2, 3, 4, 5, 6, 7], [0, 8])
    assert holdout_split(5) == ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    res = compress_to_quality(s, cams, imgs, 1000.0, NeuralGSConfig(**FAST))  # any drop passes: the smallest rung
    assert not res.kept_input and len(res.tried) == 1 and res.tried[0]["views"] == "held-out"
    assert res.file.num_bytes <= res.tried[0]["target_bytes"]
    # planted: every rung drops 5 dB, or the drop shrinks as the file grows
    monkeypatch.setattr(operating, "psnr_drop", lambda *a, **k: 5.0)
    res = compress_to_quality(s, cams, imgs, 0.5, NeuralGSConfig(**FAST))
    assert res.kept_input and len(res.tried) >= 3 and "stays within 0.5 dB" in res.reason
    drops = iter([3.0, 1.0, 0.4, 0.1, 0.0])
    monkeypatch.setattr(operating, "psnr_drop", lambda *a, **k: next(drops))
    res = compress_to_quality(s, cams, imgs, 0.5, NeuralGSConfig(**FAST))
    assert not res.kept_input and [r["db_drop"] for r in res.tried] == [3.0, 1.0, 0.4]
    sizes = [r["target_bytes"] for r in res.tried]
    assert sizes == sorted(sizes)
    with pytest.raises(ConfigError, match="max_db_drop"):
        compress_to_quality(s, cams, imgs, float("nan"))


def test_time_budget_cuts_the_steps_and_minibatches_learn():
    s, cams, imgs = scene_and_views(200, views=2, size=8)
    t = time.perf_counter()
    f = compress(s, cams, imgs, NeuralGSConfig(num_clusters=2, mlp_width=16, fit_iterations=10**6, finetune_iterations=10**6, kmeans_restarts=1, time_budget_s=2.0, fit_batch=32))
    assert time.perf_counter() - t < 10
    assert 3 <= f.stats["steps"]["fit"] < 10**6 and 3 <= f.stats["steps"]["finetune"] < 10**6
    assert f.stats["importance_views"] == 2  # both views fit in a fifth of 2 s
    first, last = f.stats["fit_loss_first_last"]
    assert last < first
    with pytest.raises(ConfigError, match="fit_batch"):
        NeuralGSConfig(fit_batch=-1)


def test_cli_default_and_targets(tmp_path):
    s, cams, imgs = scene_and_views(400, views=9, size=8)
    write_ply(tmp_path / "s.ply", s)
    save_views(tmp_path / "v.npz", cams, imgs)
    n_in = (tmp_path / "s.ply").stat().st_size
    run = CliRunner().invoke
    common = ["--views", str(tmp_path / "v.npz"), "--fit-iterations", "20", "--finetune-iterations", "2"]
    r = run(app, ["compress", str(tmp_path / "s.ply"), *common, "--clusters", "8", "--width", "128", "--out", str(tmp_path / "big.ngs")])
    assert r.exit_code == 0, r.output
    assert "not compressed" in r.output and "kept the input format" in r.output
    assert not (tmp_path / "big.ngs").exists() and (tmp_path / "big.ply").read_bytes() == (tmp_path / "s.ply").read_bytes()
    r = run(app, ["compress", str(tmp_path / "s.ply"), *common, "--target-kb", "20", "--out", str(tmp_path / "t.ngs")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "t.ngs").stat().st_size <= 20_000 and "smaller" in r.output
    r = run(app, ["compress", str(tmp_path / "s.ply"), *common, "--out", str(tmp_path / "d.ngs")])
    assert r.exit_code == 0 and (tmp_path / "d.ngs").stat().st_size <= n_in / 10, r.output
    assert len(read_ply(tmp_path / "s.ply")) == 400
    r = run(app, ["compress", str(tmp_path / "s.ply"), *common, "--max-db-drop", "100", "--out", str(tmp_path / "q.ngs")])
    assert r.exit_code == 0 and "tried" in r.output and (tmp_path / "q.ngs").stat().st_size <= n_in / 20, r.output  # input/50 is below the positions' floor here
    assert "input/50" not in r.output and "PSNR drop" in r.output
    r = run(app, ["compress", str(tmp_path / "s.ply"), *common, "--max-db-drop", "1", "--target-kb", "5"])
    assert isinstance(r.exception, ConfigError)
    r = run(app, ["compress", str(tmp_path / "s.ply"), "--fit-iterations", "2"])
    assert isinstance(r.exception, ConfigError) and "exactly one of --views" in str(r.exception)


def test_cli_reads_colmap_and_transforms_views(tmp_path):
    from reprolab.gaussians import write_transforms, write_colmap_model
    from reprolab.gaussians.colmap import model_from_cameras
    from reprolab.gaussians.images import write_image

    s, cams, imgs = scene_and_views(200, views=3, size=8)
    write_ply(tmp_path / "scene" / "point_cloud.ply", s)
    write_colmap_model(tmp_path / "scene" / "sparse" / "0", model_from_cameras([(f"{i}.png", c) for i, c in enumerate(cams)]))
    (tmp_path / "scene" / "images").mkdir()
    for i, im in enumerate(imgs):
        write_image(tmp_path / "scene" / "images" / f"{i}.png", im)
    write_transforms(tmp_path / "nerf" / "transforms_train.json", cams, imgs)
    common = ["--fit-iterations", "10", "--finetune-iterations", "1", "--clusters", "1", "--width", "8"]
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "scene" / "point_cloud.ply"), "--colmap", str(tmp_path / "scene" / "sparse" / "0"), *common])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["compress", str(tmp_path / "scene" / "point_cloud.ply"), "--transforms", str(tmp_path / "nerf" / "transforms_train.json"), "--out", str(tmp_path / "n.ngs"), *common])
    assert r.exit_code == 0 and (tmp_path / "n.ngs").exists(), r.output


def test_importance_over_a_view_subset_adds_up_and_a_tight_budget_caps_the_views():
    from reprolab.papers.neuralgs import importance_scores

    s, cams, imgs = scene_and_views(80, views=5, size=8)
    torch.testing.assert_close(importance_scores(s, cams[:1]) + importance_scores(s, cams[1:]), importance_scores(s, cams))
    f = compress(s, cams, imgs, NeuralGSConfig(num_clusters=1, mlp_width=8, fit_iterations=5, finetune_iterations=0, kmeans_restarts=1, time_budget_s=1e-5))
    assert f.stats["importance_views"] == 1 and f.stats["steps"]["fit"] == 3  # the calibration steps only
