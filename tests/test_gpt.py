from __future__ import annotations

import math

import pytest
import torch

from reprolab.errors import ConfigError
from reprolab.nn.gpt import GPT, GPTConfig


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_gpt_overfits_a_tiny_batch(positions):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=32, block_size=16, n_layer=2, n_head=2, n_embd=32, positions=positions))
    x = torch.randint(0, 32, (4, 16))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(150):
        _, loss = model(x, y)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.0 and float(loss.detach()) < 0.1


def test_gpt_is_causal_and_ties_weights():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16)).eval()
    assert model.head.weight is model.tok_emb.weight
    x = torch.randint(0, 20, (1, 8))
    x2 = x.clone()
    x2[0, -1] = (x[0, -1] + 1) % 20
    a, _ = model(x)
    b, _ = model(x2)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])  # changing the last token leaves earlier logits unchanged


def test_gpt_errors():
    with pytest.raises(ConfigError, match="n_embd"):
        GPTConfig(n_embd=30, n_head=4)
    model = GPT(GPTConfig(block_size=4, n_layer=1, n_embd=8, n_head=2))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 5, dtype=torch.long))


def test_qk_layernorm_is_off_by_default_and_makes_attention_logits_scale_free():
    """Off by default (other papers' results do not move). On, it normalises queries and keys, so
    growing the query/key weights (Wortsman et al.'s attention-logit growth) changes nothing."""
    x = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(1))
    for qk in (False, True):
        torch.manual_seed(0)
        m = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16, qk_layernorm=qk))
        assert (m.blocks[0].attn.q_ln is not None) == qk
        before = m(x)[0]
        with torch.no_grad():
            m.blocks[0].attn.qkv.weight[:32] *= 30  # the query and key rows
        after = m(x)[0]
        if qk:
            torch.testing.assert_close(after, before, rtol=1e-3, atol=1e-3)
        else:
            assert not torch.allclose(after, before, rtol=1e-3, atol=1e-3)
    assert GPTConfig().qk_layernorm is False


def test_attn_scale_and_norm_position_switches():
    """Defaults reproduce the layout exactly; the switches change the function; bad values are typed errors."""
    x = torch.randint(0, 20, (2, 8), generator=torch.Generator().manual_seed(1))
    outs = {}
    for name, kw in {"default": {}, "explicit": {"attn_scale": 1 / math.sqrt(8), "norm_position": "pre"},
                     "scale1": {"attn_scale": 1.0}, "post": {"norm_position": "post"}}.items():
        torch.manual_seed(0)
        outs[name] = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16, **kw))(x)[0]
    torch.testing.assert_close(outs["explicit"], outs["default"])
    assert not torch.allclose(outs["scale1"], outs["default"]) and not torch.allclose(outs["post"], outs["default"])
    with pytest.raises(ConfigError, match="norm_position"):
        GPTConfig(norm_position="sandwich")
    with pytest.raises(ConfigError, match="attn_scale"):
        GPTConfig(attn_scale=0.0)


def test_resize_token_embeddings_keeps_rows_and_ties_head():
    import torch

    from reprolab.nn.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8))
    old = m.tok_emb.weight.detach().clone()
    m.resize_token_embeddings(26)
    assert m.cfg.vocab_size == 26 and m.head.weight is m.tok_emb.weight
    torch.testing.assert_close(m.tok_emb.weight[:20], old)
    torch.testing.assert_close(m.tok_emb.weight[20:].mean(0), old.mean(0), atol=1e-3, rtol=0)  # mean resizing
    assert m(torch.tensor([[25, 3]]))[0].shape == (1, 2, 26)
    m.resize_token_embeddings(5)
    torch.testing.assert_close(m.tok_emb.weight, old[:5])
    assert m.num_parameters(exclude_embeddings=True) == m.num_parameters() - 5 * 8
