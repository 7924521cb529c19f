"""vlm_sae: BatchTopK / Matryoshka SAEs, the streaming trainer with resume, and the Monosemanticity Score."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from reprolab.papers.vlm_sae import (
    ActivationStore,
    ActivationWriter,
    BatchTopKSAE,
    MatryoshkaBatchTopKSAE,
    MSSummary,
    SAEConfig,
    TrainConfig,
    load_sae,
    monosemanticity_score,
    monosemanticity_score_pairwise,
    official_lr,
    train_sae,
)

# ----------------------------------------------------------------------------- SAE definitions


def test_official_defaults():
    cfg = SAEConfig(d_in=1024, expansion_factor=4)
    assert (cfg.k, cfg.auxk_alpha, cfg.threshold_beta, cfg.threshold_start_step) == (20, 0.03, 0.999, 1000)
    assert cfg.width == 4096 and cfg.aux_k == 512
    assert official_lr(2**14) == pytest.approx(2e-4)
    assert official_lr(4 * 2**14) == pytest.approx(1e-4)  # lr = 2e-4 / sqrt(omega / 2^14)
    m = MatryoshkaBatchTopKSAE(SAEConfig(d_in=64, expansion_factor=1))
    assert m.config.group_sizes == [4, 8, 16, 36]
    assert m.config.prefix_ends == [4, 12, 28, 64]  # prefix fractions 1/16, 3/16, 7/16, 1
    assert np.allclose(np.array(m.config.prefix_ends) / 64, [0.0625, 0.1875, 0.4375, 1.0])


@pytest.mark.parametrize("bad", [dict(k=0), dict(k=999), dict(expansion_factor=0), dict(group_fractions=(0.5, 0.6)), dict(threshold_beta=1.0), dict(auxk_alpha=float("nan"))])
def test_config_refuses_bad_values(bad):
    with pytest.raises(ConfigError):
        SAEConfig(d_in=8, **bad)


def test_init_unit_norm_decoder_and_tied_encoder():
    sae = BatchTopKSAE(SAEConfig(d_in=16, expansion_factor=2, k=3))
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(32), atol=1e-6)
    assert torch.equal(sae.W_enc, sae.W_dec.T)
    assert torch.all(sae.b_enc == 0)


def test_batch_topk_keeps_k_times_b_over_the_batch_not_per_sample():
    torch.manual_seed(0)
    sae = BatchTopKSAE(SAEConfig(d_in=8, expansion_factor=4, k=2))
    x = torch.randn(10, 8)
    x[0] *= 20  # one loud sample takes more than its share of the batch's K*B slots
    z = sae.encode_batch_topk(x)
    pre = sae.pre_activations(x)
    assert int((z > 0).sum()) == 2 * 10
    per_sample = (z > 0).sum(1)
    assert per_sample[0] > 2 and per_sample.min() < 2
    kept = pre.flatten().topk(20).values
    assert torch.allclose(z[z > 0].sort().values, kept.sort().values)  # the batch's 20 largest


def test_threshold_update_is_ema_of_min_positive():
    sae = BatchTopKSAE(SAEConfig(d_in=4, expansion_factor=1, k=1, threshold_beta=0.9))
    sae.update_threshold(torch.tensor([[0.0, 2.0], [3.0, 0.0]]))
    assert torch.allclose(sae.threshold, torch.full((4,), 2.0))
    sae.update_threshold(torch.tensor([[1.0, 5.0]]))
    assert torch.allclose(sae.threshold, torch.full((4,), 0.9 * 2.0 + 0.1 * 1.0))
    z = sae.encode(torch.randn(3, 4))
    pre = sae.pre_activations(torch.zeros(0, 4))
    assert pre.shape == (0, 4) and (z[z > 0] > 1.9).all()


def test_encode_refuses_unlearned_threshold_and_wrong_width():
    sae = BatchTopKSAE(SAEConfig(d_in=4, k=1))
    with pytest.raises(ConfigError, match="threshold"):
        sae.encode(torch.randn(2, 4))
    with pytest.raises(ShapeError, match=r"\(\.\.\., 4\)"):
        sae.pre_activations(torch.randn(2, 5))


def test_auxiliary_loss_by_hand():
    torch.manual_seed(1)
    sae = BatchTopKSAE(SAEConfig(d_in=4, expansion_factor=2, k=1, top_k_aux=1))
    pre = torch.tensor([[0.5, 0.0, 0.2, 0.0, 0.0, 0.0, 0.0, 0.9], [0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1]])
    residual = torch.randn(2, 4)
    dead = torch.zeros(8, dtype=torch.bool)
    assert float(sae.auxiliary_loss(residual, pre, dead)) == 0.0
    dead[[1, 2]] = True  # latents 1 and 2 are dead: per sample the larger of them reconstructs the residual
    z_aux = torch.zeros(2, 8)
    z_aux[0, 2] = 0.2
    z_aux[1, 1] = 0.3
    recon = z_aux @ sae.W_dec.detach()
    expected = (residual - recon).pow(2).sum(-1).mean() / (residual - residual.mean(0)).pow(2).sum(-1).mean()
    assert float(sae.auxiliary_loss(residual, pre, dead).detach()) == pytest.approx(float(expected), rel=1e-5)


@torch.no_grad()
def test_matryoshka_loss_is_sum_over_nested_prefixes():
    torch.manual_seed(2)
    sae = MatryoshkaBatchTopKSAE(SAEConfig(d_in=16, expansion_factor=1, k=4))
    x = torch.randn(5, 16)
    z = sae.encode_batch_topk(x)
    loss, x_hat = sae.reconstruction_loss(x, z)
    expected = sum((x - (z[:, :m] @ sae.W_dec[:m] + sae.b_dec)).pow(2).sum(-1).mean() for m in sae.config.prefix_ends)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(x_hat, sae.decode(z), atol=1e-5)  # the last prefix is the whole dictionary
    plain = BatchTopKSAE(sae.config)
    plain.load_state_dict(sae.state_dict())
    assert float(plain.reconstruction_loss(x, z)[0]) < float(loss)  # plain loss = only the last term


def test_decoder_gradient_projection_keeps_norm_to_first_order():
    sae = BatchTopKSAE(SAEConfig(d_in=6, expansion_factor=2, k=2))
    sae.W_dec.grad = torch.randn_like(sae.W_dec)
    sae.remove_parallel_decoder_grad()
    assert torch.allclose((sae.W_dec.grad * sae.W_dec).sum(1), torch.zeros(12), atol=1e-6)


# ----------------------------------------------------------------------------- save / load


def test_save_load_round_trip_and_corrupt_files(tmp_path):
    torch.manual_seed(3)
    sae = MatryoshkaBatchTopKSAE(SAEConfig(d_in=8, expansion_factor=2, k=2))
    sae.threshold.fill_(0.1)
    folder = sae.save(tmp_path / "sae", extra={"hook_name": "_blocks.15"})
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["architecture"] == "matryoshka_batchtopk" and cfg["extra"]["hook_name"] == "_blocks.15"
    back = load_sae(folder)
    assert isinstance(back, MatryoshkaBatchTopKSAE) and back.config == sae.config
    x = torch.randn(4, 8)
    assert torch.equal(back(x), sae(x))
    with pytest.raises(MalformedFile):
        load_sae(tmp_path / "nowhere")
    (folder / "sae_weights.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(MalformedFile, match="safetensors"):
        load_sae(folder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_save_refuses_nan_and_leaves_nothing(tmp_path):
    sae = BatchTopKSAE(SAEConfig(d_in=4, k=1))
    with torch.no_grad():
        sae.b_dec[0] = float("nan")
    with pytest.raises(NonFiniteError):
        sae.save(tmp_path / "bad")
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- store + trainer


def _planted_data(n=1200, d=12, n_atoms=24, seed=0):
    """x = sum of 2 random unit atoms with positive weights: an SAE should recover it well."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.normalize(torch.randn(n_atoms, d, generator=g), dim=1)
    idx = torch.randint(0, n_atoms, (n, 2), generator=g)
    w = torch.rand(n, 2, generator=g) + 0.5
    return (w[:, :, None] * atoms[idx]).sum(1)


def test_store_streams_in_bounded_windows(tmp_path):
    x = np.arange(50 * 3, dtype=np.float32).reshape(50, 3)
    store = ActivationStore.from_array(tmp_path / "s", x, shard_size=7)
    assert len(store) == 50 and len(store.shards) == 8
    batches = list(store.epoch_batches(8, seed=0, epoch=0, shuffle_shards=2))
    assert [len(b) for b in batches[:-1]] == [8] * (len(batches) - 1)
    seen = np.concatenate(batches)
    assert sorted(seen[:, 0].tolist()) == sorted(x[:, 0].tolist())  # every vector exactly once per epoch
    again = np.concatenate(list(store.epoch_batches(8, seed=0, epoch=0, shuffle_shards=2)))
    other = np.concatenate(list(store.epoch_batches(8, seed=0, epoch=1, shuffle_shards=2)))
    assert np.array_equal(seen, again) and not np.array_equal(seen, other)


def test_writer_refuses_bad_chunks_and_aborts_cleanly(tmp_path):
    with pytest.raises(ShapeError):
        with ActivationWriter(tmp_path / "s", d=3) as w:
            w.append(np.zeros((2, 4)))
    with pytest.raises(NonFiniteError):
        with ActivationWriter(tmp_path / "s", d=3) as w:
            w.append(np.full((2, 3), np.nan))
    assert not any(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(MalformedFile, match="store.json"):
        ActivationStore(tmp_path)


def test_training_reduces_error_and_learns_threshold(tmp_path):
    torch.manual_seed(0)
    x = _planted_data()
    store = ActivationStore.from_array(tmp_path / "acts", x, shard_size=256)
    sae = BatchTopKSAE(SAEConfig(d_in=12, expansion_factor=2, k=2, threshold_start_step=20))
    res = train_sae(sae, store, TrainConfig(steps=300, batch_size=128, warmup_steps=10, lr=1e-2))
    first, last = res.history[0]["mse"], res.history[-1]["mse"]
    assert last < 0.25 * first
    assert (sae.threshold > 0).all()
    with torch.no_grad():
        z = sae.encode(x)
        l0 = float((z > 0).float().sum(1).mean())
        fvu = float((x - sae.decode(z)).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    assert 1.0 <= l0 <= 4.0  # the learned threshold gives about K = 2 active latents at inference
    assert fvu < 0.3
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(24), atol=1e-5)


def test_resume_matches_uninterrupted_run(tmp_path):
    x = _planted_data(n=600)
    store = ActivationStore.from_array(tmp_path / "acts", x, shard_size=100)
    cfg = SAEConfig(d_in=12, expansion_factor=2, k=2, threshold_start_step=5, dead_tokens_threshold=300)
    tc = TrainConfig(steps=40, batch_size=64, warmup_steps=4, checkpoint_every=7, lr=2e-3)
    torch.manual_seed(5)
    a = MatryoshkaBatchTopKSAE(cfg)
    init = {k: v.clone() for k, v in a.state_dict().items()}
    train_sae(a, store, tc)
    b = MatryoshkaBatchTopKSAE(cfg)
    b.load_state_dict(init)
    ck = tmp_path / "ck.pt"
    part = train_sae(b, store, tc, checkpoint=ck, stop_after=17)  # "interrupted" mid-epoch
    assert part.steps == 17
    c = MatryoshkaBatchTopKSAE(cfg)  # a fresh process: weights come from the checkpoint
    res = train_sae(c, store, tc, checkpoint=ck)
    assert res.resumed_from == 17 and res.steps == 40
    for k, v in a.state_dict().items():
        assert torch.allclose(v, c.state_dict()[k], atol=1e-6), k


def test_dead_latents_trigger_aux_loss(tmp_path):
    """Planted: half the latents start dead (encoder rows scaled down, so their pre-activations never
    make the batch top-k). Without the auxiliary loss no gradient reaches them and they stay dead;
    with the official weight 0.03 the aux loss trains them on the residual and revives many."""
    x = _planted_data(n=512)
    store = ActivationStore.from_array(tmp_path / "acts", x)
    alive = {}
    for alpha in (0.0, 0.03):
        torch.manual_seed(0)
        sae = BatchTopKSAE(SAEConfig(d_in=12, expansion_factor=4, k=2, auxk_alpha=alpha, dead_tokens_threshold=64))
        with torch.no_grad():
            sae.W_enc[:, 24:] *= 0.05
            sae.b_enc[:24] += 1.0
            assert int((sae.encode_batch_topk(x)[:, 24:] > 0).sum()) == 0  # all 24 start dead
        res = train_sae(sae, store, TrainConfig(steps=60, batch_size=64, lr=1e-2))
        assert any(h["aux"] > 0 for h in res.history)  # the dead latents were seen as dead
        with torch.no_grad():
            alive[alpha] = int(((sae.encode_batch_topk(x)[:, 24:] > 0).sum(0) > 0).sum())
    assert alive[0.0] == 0 and alive[0.03] >= 5, alive


def test_short_runs_learn_a_threshold_and_warm_up_within_the_run(tmp_path):
    """README usage: TrainConfig(steps=200) works (warm-up min(1000, steps // 10)) and encode() works after it."""
    from reprolab.papers.vlm_sae.training import effective_threshold_start

    assert TrainConfig(steps=200).warmup_steps == 20 and TrainConfig(steps=110_000).warmup_steps == 1000
    assert effective_threshold_start(1000, 110_000) == 1001 and effective_threshold_start(1000, 200) == 20
    with pytest.raises(ConfigError, match="warmup_steps"):
        TrainConfig(steps=200, warmup_steps=1000)  # an explicit warm-up longer than the run fails at construction
    store = ActivationStore.from_array(tmp_path / "acts", _planted_data(n=256))
    for steps in (1, 30):
        sae = BatchTopKSAE(SAEConfig(d_in=12, expansion_factor=2, k=2))  # official threshold_start_step 1000
        train_sae(sae, store, TrainConfig(steps=steps, batch_size=64))
        assert (sae.threshold > 0).all()
        assert sae.encode(torch.randn(3, 12)).shape == (3, 24)


def test_trainer_refuses_wrong_width_and_nan(tmp_path):
    store = ActivationStore.from_array(tmp_path / "acts", np.ones((10, 3), dtype=np.float32))
    with pytest.raises(ShapeError):
        train_sae(BatchTopKSAE(SAEConfig(d_in=4, k=1)), store, TrainConfig(steps=2, batch_size=4, warmup_steps=0))
    sae = BatchTopKSAE(SAEConfig(d_in=3, k=1))
    with torch.no_grad():
        sae.W_enc.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="loss"):
        train_sae(sae, store, TrainConfig(steps=3, batch_size=4, warmup_steps=1))


# ----------------------------------------------------------------------------- Monosemanticity Score


def test_ms_matches_brute_force_pairs():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(37, 9, generator=g) ** 3
    a[:, 2] = 0.0  # never active: undefined
    a[:, 4] = 0.0
    a[5, 4] = 1.0  # active on one image only: no pair, undefined
    e = torch.randn(37, 6, generator=g)
    e[3] = 0.0  # a zero embedding (cosine 0 with everything, as torch's cosine_similarity)
    brute = torch.full((9,), float("nan"), dtype=torch.float64)
    r = (a - a.min(0).values) / (a.max(0).values - a.min(0).values)
    s = torch.nn.functional.cosine_similarity(e[:, None].double(), e[None].double(), dim=-1)
    for k in range(9):
        num = den = 0.0
        for n in range(37):
            for m in range(n + 1, 37):
                num += float(r[n, k] * r[m, k] * s[n, m])
                den += float(r[n, k] * r[m, k])
        if den > 0:
            brute[k] = num / den
    fast = monosemanticity_score(a, e, chunk_size=5, neuron_chunk=4)
    pair = monosemanticity_score_pairwise(a, e, block=8)
    assert torch.equal(torch.isnan(fast), torch.isnan(brute)) and torch.isnan(fast[[2, 4]]).all()
    ok = ~torch.isnan(brute)
    assert torch.allclose(fast[ok], brute[ok], atol=1e-10)
    assert torch.allclose(pair[ok], brute[ok], atol=1e-10)


def test_ms_planted_class_neuron_scores_its_class_similarity():
    """A neuron firing only (and equally) on class c scores the mean pairwise similarity within c."""
    g = torch.Generator().manual_seed(1)
    n_cls, per = 4, 30
    centres = torch.randn(n_cls, 16, generator=g) * 3
    labels = torch.arange(n_cls).repeat_interleave(per)
    e = centres[labels] + torch.randn(n_cls * per, 16, generator=g)
    a = torch.zeros(len(labels), 3)
    a[labels == 1, 0] = 1.0  # neuron 0: exactly class 1
    a[:, 1] = torch.rand(len(labels), generator=g)  # neuron 1: random, fires on everything
    a[labels == 2, 2] = torch.rand(per, generator=g) + 0.5  # neuron 2: class 2 with graded strength
    ms = monosemanticity_score(a, e)
    u = torch.nn.functional.normalize(e.double(), dim=1)
    s = u @ u.T
    idx = torch.nonzero(labels == 1).squeeze()
    block = s[idx][:, idx]
    within = float((block.sum() - block.diag().sum()) / (per * (per - 1)))
    assert float(ms[0]) == pytest.approx(within, abs=1e-9)
    assert float(ms[0]) > 0.7 and float(ms[2]) > 0.7
    overall = float((s.sum() - s.diag().sum()) / (len(labels) * (len(labels) - 1)))
    assert abs(float(ms[1]) - overall) < 0.1  # a polysemantic neuron scores near the data's mean similarity
    assert float(ms[1]) < float(ms[0]) - 0.5


def test_ms_is_invariant_to_affine_rescaling_and_embedding_scale():
    g = torch.Generator().manual_seed(2)
    a, e = torch.rand(40, 5, generator=g), torch.randn(40, 7, generator=g)
    base = monosemanticity_score(a, e)
    assert torch.allclose(monosemanticity_score(3 * a + 2, e * (torch.rand(40, 1, generator=g) + 0.1)), base, atol=1e-6)


def test_ms_numpy_memmap_input_and_min_active(tmp_path):
    g = np.random.default_rng(3)
    a = g.random((64, 4)).astype(np.float32)
    a[:, 3] = 0
    a[:3, 3] = [1.0, 0.5, 0.2]  # fires on 3 images
    path = tmp_path / "a.npy"
    np.save(path, a)
    mm = np.load(path, mmap_mode="r")
    e = g.normal(size=(64, 5))
    ms = monosemanticity_score(mm, e, chunk_size=10)
    assert torch.isfinite(ms).all()
    assert torch.isnan(monosemanticity_score(mm, e, min_active=5)[3])
    s = MSSummary.of(ms)
    assert s.best == pytest.approx(float(ms.max())) and s.defined == 4
    empty = MSSummary.of(torch.full((3,), float("nan")))
    assert empty.best is None and empty.defined == 0  # JSON-safe: no NaN in the study's metrics


def test_ms_bad_inputs():
    with pytest.raises(ShapeError, match="one embedding per image"):
        monosemanticity_score(torch.rand(10, 3), torch.rand(9, 4))
    with pytest.raises(ShapeError):
        monosemanticity_score(torch.rand(10), torch.rand(10, 4))
    a = torch.rand(10, 3)
    a[2, 1] = math.nan
    with pytest.raises(NonFiniteError):
        monosemanticity_score(a, torch.rand(10, 4))
    e = torch.rand(10, 4)
    e[0, 0] = math.inf
    with pytest.raises(NonFiniteError):
        monosemanticity_score(torch.rand(10, 3), e)


# ----------------------------------------------------------------------------- study helpers


def test_purity_and_spearman_on_planted_latents():
    from reprolab.papers.vlm_sae.study import latent_purity, spearman

    rng = np.random.default_rng(0)
    labels = {a: rng.integers(0, n, 200) for a, n in (("shape", 6), ("colour", 8), ("size", 3), ("position", 4), ("texture", 4))}
    codes = np.zeros((200, 3))
    red = labels["colour"] == 0
    codes[red, 0] = rng.random(red.sum()) + 1  # latent 0 fires only on red
    codes[:, 1] = rng.random(200)  # latent 1 fires on everything at random
    codes[:5, 2] = 1.0  # latent 2 fires on 5 images: too rare
    purity, concepts = latent_purity(codes, labels, top=16, min_active=10)
    assert purity[0] == pytest.approx(1.0) and concepts[0] == ("colour", 0)
    assert purity[1] < 0.6 and np.isnan(purity[2]) and concepts[2] is None
    assert spearman(np.arange(10.0), np.arange(10.0) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(10.0), -np.arange(10.0)) == pytest.approx(-1.0)


def test_pixel_embedding_sees_colour_uncentred_by_default():
    from reprolab.data.shapes import ShapesDataset
    from reprolab.papers.vlm_sae.embeddings import pixel_statistics_embedding

    ds = ShapesDataset.generate(120, image_size=32, seed=0)
    e = pixel_statistics_embedding(ds.images)
    assert e.shape[0] == 120 and np.isfinite(e).all() and (e >= 0).all()  # histograms, not centred (official metric.py)
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = u @ u.T
    same = ds.labels["colour"][:, None] == ds.labels["colour"][None]
    off = ~np.eye(120, dtype=bool)
    assert s[same & off].mean() > s[~same].mean() + 0.1  # same colour looks alike to it
    c = pixel_statistics_embedding(ds.images, centre=True)  # v2: each block centred on the batch
    assert c.min() < 0 and np.abs(c.mean(0)).max() < 0.2 < e.mean(0).max()
    with pytest.raises(ShapeError):
        pixel_statistics_embedding(ds.images[:, :1])


def test_ms_centring_option_matches_the_pairwise_reference():
    """A shared offset in every embedding makes all cosines ~1 (uncentred MS near 1 for every unit);
    centring removes it and separates a class-selective unit from a random one."""
    g = torch.Generator().manual_seed(4)
    labels = torch.arange(3).repeat_interleave(20)
    e = torch.randn(3, 8, generator=g)[labels] + 0.3 * torch.randn(60, 8, generator=g) + 20.0
    a = torch.stack([(labels == 0).double(), torch.rand(60, generator=g).double()], 1)
    raw, cen = monosemanticity_score(a, e), monosemanticity_score(a, e, centre_embeddings=True, chunk_size=7)
    assert torch.allclose(cen, monosemanticity_score_pairwise(a, e, centre_embeddings=True, block=16), atol=1e-10)
    assert torch.allclose(raw, monosemanticity_score_pairwise(a, e), atol=1e-10)
    assert float(raw.min()) > 0.99
    assert float(cen[0]) > 0.8 and float(cen[1]) < 0.3


def test_attribute_cnn_embedding():
    from reprolab.data.shapes import ATTRIBUTES, VOCAB, ShapesDataset
    from reprolab.papers.vlm_sae.embeddings import AttributeCNN, attribute_accuracy, cnn_embedding, train_attribute_cnn

    ds = ShapesDataset.generate(96, image_size=32, seed=1)
    n_values = {a: len(VOCAB[a]) for a in ATTRIBUTES}
    cnn = train_attribute_cnn(ds.images, ds.labels, n_values, steps=25, batch_size=32, lr=1e-2, seed=0)
    f = cnn_embedding(cnn, ds.images)
    assert f.shape == (96, 128) and (f >= 0).all() and np.isfinite(f).all()  # penultimate ReLU features, uncentred
    correct = attribute_accuracy(cnn, ds.images, ds.labels)
    assert set(correct) == set(ATTRIBUTES) and all(0 <= k <= 96 for k in correct.values())
    assert correct["position"] > 96 / 4 + 20  # 25 steps already learn where the object is
    with pytest.raises(ShapeError):
        train_attribute_cnn(ds.images, {**ds.labels, "shape": ds.labels["shape"][:5]}, n_values, steps=1)
    with pytest.raises(ConfigError):
        AttributeCNN({"shape": 1})
