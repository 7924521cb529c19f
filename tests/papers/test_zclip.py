"""ZClip: formulas against hand computation, warm-up, spikes, state, NaN, parity with the official package."""

from __future__ import annotations

import math

import pytest
import torch

from reprolab.errors import ConfigError, NonFiniteError
from reprolab.papers.zclip import ZClip, ZClipConfig


def set_norm(p: torch.nn.Parameter, norm: float) -> None:
    """Give ``p`` a gradient of exactly ``norm`` (a fixed direction scaled)."""
    d = torch.arange(1, p.numel() + 1, dtype=torch.float32).reshape(p.shape)
    p.grad = d / d.norm() * norm


def grad_norm(p: torch.nn.Parameter) -> float:
    return float(p.grad.norm())


@pytest.fixture
def p() -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(4, 3))


def test_warmup_initialises_mean_and_population_variance(p):
    z = ZClip(warmup_steps=3, max_grad_norm=None)
    for n in (1.0, 2.0, 3.0):
        set_norm(p, n)
        info = z.step(p)
        assert info.warmup and not bool(info.spike)
        assert grad_norm(p) == pytest.approx(n)  # no ZClip clipping during warm-up
    assert z.initialized
    assert z.mean == pytest.approx(2.0)
    assert z.var == pytest.approx(2.0 / 3.0)  # population variance of 1, 2, 3


def test_warmup_applies_the_max_norm_ceiling(p):
    z = ZClip(warmup_steps=5, max_grad_norm=1.0)
    set_norm(p, 4.0)
    info = z.step(p)
    assert grad_norm(p) == pytest.approx(1.0)
    assert float(info.grad_norm) == pytest.approx(4.0)
    assert z._warmup_norms == [pytest.approx(4.0)]  # the raw norm is what warm-up collects


def warmed(p, norms=(1.0, 2.0, 3.0), **kw) -> ZClip:
    z = ZClip(warmup_steps=len(norms), max_grad_norm=None, **kw)
    for n in norms:
        set_norm(p, n)
        z.step(p)
    return z


def test_ema_update_by_hand(p):
    z = warmed(p)
    mu, var = 2.0, 2.0 / 3.0
    set_norm(p, 2.5)  # z = 0.5 / 0.816 = 0.61: not a spike
    info = z.step(p)
    assert not bool(info.spike)
    mu_new = 0.97 * mu + 0.03 * 2.5
    var_new = 0.97 * var + 0.03 * (2.5 - mu_new) ** 2
    assert z.mean == pytest.approx(mu_new, rel=1e-12)
    assert z.var == pytest.approx(var_new, rel=1e-12)
    assert grad_norm(p) == pytest.approx(2.5)


def test_planted_spike_is_clipped_by_reciprocal_rule(p):
    z = warmed(p)
    mu, sigma = 2.0, math.sqrt(2.0 / 3.0)
    g = 10.0
    zt = (g - mu) / (sigma + 1e-6)
    expected = mu + (2.5**2 / zt) * sigma  # g* = mu + z_thres^2 / z_t * sigma
    set_norm(p, g)
    info = z.step(p)
    assert bool(info.spike)
    assert grad_norm(p) == pytest.approx(expected, rel=1e-6)
    assert float(info.clipped_norm) == pytest.approx(expected, rel=1e-9)
    assert float(info.threshold) == pytest.approx(mu + 2.5 * sigma, rel=1e-9)
    # The EMA is updated with the clipped norm, not the spike.
    mu_new = 0.97 * mu + 0.03 * expected
    assert z.mean == pytest.approx(mu_new, rel=1e-9)
    # A larger spike is clipped harder: reciprocal, so the target falls as z grows.
    z2 = warmed(p)
    set_norm(p, 100.0)
    z2.step(p)
    assert grad_norm(p) < expected


def test_mean_option_clips_to_the_mean(p):
    z = warmed(p, clip_option="mean")
    set_norm(p, 10.0)
    z.step(p)
    assert grad_norm(p) == pytest.approx(2.0, rel=1e-6)


def test_percentile_mode_clips_to_the_boundary(p):
    z = warmed(p, mode="percentile")
    boundary = 2.0 + 2.5 * math.sqrt(2.0 / 3.0)
    set_norm(p, 10.0)
    assert bool(z.step(p).spike)
    assert grad_norm(p) == pytest.approx(boundary, rel=1e-6)


def test_clip_factor_scales_the_whole_adaptive_threshold(p):
    a, b = warmed(p), None
    set_norm(p, 10.0)
    a.step(p)
    full = grad_norm(p)
    b = warmed(p, clip_factor=0.5)
    set_norm(p, 10.0)
    b.step(p)
    assert grad_norm(p) == pytest.approx(0.5 * full, rel=1e-6)


def test_skip_update_on_spike_keeps_statistics(p):
    z = warmed(p, skip_update_on_spike=True)
    set_norm(p, 10.0)
    z.step(p)
    assert z.mean == pytest.approx(2.0)


def test_max_norm_ceiling_does_not_feed_statistics(p):
    z = ZClip(warmup_steps=3, max_grad_norm=1.5)
    for n in (1.0, 2.0, 3.0):
        set_norm(p, n)
        z.step(p)
    set_norm(p, 2.5)  # not a spike, but above the ceiling
    z.step(p)
    assert grad_norm(p) == pytest.approx(1.5)
    assert z.mean == pytest.approx(0.97 * 2.0 + 0.03 * 2.5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_norm_is_skipped_and_never_poisons_statistics(p, bad):
    z = warmed(p)
    before = (z.mean, z.var)
    p.grad = torch.full_like(p, bad)
    info = z.step(p)
    assert not bool(info.finite) and not bool(info.spike)
    assert (z.mean, z.var) == before
    set_norm(p, 2.5)
    z.step(p)
    assert math.isfinite(z.mean) and math.isfinite(z.var)
    # during warm-up the bad norm is not collected
    w = ZClip(warmup_steps=3, max_grad_norm=None)
    p.grad = torch.full_like(p, bad)
    w.step(p)
    assert w._warmup_norms == []


def test_nonfinite_norm_raises_when_asked(p):
    z = warmed(p, on_nonfinite="raise")
    p.grad = torch.full_like(p, float("nan"))
    with pytest.raises(NonFiniteError, match="gradient norm"):
        z.step(p)


def test_state_round_trip_continues_exactly(p):
    gen = torch.Generator().manual_seed(0)
    norms = (torch.rand(60, generator=gen) * 3 + 1).tolist()
    norms[40] = 50.0
    a = ZClip(max_grad_norm=None)
    for n in norms[:30]:
        set_norm(p, n)
        a.step(p)
    b = ZClip()
    b.load_state_dict(a.state_dict())
    assert b.config == a.config
    for n in norms[30:]:
        set_norm(p, n)
        a.step(p)
        ga = p.grad.clone()
        set_norm(p, n)
        b.step(p)
        assert torch.equal(ga, p.grad)
    assert (a.mean, a.var, a.steps) == (b.mean, b.var, b.steps)
    # also mid-warm-up
    c, d = ZClip(max_grad_norm=None), ZClip()
    set_norm(p, 2.0)
    c.step(p)
    d.load_state_dict(c.state_dict())
    assert d._warmup_norms == c._warmup_norms


def test_no_gradients_change_nothing_and_frozen_groups_are_fine():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    for q in model[0].parameters():
        q.requires_grad_(False)
    opt = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters()}], lr=0.1)
    z = ZClip(warmup_steps=2, max_grad_norm=None)
    assert float(z.step(opt).grad_norm) == 0.0 and z.steps == 0
    model(torch.randn(5, 3)).pow(2).sum().backward()
    info = z.step(opt)
    assert z.steps == 1
    expected = torch.cat([q.grad.flatten() for q in model[1].parameters()]).norm()
    assert float(info.grad_norm) == pytest.approx(float(expected), rel=1e-6)


def test_low_precision_gradients(p):
    q = torch.nn.Parameter(torch.zeros(8, dtype=torch.bfloat16))
    z = ZClip(warmup_steps=2, max_grad_norm=None)
    for n in (1.0, 1.2):
        q.grad = torch.full_like(q, n / math.sqrt(8))
        z.step(q)
    q.grad = torch.full_like(q, 40.0)
    assert bool(z.step(q).spike)
    assert q.grad.dtype == torch.bfloat16 and float(q.grad.float().norm()) < 5


def test_config_is_validated():
    with pytest.raises(ConfigError, match="alpha"):
        ZClipConfig(alpha=1.5)
    with pytest.raises(ConfigError, match="mode"):
        ZClip(mode="median")
    with pytest.raises(ConfigError, match="warmup_steps"):
        ZClip(warmup_steps=0)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(clip_option="mean"),
        dict(mode="percentile"),
        dict(skip_update_on_spike=True),
        dict(clip_factor=0.7, z_thresh=2.0, alpha=0.9),
    ],
)
def test_parity_with_official_package(kw):
    """Same gradients, same clipping as PyPI zclip 1.0.0 (max_grad_norm=None: the official
    warm-up clips through FSDP-specific code paths otherwise identical to ours)."""
    official = pytest.importorskip("zclip")
    torch.manual_seed(0)
    model_a = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    model_b = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    model_b.load_state_dict(model_a.state_dict())
    ours = ZClip(max_grad_norm=None, warmup_steps=10, **kw)
    theirs = official.ZClip(max_grad_norm=None, warmup_steps=10, **kw)
    gen = torch.Generator().manual_seed(1)
    n_clipped = 0
    for step in range(80):
        x = torch.randn(8, 16, generator=gen) * (30.0 if step in (30, 31, 55, 70) else 1.0)
        for m in (model_a, model_b):
            m.zero_grad()
            m(x).pow(2).mean().backward()
        info = ours.step(model_a)
        norm_theirs = theirs.step(model_b)
        n_clipped += bool(info.clipped_norm < info.grad_norm)
        assert float(info.grad_norm) == pytest.approx(norm_theirs, rel=1e-6)
        for pa, pb in zip(model_a.parameters(), model_b.parameters()):
            torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-5, atol=1e-7)
        if theirs.initialized:
            assert ours.mean == pytest.approx(theirs.mean, rel=1e-5)
            assert ours.var == pytest.approx(theirs.var, rel=1e-4)
    assert n_clipped >= 2  # the comparison exercised clipping, not just pass-through


def test_step_on_something_that_is_not_parameters_is_a_typed_error():
    z = ZClip()
    for bad in (42, "model", None, [1.0, 2.0]):
        with pytest.raises(ConfigError, match="parameters"):
            z.step(bad)
    assert z.steps == 0


def test_load_state_dict_refuses_missing_keys_and_nonfinite_statistics(p):
    z = warmed(p)
    good = z.state_dict()
    for key in ("config", "steps", "warmup_norms", "mean", "var"):
        broken = {k: v for k, v in good.items() if k != key}
        with pytest.raises(ConfigError, match=repr(key)):
            ZClip().load_state_dict(broken)
    for value in (float("nan"), float("inf")):
        with pytest.raises(NonFiniteError, match="mean"):
            ZClip().load_state_dict({**good, "mean": value})
    with pytest.raises(ConfigError, match="var"):
        ZClip().load_state_dict({**good, "var": -1.0})
    with pytest.raises(ConfigError, match="ZClip state"):
        ZClip().load_state_dict([("mean", 1.0)])
    fresh = ZClip()
    fresh.load_state_dict(good)  # nothing was changed by the refused loads, and a good state loads
    assert fresh.mean == z.mean and fresh.steps == z.steps
