"""The conditional autoregressive prior over a network's code sequence (IGPG Sec. 3.3).

A GPT-2 (``transformers.GPT2LMHeadModel`` from a tiny config; the paper's GPT-2 class) reads a prefix
of projected instruction embeddings, then the VQ codes of the whole network in chunk order:

    [ W_d e_data,1 .. W_d e_data,K ,  W_a e_arch ,  wte(c_1) .. wte(c_T) ]

and is trained by next-code cross-entropy (``c_1`` predicted from the last prefix position).
Paper: AdamW, lr 1e-4, linear schedule. Sampling is autoregressive with the KV cache.

The ablation (the paper's coherence argument) samples positions *independently*:
:meth:`ConditionalPrior.sample_independent` draws ``n`` autoregressive sequences and then, for each
position, takes the code of a randomly chosen one of them. Each position keeps the prior's own
marginal (estimated from the ``n`` draws) while the dependence between positions is destroyed.
*Choice where the paper is vague*: it does not say how its "independent" baseline samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, NonFiniteError, ShapeError


@dataclass(frozen=True)
class PriorConfig:
    """A tiny GPT-2 prior. Defaults: the paper's optimiser (AdamW 1e-4, linear decay); sizes ours (CPU)."""

    n_codes: int  # the VQ-VAE's n_embed (the vocabulary)
    max_tokens: int  # the longest code sequence (the largest architecture's)
    data_dim: int  # instruction data-embedding size (1280 for EfficientNet-Lite0)
    arch_dim: int  # architecture-embedding size (384 for MiniLM)
    n_data_tokens: int = 4  # K class means (1 for the paper's single mean)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    lr: float = 1e-4  # paper: AdamW 1e-4, linear schedule
    weight_decay: float = 0.01
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for k in ("n_codes", "max_tokens", "data_dim", "arch_dim", "n_data_tokens", "n_layer", "n_head", "n_embd"):
            if getattr(self, k) < 1:
                raise ConfigError(k, getattr(self, k), "a positive integer")
        if self.n_embd % self.n_head:
            raise ConfigError("n_embd", self.n_embd, f"a multiple of n_head ({self.n_head})")

    @property
    def prefix_len(self) -> int:
        return self.n_data_tokens + 1


class ConditionalPrior(nn.Module):
    def __init__(self, config: PriorConfig):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.config = c = config
        gcfg = GPT2Config(vocab_size=c.n_codes, n_positions=c.max_tokens + c.prefix_len, n_embd=c.n_embd, n_layer=c.n_layer,
                          n_head=c.n_head, resid_pdrop=c.dropout, embd_pdrop=c.dropout, attn_pdrop=c.dropout,
                          bos_token_id=0, eos_token_id=0)
        self.gpt = GPT2LMHeadModel(gcfg)
        self.data_proj = nn.Sequential(nn.LayerNorm(c.data_dim), nn.Linear(c.data_dim, c.n_embd))
        self.arch_proj = nn.Sequential(nn.LayerNorm(c.arch_dim), nn.Linear(c.arch_dim, c.n_embd))

    def prefix(self, data: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        """data (B, K, Dd), arch (B, Da) -> (B, K + 1, n_embd)."""
        c = self.config
        if data.dim() != 3 or data.shape[1:] != (c.n_data_tokens, c.data_dim):
            raise ShapeError("data embedding", tuple(data.shape), f"(B, {c.n_data_tokens}, {c.data_dim})")
        if arch.dim() != 2 or arch.shape[1] != c.arch_dim:
            raise ShapeError("architecture embedding", tuple(arch.shape), f"(B, {c.arch_dim})")
        for what, t in (("data embedding", data), ("architecture embedding", arch)):
            if not torch.isfinite(t).all():
                raise NonFiniteError(what, t[~torch.isfinite(t)][:3].tolist(), fix="re-embed the instruction")
        return torch.cat([self.data_proj(data), self.arch_proj(arch).unsqueeze(1)], 1)

    def loss(self, codes: torch.Tensor, lengths: torch.Tensor, data: torch.Tensor, arch: torch.Tensor) -> torch.Tensor:
        """Mean next-code cross-entropy over the real (unpadded) positions. codes (B, T) right-padded."""
        P = self.config.prefix_len
        emb = torch.cat([self.prefix(data, arch), self.gpt.transformer.wte(codes)], 1)  # (B, P + T, n_embd)
        logits = self.gpt(inputs_embeds=emb[:, :-1]).logits[:, P - 1:]  # predictions of c_1..c_T: (B, T, V)
        mask = torch.arange(codes.shape[1], device=codes.device)[None] < lengths[:, None]
        return F.cross_entropy(logits[mask], codes[mask])

    @torch.no_grad()
    def sample(self, data: torch.Tensor, arch: torch.Tensor, n_tokens: int, *, temperature: float = 1.0,
               top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Autoregressive codes (B, n_tokens) given the instruction (KV cache)."""
        if n_tokens < 1 or n_tokens > self.config.max_tokens:
            raise ConfigError("n_tokens", n_tokens, f"1..{self.config.max_tokens} (the prior's max_tokens)")
        if temperature <= 0:
            raise ConfigError("temperature", temperature, "a positive temperature")
        self.eval()
        out = self.gpt(inputs_embeds=self.prefix(data, arch), use_cache=True)
        past, logits = out.cache, out.logits[:, -1]
        codes = []
        for t in range(n_tokens):
            logits = logits.float() / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = F.softmax(logits, -1)
            nxt = torch.multinomial(probs.cpu(), 1, generator=generator).to(logits.device)  # (B, 1)
            codes.append(nxt)
            if t + 1 < n_tokens:
                out = self.gpt(inputs_embeds=self.gpt.transformer.wte(nxt), cache=past, use_cache=True)
                past, logits = out.cache, out.logits[:, -1]
        return torch.cat(codes, 1)

    @torch.no_grad()
    def sample_independent(self, data: torch.Tensor, arch: torch.Tensor, n_tokens: int, *, n_draws: int = 8,
                           temperature: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """The no-autoregression ablation: per position, the code of a random one of ``n_draws`` AR draws.

        data (B, K, Dd), arch (B, Da) -> (B, n_draws, n_tokens) mixed sequences (see :func:`mix_positions`).
        """
        B = data.shape[0]
        draws = self.sample(data.repeat_interleave(n_draws, 0), arch.repeat_interleave(n_draws, 0), n_tokens,
                            temperature=temperature, generator=generator)
        return mix_positions(draws.view(B, n_draws, n_tokens), generator)


def mix_positions(draws: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, n, T) draws -> (B, n, T): each position of each output takes the code of a uniformly chosen
    draw of the same instruction, independently across positions (product of the per-position marginals)."""
    if draws.dim() != 3:
        raise ShapeError("draws", tuple(draws.shape), "(B, n_draws, T)")
    B, n, T = draws.shape
    pick = torch.randint(n, (B, n, T), generator=generator).to(draws.device)
    return torch.gather(draws, 1, pick)


@dataclass
class PriorTraining:
    steps: list[int]
    loss: list[float]


def train_prior(prior: ConditionalPrior, codes: list[torch.Tensor], data: torch.Tensor, arch: torch.Tensor, steps: int, *,
                batch: int = 16, seed: int = 0, log_every: int = 50) -> PriorTraining:
    """AdamW with a linear decay to 0 over ``steps`` (paper), on mini-batches of whole networks.

    codes: one (T_i,) code sequence per network; data (N, K, Dd), arch (N, Da) their instructions.
    """
    n = len(codes)
    if n == 0 or data.shape[0] != n or arch.shape[0] != n:
        raise ShapeError("instructions", (tuple(data.shape), tuple(arch.shape)), f"one instruction per code sequence ({n})")
    T = max(len(c) for c in codes)
    padded = torch.zeros(n, T, dtype=torch.long)
    for i, c in enumerate(codes):
        padded[i, :len(c)] = c
    lengths = torch.tensor([len(c) for c in codes])
    opt = torch.optim.AdamW(prior.parameters(), lr=prior.config.lr, weight_decay=prior.config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / max(steps, 1)))
    g = torch.Generator().manual_seed(seed)
    dev = next(prior.parameters()).device
    hist = PriorTraining([], [])
    prior.train()
    for step in range(steps):
        idx = torch.randint(n, (min(batch, n),), generator=g)
        L = int(lengths[idx].max())
        loss = prior.loss(padded[idx, :L].to(dev), lengths[idx].to(dev), data[idx].to(dev), arch[idx].to(dev))
        if not torch.isfinite(loss):
            raise NonFiniteError(f"prior loss at step {step}", float(loss), fix="lower the prior's learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            hist.steps.append(step)
            hist.loss.append(float(loss.detach()))
    prior.eval()
    return hist
