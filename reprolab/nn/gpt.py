"""A small decoder-only transformer (GPT), shared by the studies that pre-train a language model.

Pre-norm blocks (LayerNorm -> causal self-attention -> residual; LayerNorm -> MLP -> residual),
rotary or learned absolute positions, input/output embedding tying. The layout follows
nanoGPT (Karpathy) with rotary embeddings as in RoFormer (Su et al., arXiv 2104.09864,
eq. 34: rotate pairs of channels by position-dependent angles theta_i = base^(-2i/d)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..errors import ConfigError


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 256  # bytes by default: no tokenizer to ship
    block_size: int = 128  # longest context the model accepts
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0  # nanoGPT: 0 for pre-training, 0.1+ for fine-tuning
    bias: bool = False  # nanoGPT: no bias is slightly better and faster
    positions: Literal["rotary", "learned"] = "rotary"
    rope_base: float = 10000.0  # RoFormer's base
    tie_weights: bool = True  # share token embedding and output projection (Press & Wolf, 2017)
    qk_layernorm: bool = False  # LayerNorm on queries and keys per head (Dehghani et al. 2023; Wortsman et al. 2023, arXiv
    # 2309.14322, Sec. 3.1: it stops attention-logit growth, a cause of high-lr instability); off = the layout above
    attn_scale: float | None = None  # softmax temperature of attention logits; None = 1/sqrt(head size) (Vaswani et al.)
    norm_position: Literal["pre", "post"] = "pre"  # post = LayerNorm after each residual add (the original Transformer,
    # unstable without lr warm-up: Xiong et al. 2020, arXiv 2002.04745); pre = the layout above

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ConfigError(name, getattr(self, name), "a positive integer")
        if self.n_embd % self.n_head:
            raise ConfigError("n_embd", self.n_embd, f"a multiple of n_head={self.n_head}")
        if self.positions == "rotary" and (self.n_embd // self.n_head) % 2:
            raise ConfigError("n_embd", self.n_embd, "a head size that is even (rotary embeddings rotate pairs)")
        if self.positions not in ("rotary", "learned"):
            raise ConfigError("positions", self.positions, "'rotary' or 'learned'")
        if self.norm_position not in ("pre", "post"):
            raise ConfigError("norm_position", self.norm_position, "'pre' or 'post'")
        if self.attn_scale is not None and not self.attn_scale > 0:
            raise ConfigError("attn_scale", self.attn_scale, "a positive number or None")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout", self.dropout, "a number in [0, 1)")


def rotary_tables(seq_len: int, head_dim: int, base: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of theta_i * t for t < seq_len, i < head_dim / 2; each (T, head_dim / 2)."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (x1, x2) of x (B, nh, T, hs) by the angles of their position."""
    x1, x2 = x[..., 0::2], x[..., 1::2]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        head = cfg.n_embd // cfg.n_head
        self.q_ln = nn.LayerNorm(head, bias=cfg.bias) if cfg.qk_layernorm else None
        self.k_ln = nn.LayerNorm(head, bias=cfg.bias) if cfg.qk_layernorm else None

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.cfg.n_head)
        if self.q_ln is not None:
            q, k = self.q_ln(q), self.k_ln(k)
        if rope is not None:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.cfg.dropout if self.training else 0.0, scale=self.cfg.attn_scale)
        return self.resid_dropout(self.proj(rearrange(y, "b h t d -> b t (h d)")))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        if self.cfg.norm_position == "post":
            x = self.ln1(x + self.attn(x, rope))
            return self.ln2(x + self.mlp(x))
        x = x + self.attn(self.ln1(x), rope)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """``GPT(cfg)(idx)`` gives logits (B, T, vocab); ``GPT(cfg)(idx, targets)`` also the mean cross-entropy."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd) if cfg.positions == "learned" else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layer) at init.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        """All parameters, or without the token (and position) embeddings (Kaplan et al. 2020's N) when asked;
        a tied output head counts once, inside the embedding."""
        n = sum(p.numel() for p in self.parameters())
        if exclude_embeddings:
            n -= self.tok_emb.weight.numel() + (self.pos_emb.weight.numel() if self.pos_emb is not None else 0)
            if not self.cfg.tie_weights:
                n -= self.head.weight.numel()
        return n

    def get_input_embeddings(self) -> nn.Embedding:
        return self.tok_emb

    @torch.no_grad()
    def resize_token_embeddings(self, new_num_tokens: int, mean_resizing: bool = True) -> nn.Embedding:
        """Grow or shrink the vocabulary in place, as ``transformers.PreTrainedModel.resize_token_embeddings``
        does: the first min(old, new) rows are kept; added rows are the old rows' mean plus a tiny
        Gaussian jitter (transformers' ``mean_resizing``: covariance 1e-9 x the old rows', here its
        diagonal), or the model's N(0, 0.02) init when ``mean_resizing`` is False. The output head
        follows (tied, or resized the same way); ``cfg.vocab_size`` is updated."""
        import dataclasses

        if new_num_tokens < 1:
            raise ConfigError("new_num_tokens", new_num_tokens, "a positive vocabulary size")
        old = self.tok_emb.weight
        keep = min(old.shape[0], new_num_tokens)

        def grown(w: torch.Tensor) -> torch.Tensor:
            new = torch.empty(new_num_tokens, w.shape[1], device=w.device, dtype=w.dtype)
            new[:keep] = w[:keep]
            if new_num_tokens > keep:
                if mean_resizing:
                    mu, sd = w.float().mean(0), w.float().std(0) if w.shape[0] > 1 else torch.zeros(w.shape[1])
                    noise = torch.randn(new_num_tokens - keep, w.shape[1], device=w.device) * sd.to(w.device) * math.sqrt(1e-9)
                    new[keep:] = (mu.to(w.device) + noise).to(w.dtype)
                else:
                    nn.init.normal_(new[keep:], mean=0.0, std=0.02)
            return new

        self.tok_emb = nn.Embedding(new_num_tokens, old.shape[1], device=old.device, dtype=old.dtype)
        self.tok_emb.weight.copy_(grown(old))
        if self.cfg.tie_weights:
            self.head = nn.Linear(old.shape[1], new_num_tokens, bias=False, device=old.device, dtype=old.dtype)
            self.head.weight = self.tok_emb.weight
        else:
            w = grown(self.head.weight)
            self.head = nn.Linear(old.shape[1], new_num_tokens, bias=False, device=old.device, dtype=old.dtype)
            self.head.weight.copy_(w)
        self.cfg = dataclasses.replace(self.cfg, vocab_size=new_num_tokens)
        return self.tok_emb

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.cfg.block_size}; crop the input or raise block_size")
        x = self.tok_emb(idx)  # (B, T, C)
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(T, device=idx.device))
        else:
            rope = rotary_tables(T, self.cfg.n_embd // self.cfg.n_head, self.cfg.rope_base, idx.device)
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, rope)
        logits = self.head(self.ln_f(x))  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` tokens after ``idx`` (B, T); greedy when temperature == 0."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.cfg.block_size :])
            logits = logits[:, -1, :]
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                probs = F.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx
