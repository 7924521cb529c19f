"""Training and scoring of the speech-text LMs (``nn/gpt.py`` models) on packed token streams.

Recipe from the paper's Sec. 4 and slamkit ``training_args/scaling_interleaving.yaml``: AdamW at lr 5e-4
(``learning_rate``), 1% linear warm-up (``warmup_ratio: 0.01``), cosine decay to 5e-5
(``cosine_with_min_lr``, ``min_lr: 5e-5``), gradient-norm clip 0.5 (``max_grad_norm``), no weight decay
(Hugging Face's default; the config sets none), packing. Ours: fp32 on CPU (bf16 in the paper), a
context of 128 tokens (2048 in the paper), and the three data sources sampled per sequence with the
official ratios (``train_inter_scale.yaml``: text 0.2024 / interleaved 0.5433 / speech 0.2543).
Compute is C = 6 N D with N the non-embedding parameters (Kaplan et al. 2020) and D the training tokens.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ...errors import ConfigError, NonFiniteError

MIX = {"text": 0.2023584112, "interleaved": 0.5433262899, "speech": 0.2543152989}  # slamkit train_inter_scale.yaml


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 5e-4  # peak learning rate (scaling_interleaving.yaml)
    min_lr: float = 5e-5  # cosine floor (lr_scheduler_kwargs.min_lr)
    warmup: float = 0.01  # warm-up share of steps (warmup_ratio)
    clip: float = 0.5  # max_grad_norm
    batch_size: int = 16  # sequences per step
    block_size: int = 128  # context (2048 in the paper)

    def __post_init__(self) -> None:
        if not 0 < self.min_lr <= self.lr:
            raise ConfigError("min_lr", self.min_lr, f"in (0, lr={self.lr}]")
        if self.batch_size < 1 or self.block_size < 2:
            raise ConfigError("batch_size/block_size", (self.batch_size, self.block_size), "positive, block_size >= 2")


@dataclass
class TrainLog:
    tokens: int  # D: tokens trained on
    steps: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean training loss per 10% of the steps


def lr_at(step: int, steps: int, cfg: TrainConfig) -> float:
    """Linear warm-up over ceil(warmup * steps) steps, then cosine from lr to min_lr."""
    warm = max(1, math.ceil(cfg.warmup * steps))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    p = (step - warm) / max(1, steps - warm)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, p)))


def sample_batch(streams: Sequence[torch.Tensor], weights: Sequence[float], cfg: TrainConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed windows: each row picks a stream with probability ``weights`` then a random window of block_size + 1."""
    w = torch.tensor(list(weights), dtype=torch.float64)
    which = torch.multinomial(w / w.sum(), cfg.batch_size, replacement=True, generator=gen)
    rows = []
    for s in which.tolist():
        data = streams[s]
        if len(data) < cfg.block_size + 2:
            raise ConfigError("stream", f"{len(data)} tokens", f"more than block_size + 1 = {cfg.block_size + 1} tokens")
        a = int(torch.randint(0, len(data) - cfg.block_size - 1, (1,), generator=gen))
        rows.append(data[a: a + cfg.block_size + 1])
    x = torch.stack(rows)
    return x[:, :-1], x[:, 1:]


def train_lm(model: torch.nn.Module, streams: Sequence[torch.Tensor], weights: Sequence[float], tokens: int, cfg: TrainConfig,
             seed: int = 0) -> TrainLog:
    """Train ``model`` for ``tokens`` tokens (rounded down to whole steps, at least one) on the streams."""
    device = next(model.parameters()).device
    per_step = cfg.batch_size * cfg.block_size
    steps = max(1, tokens // per_step)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    model.train()
    t0 = time.perf_counter()
    losses, acc, n_acc = [], 0.0, 0
    chunk = max(1, steps // 10)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, cfg)
        x, y = sample_batch(streams, weights, cfg, gen)
        _, loss = model(x.to(device), y.to(device))
        if not torch.isfinite(loss):
            raise NonFiniteError(f"training loss at step {step}", float(loss), fix="lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        opt.step()
        acc += float(loss.detach())
        n_acc += 1
        if n_acc == chunk or step == steps - 1:
            losses.append(acc / n_acc)
            acc, n_acc = 0.0, 0
    model.eval()
    return TrainLog(tokens=steps * per_step, steps=steps, seconds=time.perf_counter() - t0, losses=losses)


@torch.no_grad()
def sequence_nll(model: torch.nn.Module, sequences: Sequence[Sequence[int]], scored: Sequence[int] | None = None,
                 allowed: Sequence[int] | None = None, block_size: int | None = None, batch_size: int = 32) -> list[float]:
    """Mean next-token NLL (nats) of each sequence, over the targets whose id is in ``scored`` (all if None),
    with the softmax restricted to ``allowed`` ids when given (slamkit scores speech with the text
    tokens' logits masked out). Sequences longer than the context keep their last ``block_size`` tokens."""
    device = next(model.parameters()).device
    T = block_size or model.cfg.block_size
    seqs = [list(s)[-T - 1:] for s in sequences]
    if any(len(s) < 2 for s in seqs):
        raise ConfigError("sequences", "a sequence of fewer than 2 tokens", "at least 2 tokens to score")
    vocab = model.cfg.vocab_size
    score_mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    score_mask[list(scored) if scored is not None else slice(None)] = True
    bias = None
    if allowed is not None:
        bias = torch.full((vocab,), float("-inf"), device=device)
        bias[list(allowed)] = 0.0
    out: list[float] = []
    for i in range(0, len(seqs), batch_size):
        chunk = seqs[i: i + batch_size]
        L = max(len(s) for s in chunk)
        ids = torch.zeros(len(chunk), L, dtype=torch.long)
        valid = torch.zeros(len(chunk), L, dtype=torch.bool)
        for r, s in enumerate(chunk):
            ids[r, : len(s)] = torch.tensor(s)
            valid[r, : len(s)] = True
        ids, valid = ids.to(device), valid.to(device)
        logits, _ = model(ids[:, :-1])
        if bias is not None:
            logits = logits + bias
        nll = F.cross_entropy(logits.float().transpose(1, 2), ids[:, 1:], reduction="none")  # (B, L - 1)
        m = valid[:, 1:] & score_mask[ids[:, 1:]]
        per = torch.where(m, nll, torch.zeros_like(nll)).sum(1) / m.sum(1).clamp_min(1)
        if not torch.isfinite(per).all():
            raise NonFiniteError("sequence NLL", per[~torch.isfinite(per)].tolist()[:3], fix="a scored token is outside `allowed`")
        out += per.tolist()
    return out
