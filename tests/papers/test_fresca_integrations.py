"""FreSca in diffusers, end to end on tiny pipelines built here (random weights, no downloads)."""

from __future__ import annotations

import json

import pytest
import torch

diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (pip install diffusers==0.42.0)")
transformers = pytest.importorskip("transformers", reason="transformers is not installed")

from diffusers import AutoencoderKL, DDIMScheduler, MarigoldDepthPipeline, StableDiffusionPipeline, UNet2DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

from reprolab.errors import ConfigError, NonFiniteError, ShapeError  # noqa: E402
from reprolab.papers.fresca import FreScaConfig, FreScaDenoiser, frequency_scale, fresca_guidance, fresca_pipeline  # noqa: E402

CUT = 3  # the tiny latents are 16x16; the official 20 would cover them whole


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    (d / "vocab.json").write_text(json.dumps(vocab))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"), model_max_length=8)
    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=8, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,), down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",), norm_num_groups=4, sample_size=16)

    def unet(in_channels):
        return UNet2DConditionModel(sample_size=16, in_channels=in_channels, out_channels=4, block_out_channels=(8, 16), layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)

    return {"tok": tok, "te": te.eval(), "vae": vae.eval(), "unet4": unet(4).eval(), "unet8": unet(8).eval()}


@pytest.fixture(scope="module")
def sd(parts):
    pipe = StableDiffusionPipeline(vae=parts["vae"], text_encoder=parts["te"], tokenizer=parts["tok"], unet=parts["unet4"], scheduler=DDIMScheduler(clip_sample=False, steps_offset=1), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, w=5.0, **kw):
    return pipe("a cat", num_inference_steps=3, guidance_scale=w, height=16, width=16, output_type="pt", generator=torch.Generator().manual_seed(0), **kw).images


class Recorder:
    """Records what the scheduler receives at each step (the pipeline's guided prediction)."""

    def __init__(self, scheduler):
        self.scheduler, self.inputs = scheduler, []
        self._step = scheduler.step

    def __enter__(self):
        def step(model_output, *a, **k):
            self.inputs.append(model_output.detach().clone())
            return self._step(model_output, *a, **k)

        self.scheduler.step = step
        return self

    def __exit__(self, *exc):
        del self.scheduler.step  # back to the class's method


class RawOutputs(torch.nn.Module):
    """Records the raw UNet outputs ([uncond, cond]) inside the FreSca wrapper."""

    def __init__(self, unet):
        super().__init__()
        self.unet, self.outputs = unet, []

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("unet"), name)

    def forward(self, *a, **k):
        out = self.unet(*a, **k)
        self.outputs.append(out[0].detach().clone())
        return out


def test_pipeline_cfg_line_becomes_fresca(sd):
    cfg = FreScaConfig(scale_low=1.0, scale_high=1.5, freq_cutoff=CUT)
    original_unet, original_config = sd.unet, dict(sd.config)
    raw = RawOutputs(original_unet)
    object.__setattr__(sd, "unet", raw)
    try:
        with fresca_pipeline(sd, cfg) as wrapper, Recorder(sd.scheduler) as rec:
            assert isinstance(sd.unet, FreScaDenoiser) and wrapper.denoiser is raw
            generate(sd, w=5.0)
    finally:
        object.__setattr__(sd, "unet", original_unet)
    assert len(rec.inputs) == len(raw.outputs) == 3
    for pred, got in zip(raw.outputs, rec.inputs):
        u, c = pred.chunk(2)
        torch.testing.assert_close(got, fresca_guidance(u, c, 5.0, cfg), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(got, u + 5.0 * frequency_scale(c - u, cfg), atol=1e-5, rtol=1e-5)
    assert sd.unet is original_unet and dict(sd.config) == original_config


def test_fresca_changes_images_and_unit_scales_do_not(sd):
    base = generate(sd)
    with fresca_pipeline(sd, FreScaConfig(scale_low=1.0, scale_high=1.0, freq_cutoff=CUT)):
        same = generate(sd)
    assert torch.equal(same, base)  # l = h = 1 is exactly the pipeline's CFG
    with fresca_pipeline(sd, FreScaConfig(scale_low=1.0, scale_high=3.0, freq_cutoff=CUT)):
        sharp = generate(sd)
    assert not torch.allclose(sharp, base, atol=1e-4)
    with fresca_pipeline(sd, FreScaConfig(scale_high=3.0, freq_cutoff=CUT)):
        no_cfg = generate(sd, w=1.0)  # do_classifier_free_guidance is False: the wrapper stands aside
    assert torch.equal(no_cfg, generate(sd, w=1.0))


def test_pipeline_is_restored_after_an_error(sd):
    unet = sd.unet
    with pytest.raises(RuntimeError, match="boom"), fresca_pipeline(sd):
        raise RuntimeError("boom")
    assert sd.unet is unet
    with pytest.raises(ConfigError, match="denoiser"), fresca_pipeline(object()):
        pass


def test_wrapper_errors_and_output_types(parts):
    unet = parts["unet4"]
    x = torch.randn(3, 4, 16, 16)
    emb = torch.randn(3, 2, 16)
    with pytest.raises(ShapeError, match="even batch"):
        FreScaDenoiser(unet, FreScaConfig(freq_cutoff=CUT))(x, 10, encoder_hidden_states=emb)
    with pytest.raises(ConfigError, match="target"):
        FreScaDenoiser(unet, target="latent")

    class NaNModel(torch.nn.Module):
        def forward(self, x, t):
            return x * float("nan")

    with pytest.raises(NonFiniteError):
        FreScaDenoiser(NaNModel())(torch.ones(2, 1, 8, 8), 1)
    # return_dict=True output and plain tensors keep their type
    w = FreScaDenoiser(unet, FreScaConfig(freq_cutoff=CUT))
    out = w(x[:2], 10, encoder_hidden_states=emb[:2])
    assert hasattr(out, "sample") and out.sample.shape == (2, 4, 16, 16)
    assert w.config.in_channels == 4 and w.dtype == torch.float32  # the pipeline sees the UNet's attributes


def test_marigold_prediction_variant(parts):
    pipe = MarigoldDepthPipeline(unet=parts["unet8"], vae=parts["vae"], scheduler=DDIMScheduler(prediction_type="v_prediction", clip_sample=False, steps_offset=1), text_encoder=parts["te"], tokenizer=parts["tok"], prediction_type="depth", default_denoising_steps=2, default_processing_resolution=16)
    pipe.set_progress_bar_config(disable=True)
    img = torch.rand(1, 3, 16, 16)

    def run():
        return pipe(img, num_inference_steps=2, ensemble_size=1, processing_resolution=16, generator=torch.Generator().manual_seed(0), output_type="pt").prediction

    base = run()
    cfg = FreScaConfig(scale_low=1.0, scale_high=2.0, freq_cutoff=CUT)  # the official Marigold demo: (1, 2, cut-off)
    unet = pipe.unet
    raw = RawOutputs(unet)
    object.__setattr__(pipe, "unet", raw)
    try:
        with fresca_pipeline(pipe, cfg, target="prediction"), Recorder(pipe.scheduler) as rec:
            fresca = run()
    finally:
        object.__setattr__(pipe, "unet", unet)
    assert len(rec.inputs) == 2
    for pred, got in zip(raw.outputs, rec.inputs):
        torch.testing.assert_close(got, frequency_scale(pred, cfg), atol=1e-5, rtol=1e-5)
    assert fresca.shape == base.shape == (1, 1, 16, 16)
    assert not torch.allclose(fresca, base)


def test_guider_matches_the_function_and_cfg():
    guiders = pytest.importorskip("diffusers.guiders")
    from reprolab.papers.fresca import FreScaGuidance

    g = torch.Generator().manual_seed(0)
    c, u = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 4, 16, 16, generator=g)
    guider = FreScaGuidance(guidance_scale=4.0, scale_high=1.25, freq_cutoff=CUT)
    assert isinstance(guider, guiders.ClassifierFreeGuidance)
    expected = fresca_guidance(u, c, 4.0, FreScaConfig(scale_high=1.25, freq_cutoff=CUT))
    torch.testing.assert_close(guider.forward(c, u).pred, expected)
    # the guider protocol of modular pipelines: set_state, prepare_inputs, a noise_pred per batch, __call__
    guider.set_state(step=0, num_inference_steps=4, timestep=torch.tensor(999))
    batches = guider.prepare_inputs({"prompt_embeds": (torch.ones(1), torch.zeros(1))})
    assert len(batches) == 2
    for b, pred in zip(batches, (c, u)):
        b.noise_pred = pred
    torch.testing.assert_close(guider(batches).pred, expected)
    assert guider.config.scale_high == 1.25 and guider.config.freq_cutoff == CUT
    plain = guiders.ClassifierFreeGuidance(guidance_scale=4.0).forward(c, u).pred
    torch.testing.assert_close(FreScaGuidance(guidance_scale=4.0, scale_high=1.0).forward(c, u).pred, plain)
    # rescale and the original formulation go through CFG's own code
    torch.testing.assert_close(
        FreScaGuidance(guidance_scale=4.0, scale_high=1.0, guidance_rescale=0.7, use_original_formulation=True).forward(c, u).pred,
        guiders.ClassifierFreeGuidance(guidance_scale=4.0, guidance_rescale=0.7, use_original_formulation=True).forward(c, u).pred,
    )
    # at w = 1 CFG switches itself off; FreSca with h != 1 still scales: u + F(c - u) != c
    one = FreScaGuidance(guidance_scale=1.0, scale_high=2.0, freq_cutoff=CUT)
    assert one.num_conditions == 2
    assert not torch.allclose(one.forward(c, u).pred, c)
    assert FreScaGuidance(guidance_scale=1.0, scale_high=1.0).num_conditions == 1


def test_guider_with_fdg_peer_installed():
    guiders = pytest.importorskip("diffusers.guiders")
    pytest.importorskip("kornia", reason="FrequencyDecoupledGuidance needs kornia")
    c, u = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    fdg = guiders.FrequencyDecoupledGuidance(guidance_scales=[5.0, 5.0])  # equal scales: FDG is plain CFG
    torch.testing.assert_close(fdg.forward(c, u).pred, u + 5.0 * (c - u), atol=1e-4, rtol=1e-4)


def test_wrapper_in_the_lab_sampler_equals_the_guidance_hook():
    """The study's path (FreScaDenoiser around a UNet2DModel in ddim_sample) is u + w * F(c - u) at every step."""
    from reprolab.nn.diffusion import TinyUNetConfig, build_unet, ddim_sample

    torch.manual_seed(0)
    unet = build_unet(TinyUNetConfig(sample_size=16, block_out_channels=(8, 16), num_classes=3, norm_num_groups=4)).eval()
    cfg = FreScaConfig(scale_high=1.5, freq_cutoff=CUT)
    y = torch.tensor([0, 1, 2, 1])
    common = dict(class_labels=y, guidance_scale=3.0, null_class=3, num_inference_steps=4)
    a = ddim_sample(FreScaDenoiser(unet, cfg), (4, 1, 16, 16), generator=torch.Generator().manual_seed(0), **common)
    b = ddim_sample(unet, (4, 1, 16, 16), generator=torch.Generator().manual_seed(0), guidance=lambda u, c: fresca_guidance(u, c, 3.0, cfg), **common)
    plain = ddim_sample(unet, (4, 1, 16, 16), generator=torch.Generator().manual_seed(0), **common)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, plain, atol=1e-4)


def test_study_and_bench_are_registered():
    from reprolab.study import benches, studies

    assert "fresca" in studies() and "fresca" in benches()
