"""The PCM layer inside a tiny diffusers UNetSpatioTemporalConditionModel: placement, forward and backward, gates."""

from __future__ import annotations

import pytest
import torch

from reprolab.errors import ConfigError
from reprolab.papers.actalker import attach_pcm

F_, H = 2, 8


_BASE: list = []


def _unet():
    """A tiny UNet built once per session and copied (building it is the slow part)."""
    import copy

    if not _BASE:
        _BASE.append(_build())
    return copy.deepcopy(_BASE[0])


def _build():
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    return UNetSpatioTemporalConditionModel(
        sample_size=H, in_channels=8, out_channels=4, down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), block_out_channels=(32, 64), layers_per_block=1,
        cross_attention_dim=16, num_attention_heads=(2, 4), projection_class_embeddings_input_dim=24, addition_time_embed_dim=8)


def _call(unet, x):
    return unet(x, torch.tensor([10.0]), encoder_hidden_states=torch.randn(1, 1, 16, generator=torch.Generator().manual_seed(1)),
                added_time_ids=torch.ones(1, 3)).sample


def _conditions(audio_scale=1.0):
    g = torch.Generator().manual_seed(2)
    face = torch.zeros(F_, H, H)
    face[:, 1:7, 1:7] = 1
    mouth = torch.zeros(F_, H, H)
    mouth[:, 4:6, 2:6] = 1
    cond = {"audio": torch.randn(F_, 4, 12, generator=g) * audio_scale, "motion": torch.randn(F_, 1, 12, generator=g)}
    return torch.randn(F_, 1, 12, generator=g), cond, face, mouth


def test_pcm_goes_after_every_spatial_block_and_before_its_temporal_block():
    from diffusers.models.transformers.transformer_temporal import TransformerSpatioTemporalModel

    unet = _unet()
    pcm = attach_pcm(unet, d_cond=12, d_state=4)
    transformers = [m for m in unet.modules() if isinstance(m, TransformerSpatioTemporalModel)]
    assert len(pcm.layers) == sum(len(t.transformer_blocks) for t in transformers) == 4
    order = []
    t0 = transformers[0]
    t0.transformer_blocks[0].block.register_forward_hook(lambda *a: order.append("spatial"))
    t0.transformer_blocks[0].pcm.register_forward_hook(lambda *a: order.append("pcm"))
    t0.temporal_transformer_blocks[0].register_forward_hook(lambda *a: order.append("temporal"))
    pcm.set(*_conditions())
    x = torch.randn(1, F_, 8, H, H)
    out = _call(unet, x)
    assert order == ["spatial", "pcm", "temporal"]
    assert out.shape == (1, F_, 4, H, H) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    for layer in pcm.layers:  # every PCM parameter is trained through the UNet's loss
        assert all(p.grad is not None for p in layer.parameters()) and sum(p.grad.abs().sum() for p in layer.parameters()) > 0
    assert set(id(p) for layer in pcm.layers for p in layer.parameters()) <= set(id(p) for p in unet.parameters())


def test_identity_at_init_with_the_residual_option_and_gates_close_signals():
    x = torch.randn(1, F_, 8, H, H)
    plain = _unet()
    ref = _call(plain, x)
    unet = _unet()
    pcm = attach_pcm(unet, d_cond=12, d_state=4, residual=True)
    pcm.set(*_conditions())
    torch.testing.assert_close(_call(unet, x), ref)  # zero-initialised residual: the UNet is unchanged
    unet = _unet()
    pcm = attach_pcm(unet, d_cond=12, d_state=4)
    motion_only = torch.tensor([[0.0, 1.0]] * F_)
    ident, cond, face, mouth = _conditions()
    pcm.set(ident, cond, face, mouth, motion_only)
    a = _call(unet, x)
    pcm.set(ident, {**cond, "audio": cond["audio"] * 5}, face, mouth, motion_only)
    assert torch.equal(a, _call(unet, x))  # the audio gate is closed
    pcm.set(ident, {**cond, "motion": cond["motion"] * 5}, face, mouth, motion_only)
    assert not torch.equal(a, _call(unet, x))


def test_the_unet_needs_conditions_and_one_attachment():
    unet = _unet()
    pcm = attach_pcm(unet, d_cond=12, d_state=4)
    with pytest.raises(ConfigError, match="pcm.set"):
        _call(unet, torch.randn(1, F_, 8, H, H))
    with pytest.raises(ConfigError, match="once"):
        attach_pcm(unet, d_cond=12)
    with pytest.raises(ConfigError):
        attach_pcm(torch.nn.Linear(2, 2), d_cond=12)
    pcm.clear()
