"""nn.vq_gpt: an image VQ-VAE, a GPT over its codes conditioned on captions, and the hybrid diffusion decoder."""

from __future__ import annotations

import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.nn.diffusion import TrainConfig
from reprolab.nn.gpt import GPT
from reprolab.nn.vq_gpt import (
    HybridDecoder, ImageVQVAE, ImageVQVAEConfig, code_gpt_config, code_sequence, load_vq_gpt, sample_codes, save_vq_gpt, train_code_gpt,
    train_image_vqvae,
)



@pytest.fixture(autouse=True)
def _one_thread():
    from reprolab.runtime import torch_threads

    with torch_threads(1):
        yield


def _vq():
    torch.manual_seed(0)
    return ImageVQVAE(ImageVQVAEConfig(image_size=8, hidden=8, embed_dim=4, n_embed=16, downsample=2))


def test_vqvae_codes_round_trip_and_training_resumes(tmp_path):
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    a = _vq()
    la = train_image_vqvae(a, lambda s: x, 4, checkpoint=tmp_path / "a.pt", checkpoint_every=2)
    b = _vq()
    lb = train_image_vqvae(b, lambda s: x, 2, checkpoint=tmp_path / "b.pt", checkpoint_every=2)
    c = _vq()
    lc = train_image_vqvae(c, lambda s: x, 4, checkpoint=tmp_path / "b.pt", checkpoint_every=2)
    assert len(la) == len(lc) == 4 and lc[:2] == lb  # resumed from step 2: the history is the first run's
    codes = a.encode(x)
    assert codes.shape == (4, 16) and int(codes.max()) < 16
    assert a.decode(codes).shape == x.shape
    with pytest.raises(ShapeError):
        a.encode(torch.rand(2, 3, 16, 16))
    with pytest.raises(ConfigError):
        a.decode(torch.full((1, 16), 99))
    with pytest.raises(ConfigError):
        ImageVQVAEConfig(image_size=10, downsample=4)


def test_gpt_learns_caption_to_codes_and_samples_only_codes(tmp_path):
    vq = _vq()
    cfg = code_gpt_config(16, 5, 3, vq.config.grid, n_layer=1, n_embd=32, n_head=2)
    codes = torch.stack([torch.arange(16) % 16, (torch.arange(16) * 3) % 16])  # two fixed code grids
    ids = torch.tensor([[2, 3, 0], [4, 0, 0]])  # two captions
    inp, tgt = code_sequence(codes, ids, 16, cfg.vocab_size)
    assert inp.shape == (2, 3 + 16) and (tgt[:, :3] == -100).all() and torch.equal(tgt[:, 3:], codes)
    torch.manual_seed(0)
    gpt = GPT(cfg)
    losses = train_code_gpt(gpt, lambda s: (codes, ids), 16, 150, lr=3e-3, cfg_dropout=0.0, checkpoint=tmp_path / "g.pt", checkpoint_every=50)
    assert losses[-1] < 0.5 * losses[0]
    out = sample_codes(gpt, ids, 16, 16, temperature=0)
    assert torch.equal(out, codes)  # planted: each caption's grid is recovered
    guided = sample_codes(gpt, ids, 16, 16, guidance_scale=2.0, generator=torch.Generator().manual_seed(0))
    assert guided.shape == (2, 16) and int(guided.max()) < 16 and int(guided.min()) >= 0
    hyb = HybridDecoder(vq)
    hyb.train(lambda s: torch.rand(2, 3, 8, 8) * 2 - 1, TrainConfig(steps=2, checkpoint_every=1, warmup=1), checkpoint=tmp_path / "h.pt")
    img = hyb.decode(out, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert img.shape == (2, 3, 8, 8) and img.abs().max() <= 1
    save_vq_gpt(tmp_path / "all.pt", vq, gpt, hyb)
    vq2, gpt2, hyb2, _ = load_vq_gpt(tmp_path / "all.pt")
    assert torch.equal(sample_codes(gpt2, ids, 16, 16, temperature=0), codes) and hyb2 is not None
