"""The shared VQ-VAE room (reprolab.nn.vqvae): shapes, straight-through gradients, the official temperature
schedule and KL term against hand computation, codebook statistics, and a planted codebook recovered."""

from __future__ import annotations

import math

import pytest
import torch

from reprolab.errors import ConfigError, NonFiniteError, ShapeError
from reprolab.nn.vqvae import (ChunkVQVAE, GumbelQuantizer, VQVAEConfig, codebook_usage, cosine_temperature, perplexity,
                               train_vqvae)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("quantizer", ["gumbel", "nearest"])
def test_shapes_and_round_trip_of_codes(quantizer):
    torch.manual_seed(0)
    m = ChunkVQVAE(VQVAEConfig(chunk_size=32, downsample=4, hidden=8, embed_dim=8, n_embed=16, quantizer=quantizer))
    x = torch.randn(5, 32)
    rec, q = m(x)
    assert rec.shape == (5, 32) and q.codes.shape == (5, 8) and q.z_q.shape == (5, 8, 8)
    codes = m.encode(x)
    assert codes.shape == (5, 8) and codes.dtype == torch.int64 and int(codes.max()) < 16
    m.eval()
    assert torch.allclose(m.decode(codes), m(x)[0], atol=1e-5)  # eval forward == decode(encode(x))
    with pytest.raises(ShapeError):
        m.encode(torch.randn(5, 31))
    with pytest.raises(ConfigError):
        m.decode(torch.full((1, 8), 16))
    with pytest.raises(NonFiniteError):
        m.encode(torch.full((1, 32), float("nan")))


@pytest.mark.parametrize("quantizer", ["gumbel", "nearest"])
def test_gradients_reach_the_encoder_through_the_straight_through_path(quantizer):
    torch.manual_seed(0)
    m = ChunkVQVAE(VQVAEConfig(chunk_size=16, downsample=2, hidden=8, embed_dim=8, n_embed=8, quantizer=quantizer))
    m.train()
    loss, _ = m.loss(torch.randn(4, 16), temperature=0.9)
    loss.backward()
    g = m.encoder[0].weight.grad
    assert g is not None and g.abs().sum() > 0
    if quantizer == "gumbel":
        _, q = m(torch.randn(4, 16), temperature=0.5)
        assert set(q.z_q.detach().flatten().tolist()) <= set(m.quantizer.embed.weight.detach().flatten().tolist())  # hard samples


def test_temperature_schedule_is_the_official_cosine():
    assert cosine_temperature(0) == pytest.approx(0.95)
    assert cosine_temperature(1_000_001) == pytest.approx(1e-4)
    assert cosine_temperature(5_000_000) == pytest.approx(1e-4)
    mid = cosine_temperature(50, start=0.95, end=1e-4, decay_steps=100)
    assert mid == pytest.approx(1e-4 + 0.5 * (0.95 - 1e-4))  # cos(pi/2) = 0
    q = cosine_temperature(25, decay_steps=100)
    assert q == pytest.approx(1e-4 + 0.5 * (0.95 - 1e-4) * (1 + math.cos(math.pi / 4)))
    assert cosine_temperature(5, warm_up_steps=10, start=0.0, peak=1.0, decay_steps=100) == pytest.approx(0.5)
    with pytest.raises(ConfigError):
        cosine_temperature(-1)


def test_gumbel_kl_to_uniform_prior_matches_hand_computation():
    q = GumbelQuantizer(hidden=2, embed_dim=3, n_embed=4, kl_weight=5e-4)
    with torch.no_grad():
        q.proj.weight.zero_()
        q.proj.bias.zero_()
    assert float(q(torch.randn(1, 2, 5)).loss.detach()) == pytest.approx(0.0, abs=1e-8)  # uniform q: KL 0
    with torch.no_grad():
        q.proj.bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))
    assert float(q(torch.randn(1, 2, 5)).loss.detach()) == pytest.approx(5e-4 * math.log(4), rel=1e-4)  # one-hot q: log n_embed


def test_codebook_usage_and_perplexity_by_hand():
    codes = torch.tensor([[0, 0, 1, 1]])
    assert codebook_usage(codes, 8) == pytest.approx(2 / 8)
    assert perplexity(codes, 8) == pytest.approx(2.0)
    assert perplexity(torch.zeros(1, 10, dtype=torch.long), 8) == pytest.approx(1.0)


def _planted():
    torch.manual_seed(0)
    protos = torch.randn(4, 8) * 2
    labels = torch.randint(4, (512,))
    data = protos[labels] + 0.05 * torch.randn(512, 8)

    def batches():
        while True:
            yield data[torch.randint(len(data), (64,))]

    return data, labels, batches()


def test_a_planted_codebook_is_recovered():
    """Data = 4 planted 8-value patterns + small noise: every code stands for one pattern, reconstruction is close."""
    data, labels, batches = _planted()
    m = ChunkVQVAE(VQVAEConfig(chunk_size=8, downsample=8, hidden=32, embed_dim=8, n_embed=8, quantizer="nearest",
                               dead_code_threshold=0.0))
    train_vqvae(m, batches, 400, lr=3e-3)
    codes = m.encode(data)[:, 0]
    purity = sum(int(torch.bincount(labels[codes == c], minlength=4).max()) for c in codes.unique()) / len(codes)
    assert purity > 0.95
    rel = float(((m.decode(m.encode(data)) - data) ** 2).mean() / data.var())
    assert rel < 0.1


def test_gumbel_training_lowers_reconstruction_error_on_planted_data():
    """The Gumbel quantiser learns (its short-run codebook is not pure: see the README), and its prior term stays small."""
    data, _, batches = _planted()
    m = ChunkVQVAE(VQVAEConfig(chunk_size=8, downsample=8, hidden=32, embed_dim=8, n_embed=8, quantizer="gumbel"))
    before = float(((m.decode(m.encode(data)) - data) ** 2).mean())
    hist = train_vqvae(m, batches, 150, lr=1e-3, temperature_start=1.0, temperature_end=0.1)
    after = float(((m.decode(m.encode(data)) - data) ** 2).mean())
    assert after < 0.5 * before
    assert hist.temperatures[0] == pytest.approx(1.0) and hist.temperatures[-1] < 0.2
    assert max(hist.losses["loss/quantizer"]) <= 5e-4 * math.log(8) + 1e-6
