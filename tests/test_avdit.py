"""nn/avdit.py: zero-initialised slots and AV gates, shapes for any frame count and size, the diffusers adapters."""

from __future__ import annotations

import warnings

import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.nn.avdit import AVDiTConfig, BottleneckWarning, CrossAttentionSlot, TinyAVDiT, diffusers_denoiser
from reprolab.nn.flow import FlowBatch, FlowTrainConfig, euler_sample, train_flow


def _model(**kw):
    torch.manual_seed(0)
    return TinyAVDiT(AVDiTConfig(**{"dim": 32, "depth": 2, "heads": 2, "audio_mels": 32, "audio_patch": (8, 4), **kw}))


def _x(B=2, T=4, H=8, W=8, L=16):
    g = torch.Generator().manual_seed(0)
    return {"video": torch.randn(B, T, 3, H, W, generator=g), "audio": torch.randn(B, 1, 32, L, generator=g)}


def _perturb(model):
    with torch.no_grad():  # move the zero-initialised paths as training would, so the test cannot pass vacuously
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def test_adding_a_slot_leaves_the_output_unchanged_at_initialisation():
    m = _model()
    _perturb(m)
    x, t = _x(), torch.tensor([0.3, 0.8])
    before = m(x, t)
    m.attach_slot("prior", 7, lambda dim, heads, modality: CrossAttentionSlot(dim, heads))
    after = m(x, t, {"prior": torch.randn(2, 5, 7)})
    for k in before:
        assert torch.allclose(before[k], after[k], atol=1e-6), k
    _perturb(m)  # once the slot's output moves, the condition matters
    a = m(x, t, {"prior": torch.randn(2, 5, 7)})["video"]
    b = m(x, t, {"prior": torch.randn(2, 5, 7)})["video"]
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ConfigError):
        m.attach_slot("prior", 7, lambda dim, heads, modality: CrossAttentionSlot(dim, heads))


def test_av_gates_start_at_zero_so_video_ignores_audio_until_trained():
    m = _model()
    x, t = _x(), torch.tensor([0.3, 0.8])
    x2 = {"video": x["video"], "audio": torch.randn_like(x["audio"])}
    assert torch.allclose(m(x, t)["video"], m(x2, t)["video"], atol=1e-6)
    _perturb(m)
    assert not torch.allclose(m(x, t)["video"], m(x2, t)["video"], atol=1e-4)
    iso = _model(av_cross_attention=False)
    _perturb(iso)
    assert torch.allclose(iso(x, t)["video"], iso(x2, t)["video"], atol=1e-6) and not iso.av_parameters()


@pytest.mark.parametrize("T,H,W,L", [(1, 4, 4, 4), (3, 8, 12, 8), (7, 16, 8, 20)])
def test_shapes_for_any_frame_count_and_size_divisible_by_the_patch(T, H, W, L):
    m = _model()
    x = _x(T=T, H=H, W=W, L=L)
    out = m(x, torch.rand(2))
    assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in x.items()}
    video_only = TinyAVDiT(AVDiTConfig(dim=16, depth=1, heads=2, audio_mels=None))
    assert video_only(x["video"], torch.rand(2)).shape == x["video"].shape


def test_bad_inputs_are_typed():
    m = _model(slots={"text": 6})
    with pytest.raises(ShapeError):
        m(_x(H=6), torch.rand(2))  # not divisible by the patch
    with pytest.raises(ShapeError):
        m(_x(), torch.rand(3))
    with pytest.raises(ShapeError):
        m(_x(), torch.rand(2), {"text": torch.randn(2, 3, 5)})
    with pytest.raises(ConfigError):
        m(_x(), torch.rand(2), {"image": torch.randn(2, 3, 6)})
    with pytest.raises(ShapeError):
        m(_x()["video"], torch.rand(2))  # the audio branch needs audio


def test_dropped_condition_is_the_learned_null():
    m = _model(slots={"text": 6})
    _perturb(m)
    x, t = _x(), torch.rand(2)
    c = torch.randn(2, 3, 6)
    dropped = m(x, t, {"text": c}, {"text": torch.tensor([True, False])})
    null = m(x, t, {"text": m.null["text"].detach().expand(2, 3, 6)})
    kept = m(x, t, {"text": c})
    assert torch.allclose(dropped["video"][0], null["video"][0], atol=1e-5)
    assert torch.allclose(dropped["video"][1], kept["video"][1], atol=1e-5)


def test_diffusers_wan_and_ltx2_train_and_sample_through_the_adapter():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    wan = diffusers_denoiser(diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=3, out_channels=3, text_dim=6, freq_dim=16,
        ffn_dim=32, num_layers=1, rope_max_seq_len=32), text_dim=6)
    ltx = diffusers_denoiser(diffusers.LTX2VideoTransformer3DModel(
        in_channels=12, out_channels=12, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, audio_in_channels=32,
        audio_out_channels=32, audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16, num_layers=1,
        caption_channels=6), text_dim=6, patch=2)
    x, text = _x(T=2, H=4, W=4, L=8), torch.randn(2, 3, 6)
    for model, sample in ((wan, x["video"]), (ltx, x)):
        before = [p.detach().clone() for p in model.parameters()]
        out = train_flow(model, lambda s: FlowBatch(sample, {"text": text}), FlowTrainConfig(steps=2, cfg_dropout={"text": 0.5}))
        assert out.steps == 2 and any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
        shapes = tuple(sample.shape) if isinstance(sample, torch.Tensor) else {k: tuple(v.shape) for k, v in sample.items()}
        y = euler_sample(model, shapes, {"text": text}, guidance=[("text", 3.0)], num_inference_steps=2)
        got = y.shape if isinstance(y, torch.Tensor) else {k: v.shape for k, v in y.items()}
        assert got == (sample.shape if isinstance(sample, torch.Tensor) else {k: v.shape for k, v in sample.items()})
    with pytest.raises(ConfigError):
        diffusers_denoiser(torch.nn.Linear(2, 2))


def _audio_jacobian_rank(cfg: AVDiTConfig) -> tuple[int, int]:
    torch.manual_seed(0)
    m = TinyAVDiT(cfg).double()  # double precision, so round-off cannot fake a full rank
    _perturb(m)
    video = torch.randn(1, 2, 3, 8, 8, dtype=torch.float64)
    audio = torch.randn(1, 1, 16, 8, dtype=torch.float64)
    t = torch.ones(1, dtype=torch.float64)  # pure noise: the velocity must carry the noise itself through the network
    jac = torch.autograd.functional.jacobian(lambda a: m({"video": video, "audio": a}, t)["audio"], audio)
    jac = jac.reshape(audio.numel(), audio.numel())
    return int(torch.linalg.matrix_rank(jac)), audio.numel()


def test_a_patch_wider_than_the_token_is_a_bottleneck_that_no_training_can_undo():
    """The cause of javisdit v1's noise audio: 16 x 4 mel patches (64 values) in 48-wide tokens. The audio output's
    Jacobian in its input then has rank <= tokens x dim < the number of mel values, so at t = 1 some directions of
    the noise cannot reach the velocity, whatever the weights: they stay noise in every sample."""
    with pytest.warns(BottleneckWarning, match="audio patch holds 32 values"):
        narrow = AVDiTConfig(dim=16, depth=1, heads=2, patch=2, audio_mels=16, audio_patch=(8, 4))  # 32 values > 16
    rank, n = _audio_jacobian_rank(narrow)
    assert rank <= (16 // 8) * (8 // 4) * 16 < n
    with pytest.warns(BottleneckWarning, match="audio patch holds 16 values"):  # as many values as channels: the output
        level = AVDiTConfig(dim=16, depth=1, heads=2, patch=2, audio_mels=16, audio_patch=(4, 4))  # LayerNorm keeps 15
    rank, n = _audio_jacobian_rank(level)
    assert rank == (16 // 4) * (8 // 4) * 15 < n
    with warnings.catch_warnings():
        warnings.simplefilter("error", BottleneckWarning)
        wide = AVDiTConfig(dim=16, depth=1, heads=2, patch=2, audio_mels=16, audio_patch=(4, 2))  # 8 values <= 16
    assert wide.patch_values == {"video": 12, "audio": 8}
    rank, n = _audio_jacobian_rank(wide)
    assert rank == n


def test_audio_positions_tell_the_time_and_mel_axes_apart():
    from reprolab.nn.avdit import audio_positions

    pos = audio_positions(10, 8, 32, None)
    assert pos.shape == (10, 8, 32)
    flat = pos.reshape(-1, 32)
    assert torch.cdist(flat, flat).add(torch.eye(80) * 1e9).min() > 1e-3  # every (time, mel) token has its own position
    assert not torch.allclose(pos[2, 5], pos[5, 2])  # v1's summed sinusoids made these two equal


def test_after_spatial_layers_run_between_spatial_and_temporal_attention_with_the_callers_context():
    torch.manual_seed(0)
    model = TinyAVDiT(AVDiTConfig(dim=16, depth=2, heads=2, patch=2, audio_mels=None))
    calls: list[str] = []

    class Spy(torch.nn.Module):
        def __init__(self, block: int):
            super().__init__()
            self.block = block

        def forward(self, x, context):
            calls.append(f"hook{self.block}:{context['tag']}:{tuple(x.shape)}")
            return x * 0  # replaces the tokens: the temporal attention of this block then sees zeros

    hooks = []
    for blk in model.blocks:
        blk.video.attn_s.register_forward_hook(lambda *a: calls.append("spatial"))
        blk.video.attn_t.register_forward_hook(lambda *a: calls.append("temporal"))
    x, t = torch.randn(2, 3, 3, 8, 8), torch.rand(2)
    before = model(x, t)
    model.attach_after_spatial("spy", lambda dim, heads, block: hooks.append(Spy(block)) or hooks[-1])
    calls.clear()
    after = model(x, t, context={"tag": "ctx"})
    assert calls == ["spatial", "hook0:ctx:(2, 3, 16, 16)", "temporal", "spatial", "hook1:ctx:(2, 3, 16, 16)", "temporal"]
    assert not torch.allclose(before, after)  # the layer's output replaced the tokens
    assert len(model.after_spatial_parameters()) == 0  # the spies have none
    with pytest.raises(ConfigError):
        model.attach_after_spatial("spy", lambda dim, heads, block: Spy(block))


def test_a_frame_condition_is_concatenated_to_every_frame_and_required_when_configured():
    torch.manual_seed(0)
    model = TinyAVDiT(AVDiTConfig(dim=64, depth=1, heads=2, patch=4, audio_mels=None, video_cond_channels=3))
    x, t = torch.randn(2, 3, 3, 8, 8), torch.rand(2)
    ref = torch.randn(2, 3, 8, 8)
    a = model(x, t, video_cond=ref)
    assert torch.allclose(a, model(x, t, video_cond=ref[:, None].expand(-1, 3, -1, -1, -1)))  # (B, C, H, W) = repeated over frames
    assert not torch.allclose(a, model(x, t, video_cond=torch.zeros_like(ref)))
    with pytest.raises(ConfigError):
        model(x, t)
    with pytest.raises(ShapeError):
        model(x, t, video_cond=torch.randn(2, 2, 8, 8))
    with pytest.raises(ConfigError):
        TinyAVDiT(AVDiTConfig(dim=64, depth=1, heads=2, audio_mels=None))(x, t, video_cond=ref)
