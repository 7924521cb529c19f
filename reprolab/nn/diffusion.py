"""A tiny diffusion room: small UNets from diffusers' own classes, DDPM training with CFG dropout, DDIM sampling.

For papers that need a diffusion model they can train on a CPU in minutes (FreSca, JavisDiT,
SkyReels-A2, ACTalker, IGPG, ...). The UNet is diffusers' ``UNet2DModel`` (so anything that
wraps a diffusers denoiser wraps ours), the noise schedule and the sampler step are diffusers'
``DDPMScheduler`` / ``DDIMScheduler``, and checkpoints go through
:func:`reprolab.runtime.save_checkpoint` (atomic; training resumes from the last one).

Two kinds of conditioning, both optional and combinable:

- *class labels* (``TinyUNetConfig(num_classes=10)``): ``UNet2DModel(num_class_embeds=11)``,
  index ``num_classes`` is the null class used for classifier-free guidance. Training replaces
  each label by the null class with probability ``cfg_dropout`` (Ho & Salimans 2022).
- *an image* concatenated to the noisy sample on the channel axis (Marigold-style:
  ``in_channels = cond_channels + target_channels``), e.g. an RGB image to predict depth from.

    from reprolab.nn.diffusion import TinyUNetConfig, TrainConfig, build_unet, train_diffusion, ddim_sample
    unet = build_unet(TinyUNetConfig(sample_size=28, num_classes=10))
    out = train_diffusion(unet, batches, TrainConfig(steps=2000), checkpoint=run.checkpoints / "unet.pt")
    x = ddim_sample(unet, (64, 1, 28, 28), class_labels=y, guidance_scale=3.0, null_class=10)

The CFG step of :func:`ddim_sample` is written exactly as diffusers pipelines write it (one
batched call on ``[uncond, cond]``, then ``u + w * (c - u)``), so a wrapper of the denoiser that
works on a diffusers pipeline works here too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, MissingExtra, NonFiniteError, ShapeError
from ..runtime import load_checkpoint, resume_training, save_checkpoint, save_training, track

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def _diffusers():
    try:
        import diffusers

        return diffusers
    except ImportError:
        raise MissingExtra("diffusers", "diffusion") from None


@dataclass(frozen=True)
class TinyUNetConfig:
    """A small ``UNet2DModel``: one resolution level per entry of ``block_out_channels``."""

    sample_size: int = 32  # H = W of the training images (any size divisible by 2**(levels-1) works at sampling)
    in_channels: int = 1  # channels of the noisy sample + of a concatenated conditioning image
    out_channels: int = 1  # channels of the prediction (= the noisy sample's)
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # channels per level
    layers_per_block: int = 1  # ResNet blocks per level on the way down (up: one more)
    attention_levels: tuple[bool, ...] | None = None  # self-attention per level (default: none; CPU-friendly)
    mid_attention: bool = False  # self-attention in the middle block
    num_classes: int | None = None  # class-conditional with a null class for CFG (index num_classes)
    norm_num_groups: int = 8  # GroupNorm groups (divides every channel count)

    def __post_init__(self) -> None:
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ConfigError("norm_num_groups", self.norm_num_groups, f"a divisor of every block_out_channels {self.block_out_channels}")
        if self.attention_levels is not None and len(self.attention_levels) != len(self.block_out_channels):
            raise ConfigError("attention_levels", self.attention_levels, f"one flag per level ({len(self.block_out_channels)})")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError("num_classes", self.num_classes, "None or a positive number of classes")

    @property
    def null_class(self) -> int | None:
        return self.num_classes


def build_unet(config: TinyUNetConfig) -> torch.nn.Module:
    """diffusers ``UNet2DModel`` of the given config (random init; seed torch first for determinism)."""
    diffusers = _diffusers()
    attn = config.attention_levels or (False,) * len(config.block_out_channels)
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn))
    return diffusers.UNet2DModel(
        sample_size=config.sample_size,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=config.norm_num_groups,
        add_attention=config.mid_attention,
        num_class_embeds=None if config.num_classes is None else config.num_classes + 1,
        attention_head_dim=8,
    )


def make_scheduler(kind: str = "ddim", prediction_type: str = "epsilon", num_train_timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2"):
    """A diffusers scheduler (``"ddpm"`` for training / ancestral sampling, ``"ddim"`` for sampling)."""
    diffusers = _diffusers()
    if prediction_type not in PREDICTION_TYPES:
        raise ConfigError("prediction_type", prediction_type, " or ".join(PREDICTION_TYPES))
    common = dict(num_train_timesteps=num_train_timesteps, beta_schedule=beta_schedule, prediction_type=prediction_type, clip_sample=False)
    if kind == "ddpm":
        return diffusers.DDPMScheduler(**common)
    if kind == "ddim":
        return diffusers.DDIMScheduler(**common, set_alpha_to_one=True, steps_offset=1, timestep_spacing="leading")
    raise ConfigError("kind", kind, "'ddpm' or 'ddim'")


@dataclass
class DiffusionBatch:
    """One training batch: the clean target and its (optional) conditioning."""

    x0: torch.Tensor  # (B, C, H, W) clean sample, roughly in [-1, 1]
    class_labels: torch.Tensor | None = None  # (B,) int64 in 0..num_classes-1
    image: torch.Tensor | None = None  # (B, Ci, H, W) concatenated to the noisy sample (Marigold-style)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000  # optimizer steps
    lr: float = 2e-3  # AdamW peak learning rate (linear warm-up, cosine decay to 10% at schedule_steps)
    warmup: int = 100  # warm-up steps
    weight_decay: float = 0.0
    cfg_dropout: float = 0.1  # probability a class label becomes the null class (0: no CFG training)
    prediction_type: str = "epsilon"  # "epsilon", "v_prediction" (Marigold) or "sample"
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    grad_clip: float = 1.0  # max gradient norm
    ema_decay: float | None = 0.999  # EMA of the weights, used for sampling (None: off)
    checkpoint_every: int = 200  # steps between checkpoints (resume points)
    schedule_steps: int | None = None  # horizon of the cosine decay (None: ``steps``); set it to train in legs along one schedule

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise ConfigError("steps/lr", (self.steps, self.lr), "steps >= 0 and lr > 0")
        if self.schedule_steps is not None and self.schedule_steps < self.steps:
            raise ConfigError("schedule_steps", self.schedule_steps, f"None or at least steps ({self.steps}): the schedule's horizon")
        if not 0.0 <= self.cfg_dropout < 1.0:
            raise ConfigError("cfg_dropout", self.cfg_dropout, "a probability in [0, 1)")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ConfigError("prediction_type", self.prediction_type, " or ".join(PREDICTION_TYPES))


@dataclass
class TrainOutput:
    """What :func:`train_diffusion` returns: named per-step losses and bookkeeping."""

    losses: dict[str, list[float]] = field(default_factory=lambda: {"mse": []})  # "mse": the diffusion loss per step
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int = 0  # the step a checkpoint resumed from (0: fresh)


def model_inputs(x_t: torch.Tensor, image: torch.Tensor | None) -> torch.Tensor:
    """The UNet's input: the noisy sample, with the conditioning image in front on the channel axis."""
    if image is None:
        return x_t
    if image.shape[0] != x_t.shape[0] or image.shape[-2:] != x_t.shape[-2:]:
        raise ShapeError("the conditioning image", tuple(image.shape), f"(B, Ci, H, W) matching the sample {tuple(x_t.shape)}")
    return torch.cat([image.to(x_t.dtype), x_t], dim=1)


def _target(scheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction_type: str) -> torch.Tensor:
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, t)
    return x0


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    total = cfg.steps if cfg.schedule_steps is None else cfg.schedule_steps
    p = (step - cfg.warmup) / max(1, total - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def train_diffusion(
    unet: torch.nn.Module,
    batches: Iterator[DiffusionBatch] | Callable[[int], DiffusionBatch],
    config: TrainConfig,
    *,
    null_class: int | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    description: str = "diffusion training",
) -> TrainOutput:
    """DDPM training (Ho et al. 2020, Alg. 1) with CFG label dropout; returns named losses.

    ``batches``: an iterator of :class:`DiffusionBatch` (consumed once per remaining step), or a
    function ``step -> DiffusionBatch`` (then a resumed run sees exactly the batches an
    uninterrupted run would, and ends with the same weights). ``null_class``: the CFG null label (required
    when ``cfg_dropout > 0`` and batches carry labels). ``checkpoint``: a file to resume from and
    to save to every ``checkpoint_every`` steps and at the end; afterwards ``unet`` holds the
    EMA weights when ``ema_decay`` is set. Runs on ``unet``'s device.
    """
    device = next(unet.parameters()).device
    sched = make_scheduler("ddpm", config.prediction_type, config.num_train_timesteps, config.beta_schedule)
    opt = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    ema = [p.detach().clone() for p in unet.parameters()] if config.ema_decay else None
    out = TrainOutput()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    start = 0
    resumed = resume_training(checkpoint, unet, opt, ema, gen)
    if resumed is not None:
        start, out.losses = resumed
        out.resumed_from = start
    t0 = time.perf_counter()
    unet.train()

    def save(step: int) -> None:
        save_training(checkpoint, unet, opt, ema, gen, step, out.losses, asdict(config))

    for step in track(range(start, config.steps), description, total=config.steps - start):
        try:
            batch = batches(step) if callable(batches) else next(batches)
        except StopIteration:
            raise ConfigError("batches", "an exhausted iterator", f"an iterator yielding at least {config.steps - start} batches") from None
        x0 = batch.x0.to(device)
        B = x0.shape[0]
        noise = torch.randn(x0.shape, generator=gen).to(device)
        t = torch.randint(0, config.num_train_timesteps, (B,), generator=gen).to(device)
        x_t = sched.add_noise(x0, noise, t)
        kwargs: dict[str, Any] = {}
        if batch.class_labels is not None:
            labels = batch.class_labels.to(device).clone()
            if config.cfg_dropout > 0:
                if null_class is None:
                    raise ConfigError("null_class", None, "the null class index (TinyUNetConfig.null_class) when cfg_dropout > 0")
                drop = torch.rand(B, generator=gen).to(device) < config.cfg_dropout
                labels[drop] = null_class
            kwargs["class_labels"] = labels
        image = None if batch.image is None else batch.image.to(device)
        pred = unet(model_inputs(x_t, image), t, **kwargs).sample
        loss = torch.nn.functional.mse_loss(pred, _target(sched, x0, noise, t, config.prediction_type))
        if not torch.isfinite(loss):
            raise NonFiniteError(f"the diffusion loss at step {step}", float(loss), fix="lower TrainConfig.lr or check the data for NaN")
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), config.grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                d = min(config.ema_decay, (1 + step) / (10 + step))  # short warm-up of the EMA
                torch._foreach_lerp_(ema, [p.detach() for p in unet.parameters()], 1 - d)
        out.losses["mse"].append(float(loss.detach()))
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            save(step + 1)
    save(config.steps)
    if ema is not None:
        with torch.no_grad():
            for p, e in zip(unet.parameters(), ema):
                p.copy_(e)
    unet.eval()
    out.steps = config.steps
    out.seconds = time.perf_counter() - t0
    return out


@torch.no_grad()
def ddim_sample(
    model: Any,
    shape: tuple[int, ...],
    *,
    class_labels: torch.Tensor | None = None,
    image: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    null_class: int | None = None,
    num_inference_steps: int = 20,
    prediction_type: str = "epsilon",
    num_train_timesteps: int = 1000,
    beta_schedule: str = "squaredcos_cap_v2",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    clip: float | None = None,
    guidance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """DDIM sampling (eta = 0) of ``shape`` from ``model`` (a UNet2DModel or a wrapper of one).

    With ``guidance_scale != 1`` and class labels: classifier-free guidance in the diffusers
    way, one call on ``[uncond, cond]`` then ``u + w * (c - u)``; ``guidance(pred_uncond,
    pred_cond) -> pred`` replaces that line (e.g. a diffusers guider, or guidance rescale). ``image``: conditioning
    concatenated at every step (no CFG on it). Noise is drawn on the CPU from ``generator``
    so samples are identical across devices. ``clip``: clamp the final sample to ``[-clip, clip]``.
    """
    if device is None:
        device = next(model.parameters()).device
    sched = make_scheduler("ddim", prediction_type, num_train_timesteps, beta_schedule)
    sched.set_timesteps(num_inference_steps)
    x = torch.randn(shape, generator=generator).to(device)
    cfg = class_labels is not None and guidance_scale != 1.0
    if cfg and null_class is None:
        raise ConfigError("null_class", None, "the null class index for classifier-free guidance")
    if class_labels is not None:
        class_labels = class_labels.to(device)
        if class_labels.dim() < 1 or class_labels.shape[0] != shape[0]:  # (B,) class labels, or (B, L) caption token ids
            raise ShapeError("class_labels", tuple(class_labels.shape), f"({shape[0]},) class labels or ({shape[0]}, L) token ids")
    if image is not None:
        image = image.to(device)
    for t in sched.timesteps:
        tt = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        if cfg:
            labels = torch.cat([torch.full_like(class_labels, null_class), class_labels])
            inp = model_inputs(torch.cat([x, x]), None if image is None else torch.cat([image, image]))
            pred = model(inp, torch.cat([tt, tt]), class_labels=labels).sample
            pred_uncond, pred_cond = pred.chunk(2)
            if guidance is None:
                pred = pred_uncond + guidance_scale * (pred_cond - pred_uncond)  # the pipelines' CFG line
            else:
                pred = guidance(pred_uncond, pred_cond)
        else:
            kwargs = {} if class_labels is None else {"class_labels": class_labels}
            pred = model(model_inputs(x, image), tt, **kwargs).sample
        x = sched.step(pred, t, x).prev_sample
    if clip is not None:
        x = x.clamp(-clip, clip)
    return x


def save_model(path: str | Path, unet: torch.nn.Module, config: TinyUNetConfig, extra: dict[str, Any] | None = None) -> Path:
    """Save a trained tiny UNet (weights + config + anything in ``extra``) atomically."""
    return save_checkpoint(path, {"model": unet.state_dict(), "unet_config": asdict(config), "extra": extra or {}})


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, TinyUNetConfig, dict[str, Any]] | None:
    """Load what :func:`save_model` wrote, or None if there is no file."""
    state = load_checkpoint(path)
    if state is None:
        return None
    cfg = dict(state["unet_config"])
    for k in ("block_out_channels", "attention_levels"):
        if cfg.get(k) is not None:
            cfg[k] = tuple(cfg[k])
    config = TinyUNetConfig(**cfg)
    unet = build_unet(config)
    unet.load_state_dict(state["model"])
    return unet.to(device).eval(), config, state["extra"]
