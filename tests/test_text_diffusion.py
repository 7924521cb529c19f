"""nn.text_diffusion: caption tokens through cross-attention, trained and sampled by nn.diffusion, checkpointed and resumable."""

from __future__ import annotations

import pytest
import torch

from reprolab.errors import ConfigError, MalformedFile, ShapeError
from reprolab.nn.diffusion import DiffusionBatch, TrainConfig, ddim_sample, train_diffusion
from reprolab.nn.text_diffusion import (
    PAD, UNK, CaptionTokenizer, TextDiffusionConfig, build_text_unet, load_text_model, sample_text, save_text_model, train_text_diffusion,
)


@pytest.fixture(autouse=True)
def _one_thread():
    from reprolab.runtime import torch_threads

    with torch_threads(1):
        yield
CAPS = ["a photo of a red circle", "a photo of two blue squares"]


def _model(tok, prediction_type="sample"):
    torch.manual_seed(0)
    return build_text_unet(TextDiffusionConfig(vocab_size=len(tok), max_len=8, sample_size=8, block_out_channels=(8, 16), cross_attention=(False, True),
                                               text_dim=16, norm_num_groups=4, prediction_type=prediction_type))


def test_tokenizer_pads_cuts_and_marks_unknown_words():
    tok = CaptionTokenizer.from_texts(CAPS, max_len=6)
    ids = tok.encode(["a red circle", "a photo of a green circle and more"])
    assert ids.shape == (2, 6) and ids[0, 3:].tolist() == [PAD] * 3
    assert ids[1, 4].item() == UNK and len(tok) == len(set(" ".join(CAPS).split())) + 2


def test_the_caption_reaches_the_denoiser():
    tok = CaptionTokenizer.from_texts(CAPS, max_len=8)
    m = _model(tok).eval()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([500, 500])
    with torch.no_grad():
        a = m(x, t, class_labels=tok.encode([CAPS[0]] * 2)).sample
        b = m(x, t, class_labels=tok.encode([CAPS[1]] * 2)).sample
    assert a.shape == x.shape and not torch.allclose(a, b)
    with pytest.raises(ConfigError, match="token ids"):
        m(x, t, class_labels=torch.tensor([1, 2]))


def test_training_resumes_to_the_same_weights_and_sampling_uses_cfg(tmp_path):
    tok = CaptionTokenizer.from_texts(CAPS, max_len=8)
    x0 = torch.rand(4, 3, 8, 8) * 2 - 1
    ids = tok.encode(CAPS * 2)

    def batch(step):
        return DiffusionBatch(x0=x0, class_labels=ids)

    cfg = TrainConfig(steps=4, checkpoint_every=2, ema_decay=None, warmup=1)
    full = _model(tok)
    train_diffusion(full, batch, cfg, null_class=PAD, checkpoint=tmp_path / "a.pt")
    part = _model(tok)
    train_diffusion(part, batch, TrainConfig(steps=2, checkpoint_every=2, ema_decay=None, warmup=1), null_class=PAD, checkpoint=tmp_path / "b.pt")
    resumed = _model(tok)
    out = train_diffusion(resumed, batch, cfg, null_class=PAD, checkpoint=tmp_path / "b.pt")
    assert out.resumed_from == 2
    for p, q in zip(full.parameters(), resumed.parameters()):
        assert torch.allclose(p, q, atol=1e-6)
    img = sample_text(full, tok, CAPS, guidance_scale=2.0, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert img.shape == (2, 3, 8, 8) and img.min() >= 0 and img.max() <= 1
    save_text_model(tmp_path / "m.pt", full, tok)
    back, tok2, _ = load_text_model(tmp_path / "m.pt")
    assert tok2.words == tok.words
    again = sample_text(back, tok2, CAPS, guidance_scale=2.0, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(img, again, atol=1e-5)
    with pytest.raises(ShapeError, match="token ids"):
        ddim_sample(full, (2, 3, 8, 8), class_labels=tok.encode(CAPS[:1]), num_inference_steps=1)
    (tmp_path / "bad.pt").write_bytes(b"")
    torch.save({"kind": "other"}, tmp_path / "bad.pt")
    with pytest.raises(MalformedFile):
        load_text_model(tmp_path / "bad.pt")
    assert load_text_model(tmp_path / "none.pt") is None


def test_sampling_uses_the_models_own_parametrisation():
    """A model that always predicts the same clean image, declared as x0-predicting: DDIM must return exactly that image
    (read as epsilon it would not), so the model's prediction_type reaches the sampler."""
    from reprolab.nn.text_diffusion import _Out

    tok = CaptionTokenizer.from_texts(CAPS, max_len=8)
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    out = {}
    for kind in ("sample", "epsilon"):
        m = _model(tok, kind).eval()
        m.forward = lambda sample, timestep, class_labels=None: _Out(target.expand_as(sample))
        out[kind] = sample_text(m, tok, CAPS, guidance_scale=3.0, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out["sample"], ((target + 1) / 2).expand(2, -1, -1, -1), atol=1e-5)
    assert not torch.allclose(out["epsilon"], out["sample"], atol=1e-2)
    with pytest.raises(ConfigError, match="prediction_type"):
        TextDiffusionConfig(prediction_type="noise")
    with pytest.raises(ConfigError, match="prediction_type"):  # training in another parametrisation than sampling is refused
        train_text_diffusion(_model(tok, "sample"), lambda step: None, TrainConfig(steps=1, prediction_type="epsilon"))


def test_training_in_legs_along_one_schedule_equals_one_run(tmp_path):
    """Budgets as snapshots of one run: legs that share schedule_steps end with the weights of one uninterrupted run
    (without it, each leg restarts the warm-up and cosine decay, and the weights differ)."""
    import shutil

    tok = CaptionTokenizer.from_texts(CAPS, max_len=8)
    x0, ids = torch.rand(4, 3, 8, 8) * 2 - 1, tok.encode(CAPS * 2)

    def batch(step):
        return DiffusionBatch(x0=x0, class_labels=ids)

    def cfg(steps, horizon):
        return TrainConfig(steps=steps, schedule_steps=horizon, warmup=1, lr=1e-2, checkpoint_every=100, prediction_type="sample")

    one = _model(tok)
    train_text_diffusion(one, batch, cfg(6, 6), checkpoint=tmp_path / "one.pt")
    for horizon, name in ((6, "legs"), (None, "restart")):
        legs = _model(tok)
        train_text_diffusion(legs, batch, cfg(3, horizon), checkpoint=tmp_path / f"{name}-3.pt")
        shutil.copyfile(tmp_path / f"{name}-3.pt", tmp_path / f"{name}-6.pt")
        out = train_text_diffusion(legs, batch, cfg(6, horizon), checkpoint=tmp_path / f"{name}-6.pt")
        assert out.resumed_from == 3
        same = all(torch.allclose(p, q, atol=1e-6) for p, q in zip(one.parameters(), legs.parameters()))
        assert same == (horizon == 6)
    with pytest.raises(ConfigError, match="schedule_steps"):
        TrainConfig(steps=4, schedule_steps=2)
