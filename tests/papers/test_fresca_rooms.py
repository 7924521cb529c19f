"""The shared rooms FreSca brought: tiny diffusion (reprolab.nn.diffusion), Fashion-MNIST reader, synthetic scenes."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch

from reprolab.data import fashion_mnist as fm
from reprolab.data.scenes import SceneConfig, make_scenes, render_scene
from reprolab.errors import AssetMissing, ConfigError, MalformedFile

diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (pip install diffusers==0.42.0)")

from reprolab.nn.diffusion import DiffusionBatch, TinyUNetConfig, TrainConfig, build_unet, ddim_sample, load_model, save_model, train_diffusion  # noqa: E402

TINY = TinyUNetConfig(sample_size=8, block_out_channels=(8, 16), num_classes=2, norm_num_groups=4)


def planted(step: int) -> DiffusionBatch:
    """Class 0: images of -0.6, class 1: images of +0.6 (the class decides the sign)."""
    g = torch.Generator().manual_seed(step)
    y = torch.randint(0, 2, (32,), generator=g)
    x0 = (y.float() * 1.2 - 0.6)[:, None, None, None].expand(32, 1, 8, 8).clone()
    return DiffusionBatch(x0=x0, class_labels=y)


def test_class_conditional_training_learns_the_planted_classes():
    torch.manual_seed(0)
    unet = build_unet(TINY)
    out = train_diffusion(unet, planted, TrainConfig(steps=150, lr=3e-3, warmup=10, cfg_dropout=0.2, ema_decay=None), null_class=TINY.null_class)
    assert len(out.losses["mse"]) == 150
    assert np.mean(out.losses["mse"][-20:]) < 0.5 * np.mean(out.losses["mse"][:20])
    y = torch.tensor([0] * 16 + [1] * 16)

    def separation(w):
        x = ddim_sample(unet, (32, 1, 8, 8), class_labels=y, guidance_scale=w, null_class=TINY.null_class, num_inference_steps=10, generator=torch.Generator().manual_seed(0))
        means = x.mean((1, 2, 3))
        return float(means[16:].mean() - means[:16].mean())

    s1, s3 = separation(1.0), separation(3.0)
    assert s1 > 0.2  # the class decides the sign of the sample
    assert s3 > s1  # and classifier-free guidance pushes further towards it


def test_resumed_training_equals_uninterrupted(tmp_path):
    cfg = TrainConfig(steps=8, lr=1e-3, warmup=2, checkpoint_every=4, ema_decay=0.9)
    torch.manual_seed(0)
    a = build_unet(TINY)
    train_diffusion(a, planted, cfg, null_class=2, checkpoint=tmp_path / "a.pt")

    def crashing(step):
        if step == 6:
            raise KeyboardInterrupt  # killed after the checkpoint at step 4
        return planted(step)

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        train_diffusion(build_unet(TINY), crashing, cfg, null_class=2, checkpoint=tmp_path / "b.pt")
    b = build_unet(TINY)  # a fresh process starts from other weights; the checkpoint restores them
    out = train_diffusion(b, planted, cfg, null_class=2, checkpoint=tmp_path / "b.pt")
    assert out.resumed_from == 4 and len(out.losses["mse"]) == 8
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_image_conditioned_v_prediction_and_model_round_trip(tmp_path):
    cfg = TinyUNetConfig(sample_size=8, in_channels=4, out_channels=1, block_out_channels=(8, 16), norm_num_groups=4)
    torch.manual_seed(0)
    unet = build_unet(cfg)
    batch = DiffusionBatch(x0=torch.rand(4, 1, 8, 8), image=torch.rand(4, 3, 8, 8))
    train_diffusion(unet, iter([batch] * 3), TrainConfig(steps=3, prediction_type="v_prediction", cfg_dropout=0.0), description="t")
    x = ddim_sample(unet, (4, 1, 8, 8), image=batch.image, num_inference_steps=3, prediction_type="v_prediction", generator=torch.Generator().manual_seed(1))
    assert x.shape == (4, 1, 8, 8) and torch.isfinite(x).all()
    save_model(tmp_path / "m.pt", unet, cfg, {"note": "x"})
    unet2, cfg2, extra = load_model(tmp_path / "m.pt")
    assert cfg2 == cfg and extra == {"note": "x"}
    y = ddim_sample(unet2, (4, 1, 8, 8), image=batch.image, num_inference_steps=3, prediction_type="v_prediction", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(x, y)
    assert load_model(tmp_path / "none.pt") is None
    with pytest.raises(ConfigError, match="batches"):
        train_diffusion(unet, iter([batch]), TrainConfig(steps=2, cfg_dropout=0.0))
    with pytest.raises(ConfigError, match="norm_num_groups"):
        TinyUNetConfig(block_out_channels=(12, 16), norm_num_groups=8)


# ----------------------------------------------------------------------------- Fashion-MNIST reader


def write_idx(path, arr: np.ndarray, code: int, compress: bool):
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture
def fake_root(tmp_path):
    rng = np.random.default_rng(0)
    for split, n, gz in (("train", 30, True), ("t10k", 20, False)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{'.gz' if gz else ''}", rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), 0x08, gz)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{'.gz' if gz else ''}", (np.arange(n) % 10).astype(np.uint8), 0x08, gz)
    return tmp_path


def test_reader_on_written_idx_files(fake_root):
    train = fm.load_fashion_mnist("train", root=fake_root)
    test = fm.load_fashion_mnist("test", root=fake_root, limit=7)
    assert train.images.shape == (30, 28, 28) and train.images.dtype == np.uint8 and len(test) == 7
    x = train.tensors(32)
    assert x.shape == (30, 1, 32, 32) and float(x.min()) >= -1 and float(x[0, 0, 0, 0]) == -1.0  # padding is background
    torch.testing.assert_close(x[:, :, 2:30, 2:30], torch.from_numpy(train.images[:, None] / 127.5 - 1).float())
    sub = train.subset(10, seed=1)
    assert sorted(sub.labels.tolist()) == list(range(10))


def test_reader_refuses_corrupt_and_missing_files(fake_root, tmp_path_factory):
    p = fake_root / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-5])  # truncated
    with pytest.raises(MalformedFile, match="truncated or corrupt"):
        fm.load_fashion_mnist("test", root=fake_root)
    p.write_bytes(b"\x89PNG not idx")
    with pytest.raises(MalformedFile, match="not an IDX file"):
        fm.read_idx(p)
    (fake_root / "train-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(MalformedFile, match="gzip"):
        fm.load_fashion_mnist("train", root=fake_root)
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(AssetMissing, match="dataset-fashion-mnist"):
        fm.load_fashion_mnist("train", root=empty)
    with pytest.raises(ConfigError):
        fm.load_fashion_mnist("valid", root=fake_root)


@pytest.mark.skipif(not fm.is_available(), reason=f"Fashion-MNIST is not installed here ({fm.INSTALL_COMMAND})")
def test_real_fashion_mnist_files():
    test = fm.load_fashion_mnist("test")
    assert len(test) == 10_000 and np.bincount(test.labels).tolist() == [1000] * 10
    assert 60 < test.images.mean() < 90  # Fashion-MNIST's mean pixel is about 73


# ----------------------------------------------------------------------------- synthetic scenes


def test_scenes_have_exact_depth_on_the_ground_plane():
    cfg = SceneConfig(height=16, width=16, max_spheres=0, max_boxes=0, noise=0.0, pitch_deg=(10.0, 10.0), camera_height=(1.5, 1.5), wall_distance=(1e3, 1e3))
    img, depth, inst = render_scene(np.random.default_rng(0), cfg)
    f = 0.5 * 16 / math.tan(math.radians(60) / 2)
    pitch = math.radians(10.0)
    for row in (12, 15):  # below the horizon: ground; camera-space z of the hit by hand
        v = 16 / 2 - (row + 0.5)
        # world y of the ray direction (u, v, f) rotated down by the pitch: v cos p - f sin p; hit at y = -1.5
        dy = v * math.cos(pitch) - f * math.sin(pitch)
        t = -1.5 / dy  # in units of the unnormalised direction, whose camera z is f
        assert inst[row, 8] == 0
        assert depth[row, 8] == pytest.approx(t * f, rel=1e-5)


def test_scenes_are_deterministic_and_well_formed():
    a = make_scenes(5, SceneConfig(height=12, width=20), seed=3)
    b = make_scenes(5, SceneConfig(height=12, width=20), seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.depth, b.depth)
    assert a.images.shape == (5, 3, 12, 20) and a.depth.shape == (5, 1, 12, 20)
    assert float(a.depth.min()) > 0 and float(a.images.min()) >= 0 and float(a.images.max()) <= 1
    assert not torch.equal(make_scenes(1, seed=4).depth, make_scenes(1, seed=3).depth)
    with pytest.raises(ConfigError):
        SceneConfig(fov_deg=0)
