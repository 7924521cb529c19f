"""Autoregressive image generation over VQ codes, and a hybrid that decodes the same codes by diffusion.

Two tiny text-to-image generators of the two paradigms GPT-ImgEval's probe separates:

- *VQ-AR* (VQGAN/LlamaGen/Infinity-style, here as small as a CPU allows): :class:`ImageVQVAE`
  turns an image into an ``h x w`` grid of codes (2-D conv encoder, the nearest-neighbour
  quantiser of :mod:`reprolab.nn.vqvae` with its data init and dead-code restarts, mirror
  decoder); a :class:`reprolab.nn.gpt.GPT` models ``[caption ids] [BOS] [codes in raster
  order]`` with the loss on the codes only; sampling (:func:`sample_codes`) restricts the next
  token to the code range and decodes the grid with the VQ-VAE decoder.
- *Hybrid* (an AR backbone with a diffusion head, GPT-ImgEval's reading of GPT-4o): the same
  sampled codes, decoded first by the VQ-VAE, condition a :mod:`reprolab.nn.diffusion` UNet
  (Marigold-style channel concatenation) that denoises the final image (:class:`HybridDecoder`).

Every trainer writes an atomic checkpoint every ``checkpoint_every`` steps and resumes from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, NonFiniteError, ShapeError
from ..runtime import load_checkpoint, save_checkpoint, track
from .diffusion import DiffusionBatch, TinyUNetConfig, TrainConfig, build_unet, ddim_sample, train_diffusion
from .gpt import GPT, GPTConfig
from .vqvae import NearestQuantizer


# ----------------------------------------------------------------------------- the image VQ-VAE
@dataclass(frozen=True)
class ImageVQVAEConfig:
    image_size: int = 32
    channels: int = 3
    hidden: int = 64
    embed_dim: int = 32
    n_embed: int = 128
    downsample: int = 4  # a power of 2: the code grid is image_size / downsample per side

    def __post_init__(self) -> None:
        if self.downsample < 2 or self.downsample & (self.downsample - 1) or self.image_size % self.downsample:
            raise ConfigError("downsample", self.downsample, f"a power of 2 >= 2 dividing image_size ({self.image_size})")

    @property
    def grid(self) -> int:
        return self.image_size // self.downsample


class ImageVQVAE(nn.Module):
    """(B, C, H, W) in [-1, 1] -> (B, h*w) codes -> (B, C, H, W)."""

    def __init__(self, config: ImageVQVAEConfig = ImageVQVAEConfig()):
        super().__init__()
        self.config = c = config
        n = int(math.log2(c.downsample))
        enc: list[nn.Module] = [nn.Conv2d(c.channels, c.hidden, 3, padding=1)]
        enc += [nn.Sequential(nn.GELU(), nn.Conv2d(c.hidden, c.hidden, 4, stride=2, padding=1)) for _ in range(n)]
        enc += [nn.GELU(), nn.Conv2d(c.hidden, c.hidden, 3, padding=1), nn.GELU()]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = NearestQuantizer(c.hidden, c.embed_dim, c.n_embed)
        dec: list[nn.Module] = [nn.Conv2d(c.embed_dim, c.hidden, 3, padding=1)]
        dec += [nn.Sequential(nn.GELU(), nn.ConvTranspose2d(c.hidden, c.hidden, 4, stride=2, padding=1)) for _ in range(n)]
        dec += [nn.GELU(), nn.Conv2d(c.hidden, c.channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        if x.dim() != 4 or tuple(x.shape[1:]) != (c.channels, c.image_size, c.image_size):
            raise ShapeError("images", tuple(x.shape), f"(B, {c.channels}, {c.image_size}, {c.image_size})")
        if not torch.isfinite(x).all():
            raise NonFiniteError("images", "NaN/inf pixels", fix="drop or repair the images")
        return x

    def _quantize(self, x: torch.Tensor):
        z = self.encoder(self._check(x))
        B, C, h, w = z.shape
        q = self.quantizer(z.reshape(B, C, h * w))
        return q, h, w

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction and the quantiser loss."""
        q, h, w = self._quantize(x)
        return self.decoder(q.z_q.reshape(x.shape[0], -1, h, w)), q.loss

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            return self._quantize(x)[0].codes
        finally:
            self.train(was)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        g = self.config.grid
        if codes.dim() != 2 or codes.shape[1] != g * g:
            raise ShapeError("codes", tuple(codes.shape), f"(B, {g * g})")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.config.n_embed):
            raise ConfigError("codes", f"range [{int(codes.min())}, {int(codes.max())}]", f"codes in [0, {self.config.n_embed})")
        return self.decoder(self.quantizer.lookup(codes).reshape(codes.shape[0], -1, g, g))


def _train_loop(model: nn.Module, loss_at: Callable[[int], torch.Tensor], steps: int, lr: float, checkpoint: str | Path | None,
                checkpoint_every: int, description: str, weight_decay: float = 0.0) -> list[float]:
    """AdamW with cosine decay; atomic checkpoint every ``checkpoint_every`` steps; resumes from ``checkpoint``."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    start = 0
    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        losses, start = list(state["losses"]), int(state["step"])

    def save(step: int) -> None:
        if checkpoint is not None:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(), "losses": losses, "step": step})

    model.train()
    for step in track(range(start, steps), description, total=steps - start):
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(1, steps))))
        loss = loss_at(step)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"the {description} loss at step {step}", float(loss), fix="lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save(step + 1)
    if steps > start or state is None:
        save(steps)
    model.eval()
    return losses


def train_image_vqvae(model: ImageVQVAE, images: Callable[[int], torch.Tensor], steps: int, *, lr: float = 2e-3,
                      checkpoint: str | Path | None = None, checkpoint_every: int = 200) -> list[float]:
    """Reconstruction MSE + quantiser loss on ``images(step)`` (B, C, H, W) in [-1, 1]; returns losses per step."""
    dev = next(model.parameters()).device

    def loss_at(step: int) -> torch.Tensor:
        x = images(step).to(dev)
        rec, qloss = model(x)
        return F.mse_loss(rec, x) + qloss

    return _train_loop(model, loss_at, steps, lr, checkpoint, checkpoint_every, "VQ-VAE training")


# ----------------------------------------------------------------------------- the GPT over codes
def code_gpt_config(n_codes: int, caption_vocab: int, caption_len: int, grid: int, n_layer: int = 4, n_embd: int = 128, n_head: int = 4) -> GPTConfig:
    """A GPT whose vocabulary holds the codes, the caption words (offset by ``n_codes``) and BOS (the last id)."""
    return GPTConfig(vocab_size=n_codes + caption_vocab + 1, block_size=caption_len + grid * grid, n_layer=n_layer, n_head=n_head, n_embd=n_embd)


def code_sequence(codes: torch.Tensor, caption_ids: torch.Tensor, n_codes: int, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``[caption+n_codes] [BOS] codes[:-1]`` and targets (-100 on the caption, the codes after it)."""
    B, L = caption_ids.shape
    bos = torch.full((B, 1), vocab_size - 1, dtype=torch.long, device=codes.device)
    inp = torch.cat([caption_ids.to(codes.device) + n_codes, bos, codes[:, :-1]], dim=1)
    tgt = torch.cat([torch.full((B, L), -100, dtype=torch.long, device=codes.device), codes], dim=1)
    return inp, tgt


def train_code_gpt(gpt: GPT, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]], n_codes: int, steps: int, *, lr: float = 1e-3,
                   cfg_dropout: float = 0.1, checkpoint: str | Path | None = None, checkpoint_every: int = 200, seed: int = 0) -> list[float]:
    """Next-code loss on ``batches(step) -> (codes (B, h*w), caption ids (B, L))``; captions are emptied (all 0) with prob ``cfg_dropout``."""
    dev = next(gpt.parameters()).device
    V = gpt.cfg.vocab_size

    def loss_at(step: int) -> torch.Tensor:
        codes, ids = batches(step)
        ids = ids.clone()
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        ids[torch.rand(len(ids), generator=g) < cfg_dropout] = 0
        inp, tgt = code_sequence(codes.to(dev), ids.to(dev), n_codes, V)
        return gpt(inp, tgt)[1]

    return _train_loop(gpt, loss_at, steps, lr, checkpoint, checkpoint_every, "code GPT training", weight_decay=0.01)


@torch.no_grad()
def sample_codes(gpt: GPT, caption_ids: torch.Tensor, n_codes: int, length: int, *, temperature: float = 1.0, guidance_scale: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, length) codes after each caption; logits outside the code range are masked; CFG against the empty caption if ``guidance_scale != 1``."""
    dev = next(gpt.parameters()).device
    V = gpt.cfg.vocab_size
    ids = caption_ids.to(dev)
    B = len(ids)
    bos = torch.full((B, 1), V - 1, dtype=torch.long, device=dev)
    seq = torch.cat([ids + n_codes, bos], 1)
    useq = torch.cat([torch.zeros_like(ids) + n_codes, bos], 1)
    out = []
    for _ in range(length):
        logits = gpt(seq)[0][:, -1, :n_codes].float()
        if guidance_scale != 1.0:
            u = gpt(useq)[0][:, -1, :n_codes].float()
            logits = u + guidance_scale * (logits - u)
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = logits.topk(min(top_k, n_codes), dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(torch.softmax(logits, -1).cpu(), 1, generator=generator).to(dev)
        out.append(nxt)
        seq = torch.cat([seq, nxt], 1)
        useq = torch.cat([useq, nxt], 1)
    return torch.cat(out, 1)


# ----------------------------------------------------------------------------- the hybrid decoder
class HybridDecoder:
    """A diffusion UNet that denoises the image conditioned on the VQ-VAE's decoding of its codes."""

    def __init__(self, vq: ImageVQVAE, unet_config: TinyUNetConfig | None = None, unet: nn.Module | None = None):
        c = vq.config
        self.vq = vq
        self.unet_config = unet_config or TinyUNetConfig(sample_size=c.image_size, in_channels=2 * c.channels, out_channels=c.channels,
                                                         block_out_channels=(16, 32, 32))
        if self.unet_config.in_channels != 2 * c.channels or self.unet_config.out_channels != c.channels:
            raise ConfigError("unet_config", (self.unet_config.in_channels, self.unet_config.out_channels), f"in_channels {2 * c.channels}, out_channels {c.channels}")
        self.unet = unet if unet is not None else build_unet(self.unet_config)

    def condition(self, codes: torch.Tensor) -> torch.Tensor:
        return self.vq.decode(codes).clamp(-1, 1)

    def train(self, images: Callable[[int], torch.Tensor], config: TrainConfig, *, checkpoint: str | Path | None = None, seed: int = 0):
        """:func:`reprolab.nn.diffusion.train_diffusion` on (image, its VQ reconstruction) pairs."""
        def batch(step: int) -> DiffusionBatch:
            x = images(step)
            return DiffusionBatch(x0=x, image=self.condition(self.vq.encode(x)))

        return train_diffusion(self.unet, batch, config, checkpoint=checkpoint, seed=seed, description="hybrid decoder training")

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, *, num_inference_steps: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
        c = self.vq.config
        cond = self.condition(codes)
        return ddim_sample(self.unet, (len(codes), c.channels, c.image_size, c.image_size), image=cond,
                           num_inference_steps=num_inference_steps, generator=generator, clip=1.0)


def save_vq_gpt(path: str | Path, vq: ImageVQVAE, gpt: GPT, hybrid: HybridDecoder | None = None, extra: dict[str, Any] | None = None) -> Path:
    """One file with the VQ-VAE, the GPT and (optionally) the hybrid decoder (atomic)."""
    return save_checkpoint(path, {"kind": "vq_gpt", "vq_config": asdict(vq.config), "vq": vq.state_dict(), "gpt_config": asdict(gpt.cfg),
                                  "gpt": gpt.state_dict(), "unet_config": asdict(hybrid.unet_config) if hybrid else None,
                                  "unet": hybrid.unet.state_dict() if hybrid else None, "extra": extra or {}})


def load_vq_gpt(path: str | Path, device: torch.device | str = "cpu") -> tuple[ImageVQVAE, GPT, HybridDecoder | None, dict[str, Any]] | None:
    from ..errors import MalformedFile

    state = load_checkpoint(path)
    if state is None:
        return None
    if not isinstance(state, dict) or state.get("kind") != "vq_gpt":
        raise MalformedFile(str(path), "not a VQ-GPT checkpoint", fix="save it with save_vq_gpt")
    vq = ImageVQVAE(ImageVQVAEConfig(**state["vq_config"]))
    vq.load_state_dict(state["vq"])
    gpt = GPT(GPTConfig(**state["gpt_config"]))
    gpt.load_state_dict(state["gpt"])
    hybrid = None
    if state["unet_config"] is not None:
        uc = dict(state["unet_config"])
        for k in ("block_out_channels", "attention_levels"):
            if uc.get(k) is not None:
                uc[k] = tuple(uc[k])
        hybrid = HybridDecoder(vq.to(device), TinyUNetConfig(**uc))
        hybrid.unet.load_state_dict(state["unet"])
        hybrid.unet.to(device).eval()
    return vq.to(device).eval(), gpt.to(device).eval(), hybrid, state["extra"]


__all__ = ["HybridDecoder", "ImageVQVAE", "ImageVQVAEConfig", "code_gpt_config", "code_sequence", "load_vq_gpt", "sample_codes",
           "save_vq_gpt", "train_code_gpt", "train_image_vqvae"]
