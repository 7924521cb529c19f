"""SkyReels-A2's conditioning, attention processor and pipeline, on tiny diffusers/transformers models built from configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.papers.skyreels_a2 import (
    A2AttnProcessor,
    SkyReelsA2Pipeline,
    a2_scheduler,
    crop_resize,
    crop_resize_pad,
    model_input,
    prepare_condition,
    reference_mask,
    reference_video,
    set_image_token_count,
    tiny_components,
)


def _refs(n, b=1, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 3, h, w, generator=g) * 2 - 1 for _ in range(n)]


@pytest.fixture(scope="module")
def parts():
    return tiny_components(seed=0)


# -- the pixel layout and the mask (official prepare_latents) ------------------------------------------------

@pytest.mark.parametrize("n,repeat,expect", [
    (1, True, [0]), (2, True, [0, 1, 1, 1, 1]), (3, True, [0, 1, 1, 1, 1, 2, 2, 2, 2]), (3, False, [0, 1, 2]),
])
def test_reference_video_lays_out_references_as_the_official_code(n, repeat, expect):
    refs = _refs(n)
    video = reference_video(refs, 13, vae_repeat=repeat)
    assert video.shape == (1, 3, 13, 16, 16)
    for f, k in enumerate(expect):
        assert torch.equal(video[:, :, f], refs[k])
    assert not video[:, :, len(expect):].any()


@pytest.mark.parametrize("n,repeat,ones", [(1, True, 4), (2, True, 8), (3, True, 12), (3, False, 6)])
def test_mask_marks_the_official_number_of_slots(n, repeat, ones):
    m = reference_mask(n, 13, 2, 3, batch_size=2, vae_repeat=repeat)
    assert m.shape == (2, 4, 4, 2, 3)  # (B, temporal, latent frames, h, w)
    slots = m.transpose(1, 2).reshape(2, 16, 2, 3)  # back to per-pixel-slot order
    assert slots[:, :ones].eq(1).all() and slots[:, ones:].eq(0).all()


def test_one_reference_mask_has_as_many_latent_frames_as_the_condition():
    # The official `temporal + 4` repeat would give 81 + 7 slots (22 latent frames vs 21): we use Wan I2V's mask.
    m = reference_mask(1, 81, 1, 1)
    assert m.shape[2] == 21 and m[:, :, 0].eq(1).all() and m[:, :, 1:].eq(0).all()


def test_three_references_land_in_latent_frames_0_1_2_and_later_ones_leave_earlier_frames_alone(parts):
    vae = parts["vae"]
    refs = _refs(3)
    with torch.no_grad():
        base = prepare_condition(vae, refs, 9, sample_mode="argmax")
        assert base.shape == (1, 4 + 4, 3, 2, 2)  # 9 frames -> 3 latent frames; mask 4 + z_dim 4 channels
        assert base[:, :4].eq(1).all()  # the mask: ones on latent frames 0, 1, 2 (all of them here)
        changed2 = prepare_condition(vae, refs[:2] + _refs(1, seed=9), 9, sample_mode="argmax")
        changed1 = prepare_condition(vae, [refs[0]] + _refs(1, seed=9) + [refs[2]], 9, sample_mode="argmax")
    d2 = (base - changed2)[:, 4:].abs().amax(dim=(0, 1, 3, 4))
    d1 = (base - changed1)[:, 4:].abs().amax(dim=(0, 1, 3, 4))
    assert d2[0] == 0 and d2[1] == 0 and d2[2] > 0  # the background only reaches latent frame 2
    assert d1[0] == 0 and d1[1] > 0  # the object reaches frame 1 (and, causally, later frames), never frame 0


def test_condition_channels_are_mask_then_normalised_latents_and_input_is_noise_mask_condition():
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1, attn_scales=[], temperal_downsample=[False, True, True],
                           latents_mean=[0.5, -0.2, 0.1, 0.0], latents_std=[2.0, 0.5, 1.0, 4.0]).eval()
    refs = _refs(3)
    with torch.no_grad():
        cond = prepare_condition(vae, refs, 13, sample_mode="argmax", batch_size=2)
        z = vae.encode(reference_video(refs, 13)).latent_dist.mode()
    mean = torch.tensor([0.5, -0.2, 0.1, 0.0]).view(1, 4, 1, 1, 1)
    std = torch.tensor([2.0, 0.5, 1.0, 4.0]).view(1, 4, 1, 1, 1)
    by_hand = torch.cat([reference_mask(3, 13, 2, 2, batch_size=2), ((z - mean) / std).repeat(2, 1, 1, 1, 1)], dim=1)
    torch.testing.assert_close(cond, by_hand)
    noise = torch.randn(2, 4, 4, 2, 2)
    x = model_input(noise, cond)
    assert x.shape[1] == 4 + 4 + 4
    assert torch.equal(x[:, :4], noise) and torch.equal(x[:, 4:8], cond[:, :4]) and torch.equal(x[:, 8:], cond[:, 4:])


def test_posterior_sample_follows_the_generator(parts):
    refs = _refs(2)
    with torch.no_grad():
        a = prepare_condition(parts["vae"], refs, 9, generator=torch.Generator().manual_seed(1))
        b = prepare_condition(parts["vae"], refs, 9, generator=torch.Generator().manual_seed(1))
        c = prepare_condition(parts["vae"], refs, 9, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_layouts_get_typed_errors(parts):
    with pytest.raises(ConfigError, match="number of references"):
        reference_video(_refs(4), 13)
    with pytest.raises(ConfigError, match="num_frames"):
        reference_video(_refs(3), 10)  # not 1 + 4k
    with pytest.raises(ConfigError, match="num_frames"):
        reference_video(_refs(3), 5)  # too short for 9 reference slots
    with pytest.raises(ShapeError, match="reference 1"):
        reference_video([torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 8, 16)], 13)
    with pytest.raises(ShapeError):
        model_input(torch.zeros(1, 4, 3, 2, 2), torch.zeros(1, 8, 4, 2, 2))


def test_reference_preprocessing_pads_white_and_crops_centre():
    img = np.zeros((10, 20, 3), np.uint8)  # wide black image into a square frame
    padded = np.asarray(crop_resize_pad(img, 20, 20))
    assert padded[0, 10].tolist() == [255, 255, 255] and padded[10, 10].tolist() == [0, 0, 0]
    tall = np.zeros((20, 10, 3), np.uint8)
    tall[:5] = 255  # white top band gets cropped away by a centre crop to a square
    cropped = np.asarray(crop_resize(tall, 10, 10))
    assert cropped.shape == (10, 10, 3) and cropped.max() < 255


# -- the attention processor --------------------------------------------------------------------------------

def test_processor_equals_diffusers_with_512_text_tokens_and_needs_no_padding(parts):
    tr = parts["transformer"]
    torch.manual_seed(1)
    for p in tr.parameters():
        p.data.normal_(0, 0.3)  # random weights everywhere, so the image branch matters
    x, t = torch.randn(2, 12, 3, 4, 4), torch.tensor([500, 300])
    txt, img = torch.randn(2, 512, 16), torch.randn(2, 7, 20)
    from diffusers.models.transformers.transformer_wan import WanAttnProcessor

    for b in tr.blocks:
        b.attn2.set_processor(WanAttnProcessor())
    with torch.no_grad():
        ref = tr(x, timestep=t, encoder_hidden_states=txt, encoder_hidden_states_image=img, return_dict=False)[0]
        set_image_token_count(tr, 7)
        assert all(isinstance(b.attn2.processor, A2AttnProcessor) for b in tr.blocks)
        ours = tr(x, timestep=t, encoder_hidden_states=txt, encoder_hidden_states_image=img, return_dict=False)[0]
        short = tr(x, timestep=t, encoder_hidden_states=txt[:, :8], encoder_hidden_states_image=img, return_dict=False)[0]
        other_img = tr(x, timestep=t, encoder_hidden_states=txt[:, :8], encoder_hidden_states_image=torch.randn(2, 7, 20), return_dict=False)[0]
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    assert torch.isfinite(short).all() and short.shape == ref.shape
    assert (short - other_img).abs().max() > 1e-4  # the image tokens are attended to


def test_processor_rejects_counts_that_do_not_fit(parts):
    proc = A2AttnProcessor(30)
    attn = parts["transformer"].blocks[0].attn2
    with pytest.raises(ShapeError, match="image tokens"):
        proc(attn, torch.randn(1, 4, 24), torch.randn(1, 10, 24))
    with pytest.raises(ConfigError):
        set_image_token_count(parts["transformer"], -1)


# -- the pipeline ---------------------------------------------------------------------------------------------

CALL = {"height": 32, "width": 32, "num_frames": 13, "num_inference_steps": 3, "max_sequence_length": 8, "clip_size": 32, "progress": False}


def test_pipeline_runs_end_to_end_guides_on_text_only_and_writes_an_mp4(tmp_path):
    c = tiny_components(seed=3)
    calls = []  # what each transformer pass receives
    c["transformer"].register_forward_pre_hook(
        lambda m, args, kw: calls.append((args[0].clone(), kw["encoder_hidden_states"].clone(), kw["encoder_hidden_states_image"].clone())),
        with_kwargs=True)
    pipe = SkyReelsA2Pipeline(**c, scheduler=a2_scheduler())
    refs = [np.full((40, 30, 3), v, np.uint8) for v in (40, 140, 240)]
    out = pipe(refs, "a red circle moves left", generator=torch.Generator().manual_seed(0), **CALL)
    assert out.dropped_frames == 9 and out.frames.shape == (1, 13 - 9, 32, 32, 3)
    assert np.isfinite(out.frames).all() and 0 <= out.frames.min() and out.frames.max() <= 1
    assert len(calls) == 2 * 3  # conditional + unconditional pass per step
    (xc, tc, ic), (xu, tu, iu) = calls[0], calls[1]
    assert torch.equal(xc, xu) and torch.equal(ic, iu)  # unconditional keeps the condition latents and image tokens
    assert not torch.equal(tc, tu) and ic.shape[1] == 3 * 17  # text differs; 3 references x (16 patches + CLS)
    again = pipe(refs, "a red circle moves left", generator=torch.Generator().manual_seed(0), **CALL)
    np.testing.assert_array_equal(out.frames, again.frames)
    official = pipe(refs, "a red circle moves left", generator=torch.Generator().manual_seed(0), drop_frames=12, **CALL)
    assert official.frames.shape[1] == 1
    from reprolab.data.av_io import read_video

    path = pipe.save_mp4(out.frames[0], tmp_path / "a2.mp4", fps=8)
    video, fps = read_video(path)
    assert video.shape[0] == 4 and fps == 8


def test_pipeline_saves_and_loads_with_diffusers(tmp_path):
    c = tiny_components(seed=4)
    pipe = SkyReelsA2Pipeline(**c, scheduler=a2_scheduler())
    pipe.save_pretrained(tmp_path / "a2")
    loaded = SkyReelsA2Pipeline.from_pretrained(tmp_path / "a2")
    refs = [np.full((32, 32, 3), 90, np.uint8)]
    kw = dict(CALL, guidance_scale=1.0)
    a = pipe(refs, "a blue star", generator=torch.Generator().manual_seed(0), **kw)
    b = loaded(refs, "a blue star", generator=torch.Generator().manual_seed(0), **kw)
    assert a.dropped_frames == 1  # one reference: only frame 0 carries it
    np.testing.assert_allclose(a.frames, b.frames, atol=1e-5)
    assert loaded.scheduler.config.flow_shift == 8.0 and loaded.scheduler.config.prediction_type == "flow_prediction"


def test_pipeline_rejects_bad_calls():
    pipe = SkyReelsA2Pipeline(**tiny_components(seed=5), scheduler=a2_scheduler())
    with pytest.raises(ConfigError, match="references"):
        pipe([np.zeros((8, 8, 3), np.uint8)] * 4, "a", **CALL)
    with pytest.raises(ConfigError, match="height"):
        pipe([np.zeros((8, 8, 3), np.uint8)], "a", **{**CALL, "height": 36})
    with pytest.raises(ConfigError, match="output_type"):
        pipe([np.zeros((8, 8, 3), np.uint8)], "a", output_type="pil", **CALL)
