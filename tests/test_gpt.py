from __future__ import annotations

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
