"""NeuralGS: importance and pruning by hand, normalised clustering, positional encoding, the
importance-weighted fit on a planted scene, fine-tuning, the file format, peers, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from reprolab.gaussians import GaussianScene, look_at, psnr, random_scene, render, write_ply
from reprolab.papers.neuralgs import (
    NeuralGSConfig,
    NeuralGSFile,
    attribute_targets,
    cluster_gaussians,
    clustering_features,
    compress,
    decompress,
    importance_scores,
    positional_encoding,
    prune_least_important,
    scene_from_targets,
)
from reprolab.papers.neuralgs.baselines import fp16_unzip, fp16_zip, prune_sh_vq, prune_sh_vq_decode


pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(num_clusters=2, mlp_width=16, fit_iterations=30, finetune_iterations=0, kmeans_restarts=1)


def small_scene(n: int = 60, degree: int = 1, seed: int = 0) -> GaussianScene:
    s = random_scene(n, degree, torch.Generator().manual_seed(seed), extent=0.6)
    s.log_scales.add_(0.5)
    return s


def cams(n: int = 3, size: int = 12):
    return [look_at((2.5 * math.cos(a), 2.5 * math.sin(a), 1.0), (0, 0, 0), width=size, height=size) for a in np.linspace(0, 2 * math.pi, n, endpoint=False)]


def views_of(scene: GaussianScene, cameras) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([render(scene, c).image.clamp(0, 1) for c in cameras])


def test_importance_is_blend_weight_times_volume_term_by_hand():
    scene, cameras = small_scene(40), cams(2)
    beta = 0.1
    s = importance_scores(scene, cameras, volume_power=beta)
    blend = sum(render(scene, c, return_weights=True).weights for c in cameras)
    vol = torch.exp(scene.log_scales).prod(1)
    v90 = torch.sort(vol, descending=True).values[int(0.9 * 40)]  # LightGaussian's reference volume
    torch.testing.assert_close(s, blend * (vol / v90) ** beta)
    torch.testing.assert_close(importance_scores(scene, cameras, volume_power=0.0), blend)


def test_unseen_and_hidden_gaussians_are_least_important_and_pruned_first():
    scene = small_scene(30)
    scene.means[0] = torch.tensor([0.0, 0.0, -50.0])  # far out of every view
    s = importance_scores(scene, cams(3))
    assert s[0] == 0
    kept, idx = prune_least_important(scene, s, 0.4)
    assert len(kept) == 30 - 12 and 0 not in idx.tolist()
    assert s[idx].min() >= s[torch.tensor([i for i in range(30) if i not in idx.tolist()])].max()


def test_clustering_features_are_normalised_per_column_and_group():
    scene = small_scene(50, degree=3)
    f = clustering_features(scene)
    widths = [3, 3, 45, 1, 3, 4]  # position, DC, SH rest, opacity, scale, rotation
    assert f.shape == (50, sum(widths))
    col = 0
    for w in widths:
        block = f[:, col : col + w] * math.sqrt(w)
        torch.testing.assert_close(block.min(0).values, torch.full((w,), -1.0))
        torch.testing.assert_close(block.max(0).values, torch.full((w,), 1.0))
        col += w


def test_kmeans_separates_planted_groups_and_respects_weights():
    a, b = small_scene(20, seed=1), small_scene(20, seed=2)
    b.means.add_(torch.tensor([5.0, 0, 0]))
    b.sh_dc.add_(3.0)
    both = GaussianScene(**{k: torch.cat([a.tensors()[k], b.tensors()[k]]) for k in a.tensors()})
    labels = cluster_gaussians(both, 2, seed=0)
    assert len(set(labels[:20].tolist())) == 1 and len(set(labels[20:].tolist())) == 1 and labels[0] != labels[20]
    assert cluster_gaussians(both, 1).unique().tolist() == [0]
    with pytest.raises(ConfigError, match="num_clusters"):
        cluster_gaussians(both, 41)


def test_positional_encoding_by_hand():
    x = torch.tensor([[0.5, -0.25, 0.0]])
    e = positional_encoding(x, 10)
    assert e.shape == (1, 3 + 6 * 10)
    torch.testing.assert_close(e[0, :3], x[0])
    torch.testing.assert_close(e[0, 3:6], torch.sin(math.pi * x[0]))  # level 0 sines
    torch.testing.assert_close(e[0, 6:9], torch.sin(2 * math.pi * x[0]))  # level 1 sines
    torch.testing.assert_close(e[0, 33:36], torch.cos(math.pi * x[0]))  # level 0 cosines


def test_targets_round_trip_and_canonical_quaternions():
    s = small_scene(10, degree=2)
    t = attribute_targets(s)
    assert t.shape == (10, 1 + 3 + 4 + 3 + 24)
    back = scene_from_targets(s.means, t)
    torch.testing.assert_close(back.sh_rest, s.sh_rest)
    assert (back.quats[:, 0] >= 0).all()
    torch.testing.assert_close(back.rotations.abs(), s.rotations.abs())


def _attr_error_on(scene: GaussianScene, decoded: GaussianScene, which: torch.Tensor) -> float:
    """Attribute error of the decoded Gaussians matched to ``scene[which]`` by position."""
    from scipy.spatial import cKDTree

    tree = cKDTree(decoded.means.numpy())
    _, j = tree.query(scene.means[which].half().float().numpy())
    return float(((attribute_targets(decoded)[j] - attribute_targets(scene)[which]) ** 2).mean())


def test_importance_weighting_fits_important_gaussians_better():
    """Planted: half the Gaussians are invisible (opacity ~0, so importance 0) and interleaved with
    the visible half. With the weighted loss the small MLP spends its capacity on the Gaussians that
    matter, so the most important ones come out closer to their attributes."""
    torch.manual_seed(0)
    scene = small_scene(80, degree=1, seed=3)
    scene.opacity_logit[40:] = -12.0  # alpha < 1/255 everywhere: never blended
    cameras = cams(3)
    images = views_of(scene, cameras)
    scores = importance_scores(scene, cameras)
    assert (scores[40:] == 0).all()
    top = torch.argsort(scores, descending=True)[:20]
    errs = {}
    for weighted in (False, True):
        cfg = NeuralGSConfig(prune_ratio=0.0, num_clusters=1, mlp_width=8, pe_levels=4, fit_iterations=300, finetune_iterations=0, importance_weighting=weighted)
        errs[weighted] = _attr_error_on(scene, decompress(compress(scene, cameras, images, cfg)), top)
    assert errs[True] < 0.7 * errs[False]


def test_finetuning_through_the_renderer_improves_training_views():
    scene, cameras = small_scene(60, seed=4), cams(3, 16)
    images = views_of(scene, cameras)

    def train_psnr(ft: int) -> float:
        f = compress(scene, cameras, images, NeuralGSConfig(num_clusters=2, mlp_width=16, fit_iterations=60, finetune_iterations=ft, kmeans_restarts=1))
        d = decompress(f)
        return float(np.mean([psnr(render(d, c).image, im) for c, im in zip(cameras, images)]))

    assert train_psnr(40) > train_psnr(0) + 0.3


def test_file_round_trip_size_and_invariants(tmp_path):
    scene, cameras = small_scene(50, degree=3, seed=5), cams(2)
    write_ply(tmp_path / "s.ply", scene)
    f = compress(tmp_path / "s.ply", cameras, views_of(scene, cameras), NeuralGSConfig(**TINY))
    raw = f.to_bytes()
    path = f.save(tmp_path / "s.ngs")
    assert path.stat().st_size == len(raw) == f.num_bytes
    a, b = decompress(f), decompress(path)
    for k in a.tensors():
        torch.testing.assert_close(a.tensors()[k], b.tensors()[k], rtol=0, atol=0)
    assert len(a) == 50 - 20 and a.sh_degree == 3  # 40% pruned
    kept_positions = {tuple(p) for p in scene.means.half().numpy().tolist()}
    assert {tuple(p) for p in a.means.half().numpy().tolist()} <= kept_positions  # fp16 positions, kept explicit
    assert sum(f.counts) == 30 and len(f.weights) == 5 and f.weights[0].shape == (2, 63, 16) and f.weights[0].dtype == np.float16


def test_corrupt_neuralgs_files_raise(tmp_path):
    scene, cameras = small_scene(30, seed=6), cams(2)
    raw = compress(scene, cameras, views_of(scene, cameras), NeuralGSConfig(**TINY)).to_bytes()
    for bad, msg in ((b"XXXX" + raw[4:], "magic"), (raw[:-10], "corrupt or truncated"), (raw[:6], "magic")):
        with pytest.raises(MalformedFile, match=msg):
            decompress(bad)
    with pytest.raises(MalformedFile, match="no such NeuralGS file") as e:
        NeuralGSFile.load(tmp_path / "none.ngs")
    assert "none.ngs" in str(e.value) and "fix:" in str(e.value) and "\n" not in str(e.value)


def test_bad_inputs_raise_typed_errors():
    scene, cameras = small_scene(20), cams(2)
    images = views_of(scene, cameras)
    with pytest.raises(ConfigError, match="prune_ratio"):
        NeuralGSConfig(prune_ratio=1.2)
    with pytest.raises(ShapeError, match="images"):
        compress(scene, cameras, images[:1], NeuralGSConfig(**TINY))
    with pytest.raises(NonFiniteError, match="images"):
        compress(scene, cameras, images * float("nan"), NeuralGSConfig(**TINY))
    scene.log_scales[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match="log_scales"):
        compress(scene, cameras, images, NeuralGSConfig(**TINY))


def test_peers_round_trip():
    scene = small_scene(40, degree=3, seed=7)
    d = fp16_unzip(fp16_zip(scene))
    for k in scene.tensors():
        torch.testing.assert_close(d.tensors()[k], scene.tensors()[k].half().float())
    scores = torch.arange(40, dtype=torch.float32)
    raw = prune_sh_vq(scene, scores, prune_ratio=0.4, codebook_size=256)  # codebook >= Gaussians: exact up to fp16
    d = prune_sh_vq_decode(raw)
    assert len(d) == 24
    torch.testing.assert_close(d.means, scene.means[16:].half().float())
    torch.testing.assert_close(d.sh_rest, scene.sh_rest[16:].half().float(), atol=2e-3, rtol=0)
    small = prune_sh_vq_decode(prune_sh_vq(scene, scores, codebook_size=4))
    assert len(torch.unique(small.sh_rest.reshape(24, -1), dim=0)) <= 4


def test_fuzz_neuralgs_file_reader():
    """Random truncations and byte flips of a valid file: a file object or MalformedFile, nothing else."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    scene, cameras = small_scene(20, seed=8), cams(1)
    raw = compress(scene, cameras, views_of(scene, cameras), NeuralGSConfig(**{**TINY, "num_clusters": 1})).to_bytes()

    @settings(max_examples=80, deadline=None, derandomize=True)
    @given(cut=st.integers(0, len(raw)), flips=st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4))
    def check(cut, flips):
        b = bytearray(raw[:cut])
        for pos, val in flips:
            if pos < len(b):
                b[pos] = val
        try:
            NeuralGSFile.from_bytes(bytes(b))
        except MalformedFile:
            pass

    check()
