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


def test_study_and_bench_are_registered():
    from reprolab.study import benches, studies

    s = studies()["neuralgs"]
    assert {c.key for c in s.claims} == {"ratio_within_half_db", "clustering", "importance", "frequency_loss", "beats_fp16_zip", "beats_prune_vq"}
    assert "neuralgs" in benches()  # the rules themselves: tests/papers/test_neuralgs_study.py


def _cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "reprolab.cli", "neuralgs", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("which", ["ply", "views", "ngs"])
@pytest.mark.parametrize("problem", ["missing", "unreadable"])
def test_missing_or_unreadable_input_is_a_one_line_error_exit_2(tmp_path, which, problem):
    """The real entry point: a typed MalformedFile, printed on one line, exit status 2 (no traceback)."""
    cams = [look_at((3, 0, 1), (0, 0, 0), width=8, height=8)]
    save_views(tmp_path / "v.npz", cams, torch.zeros(1, 8, 8, 3))
    (tmp_path / "s.ply").write_bytes(b"placeholder")  # never read when another input is the bad one
    bad = tmp_path / f"bad.{which}"
    if problem == "unreadable":
        bad.mkdir()  # a folder where a file is expected: open() fails (chmod 000 does not stop root)
    args = {"ply": ["compress", str(bad), "--views", str(tmp_path / "v.npz")],
            "views": ["compress", str(tmp_path / "s.ply"), "--views", str(bad)],
            "ngs": ["decompress", str(bad)]}[which]
    if which == "views":  # the .ply is checked first: give a readable one
        from reprolab.gaussians import write_ply
        from reprolab.gaussians.fit import initial_scene

        write_ply(tmp_path / "s.ply", initial_scene(torch.rand(5, 3), torch.rand(5, 3), 0))
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(bad) in lines[0], r.stderr
    assert ("no such" if problem == "missing" else "not a regular file") in lines[0]
    assert "Traceback" not in r.stderr


def test_rasterizer_speed_is_measured_per_size():
    from reprolab.papers.neuralgs.bench import RASTER_SIZES, rasterizer_speed

    times, rate = rasterizer_speed((40, 160), image=12, repeats=1)
    assert list(times) == ["40 Gaussians, forward", "40 Gaussians, forward + backward", "160 Gaussians, forward", "160 Gaussians, forward + backward"]
    assert all(len(v) == 1 and v[0] > 0 for v in times.values())
    assert all(np.isfinite(r) and r > 0 for r in rate.values())
    assert rate["160 Gaussians, forward"] == pytest.approx(160 / times["160 Gaussians, forward"][0])
    assert all(len(s) == 3 for s in RASTER_SIZES.values()) and max(RASTER_SIZES[False]) == 100_000
