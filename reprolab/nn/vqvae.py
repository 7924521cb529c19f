"""Vector-quantised autoencoders over 1-D sequences (chunks of parameters, audio frames, token rows).

Two quantisers behind one interface, the encoder/decoder for 1-D chunks, the temperature schedule and
the codebook statistics that autoregressive-over-codes papers need (IGPG first; the tiny AR image
generators next).

- :class:`GumbelQuantizer`: the Gumbel-softmax quantiser of Jang et al. 2016 as the IGPG official code
  has it (``vqvae_igpg/modules/vqvae/quantize.py``, ``GumbelQuantize``, itself from taming-transformers):
  logits = a 1x1 convolution of the encoder output to ``n_embed`` channels; one-hot =
  ``gumbel_softmax(logits, tau, hard)`` with ``hard`` = straight-through in training and always hard in
  eval; ``z_q = one_hot @ codebook``; prior loss ``kl_weight * sum_k q_k log(q_k * n_embed)`` (the KL
  of the softmax ``q`` to the uniform prior), ``kl_weight = 5e-4``.
- :class:`NearestQuantizer`: the nearest-neighbour VQ-VAE of van den Oord et al. 2017 with the
  commitment loss ``||sg[e] - z||^2 * beta + ||e - sg[z]||^2`` (taming's ``VectorQuantizer2`` with
  ``legacy=False``) and straight-through gradients ``z + sg[z_q - z]``.
- :func:`cosine_temperature`: the official config's ``LambdaWarmUpCosineScheduler`` for tau
  (``lr_start = lr_max = 0.95``, ``lr_min = 1e-4``, ``max_decay_steps = 1,000,001``, no warm-up).
- :class:`ChunkVQVAE`: 1-D conv encoder (stride-2 downsampling), quantiser, mirror decoder; a chunk of
  ``chunk_size`` values becomes ``chunk_size / downsample`` tokens. Loss = reconstruction (MSE) +
  ``codebook_weight`` (1.0, official ``VQLoss``) x quantiser loss.
- :func:`codebook_usage`, :func:`perplexity`: share of codes used and ``exp(H(code histogram))``.

Shapes: encoder input ``(B, 1, L)``, latent ``(B, C, L / downsample)``, tokens ``(B, L / downsample)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, NonFiniteError, ShapeError


# ----------------------------------------------------------------------------- temperature


def cosine_temperature(step: int, *, start: float = 0.95, end: float = 1e-4, decay_steps: int = 1_000_001,
                       warm_up_steps: int = 0, peak: float | None = None) -> float:
    """tau at ``step``: the official ``LambdaWarmUpCosineScheduler`` (taming / latent-diffusion).

    Linear from ``start`` to ``peak`` (default ``start``) over ``warm_up_steps``, then
    ``end + 0.5 (peak - end)(1 + cos(pi t))`` with ``t = (step - warm_up) / (decay_steps - warm_up)``
    clipped to 1. Defaults: the IGPG config (0.95 -> 1e-4 over 1,000,001 steps, no warm-up).
    """
    if step < 0:
        raise ConfigError("step", step, "a step >= 0")
    if decay_steps <= warm_up_steps:
        raise ConfigError("decay_steps", decay_steps, f"more than warm_up_steps ({warm_up_steps})")
    peak = start if peak is None else peak
    if step < warm_up_steps:
        return (peak - start) / warm_up_steps * step + start
    t = min((step - warm_up_steps) / (decay_steps - warm_up_steps), 1.0)
    return end + 0.5 * (peak - end) * (1.0 + math.cos(t * math.pi))


# ----------------------------------------------------------------------------- quantisers


@dataclass
class Quantized:
    """What a quantiser returns: the quantised latent, its loss term and the chosen codes."""

    z_q: torch.Tensor  # (B, D, N): codebook vectors (straight-through in training)
    loss: torch.Tensor  # scalar: the quantiser's loss term (KL prior or codebook + commitment)
    codes: torch.Tensor  # (B, N) int64
    logits: torch.Tensor | None = None  # (B, n_embed, N) for the Gumbel quantiser


class GumbelQuantizer(nn.Module):
    """Gumbel-softmax quantiser (official ``GumbelQuantize``, 1-D).

    ``hidden -> n_embed`` logits by a 1x1 conv; training samples ``gumbel_softmax(logits, tau,
    hard=straight_through)``, eval always hard; ``z_q = one_hot @ embed``; loss
    ``kl_weight * mean_positions sum_k q_k log(q_k n_embed + 1e-10)`` with ``q = softmax(logits)``.
    ``temperature`` is set from outside (:func:`cosine_temperature`) as the official training step does.
    """

    def __init__(self, hidden: int, embed_dim: int, n_embed: int, *, straight_through: bool = True,
                 kl_weight: float = 5e-4, temperature: float = 1.0):
        super().__init__()
        if n_embed < 2:
            raise ConfigError("n_embed", n_embed, "at least 2 codes")
        self.n_embed, self.embed_dim = n_embed, embed_dim
        self.straight_through, self.kl_weight, self.temperature = straight_through, kl_weight, temperature
        self.proj = nn.Conv1d(hidden, n_embed, 1)
        self.embed = nn.Embedding(n_embed, embed_dim)

    def forward(self, z: torch.Tensor, temperature: float | None = None) -> Quantized:
        hard = self.straight_through if self.training else True
        tau = self.temperature if temperature is None else temperature
        logits = self.proj(z)  # (B, n_embed, N)
        if self.training:
            one_hot = F.gumbel_softmax(logits, tau=tau, dim=1, hard=hard)
        else:  # eval: the argmax code, deterministic (the official code samples; we pick the mode for exact tokens)
            one_hot = F.one_hot(logits.argmax(1), self.n_embed).permute(0, 2, 1).to(logits.dtype)
        z_q = torch.einsum("bnl,nd->bdl", one_hot, self.embed.weight)
        q = F.softmax(logits, dim=1)
        # KL(q || uniform) = sum_k q_k log(q_k * n_embed), averaged over positions (official `diff`)
        loss = self.kl_weight * torch.sum(q * torch.log(q * self.n_embed + 1e-10), dim=1).mean()
        return Quantized(z_q, loss, one_hot.argmax(1), logits)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, N) codes -> (B, D, N) codebook vectors."""
        return self.embed(codes).permute(0, 2, 1)


class NearestQuantizer(nn.Module):
    """Nearest-neighbour quantiser with commitment loss (van den Oord et al. 2017, Eq. 3):
    ``||sg[z] - e||^2 + beta ||z - sg[e]||^2``, straight-through ``z + sg[e - z]``."""

    def __init__(self, hidden: int, embed_dim: int, n_embed: int, *, beta: float = 0.25, data_init: bool = True,
                 dead_threshold: float = 0.03):
        super().__init__()
        if n_embed < 2:
            raise ConfigError("n_embed", n_embed, "at least 2 codes")
        self.n_embed, self.embed_dim, self.beta = n_embed, embed_dim, beta
        self.proj = nn.Conv1d(hidden, embed_dim, 1)
        self.embed = nn.Embedding(n_embed, embed_dim)
        self.embed.weight.data.uniform_(-1.0 / n_embed, 1.0 / n_embed)
        # data_init: the codebook starts as random latents of the first training batch (lucidrains'
        # vector-quantize-pytorch `kmeans_init`, one step): with the uniform init most codes stay dead.
        self.register_buffer("initialised", torch.tensor(not data_init))
        # dead-code restarts (Jukebox, Dhariwal et al. 2020): a code whose usage EMA falls below
        # `dead_threshold` of a uniform share is moved onto a random latent of the batch (0 turns it off)
        self.dead_threshold = dead_threshold
        self.register_buffer("usage", torch.full((n_embed,), 1.0 / n_embed))

    def forward(self, z: torch.Tensor, temperature: float | None = None) -> Quantized:
        z = self.proj(z).permute(0, 2, 1)  # (B, N, D)
        flat = z.reshape(-1, self.embed_dim)
        if self.training and not bool(self.initialised):
            with torch.no_grad():
                pick = torch.randint(len(flat), (self.n_embed,), device=flat.device)
                self.embed.weight.copy_(flat[pick] + 1e-3 * torch.randn_like(flat[pick]))
                self.initialised.fill_(True)
        d = flat.pow(2).sum(1, keepdim=True) + self.embed.weight.pow(2).sum(1) - 2 * flat @ self.embed.weight.t()
        codes = d.argmin(1)
        if self.training and self.dead_threshold > 0:
            with torch.no_grad():
                share = torch.bincount(codes, minlength=self.n_embed).to(flat.dtype) / len(codes)
                self.usage.mul_(0.9).add_(0.1 * share)
                dead = (self.usage < self.dead_threshold / self.n_embed).nonzero().flatten()
                if len(dead):
                    pick = torch.randint(len(flat), (len(dead),), device=flat.device)
                    self.embed.weight[dead] = flat[pick].detach()
                    self.usage[dead] = 1.0 / self.n_embed
        e = self.embed(codes).view_as(z)
        loss = F.mse_loss(e, z.detach()) + self.beta * F.mse_loss(z, e.detach())
        z_q = z + (e - z).detach()
        return Quantized(z_q.permute(0, 2, 1), loss, codes.view(z.shape[0], z.shape[1]))

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self.embed(codes).permute(0, 2, 1)


# ----------------------------------------------------------------------------- the autoencoder


@dataclass(frozen=True)
class VQVAEConfig:
    """A 1-D chunk VQ-VAE. Defaults follow the IGPG official Gumbel config where it applies to 1-D."""

    chunk_size: int = 64  # values per chunk (official: 12,288 parameters shaped 3x64x64; ours are tiny nets)
    downsample: int = 8  # values per token: chunk_size / downsample tokens per chunk (a power of 2)
    hidden: int = 64  # conv channels
    embed_dim: int = 64  # codebook vector size (official: 64)
    n_embed: int = 256  # codes (official: 256)
    quantizer: str = "gumbel"  # "gumbel" (official) or "nearest"
    kl_weight: float = 5e-4  # Gumbel prior loss weight (official)
    beta: float = 0.25  # commitment weight of the nearest quantiser
    dead_code_threshold: float = 0.03  # nearest quantiser: restart codes below this share of uniform usage (0: off)
    codebook_weight: float = 1.0  # official VQLoss codebook_weight

    def __post_init__(self) -> None:
        if self.downsample < 1 or self.downsample & (self.downsample - 1):
            raise ConfigError("downsample", self.downsample, "a power of 2")
        if self.chunk_size % self.downsample:
            raise ConfigError("chunk_size", self.chunk_size, f"a multiple of downsample ({self.downsample})")
        if self.quantizer not in ("gumbel", "nearest"):
            raise ConfigError("quantizer", self.quantizer, "'gumbel' or 'nearest'")

    @property
    def tokens_per_chunk(self) -> int:
        return self.chunk_size // self.downsample


def _res_block(c: int) -> nn.Module:
    return nn.Sequential(nn.GELU(), nn.Conv1d(c, c, 3, padding=1), nn.GELU(), nn.Conv1d(c, c, 1))


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.block = _res_block(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ChunkVQVAE(nn.Module):
    """Encoder (conv, log2(downsample) stride-2 convs, a residual block) -> quantiser -> mirror decoder."""

    def __init__(self, config: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.config = c = config
        n_down = int(math.log2(c.downsample))
        enc: list[nn.Module] = [nn.Conv1d(1, c.hidden, 3, padding=1)]
        enc += [nn.Sequential(nn.GELU(), nn.Conv1d(c.hidden, c.hidden, 4, stride=2, padding=1)) for _ in range(n_down)]
        enc += [_Residual(c.hidden), nn.GELU()]
        self.encoder = nn.Sequential(*enc)
        if c.quantizer == "gumbel":
            self.quantizer: GumbelQuantizer | NearestQuantizer = GumbelQuantizer(c.hidden, c.embed_dim, c.n_embed, kl_weight=c.kl_weight)
        else:
            self.quantizer = NearestQuantizer(c.hidden, c.embed_dim, c.n_embed, beta=c.beta, dead_threshold=c.dead_code_threshold)
        dec: list[nn.Module] = [nn.Conv1d(c.embed_dim, c.hidden, 3, padding=1), _Residual(c.hidden)]
        dec += [nn.Sequential(nn.GELU(), nn.ConvTranspose1d(c.hidden, c.hidden, 4, stride=2, padding=1)) for _ in range(n_down)]
        dec += [nn.GELU(), nn.Conv1d(c.hidden, 1, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.config.chunk_size:
            raise ShapeError("chunks", tuple(x.shape), f"(B, {self.config.chunk_size})")
        if not torch.isfinite(x).all():
            raise NonFiniteError("chunks", x[~torch.isfinite(x)][:3].tolist(), fix="repair or drop the non-finite weights first")
        return x

    def forward(self, x: torch.Tensor, temperature: float | None = None) -> tuple[torch.Tensor, Quantized]:
        """(B, chunk_size) -> reconstruction (B, chunk_size) and the quantiser's output."""
        q = self.quantizer(self.encoder(self._check(x).unsqueeze(1)), temperature)
        return self.decoder(q.z_q).squeeze(1), q

    def loss(self, x: torch.Tensor, temperature: float | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        rec, q = self(x, temperature)
        rec_loss = F.mse_loss(rec, x)
        total = rec_loss + self.config.codebook_weight * q.loss
        return total, {"loss/reconstruction": float(rec_loss.detach()), "loss/quantizer": float(q.loss.detach())}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, chunk_size) -> (B, tokens_per_chunk) codes (hard, deterministic)."""
        was = self.training
        self.eval()
        try:
            return self.quantizer(self.encoder(self._check(x).unsqueeze(1))).codes
        finally:
            self.train(was)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, tokens_per_chunk) codes -> (B, chunk_size) values."""
        if codes.dim() != 2 or codes.shape[1] != self.config.tokens_per_chunk:
            raise ShapeError("codes", tuple(codes.shape), f"(B, {self.config.tokens_per_chunk})")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.n_embed):
            raise ConfigError("codes", f"range [{int(codes.min())}, {int(codes.max())}]", f"codes in [0, {self.config.n_embed})")
        return self.decoder(self.quantizer.lookup(codes)).squeeze(1)


@dataclass
class VQVAETraining:
    """The history of :func:`train_vqvae`: named losses per logged step and the temperatures."""

    steps: list[int]
    losses: dict[str, list[float]]
    temperatures: list[float]


def train_vqvae(model: ChunkVQVAE, batches: Iterator[torch.Tensor], steps: int, *, lr: float = 1e-4,
                temperature_start: float = 0.95, temperature_end: float = 1e-4, temperature_steps: int | None = None,
                log_every: int = 50) -> VQVAETraining:
    """Adam (paper: lr 1e-4) on ``batches`` of chunks for ``steps`` steps; tau follows
    :func:`cosine_temperature` from ``temperature_start`` to ``temperature_end`` over
    ``temperature_steps`` (official: 1,000,001; default here: ``steps``, so short runs also anneal).
    A non-finite loss raises :class:`NonFiniteError`."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    total = temperature_steps or steps
    hist = VQVAETraining([], {"loss/reconstruction": [], "loss/quantizer": []}, [])
    model.train()
    for step in range(steps):
        x = next(batches)
        tau = cosine_temperature(step, start=temperature_start, end=temperature_end, decay_steps=max(total, 1) + 1)
        loss, parts = model.loss(x, tau)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"VQ-VAE loss at step {step}", float(loss), fix="lower the learning rate or rescale the inputs")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps - 1:
            hist.steps.append(step)
            hist.temperatures.append(tau)
            for k, v in parts.items():
                hist.losses[k].append(v)
    model.eval()
    return hist


# ----------------------------------------------------------------------------- codebook statistics


def code_histogram(codes: torch.Tensor, n_embed: int) -> torch.Tensor:
    """Counts of each code over all positions."""
    return torch.bincount(codes.reshape(-1).long(), minlength=n_embed).to(torch.float64)


def codebook_usage(codes: torch.Tensor, n_embed: int) -> float:
    """Share of the ``n_embed`` codes used at least once."""
    return float((code_histogram(codes, n_embed) > 0).sum() / n_embed)


def perplexity(codes: torch.Tensor, n_embed: int) -> float:
    """``exp(H(p))`` of the code histogram: 1 when one code is used, ``n_embed`` when all equally."""
    h = code_histogram(codes, n_embed)
    p = h / h.sum().clamp_min(1)
    nz = p[p > 0]
    return float(torch.exp(-(nz * nz.log()).sum()))
