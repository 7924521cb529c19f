"""GPT-ImgEval's integrations: the diffusers-pipeline adapter on a tiny Stable Diffusion pipeline, and the architecture probe."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.papers.gpt_imgeval import ArchitectureProbe, fill_folder, iter_folder, make_prompts

pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_sd_pipeline(tmp_path):
    """A StableDiffusionPipeline of random tiny parts: UNet2DConditionModel, AutoencoderKL, CLIPTextModel, a character CLIPTokenizer."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in [chr(i) for i in range(ord("a"), ord("z") + 1)]:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=16)
    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
                                cross_attention_dim=16, attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, sample_size=16)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tok, unet=unet, scheduler=DDIMScheduler(clip_sample=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_diffusers_pipeline_fills_a_geneval_folder_and_resumes(tmp_path):
    pipe = _tiny_sd_pipeline(tmp_path)
    metas = make_prompts(per_tag=1, seed=0)[:2]
    root = fill_folder(pipe, metas, tmp_path / "images", n_samples=2, seed=7, num_inference_steps=2, height=16, width=16)
    items = list(iter_folder(root))
    assert [(p.parent.parent.name, p.name) for p, _ in items] == [("00000", "0000.png"), ("00000", "0001.png"), ("00001", "0000.png"), ("00001", "0001.png")]
    assert [m for _, m in items][::2] == metas
    first = (root / "00000" / "samples" / "0000.png").read_bytes()
    stamp = (root / "00000" / "samples" / "0000.png").stat().st_mtime_ns
    fill_folder(pipe, metas, root, n_samples=2, seed=7, num_inference_steps=2, height=16, width=16)  # complete: skipped
    assert (root / "00000" / "samples" / "0000.png").stat().st_mtime_ns == stamp
    (root / "00001" / "samples" / "0001.png").unlink()
    fill_folder(pipe, metas, root, n_samples=2, seed=7, num_inference_steps=2, height=16, width=16)  # resumes the missing prompt
    assert (root / "00001" / "samples" / "0001.png").exists() and (root / "00000" / "samples" / "0000.png").read_bytes() == first
    assert not list(root.rglob("*.tmp*"))
    with pytest.raises(ConfigError, match="generator"):
        fill_folder(object(), metas, tmp_path / "x")


def test_probe_separates_planted_paradigms_and_reports_shares():
    """Planted: the two 'paradigms' differ in a global signature (bright vs dark smooth images); a third set like the first is labelled with it."""
    g = torch.Generator().manual_seed(0)

    def smooth(n, lo, hi):
        x = lo + (hi - lo) * torch.rand(n, 3, 4, 4, generator=g)
        return torch.nn.functional.interpolate(x, size=32, mode="bicubic", align_corners=False).clamp(0, 1)

    probe = ArchitectureProbe(input_size=64, epochs=20).fit(smooth(40, 0.6, 1.0), smooth(40, 0.0, 0.4))
    shares = probe.shares(smooth(12, 0.6, 1.0))
    assert shares["diffusion"] >= 0.8 and shares["diffusion"] + shares["autoregressive"] == pytest.approx(1.0)
    assert probe.shares(smooth(12, 0.0, 0.4))["autoregressive"] >= 0.8
    # control: both classes drawn alike -> the probe cannot tell held-out images of the two apart
    ctrl = ArchitectureProbe(input_size=64, epochs=20).fit(smooth(16, 0.0, 1.0), smooth(16, 0.0, 1.0))
    a, b = ctrl.proba(smooth(12, 0.0, 1.0)), ctrl.proba(smooth(12, 0.0, 1.0))
    assert abs(float(np.mean(a > 0.5)) - float(np.mean(b > 0.5))) < 0.5
    with pytest.raises(ShapeError):
        probe.proba(torch.rand(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="fit"):
        ArchitectureProbe().proba_features(torch.zeros(1, 1280))


def test_bench_peer_pieces():
    from reprolab.papers.gpt_imgeval.bench import TinyClipScorer, best_cutoff

    scores = np.array([0.1, 0.2, 0.8, 0.9, 0.5])
    truth = np.array([False, False, True, True, True])
    c = best_cutoff(scores, truth)
    assert c == pytest.approx(0.2) and np.mean((scores > c) == truth) == 1.0
    assert best_cutoff(np.array([0.3, 0.3]), np.array([True, True])) == -np.inf  # everything "correct"
    clip = TinyClipScorer.train(n_pairs=8, steps=1, batch=4)
    ids = clip.ids(["a photo of a red circle", "a photo of two rings"])
    eos = len(clip.tok)
    assert (ids == eos).sum(1).tolist() == [1, 1] and ids[0, 6].item() == eos  # 6 words, then the end-of-text id
    imgs = np.zeros((2, 32, 32, 3), np.uint8)
    s = clip.scores(imgs, ["a photo of a red circle", "a photo of two rings"])
    assert s.shape == (2,) and np.all((s >= 0) & (s <= 2.5))


# ----------------------------------------------------------------------------- (b)'s generator, read by the harness
_PLANTED = {"a red square": ("square", "red"), "a blue circle": ("circle", "blue")}


def _planted_pairs(n=256, size=16):
    from reprolab.data.shapes import ShapeSpec, render_scene

    rng = np.random.default_rng(0)
    caps = [list(_PLANTED)[i % 2] for i in range(n)]
    imgs = [render_scene([ShapeSpec(*_PLANTED[c], "medium", *map(float, rng.uniform(0.25, 0.75, 2)))], size) for c in caps]
    return torch.from_numpy(np.stack(imgs)).float() * 2 - 1, caps


def _harness_reads(images, prompts):
    """Share of samples where the harness's proposals (with the study's clutter guard) find exactly one object, and its median
    colour leans to the caption's (red: R > B; blue: B > R)."""
    from reprolab.imageeval import propose_regions
    from reprolab.papers.gpt_imgeval.study import MAX_AREA

    u8 = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    hits = 0
    for p, im in zip(prompts, u8):
        regions = propose_regions(im, max_area=MAX_AREA)
        if len(regions) == 1:
            r, _, b = np.median(im[regions[0].mask].astype(float), axis=0)
            hits += (r > b) == (_PLANTED[p][1] == "red")
    return hits / len(prompts)


def _planted_generator(steps, prediction_type=None, seed=0):
    from reprolab.nn.diffusion import DiffusionBatch, TrainConfig
    from reprolab.nn.text_diffusion import CaptionTokenizer, TextDiffusionConfig, build_text_unet, sample_text, train_text_diffusion

    x, caps = _planted_pairs()
    tok = CaptionTokenizer.from_texts(list(_PLANTED), max_len=3)
    ids = tok.encode(caps)
    kind = {} if prediction_type is None else {"prediction_type": prediction_type}  # None: the room's default, which the study uses
    torch.manual_seed(seed)
    model = build_text_unet(TextDiffusionConfig(vocab_size=len(tok), max_len=3, sample_size=16, block_out_channels=(8, 16), cross_attention=(False, True),
                                                text_dim=16, norm_num_groups=4, **kind))

    def batch(step):
        idx = torch.randint(0, len(x), (16,), generator=torch.Generator().manual_seed(1000 * seed + step))
        return DiffusionBatch(x0=x[idx], class_labels=ids[idx])

    if steps:
        train_text_diffusion(model, batch, TrainConfig(steps=steps, lr=3e-3, warmup=10, checkpoint_every=10**6, prediction_type=model.config_.prediction_type))
    prompts = list(_PLANTED) * 8
    return _harness_reads(sample_text(model.eval(), tok, prompts, guidance_scale=3.0, num_inference_steps=8, generator=torch.Generator().manual_seed(0)), prompts)


@pytest.mark.slow
def test_the_diagnosis_generator_learns_scenes_the_harness_reads():
    """What v2's (b) lacked: a generator trained briefly on a planted two-caption task (the room's default parametrisation,
    which the study uses) must beat the untrained one on the harness's proposals (model seeds 0 and 3 read 0.62 and 0.88 at
    150 steps). v2's epsilon recipe stays at or below 0.25 (colour noise, on which the unguarded proposals saw one
    canvas-sized 'object'). Slow (about 20 s); the fast guards are the clutter test in tests/imageeval and the
    parametrisation test in tests/test_text_diffusion.py."""
    untrained, trained = _planted_generator(0), _planted_generator(150)
    assert untrained <= 0.1 and trained >= 0.5 and trained - untrained >= 0.4
    assert _planted_generator(150, "epsilon") <= 0.25
