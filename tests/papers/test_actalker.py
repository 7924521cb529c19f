"""ACTalker's PCM layer (Mask-Drop, Mask-Paste, gates), the gate-to-mask rule and the four-pass guidance."""

from __future__ import annotations

import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.nn.flow import guided_velocity
from reprolab.papers.actalker import GUIDANCE_SCALES, PCMLayer, four_pass_guidance, gate_masks, guidance_passes

B, L, C, DC = 2, 12, 16, 8


def _layer(**kw):
    torch.manual_seed(0)
    return PCMLayer(C, DC, d_state=4, **kw)


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, C, generator=g)
    ident = torch.randn(B, 1, DC, generator=g)
    conds = {"audio": torch.randn(B, 4, DC, generator=g), "motion": torch.randn(B, 1, DC, generator=g)}
    mouth = torch.zeros(B, L, dtype=torch.bool)
    mouth[0, 6:9] = True
    mouth[1, 3:6] = True  # a different mouth per sample, the same size: scanned together, gathered per sample
    face = torch.zeros(B, L, dtype=torch.bool)
    face[:, 2:11] = True
    return x, ident, conds, face, mouth


def test_gate_to_mask_rule():
    _, _, _, face, mouth = _inputs()
    g = torch.tensor([[1, 1], [1, 0]])
    a, m = gate_masks(g, face, mouth)
    assert torch.equal(a[0], mouth[0]) and torch.equal(m[0], ~mouth[0])  # both: (mouth, 1 - mouth)
    assert torch.equal(a[1], face[1]) and not m[1].any()  # audio only: (face, 0)
    a, m = gate_masks(torch.tensor([[0, 1], [0, 0]]), face, mouth)
    assert not a[0].any() and torch.equal(m[0], face[0])  # motion only: (0, face)
    assert not a[1].any() and not m[1].any()
    a, m = gate_masks(torch.tensor([[1, 1], [0, 1]]), face, mouth, released=True)  # the released Inference.py: ones
    assert a[0].all() and m[0].all() and not a[1].any() and m[1].all()
    with pytest.raises(ShapeError):
        gate_masks(torch.ones(B, 3), face, mouth)


def test_a_token_outside_a_branchs_mask_is_untouched_by_that_branch():
    layer = _layer()
    x, ident, conds, face, mouth = _inputs()
    x.requires_grad_(True)
    cond = torch.nn.functional.silu(layer.cond_proj["audio"](conds["audio"]))
    extra = torch.cat([torch.nn.functional.silu(layer.id_proj(ident)), cond], dim=1)
    u = layer.in_proj["audio"](x)
    out = layer._branch("audio", u, extra, mouth)
    outside = ~mouth
    assert torch.equal(out[outside], u[outside])  # Mask-Paste writes only inside the mask
    assert not torch.equal(out[mouth], u[mouth])
    # and no gradient flows from an outside token to anything but its own input
    grad = torch.autograd.grad(out[0, 0].sum(), x)[0]
    assert grad[0, 1:].abs().sum() == 0 and grad[1].abs().sum() == 0


def test_a_closed_gate_makes_the_output_independent_of_that_signal():
    layer = _layer()
    x, ident, conds, face, mouth = _inputs()
    for gates, moved in ((torch.tensor([[1.0, 0.0]] * B), "motion"), (torch.tensor([[0.0, 1.0]] * B), "audio")):
        masks = gate_masks(gates, face, mouth)
        y = layer(x, ident, conds, masks, gates)
        other = {**conds, moved: conds[moved] * 3 + 1}
        assert torch.equal(y, layer(x, ident, other, masks, gates))
        kept = "audio" if moved == "motion" else "motion"
        assert not torch.equal(y, layer(x, ident, {**conds, kept: conds[kept] * 3 + 1}, masks, gates))
    # released masks with a closed gate: the branch scans the tokens but its condition tokens are zero
    gates = torch.tensor([[1.0, 0.0]] * B)
    masks = gate_masks(gates, face, mouth, released=True)
    assert torch.equal(layer(x, ident, conds, masks, gates), layer(x, ident, {**conds, "motion": conds["motion"] + 5}, masks, gates))


def test_mask_drop_is_per_sample():
    layer = _layer()
    x, ident, conds, face, mouth = _inputs()
    gates = torch.ones(B, 2)
    masks = gate_masks(gates, face, mouth)
    both = layer(x, ident, conds, masks, gates)
    for b in range(B):
        alone = layer(x[b:b + 1], ident[b:b + 1], {k: v[b:b + 1] for k, v in conds.items()}, [m[b:b + 1] for m in masks], gates[b:b + 1])
        torch.testing.assert_close(both[b:b + 1], alone, rtol=1e-5, atol=1e-6)


def test_output_replaces_hidden_states_by_default_and_the_residual_option_starts_as_identity():
    x, ident, conds, face, mouth = _inputs()
    masks = gate_masks(torch.ones(B, 2), face, mouth)
    y = _layer()(x, ident, conds, masks)
    assert y.shape == x.shape and not torch.allclose(y, x)
    res = _layer(residual=True)
    torch.testing.assert_close(res(x, ident, conds, masks), x)
    res(x, ident, conds, masks).sum().backward()
    assert res.res_scale.grad is not None and res.res_scale.grad != 0


def test_bad_inputs_get_typed_errors():
    layer = _layer()
    x, ident, conds, face, mouth = _inputs()
    masks = gate_masks(torch.ones(B, 2), face, mouth)
    with pytest.raises(ShapeError):
        layer(x[:, :, :5], ident, conds, masks)
    with pytest.raises(ShapeError):
        layer(x, ident, conds, [masks[0][:, :5], masks[1]])
    with pytest.raises(ConfigError):
        layer(x, ident, {"audio": conds["audio"]}, masks)


def test_four_pass_guidance_by_hand_and_equal_to_the_flow_rooms_ordered_composition():
    g = torch.Generator().manual_seed(3)
    e0, e1, e2, e3 = (torch.randn(2, 5, generator=g) for _ in range(4))
    by_hand = e0 + 2.0 * (e1 - e0) + 7.5 * (e2 - e1) + 3.0 * (e3 - e2)
    torch.testing.assert_close(four_pass_guidance(e0, e1, e2, e3), by_hand)
    torch.testing.assert_close(guided_velocity([e0, e1, e2, e3], [w for _, w in guidance_passes()]), by_hand)
    assert GUIDANCE_SCALES == (2.0, 7.5, 3.0)


def test_cross_attention_fusion_peer_starts_as_identity_ignores_masks_and_obeys_gates():
    from reprolab.papers.actalker import CrossAttentionFusion

    torch.manual_seed(0)
    fuse = CrossAttentionFusion(C, DC, heads=4)
    x, ident, conds, face, mouth = _inputs()
    torch.testing.assert_close(fuse(x, ident, conds), x)  # zero-initialised output projection
    torch.nn.init.normal_(fuse.attn.out_proj.weight, std=0.5)
    gates = torch.tensor([[1.0, 0.0]] * B)
    y = fuse(x, ident, conds, gate_masks(gates, face, mouth), gates)
    assert not torch.allclose(y, x)
    assert torch.equal(y, fuse(x, ident, conds, None, gates))  # masks play no part
    # a closed gate zeroes that signal's tokens: its values no longer matter (the tokens still take attention mass)
    assert torch.equal(y, fuse(x, ident, {**conds, "motion": conds["motion"] * 7}, None, gates))
    assert not torch.equal(y, fuse(x, ident, {**conds, "audio": conds["audio"] * 7}, None, gates))


def test_mask_drop_equals_the_official_gather_of_kept_tokens_then_identity_and_condition_tokens():
    layer = _layer()
    x, ident, conds, face, mouth = _inputs()
    mouth[1, 9] = True  # the samples keep different numbers of tokens
    extra = torch.randn(B, 5, 2 * C)
    u = layer.in_proj["audio"](x)
    out = layer._branch("audio", u, extra, mouth)
    for b in range(B):
        kept = u[b, mouth[b]]
        seq = torch.cat([kept, extra[b]], dim=0)[None]  # [kept tokens; id; condition], as SS2D_cond_v10 builds it
        y = layer.units["audio"](seq)[0, : len(kept)]
        torch.testing.assert_close(out[b, mouth[b]], y, rtol=1e-5, atol=1e-5)
        assert torch.equal(out[b, ~mouth[b]], u[b, ~mouth[b]])  # Mask-Paste


def test_a_batch_mixing_empty_mouth_and_face_masks_gives_each_sample_its_own_result():
    layer = _layer()
    g = torch.Generator().manual_seed(5)
    x, ident = torch.randn(4, L, C, generator=g), torch.randn(4, 1, DC, generator=g)
    conds = {"audio": torch.randn(4, 4, DC, generator=g), "motion": torch.randn(4, 1, DC, generator=g)}
    face = torch.zeros(4, L, dtype=torch.bool)
    face[:, 1:11] = True
    mouth = torch.zeros(4, L, dtype=torch.bool)
    mouth[:, 7:9] = True
    gates = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])  # mouth-sized, face-sized, empty, motion only
    masks = gate_masks(gates, face, mouth)
    both = layer(x, ident, conds, masks, gates)
    for b in range(4):
        alone = layer(x[b:b + 1], ident[b:b + 1], {k: v[b:b + 1] for k, v in conds.items()}, [m[b:b + 1] for m in masks], gates[b:b + 1])
        torch.testing.assert_close(both[b:b + 1], alone, rtol=1e-5, atol=1e-6)
