"""The selective scan: the parallel fast path against the sequential reference (values, gradients, long sequences),
against mambapy's parallel scan where installed, and the bidirectional Mamba block."""

from __future__ import annotations

import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.nn import ssm
from reprolab.nn.ssm import BiMamba, selective_scan, selective_scan_ref


def _inputs(batch=3, d=6, n=4, L=37, kind="selective", seed=0, dtype=torch.float32, big_delta=False):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, d, L, generator=g, dtype=dtype)
    delta = torch.randn(batch, d, L, generator=g, dtype=dtype) * (3.0 if big_delta else 0.5)
    A = -torch.rand(d, n, generator=g, dtype=dtype) * 2 - 0.1
    if kind == "fixed":
        B, C = torch.randn(d, n, generator=g, dtype=dtype), torch.randn(d, n, generator=g, dtype=dtype)
    elif kind == "groups":
        B, C = torch.randn(batch, 2, n, L, generator=g, dtype=dtype), torch.randn(batch, 2, n, L, generator=g, dtype=dtype)
    else:
        B, C = torch.randn(batch, n, L, generator=g, dtype=dtype), torch.randn(batch, n, L, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    z = torch.randn(batch, d, L, generator=g, dtype=dtype)
    bias = torch.randn(d, generator=g, dtype=dtype) * 0.1
    return u, delta, A, B, C, D, z, bias


def _hand_scan(u, delta, A, B, C):
    """The recurrence written out for one fixed-B/C channel, batch 1, no options."""
    h = torch.zeros(A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        h = torch.exp(delta[0, 0, t] * A[0]) * h + delta[0, 0, t] * B[0] * u[0, 0, t]
        ys.append((h * C[0]).sum())
    return torch.stack(ys)


def test_reference_is_the_recurrence_by_hand():
    u, delta, A, B, C, *_ = _inputs(batch=1, d=1, n=3, L=9, kind="fixed")
    torch.testing.assert_close(selective_scan_ref(u, delta, A, B, C)[0, 0], _hand_scan(u, delta, A, B, C))


@pytest.mark.parametrize("max_l", [0, 10**6], ids=["pairing", "loop"])
@pytest.mark.parametrize("kind", ["selective", "fixed", "groups"])
@pytest.mark.parametrize("L", [1, 2, 5, 16, 37])
def test_fast_path_equals_reference_with_every_option(kind, L, max_l, monkeypatch):
    monkeypatch.setattr(ssm, "SEQUENTIAL_MAX_L", max_l)
    u, delta, A, B, C, D, z, bias = _inputs(kind=kind, L=L)
    ref, h_ref = selective_scan_ref(u, delta, A, B, C, D, z, bias, delta_softplus=True, return_last_state=True)
    out, h = selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, return_last_state=True)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(h, h_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_l", [0, 10**6], ids=["pairing", "loop"])
def test_gradients_match_the_reference(max_l, monkeypatch):
    # both kernels of the fast path (recursive pairing, and the plain loop used on a CPU for short sequences)
    monkeypatch.setattr(ssm, "SEQUENTIAL_MAX_L", max_l)
    leaves = [t.requires_grad_(True) for t in _inputs(L=40)]
    ref = selective_scan_ref(*leaves, delta_softplus=True)
    g_ref = torch.autograd.grad((ref * torch.linspace(-1, 1, ref.numel()).view_as(ref)).sum(), leaves)
    out = selective_scan(*leaves, delta_softplus=True)
    g = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), leaves)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_long_sequences_with_large_steps_stay_finite_and_exact():
    # the cumulative decay reaches exp(-thousands): a cumulative-product or exp(-S) form would overflow
    u, delta, A, B, C, D, z, bias = _inputs(batch=2, d=4, n=8, L=600, big_delta=True)
    out = selective_scan(u, delta, A, B, C, D, delta_softplus=True)
    assert torch.isfinite(out).all()
    ref = selective_scan_ref(u, delta, A, B, C, D, delta_softplus=True)
    # outputs reach ~90 here: float32 summation order alone moves them by ~1e-6 of that scale
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))


def test_dtype_in_dtype_out():
    u, delta, A, B, C, D, z, bias = _inputs(dtype=torch.float64)
    assert selective_scan(u, delta, A, B, C, D).dtype == torch.float64
    out16 = selective_scan(u.bfloat16(), delta.bfloat16(), A, B, C, D)
    assert out16.dtype == torch.bfloat16


def test_equals_mambapy_parallel_scan_where_installed():
    pscan = pytest.importorskip("mambapy.pscan").pscan
    u, delta, A, B, C, D, z, bias = _inputs(L=33)
    d_ = torch.nn.functional.softplus(delta)
    dA = torch.exp(d_.unsqueeze(-1) * A[None, :, None, :]).permute(0, 2, 1, 3)  # (batch, L, d, n)
    BX = (d_ * u).unsqueeze(-1).permute(0, 2, 1, 3) * B.permute(0, 2, 1).unsqueeze(2)
    hs = pscan(dA.contiguous(), BX.contiguous())  # (batch, L, d, n)
    y = (hs * C.permute(0, 2, 1).unsqueeze(2)).sum(-1).permute(0, 2, 1) + u * D[:, None]
    torch.testing.assert_close(selective_scan(u, delta, A, B, C, D, delta_softplus=True), y, rtol=1e-5, atol=1e-5)


def test_bad_shapes_get_typed_errors():
    u, delta, A, B, C, *_ = _inputs()
    with pytest.raises(ShapeError, match="A"):
        selective_scan(u, delta, A[:3], B, C)
    with pytest.raises(ShapeError, match="B"):
        selective_scan(u, delta, A, B[:, :, :5], C)
    with pytest.raises(ShapeError, match="u / delta"):
        selective_scan(u, delta[:, :, :5], A, B, C)
    with pytest.raises(ConfigError):
        selective_scan(u, delta, A.to(torch.complex64), B, C)


def test_bimamba_scans_both_ways_and_learns_a_reversal():
    torch.manual_seed(0)
    m = BiMamba(8, d_state=4)
    x = torch.randn(2, 10, 8)
    y = m(x)
    assert y.shape == x.shape
    # with the backward direction switched off (zero D and zero C weights), the last token cannot reach the first
    x2 = x.clone()
    x2[:, -1] += 5.0
    with torch.no_grad():
        m.x_proj[1].weight[m.dt_rank + m.d_state:] = 0  # C of the reverse scan = 0
        m.D[1].zero_()
    assert torch.allclose(m(x)[:, 0], m(x2)[:, 0])  # forward-only: causal
    m2 = BiMamba(8, d_state=4)
    assert not torch.allclose(m2(x)[:, 0], m2(x2)[:, 0])  # both directions: the first token sees the last
    gated = BiMamba(8, d_state=4, conv=True, gate=True)
    gated(x).sum().backward()
    assert all(p.grad is not None for p in gated.parameters())
    with pytest.raises(ConfigError):
        BiMamba(8, gate=True, project=False)


def test_bimamba_is_the_two_direction_recurrences_by_the_reference_scan():
    torch.manual_seed(1)
    m = BiMamba(6, d_state=3, project=False)
    x = torch.randn(2, 9, 6)
    h = x.transpose(1, 2)
    ys = []
    for k, hk in ((0, h), (1, h.flip(-1))):
        dbl = m.x_proj[k](hk.transpose(1, 2))
        dt, Bm, Cm = dbl.split([m.dt_rank, m.d_state, m.d_state], dim=-1)
        y = selective_scan_ref(hk, (dt @ m.dt_proj[k].weight.T).transpose(1, 2), -torch.exp(m.A_log[k]), Bm.transpose(1, 2), Cm.transpose(1, 2),
                               m.D[k], delta_bias=m.dt_proj[k].bias, delta_softplus=True)
        ys.append(y if k == 0 else y.flip(-1))
    torch.testing.assert_close(m(x), (ys[0] + ys[1]).transpose(1, 2), rtol=1e-5, atol=1e-5)


def test_a_skipped_token_is_as_if_removed_from_the_sequence_per_sample():
    torch.manual_seed(2)
    m = BiMamba(8, d_state=4)
    x = torch.randn(2, 11, 8)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[0, [1, 4, 5]] = False
    mask[1, 7:9] = False  # a different number of skipped tokens per sample, one batch
    y = m(x, mask)
    for b in range(2):
        kept = x[b:b + 1, mask[b]]
        torch.testing.assert_close(y[b:b + 1, mask[b]], m(kept), rtol=1e-5, atol=1e-5)
    y.sum().backward()
    with pytest.raises(ShapeError):
        m(x, mask[:, :5])
    with pytest.raises(ConfigError):
        BiMamba(8, conv=True)(x, mask)


def test_the_fast_path_scanned_in_pieces_of_the_batch_gives_the_same_numbers(monkeypatch):
    import reprolab.nn.ssm as ssm

    for kind in ("fixed", "selective", "groups"):
        u, delta, A, B, C, D, z, bias = _inputs(batch=5, kind=kind)
        whole, h = selective_scan(u, delta, A, B, C, D, z, bias, True, return_last_state=True)
        monkeypatch.setattr(ssm, "CHUNK_ELEMENTS", 2 * u.shape[1] * u.shape[2] * A.shape[1])  # pieces of 2 sequences
        pieces, h2 = selective_scan(u, delta, A, B, C, D, z, bias, True, return_last_state=True)
        monkeypatch.undo()
        torch.testing.assert_close(pieces, whole, rtol=0, atol=0)
        torch.testing.assert_close(h2, h, rtol=0, atol=0)
