"""JavisDiT: JavisScore, AVHScore, AV-Align and every prior-loss term against hand computation; the estimator; the
ST-prior block on TinyAVDiT and on a tiny diffusers LTX-2; the metrics reading JavisBench-style mp4 + wav pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from reprolab.papers.javisdit import (AttentionDiscriminator, HiSTSypoConfig, HiSTSypoEstimator, STPriorBlock, VAEncoder, attach_st_prior,
                                      attach_st_prior_ltx2, av_align_peaks, avh_score, javis_score, prior_loss, prior_loss_terms,
                                      score_clip, score_folder, windows)

FPS, SR = 4.0, 8000


def _planted(T=8):
    """Frame j is the constant j / 100; the audio sample n is n / 1e6: encoders turn them into angles."""
    video = torch.arange(T, dtype=torch.float32).view(T, 1, 1, 1).expand(T, 3, 4, 4) / 100
    audio = torch.arange(int(T / FPS * SR), dtype=torch.float32) / 1e6
    return video, audio


def _frame_angle(frames):
    return frames[:, 0, 0, 0] * 100 * 0.4  # theta_j = 0.4 j


def _audio_angle(waves):
    return waves[:, 0] * 1e6 / SR * 0.7  # phi = 0.7 * (start time in s)


def frame_enc(frames):
    th = _frame_angle(frames)
    return torch.stack([torch.cos(th), torch.sin(th)], -1)


def audio_enc(waves):
    ph = _audio_angle(waves)
    return torch.stack([torch.cos(ph), torch.sin(ph)], -1)


def test_windows_follow_window_and_overlap():
    assert windows(4.0, 2.0, 1.5) == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert windows(2.0, 1.0, 0.75) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert windows(1.0, 2.0, 1.5) == [0.0]
    with pytest.raises(ConfigError):
        windows(4.0, 1.0, 1.0)


def test_javis_score_by_hand():
    video, audio = _planted()
    got = javis_score(video, audio, fps=FPS, sample_rate=SR, frame_encoder=frame_enc, audio_encoder=audio_enc, window=1.0, overlap=0.5,
                      lowest=0.4)
    per_window = []
    for s in (0.0, 0.5, 1.0):  # duration 2 s, stride 0.5 s
        frames = [j for j in range(8) if s <= j / FPS < s + 1.0]  # 4 frames per window
        cos = sorted(math.cos(0.4 * j - 0.7 * s) for j in frames)
        k = max(1, int(0.4 * len(frames)))  # int(1.6) = 1
        per_window.append(sum(cos[:k]) / k)
    assert got == pytest.approx(sum(per_window) / len(per_window), abs=1e-6)


def test_avh_score_by_hand():
    video, audio = _planted()
    got = avh_score(video, audio, frame_encoder=frame_enc, audio_encoder=audio_enc)
    assert got == pytest.approx(np.mean([math.cos(0.4 * j - 0.0) for j in range(8)]), abs=1e-6)


def test_metrics_reject_bad_clips():
    video, audio = _planted()
    with pytest.raises(ShapeError):
        javis_score(video[:, :1], audio, fps=FPS, sample_rate=SR, frame_encoder=frame_enc, audio_encoder=audio_enc)
    with pytest.raises(NonFiniteError):
        avh_score(video, audio * float("nan"), frame_encoder=frame_enc, audio_encoder=audio_enc)
    with pytest.raises(ShapeError):
        avh_score(video, audio, frame_encoder=lambda f: torch.zeros(len(f), 3), audio_encoder=audio_enc)


def test_av_align_by_hand():
    a, v = np.array([0.5, 1.0, 3.0]), np.array([0.6, 2.0])
    # tolerance 0.25 s: audio 0.5 matches 0.6; 1.0 and 3.0 do not; video 0.6 matches, 2.0 does not -> (1 + 1) / 5
    assert av_align_peaks(a, v, 0.25) == pytest.approx(2 / 5)
    assert av_align_peaks(a, v, 1.0) == pytest.approx((3 + 2) / 5)
    assert av_align_peaks([], [], 0.1) == 0.0 and av_align_peaks([1.0, 1.1], [1.05], 0.1) == 1.0


def _cos(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_every_prior_loss_term_by_hand():
    g = torch.Generator().manual_seed(0)
    p, ep, en = (torch.randn(2, 3, 4, generator=g) for _ in range(3))
    P, EP, EN = p.numpy(), ep.numpy(), en.numpy()
    disc = AttentionDiscriminator(4, heads=2)
    terms = prior_loss_terms(p, ep, en, disc)
    assert float(terms["contrast"]) == pytest.approx(0.5 * (np.maximum(0, 1 - _cos(P, EP)).mean() + np.maximum(0, 1 + _cos(P, EN)).mean()), abs=1e-5)
    assert float(terms["mse"]) == pytest.approx(((P - EP) ** 2).mean(), abs=1e-5)
    assert float(terms["separation"]) == pytest.approx(np.maximum(0, 1 + _cos(EP, EN)).mean(), abs=1e-5)
    lp, ln = disc(p, ep).detach().numpy(), disc(p, en).detach().numpy()
    bce = -(np.log(1 / (1 + np.exp(-lp))).sum() + np.log(1 - 1 / (1 + np.exp(-ln))).sum()) / 4
    assert float(terms["discriminator"].detach()) == pytest.approx(bce, abs=1e-5)
    # the planted optimum: p = e+ = -e- gives zero contrast, mse and separation
    best = prior_loss_terms(ep, ep, -ep)
    assert float(best["contrast"]) == pytest.approx(0, abs=1e-6) and float(best["mse"]) == 0 and float(best["separation"]) == pytest.approx(0, abs=1e-6)
    assert "discriminator" not in best
    with pytest.raises(ShapeError):
        prior_loss_terms(p, ep[:, :2], en)


def _cfg():
    return HiSTSypoConfig(text_dim=6, d_model=16, n_encoder=1, n_decoder=1, heads=2, n_spatial=4, n_temporal=3, prior_dim=8)


def test_estimator_shapes_kl_sampling_and_null():
    torch.manual_seed(0)
    cfg = _cfg()
    est = HiSTSypoEstimator(cfg).eval()
    text = torch.randn(2, 5, 6)
    out = est(text, torch.tensor([[True] * 5, [True] * 3 + [False] * 2]))
    assert out.prior.shape == (2, 7, 8) and torch.equal(out.prior, out.mean)  # eval: the mean
    kl = 0.5 * (out.mean**2 + out.logvar.exp() - 1 - out.logvar).sum((1, 2)).mean()
    assert float(out.kl) == pytest.approx(float(kl), rel=1e-5)
    assert out.spatial(4).shape == (2, 4, 8) and out.temporal(4).shape == (2, 3, 8)
    a = est(text, sample=True, generator=torch.Generator().manual_seed(1)).prior
    b = est(text, sample=True, generator=torch.Generator().manual_seed(1)).prior
    assert torch.equal(a, b) and not torch.equal(a, out.mean)
    assert est.null(3).shape == (3, 7, 8)
    padded = est(torch.cat([text[1:, :3], torch.randn(1, 2, 6)], 1), torch.tensor([[True] * 3 + [False] * 2]))
    assert torch.allclose(padded.prior, out.prior[1:], atol=1e-5)  # padding tokens are ignored
    with pytest.raises(ShapeError):
        est(torch.randn(2, 5, 7))


def test_prior_loss_trains_the_estimator_and_the_va_encoder():
    torch.manual_seed(0)
    cfg = _cfg()
    est, va = HiSTSypoEstimator(cfg), VAEncoder(cfg, patch=4, audio_patch=(8, 4), dim=16, heads=2)
    discs = torch.nn.ModuleDict({k: AttentionDiscriminator(8, heads=2) for k in ("spatial", "temporal")})
    video, audio = torch.rand(2, 4, 3, 8, 8), torch.randn(2, 1, 16, 8)
    e_pos = va(video, audio)
    e_neg = va(video.flip(1), audio)
    loss, parts = prior_loss(est(torch.randn(2, 5, 6)), e_pos, e_neg, discs, cfg)
    assert e_pos["spatial"].shape == (2, 4, 8) and e_pos["temporal"].shape == (2, 3, 8)
    assert {"kl", "spatial_contrast", "spatial_discriminator", "spatial_mse", "spatial_separation", "temporal_mse"} <= set(parts)
    loss.backward()
    assert all(p.grad is not None for p in (est.queries, va.video_in.weight, discs["spatial"].head.weight))


def test_st_prior_block_is_zero_at_init_and_sees_the_axes():
    torch.manual_seed(0)
    blk = STPriorBlock(8, 2, n_spatial=4)
    x, prior, temb = torch.randn(2, 3, 5, 8), torch.randn(2, 7, 8), torch.randn(2, 8)
    assert torch.equal(blk(x, prior, temb), torch.zeros_like(x))
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(0.1 * torch.randn_like(p))
    d = blk(x, prior, temb)
    p2 = prior.clone()
    p2[:, 4:] += 1.0  # change only the temporal prior tokens
    assert not torch.allclose(blk(x, p2, temb), d)
    with pytest.raises(ShapeError):
        blk(x, prior[:, :4], temb)


def test_st_prior_on_tiny_avdit_leaves_it_unchanged_then_conditions_it():
    from reprolab.nn.avdit import AVDiTConfig, TinyAVDiT

    torch.manual_seed(0)
    cfg = _cfg()
    m = TinyAVDiT(AVDiTConfig(dim=16, depth=1, heads=2, audio_mels=16, audio_patch=(8, 4), slots={"text": 6}))
    x, t, text = {"video": torch.randn(2, 3, 3, 8, 8), "audio": torch.randn(2, 1, 16, 8)}, torch.rand(2), torch.randn(2, 5, 6)
    before = m(x, t, {"text": text})
    attach_st_prior(m, cfg)
    prior = torch.randn(2, 7, 8)
    after = m(x, t, {"text": text, "prior": prior})
    assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before)
    loss = sum(v.pow(2).mean() for v in after.values())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.slot_parameters(["prior"]))


def test_st_prior_block_on_a_tiny_diffusers_ltx2_runs_forward_and_backward():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    ltx = diffusers.LTX2VideoTransformer3DModel(
        in_channels=12, out_channels=12, num_attention_heads=2, attention_head_dim=8, cross_attention_dim=16, audio_in_channels=16,
        audio_out_channels=16, audio_num_attention_heads=2, audio_attention_head_dim=8, audio_cross_attention_dim=16, num_layers=2,
        caption_channels=6)
    cfg = _cfg()
    hooks = attach_st_prior_ltx2(ltx, cfg)
    T, h, w = 2, 2, 2
    kw = dict(hidden_states=torch.randn(2, T * h * w, 12), audio_hidden_states=torch.randn(2, 5, 16), encoder_hidden_states=torch.randn(2, 3, 6),
              audio_encoder_hidden_states=torch.randn(2, 3, 6), timestep=torch.tensor([500.0, 200.0]), num_frames=T, height=h, width=w,
              audio_num_frames=5)
    hooks.set_prior(None, T, h * w)
    base = ltx(**kw).sample
    prior = torch.randn(2, 7, 8, requires_grad=True)
    hooks.set_prior(prior, T, h * w)
    out = ltx(**kw)
    assert torch.allclose(out.sample, base, atol=1e-6)  # zero-initialised: unchanged at attachment
    (out.sample.pow(2).mean() + out.audio_sample.pow(2).mean()).backward()
    grads = [p.grad for p in hooks.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    hooks.remove()
    with pytest.raises(ConfigError):
        attach_st_prior_ltx2(torch.nn.Linear(2, 2), cfg)


def test_metrics_read_javisbench_sample_pairs(tmp_path):
    from reprolab.data.av_events import AVEventsConfig, generate_clips
    from reprolab.data.av_io import read_video, read_wav, write_pair

    cfg = AVEventsConfig()
    clips = generate_clips(2, cfg, seed=0)
    for i, c in enumerate(clips):
        write_pair(tmp_path, i, c.video, c.audio, fps=cfg.fps, sample_rate=cfg.sample_rate)

    def fenc(frames):
        return torch.stack([frames.mean((1, 2, 3)), frames.amax((1, 2, 3)), torch.ones(len(frames))], -1)

    def aenc(waves):
        return torch.stack([waves.abs().mean(-1), waves.abs().amax(-1), torch.ones(len(waves))], -1)

    scores = score_folder(tmp_path, frame_encoder=fenc, audio_encoder=aenc, sample_rate=16000, window=1.0, overlap=0.75)
    assert [s.index for s in scores] == [0, 1]
    video, fps = read_video(tmp_path / "sample_0001.mp4")
    audio, sr = read_wav(tmp_path / "sample_0001.wav")
    direct = score_clip(video, audio, fps=fps, sample_rate=sr, frame_encoder=fenc, audio_encoder=aenc, window=1.0, overlap=0.75, index=1)
    assert scores[1] == direct
    assert 0.0 <= direct.av_align <= 1.0
    with pytest.raises(ConfigError):
        score_folder(tmp_path, frame_encoder=fenc, audio_encoder=aenc, sample_rate=8000)
    (tmp_path / "sample_0001.wav").unlink()
    with pytest.raises(MalformedFile):
        score_folder(tmp_path, frame_encoder=fenc, audio_encoder=aenc)
