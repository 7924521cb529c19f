"""Rectified-flow training and Euler sampling for any denoiser, with classifier-free guidance over named conditions.

For papers that train a small flow-matching model on a CPU (JavisDiT, SkyReels-A2, ACTalker): the
interpolation and target of rectified flow (Liu et al. 2022; Esser et al. 2024, SD3 Sec. 2-3),

    x_t = (1 - t) * x0 + t * noise,        target v = noise - x0,        t ~ logit-normal, shifted,

and sampling with diffusers' ``FlowMatchEulerDiscreteScheduler`` (its sigmas are our ``t``; a step is
``x <- x + (t_next - t) * v``). A sample may be one tensor or a dict of tensors (e.g. ``{"video": ...,
"audio": ...}`` for a joint audio-video model), each modality noised at the same ``t``.

The denoiser is any callable ``model(x_t, t, conditions, dropped) -> v`` where ``x_t`` and ``v`` have
the sample's structure, ``t`` is (B,) in [0, 1], ``conditions`` maps names to tensors (batch first) and
``dropped`` maps the same names to (B,) bool tensors: True where that condition is replaced by its
null (classifier-free guidance, Ho & Salimans 2022). :class:`reprolab.nn.avdit.TinyAVDiT` is one;
:func:`reprolab.nn.avdit.diffusers_denoiser` adapts diffusers' ``WanTransformer3DModel`` and
``LTX2VideoTransformer3DModel``.

Training drops each condition independently with its own probability (``FlowTrainConfig.cfg_dropout``).
Sampling composes guidance over an ordered list of conditions (InstructPix2Pix / ACTalker style): with
passes ``v_0`` (all listed conditions dropped), ``v_k`` (the first k kept),

    v = v_0 + sum_k w_k (v_k - v_{k-1});

one condition with weight w is the usual ``u + w (c - u)``. Each entry of ``guidance`` may name a
group of conditions switched on together (``(("audio", "pose"), 3.5)``), and ``combine=`` replaces the
formula by any function of the passes. Checkpoints and resume mirror :mod:`reprolab.nn.diffusion`.
:class:`Standardiser` brings each modality to unit variance first (the scale the noise schedule assumes).

    from reprolab.nn.flow import FlowTrainConfig, FlowBatch, train_flow, euler_sample
    out = train_flow(model, lambda step: FlowBatch({"video": v, "audio": a}, {"text": txt}),
                     FlowTrainConfig(steps=500, cfg_dropout={"text": 0.1}), checkpoint=run.checkpoints / "dit.pt")
    x = euler_sample(model, {"video": (4, 16, 3, 16, 16), "audio": (4, 1, 64, 100)}, {"text": txt},
                     guidance=[("text", 7.0)], num_inference_steps=30)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import torch

from ..errors import ConfigError, MissingExtra, NonFiniteError, ShapeError
from ..runtime import resume_training, save_training, track

Sample = Union[torch.Tensor, dict[str, torch.Tensor]]

__all__ = [
    "FlowBatch", "FlowTrainConfig", "FlowTrainOutput", "Standardiser", "euler_sample", "flow_loss", "guided_velocity", "interpolate",
    "sample_t", "shift_t", "timed_step", "train_flow",
]


def _diffusers():
    try:
        import diffusers

        return diffusers
    except ImportError:
        raise MissingExtra("diffusers", "diffusion") from None


# ----------------------------------------------------------------------------- the math
def shift_t(t: torch.Tensor, shift: float) -> torch.Tensor:
    """The timestep shift of SD3 (Esser et al. 2024, Eq. 23): t' = s t / (1 + (s - 1) t); s > 1 spends more time near noise."""
    return shift * t / (1 + (shift - 1) * t)


def sample_t(n: int, generator: torch.Generator, *, mean: float = 0.0, std: float = 1.0, shift: float = 1.0) -> torch.Tensor:
    """Logit-normal t (SD3 Eq. 19: t = sigmoid(N(mean, std))), then shifted; (n,) on the CPU, in (0, 1)."""
    t = torch.sigmoid(mean + std * torch.randn(n, generator=generator))
    return shift_t(t, shift)


def _map(fn: Callable[..., torch.Tensor], *xs: Sample) -> Sample:
    if isinstance(xs[0], torch.Tensor):
        return fn(*xs)
    return {k: fn(*(x[k] for x in xs)) for k in xs[0]}


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.device, x.dtype).view(-1, *([1] * (x.dim() - 1)))


def interpolate(x0: Sample, noise: Sample, t: torch.Tensor) -> Sample:
    """x_t = (1 - t) x0 + t noise, per modality (t is (B,))."""
    return _map(lambda a, n: (1 - _bcast(t, a)) * a + _bcast(t, a) * n, x0, noise)


def flow_loss(pred: Sample, x0: Sample, noise: Sample, weights: Mapping[str, float] | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """MSE of the predicted velocity against ``noise - x0``; with several modalities the (weighted) sum of their means."""
    if isinstance(x0, torch.Tensor):
        if not isinstance(pred, torch.Tensor) or pred.shape != x0.shape:
            raise ShapeError("the denoiser output", _shapes(pred), f"a tensor of the sample's shape {tuple(x0.shape)}")
        loss = torch.nn.functional.mse_loss(pred, noise - x0)
        return loss, {"mse": float(loss.detach())}
    if not isinstance(pred, dict) or set(pred) != set(x0):
        raise ShapeError("the denoiser output", _shapes(pred), f"a dict with keys {sorted(x0)}")
    parts = {}
    total = 0.0
    for k in x0:
        if pred[k].shape != x0[k].shape:
            raise ShapeError(f"the denoiser output {k!r}", tuple(pred[k].shape), f"{tuple(x0[k].shape)}")
        parts[k] = torch.nn.functional.mse_loss(pred[k], noise[k] - x0[k])
        total = total + (weights or {}).get(k, 1.0) * parts[k]
    return total, {"mse": float(total.detach()), **{f"mse_{k}": float(v.detach()) for k, v in parts.items()}}


def _shapes(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    if isinstance(x, dict):
        return {k: _shapes(v) for k, v in x.items()}
    return type(x).__name__


# ----------------------------------------------------------------------------- data scale
@dataclass(frozen=True)
class Standardiser:
    """Per-modality affine map of the data to zero mean and unit variance, and back: ``(x - shift) * scale``.

    Rectified flow mixes data with unit Gaussian noise, so the data's scale decides where its structure lives in
    t: a modality of standard deviation s has signal-to-noise ratio 1 at t = s / (1 + s). Stable Diffusion and SD3
    (Esser et al. 2024; the VAE's ``scaling_factor`` / ``shift_factor``) scale their latents to unit variance for
    this reason. At s = 0.12 (a dB mel mapped to [-1, 1] and mostly floor) the structure is visible only for
    t < 0.11: the logit-normal draws such t for 2% of training steps and a 20-step Euler sampler spends 2 steps
    there. Fit it on training data, ``encode`` before :func:`train_flow`, ``decode`` what :func:`euler_sample` returns.
    A single tensor is the modality ``"x"``.
    """

    shift: Mapping[str, float]
    scale: Mapping[str, float]

    @classmethod
    def fit(cls, x0: Sample) -> Standardiser:
        """Mean and 1 / standard deviation over all elements of each modality."""
        xs = {"x": x0} if isinstance(x0, torch.Tensor) else dict(x0)
        shift, scale = {}, {}
        for k, v in xs.items():
            v = v.detach().double()
            if not torch.isfinite(v).all():
                raise NonFiniteError(f"the data of modality {k!r}", "NaN or inf values", fix="clean the training data before fitting")
            std = float(v.std()) if v.numel() > 1 else 0.0
            if not std > 0:
                raise ConfigError(f"the data of modality {k!r}", f"std {std}", "data that varies (a constant modality cannot be scaled)")
            shift[k], scale[k] = float(v.mean()), 1.0 / std
        return cls(shift, scale)

    def _apply(self, x: Sample, fn: Callable[[torch.Tensor, float, float], torch.Tensor]) -> Sample:
        if isinstance(x, torch.Tensor):
            return fn(x, self.shift["x"], self.scale["x"])
        missing = set(x) - set(self.shift)
        if missing:
            raise ConfigError("modalities", sorted(missing), f"modalities the standardiser was fitted on ({sorted(self.shift)})")
        return {k: fn(v, self.shift[k], self.scale[k]) for k, v in x.items()}

    def encode(self, x: Sample) -> Sample:
        """Data -> the model's space (unit variance)."""
        return self._apply(x, lambda v, sh, sc: (v - sh) * sc)

    def decode(self, x: Sample) -> Sample:
        """The model's space -> data."""
        return self._apply(x, lambda v, sh, sc: v / sc + sh)

    def to_json(self) -> dict[str, dict[str, float]]:
        return {"shift": dict(self.shift), "scale": dict(self.scale)}


# ----------------------------------------------------------------------------- training
@dataclass
class FlowBatch:
    """One training batch: the clean sample (a tensor or a dict of modalities) and named conditions."""

    x0: Sample
    conditions: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowTrainConfig:
    steps: int = 1000  # optimizer steps
    lr: float = 1e-3  # AdamW peak learning rate (linear warm-up, cosine decay to 10%)
    warmup: int = 50  # warm-up steps
    weight_decay: float = 0.0
    t_mean: float = 0.0  # logit-normal location (SD3: 0)
    t_std: float = 1.0  # logit-normal scale (SD3: 1)
    shift: float = 1.0  # timestep shift s (SD3 Eq. 23; 1 = none)
    cfg_dropout: Mapping[str, float] = field(default_factory=dict)  # per condition name: probability it is dropped
    modality_weights: Mapping[str, float] = field(default_factory=dict)  # loss weight per modality (default 1)
    grad_clip: float = 1.0  # max gradient norm
    ema_decay: float | None = None  # EMA of the weights, used after training (None: off)
    checkpoint_every: int = 200  # steps between checkpoints (resume points)

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise ConfigError("steps/lr", (self.steps, self.lr), "steps >= 0 and lr > 0")
        if self.shift <= 0 or self.t_std <= 0:
            raise ConfigError("shift/t_std", (self.shift, self.t_std), "positive numbers")
        for k, p in self.cfg_dropout.items():
            if not 0.0 <= p < 1.0:
                raise ConfigError(f"cfg_dropout[{k!r}]", p, "a probability in [0, 1)")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["cfg_dropout"] = dict(self.cfg_dropout)
        d["modality_weights"] = dict(self.modality_weights)
        return d


@dataclass
class FlowTrainOutput:
    losses: dict[str, list[float]] = field(default_factory=lambda: {"mse": []})  # per step; "mse_<modality>" too
    steps: int = 0
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    resumed_from: int = 0


def _lr_at(step: int, cfg: FlowTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    p = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def _batch_size(x: Sample) -> int:
    return (x if isinstance(x, torch.Tensor) else next(iter(x.values()))).shape[0]


def _to(x: Sample, device: torch.device) -> Sample:
    return _map(lambda a: a.to(device), x)


def _randn_like(x: Sample, gen: torch.Generator) -> Sample:
    return _map(lambda a: torch.randn(a.shape, generator=gen, dtype=a.dtype).to(a.device), x)


def train_flow(
    model: torch.nn.Module,
    batches: Callable[[int], FlowBatch],
    config: FlowTrainConfig,
    *,
    parameters: Sequence[torch.nn.Parameter] | None = None,
    checkpoint: str | Path | None = None,
    seed: int = 0,
    description: str = "flow training",
) -> FlowTrainOutput:
    """Rectified-flow training of ``model`` (the module section's interface) on ``batches(step)``.

    ``batches`` is a function of the step, so a resumed run sees exactly the batches an
    uninterrupted one would and ends with the same weights. ``parameters``: what the optimizer
    updates (default: all of ``model``'s that require grad; e.g. only the prior blocks for a
    fine-tuning stage with frozen branches). Noise, t and condition dropout come from one CPU
    generator seeded by ``seed`` (saved in the checkpoint). Runs on ``model``'s device.
    """
    device = next(model.parameters()).device
    params = list(parameters) if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("parameters", "[]", "at least one trainable parameter")
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    ema = [p.detach().clone() for p in params] if config.ema_decay else None
    out = FlowTrainOutput()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    start = 0
    resumed = resume_training(checkpoint, model, opt, ema, gen)
    if resumed is not None:
        start, out.losses = resumed
        out.resumed_from = start

    def save(step: int) -> None:
        save_training(checkpoint, model, opt, ema, gen, step, out.losses, config.to_json())

    t0 = time.perf_counter()
    model.train()
    for step in track(range(start, config.steps), description, total=config.steps - start):
        batch = batches(step)
        x0 = _to(batch.x0, device)
        B = _batch_size(x0)
        noise = _randn_like(x0, gen)
        t = sample_t(B, gen, mean=config.t_mean, std=config.t_std, shift=config.shift).to(device)
        conditions = {k: v.to(device) for k, v in batch.conditions.items()}
        dropped = {k: (torch.rand(B, generator=gen) < config.cfg_dropout.get(k, 0.0)).to(device) for k in conditions}
        pred = model(interpolate(x0, noise, t), t, conditions, dropped)
        loss, parts = flow_loss(pred, x0, noise, config.modality_weights)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"the flow-matching loss at step {step}", float(loss.detach()), fix="lower FlowTrainConfig.lr or check the data for NaN")
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        if ema is not None:
            with torch.no_grad():
                d = min(config.ema_decay, (1 + step) / (10 + step))
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - d)
        for k, v in parts.items():
            out.losses.setdefault(k, []).append(v)
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            save(step + 1)
    save(config.steps)
    if ema is not None:
        with torch.no_grad():
            for p, e in zip(params, ema):
                p.copy_(e)
    model.eval()
    out.steps = config.steps
    out.seconds = time.perf_counter() - t0
    out.seconds_per_step = out.seconds / max(1, config.steps - start)
    return out


def timed_step(model: torch.nn.Module, batch: FlowBatch, optimizer: torch.optim.Optimizer,
               weights: Mapping[str, float] | None = None) -> Callable[[], None]:
    """One fixed training step, for benchmarks that time seconds per step: ``f()`` runs the flow loss of ``model`` on
    ``batch`` at t = 0.5 with the same noise every call (seed 0, CPU) and nothing dropped, then backward and
    ``optimizer.step()``. ``weights``: per-modality loss weights, as :class:`FlowTrainConfig.modality_weights`."""
    x0 = batch.x0
    B = _batch_size(x0)

    def step() -> None:
        gen = torch.Generator().manual_seed(0)
        noise = _randn_like(x0, gen)
        t = torch.full((B,), 0.5)
        keep = {k: torch.zeros(B, dtype=torch.bool) for k in batch.conditions}
        loss, _ = flow_loss(model(interpolate(x0, noise, t), t, batch.conditions, keep), x0, noise, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


# ----------------------------------------------------------------------------- sampling
Guidance = Sequence[tuple[Union[str, Sequence[str]], float]]


def _names(entry: str | Sequence[str]) -> tuple[str, ...]:
    return (entry,) if isinstance(entry, str) else tuple(entry)


def guided_velocity(passes: Sequence[Sample], weights: Sequence[float]) -> Sample:
    """v_0 + sum_k w_k (v_k - v_{k-1}) for passes v_0..v_K and weights w_1..w_K (the ordered composition)."""
    if len(passes) != len(weights) + 1:
        raise ConfigError("weights", list(weights), f"{len(passes) - 1} weights for {len(passes)} passes")
    out = passes[0]
    for k, w in enumerate(weights, start=1):
        out = _map(lambda o, a, b, w=w: o + w * (a - b), out, passes[k], passes[k - 1])
    return out


@torch.no_grad()
def euler_sample(
    model: Callable[..., Sample],
    shapes: tuple[int, ...] | Mapping[str, tuple[int, ...]],
    conditions: Mapping[str, torch.Tensor] | None = None,
    *,
    guidance: Guidance = (),
    combine: Callable[[list[Sample]], Sample] | None = None,
    num_inference_steps: int = 30,
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    return_trajectory: bool = False,
) -> Sample | tuple[Sample, list[Sample]]:
    """Euler sampling from noise (t = 1) to data (t = 0) with diffusers' ``FlowMatchEulerDiscreteScheduler``.

    ``shapes``: a tuple for a single tensor, or ``{modality: shape}``. ``conditions``: kept in every
    pass unless named in ``guidance``; ``guidance=[(name_or_names, w), ...]`` is the ordered
    composition of the module docstring (K + 1 model calls per step, batched in one call);
    ``combine(passes) -> v`` replaces the formula (e.g. ACTalker's four passes). ``shift``: the
    scheduler's timestep shift. Noise is drawn on the CPU from ``generator`` so samples are identical
    across devices.
    """
    conditions = dict(conditions or {})
    if device is None:
        device = next(model.parameters()).device  # type: ignore[union-attr]
    for entry, _ in guidance:
        for n in _names(entry):
            if n not in conditions:
                raise ConfigError("guidance", n, f"one of the given conditions {sorted(conditions)}")
    single = not isinstance(shapes, Mapping)
    shape_map = {"x": tuple(shapes)} if single else {k: tuple(v) for k, v in shapes.items()}
    x = {k: torch.randn(s, generator=generator).to(device) for k, s in shape_map.items()}
    B = next(iter(shape_map.values()))[0]
    conditions = {k: v.to(device) for k, v in conditions.items()}
    guided = [_names(e) for e, _ in guidance]
    weights = [float(w) for _, w in guidance]
    P = len(guided) + 1
    dropped_per_pass = []
    for k in range(P):
        on = {n for names in guided[:k] for n in names}
        off = {n for names in guided for n in names} - on
        dropped_per_pass.append({n: torch.full((B,), n in off, dtype=torch.bool, device=device) for n in conditions})
    dropped = {n: torch.cat([d[n] for d in dropped_per_pass]) for n in conditions}
    conds = {n: v.repeat(P, *([1] * (v.dim() - 1))) for n, v in conditions.items()}
    diffusers = _diffusers()
    scheds = {k: diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift) for k in x}
    for s in scheds.values():
        s.set_timesteps(num_inference_steps, device=device)
    first = next(iter(scheds.values()))
    sigmas = first.sigmas.tolist()
    trajectory = []
    for i in range(num_inference_steps):
        t = torch.full((B * P,), sigmas[i], device=device)
        x_in = {k: v.repeat(P, *([1] * (v.dim() - 1))) for k, v in x.items()}
        v_all = model(x_in["x"] if single else x_in, t, conds, dropped)
        v_all = {"x": v_all} if single else v_all
        if not isinstance(v_all, dict) or set(v_all) != set(x):
            raise ShapeError("the denoiser output", _shapes(v_all), f"{'a tensor' if single else 'a dict with keys ' + str(sorted(x))}")
        passes = [{k: v.chunk(P)[j] for k, v in v_all.items()} for j in range(P)]
        v = combine(passes) if combine is not None else guided_velocity(passes, weights)
        if any(not torch.isfinite(a).all() for a in v.values()):
            raise NonFiniteError(f"the denoiser's velocity at step {i}", "NaN or inf", fix="check the model's weights (a diverged training run)")
        x = {k: scheds[k].step(v[k], first.timesteps[i], a).prev_sample for k, a in x.items()}  # x + (t_next - t) v
        if return_trajectory:
            trajectory.append(x["x"] if single else dict(x))
    result = x["x"] if single else x
    return (result, trajectory) if return_trajectory else result
