"""ZClip: Adaptive Spike Mitigation for LLM Pre-Training (Kumar et al., arXiv 2504.02507).

Gradient-norm clipping whose threshold follows the recent statistics of the total gradient
norm. An exponential moving average (EMA) of the norm's mean and variance gives a z-score
for each step; a step whose z-score exceeds ``z_thresh`` is a spike, and its gradient is
scaled down to a norm that shrinks the further out the spike lies ("reciprocal clipping").

Follows Section 3 of the paper and the official implementation (github.com/bluorion-com/ZClip,
PyPI ``zclip`` 1.0.0). Symbols, paper -> here:

    g_t      total L2 norm of all gradients      ``grad_norm``
    mu_t     EMA mean of the norm                 ``mean``
    sigma_t  EMA standard deviation               ``std`` (= sqrt(var))
    alpha    EMA smoothing factor                 ``alpha``
    z_thres  spike threshold on the z-score       ``z_thresh``
    g*_t     the norm a spike is clipped to       ``target``

Where the paper and the code differ, or both are silent, we chose (each also flagged in place):

- ``alpha = 0.97`` as in the official code; the digest's pseudo-code uses 0.99.
- ``clip_factor`` multiplies the whole adaptive threshold ``mu + z* sigma`` as the official
  code does (its docstring says only the ``z* sigma`` term; the code is what people ran).
- The EMA is updated with the clipped norm (paper, Section 3.3), once per call to
  :meth:`ZClip.step`, i.e. once per optimizer step; the official ``skip_update_on_spike``
  switch is kept.
- ``max_grad_norm`` (official default 1.0) is a hard ceiling on top: the applied norm is
  ``min(target, max_grad_norm)``. The ceiling never feeds the statistics (as in the official
  code). ``max_grad_norm=None`` gives ZClip alone, which is what the paper's claims test.
- Warm-up: the first ``warmup_steps`` norms are collected without ZClip clipping (only the
  ceiling applies), then mean and *population* variance of them initialise the EMA.
- The scale factor is exactly ``target / g`` (the official code divides by ``g + 1e-6``), so a
  clipped gradient has exactly the target norm.
- Non-finite norms (NaN/inf, e.g. an fp16 overflow): the official code feeds them into the
  EMA, which then stays NaN for the rest of training. We never do. ``on_nonfinite="skip"``
  (default) leaves gradients and statistics untouched and reports ``finite=False`` (during
  warm-up the norm is not collected either), so the caller (or AMP's GradScaler) skips the optimizer step;
  ``on_nonfinite="raise"`` raises :class:`~reprolab.errors.NonFiniteError`.
- A call with no gradients at all (e.g. only frozen parameter groups) changes nothing and
  is not counted (the official code records a norm of 0.0 into its statistics).
- After warm-up, a step on an accelerator does no host-device synchronisation (decisions are
  ``torch.where`` on device tensors), like ``torch.nn.utils.clip_grad_norm_``; on CPU, where
  a host decision is free, the in-place multiply is skipped when nothing is clipped. Statistics are kept in
  float64, as the official code's Python floats are.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from ...errors import ConfigError, NonFiniteError

STATE_VERSION = 1


@dataclass(frozen=True)
class ZClipConfig:
    alpha: float = 0.97  # EMA smoothing; official default (the digest's pseudo-code says 0.99)
    z_thresh: float = 2.5  # z-score above which a step is a spike (paper Sec. 3.2, official default)
    max_grad_norm: float | None = 1.0  # hard ceiling on top of ZClip (official default); None = ZClip alone
    eps: float = 1e-6  # added to sigma in the z-score denominator (official)
    warmup_steps: int = 25  # norms collected before the EMA starts (official default)
    mode: Literal["zscore", "percentile"] = "zscore"  # percentile: always clip to mu + z_thresh * sigma
    clip_option: Literal["adaptive_scaling", "mean"] = "adaptive_scaling"  # zscore mode: reciprocal clip, or clip to mu
    clip_factor: float = 1.0  # multiplies the adaptive threshold (official; 0.5-0.9 = more aggressive)
    skip_update_on_spike: bool = False  # official: when True, spikes do not update the EMA
    on_nonfinite: Literal["skip", "raise"] = "skip"  # our choice for NaN/inf norms; see module docstring

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError("alpha", self.alpha, "a number in (0, 1)")
        if not self.z_thresh > 0:
            raise ConfigError("z_thresh", self.z_thresh, "a positive number")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError("max_grad_norm", self.max_grad_norm, "a positive number or None")
        if not self.eps >= 0:
            raise ConfigError("eps", self.eps, "a non-negative number")
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 1):
            raise ConfigError("warmup_steps", self.warmup_steps, "an integer >= 1")
        if self.mode not in ("zscore", "percentile"):
            raise ConfigError("mode", self.mode, "'zscore' or 'percentile'")
        if self.clip_option not in ("adaptive_scaling", "mean"):
            raise ConfigError("clip_option", self.clip_option, "'adaptive_scaling' or 'mean'")
        if not self.clip_factor > 0:
            raise ConfigError("clip_factor", self.clip_factor, "a positive number")
        if self.on_nonfinite not in ("skip", "raise"):
            raise ConfigError("on_nonfinite", self.on_nonfinite, "'skip' or 'raise'")


@dataclass(frozen=True)
class ZClipStep:
    """What one :meth:`ZClip.step` saw and did (0-dim tensors on the gradients' device)."""

    grad_norm: Tensor  # g_t before clipping
    clipped_norm: Tensor  # the norm after clipping (== grad_norm when nothing was clipped)
    threshold: Tensor  # spike boundary mu + z_thresh * sigma before the update (NaN during warm-up)
    spike: Tensor  # bool: ZClip detected a spike (always False during warm-up)
    finite: Tensor  # bool: grad_norm was finite (if not, nothing was changed)
    warmup: bool  # the EMA was still warming up at this step


ParamsLike = torch.nn.Module | torch.optim.Optimizer | Iterable[Tensor] | Tensor


def _parameters(parameters: ParamsLike) -> list[Tensor]:
    """The parameters of a module, an optimizer's param groups, a tensor, or an iterable of tensors."""
    if isinstance(parameters, torch.nn.Module):
        return list(parameters.parameters())
    if isinstance(parameters, torch.optim.Optimizer):
        return [p for group in parameters.param_groups for p in group["params"]]
    if isinstance(parameters, Tensor):
        return [parameters]
    if isinstance(parameters, (str, bytes)) or not isinstance(parameters, Iterable):
        raise ConfigError("parameters", _short(parameters), "a torch.nn.Module, a torch.optim.Optimizer, a tensor, or an iterable of tensors (e.g. model.parameters())")
    params = list(parameters)
    bad = next((p for p in params if not isinstance(p, Tensor)), None)
    if bad is not None:
        raise ConfigError("parameters", f"an iterable holding {_short(bad)}", "an iterable of tensors (e.g. model.parameters())")
    return params


def _short(x: object) -> str:
    text = repr(x)
    return f"{type(x).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


def _gradients(parameters: ParamsLike) -> list[Tensor]:
    """The existing gradients of ``parameters`` (see :func:`_parameters`)."""
    return [p.grad for p in _parameters(parameters) if p.grad is not None]


def _sharded_group(parameters: ParamsLike):
    """The process group over which ``parameters``' gradients are sharded (FSDP1), or None.

    Under FSDP1 (``FullyShardedDataParallel``) each rank holds a shard of every flat parameter's
    gradient, so the total norm is sqrt(sum over ranks of the local squared norms), all-reduced
    over the FSDP process group (the official ZClip does the same). Under FSDP2 (``fully_shard``)
    gradients are DTensors and :func:`total_grad_norm` reduces them itself; under DDP every rank
    holds the full, already averaged gradient, so the local norm is the global one.
    """
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None  # one process: nothing is sharded (and no per-step module scan)
    if isinstance(parameters, torch.nn.Module):
        try:
            from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        except ImportError:  # a torch built without distributed
            return None
        for m in parameters.modules():
            if isinstance(m, FSDP) and m.sharding_strategy.name != "NO_SHARD":
                return m.process_group
        return None
    for p in _parameters(parameters):  # an optimizer over FSDP1 flat parameters (use_orig_params=False)
        if getattr(p, "_is_flat_param", False) and getattr(p, "_sharded_size", None) != getattr(p, "_unpadded_unsharded_size", None):
            import torch.distributed as dist

            return dist.group.WORLD
    return None


def scale_gradients_(grads: list[Tensor], scale: Tensor) -> None:
    """Multiply every gradient in place by the 0-dim ``scale``, one foreach call per device."""
    by_device: dict[torch.device, list[Tensor]] = {}
    for g in grads:
        by_device.setdefault(g.device, []).append(g)
    for device, group in by_device.items():
        torch._foreach_mul_(group, scale.to(device=device, dtype=torch.float32))


def total_grad_norm(grads: list[Tensor], group: Any = None) -> Tensor:
    """L2 norm over all gradients (any devices), as ``clip_grad_norm_`` computes it; float64.

    DTensor gradients (FSDP2) are reduced to the global norm; with ``group`` (a process group,
    FSDP1's shards) the local squared norms are summed over its ranks first.
    """
    if not grads:
        local = torch.zeros((), dtype=torch.float64)
    else:
        local = torch.nn.utils.get_total_norm(grads, norm_type=2.0, error_if_nonfinite=False)
    if hasattr(local, "full_tensor"):  # a DTensor under FSDP2: all-reduce to the global norm
        local = local.full_tensor()
    if group is None:
        return local.to(torch.float64)
    import torch.distributed as dist

    squared = local.to(torch.float64) ** 2
    dist.all_reduce(squared, op=dist.ReduceOp.SUM, group=group)
    return squared.sqrt()


class ZClip:
    """Adaptive gradient clipping by z-score of the gradient norm (ZClip, arXiv 2504.02507).

    Usage, between ``loss.backward()`` and ``optimizer.step()``::

        zclip = ZClip(max_grad_norm=None)        # ZClip alone; default also caps at 1.0
        ...
        loss.backward()
        info = zclip.step(model)                 # clips model's gradients in place
        optimizer.step()

    ``step`` accepts a module, an optimizer (all its param groups) or an iterable of
    parameters. ``state_dict()``/``load_state_dict()`` let a resumed run continue exactly.
    """

    def __init__(self, config: ZClipConfig | None = None, **overrides: Any):
        base = config or ZClipConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        self.steps = 0  # calls to step() with gradients (during warm-up, finite norms only)
        self._warmup_norms: list[float] = []
        self._mean: Tensor | None = None  # float64, on the gradients' device
        self._var: Tensor | None = None

    # -- read-only views ------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return self._mean is not None

    @property
    def mean(self) -> float | None:
        return None if self._mean is None else float(self._mean)

    @property
    def var(self) -> float | None:
        return None if self._var is None else float(self._var)

    # -- the algorithm --------------------------------------------------------------------
    @torch.no_grad()
    def step(self, parameters: ParamsLike, *, process_group: Any = None) -> ZClipStep:
        """Clip the gradients of ``parameters`` in place and update the statistics once.

        Under torch.distributed every rank must call ``step`` at the same optimizer step. The norm
        is the global one: DDP's gradients are already averaged over ranks; FSDP2's are DTensors
        (reduced here); FSDP1's flat shards are found from the module (or its flat parameters)
        and their squared norms summed over the FSDP process group. Pass ``process_group`` when
        the gradients are sharded in a way ZClip cannot see (e.g. an optimizer over FSDP1's
        ``use_orig_params=True`` views): the local squared norms are then summed over it.
        """
        cfg = self.config
        grads = _gradients(parameters)
        group = process_group if process_group is not None else _sharded_group(parameters)
        if group is not None:  # sharded: every rank must join the all-reduce, even one without local gradients
            g = total_grad_norm(grads, group)
        elif not grads:
            zero = torch.zeros((), dtype=torch.float64)
            nan = torch.full((), float("nan"), dtype=torch.float64)
            return ZClipStep(zero, zero, nan, torch.tensor(False), torch.tensor(True), not self.initialized)
        else:
            g = total_grad_norm(grads)  # g_t (global under DDP and FSDP2, see _sharded_group)
        finite = torch.isfinite(g)
        if cfg.on_nonfinite == "raise" and not bool(finite):
            raise NonFiniteError("gradient norm", float(g), fix="lower the learning rate, check the loss for NaN, or use on_nonfinite='skip' with AMP")

        if self._mean is None:
            return self._warmup_step(grads, g, finite)

        mean, var = self._mean.to(g.device), self._var.to(g.device)
        std = var.sqrt()  # sigma_t
        threshold = mean + cfg.z_thresh * std
        # z_t = (g_t - mu_t) / (sigma_t + eps)                                       (paper eq. 3)
        z = (g - mean) / (std + cfg.eps)
        if cfg.mode == "zscore":
            spike = z > cfg.z_thresh
            if cfg.clip_option == "adaptive_scaling":
                # Reciprocal clipping: z* = z_thres^2 / z_t; g* = mu_t + z* sigma_t      (paper eq. 5-6)
                # clip_factor scales the whole threshold, as the official code does.
                target = (mean + (cfg.z_thresh**2 / z) * std) * cfg.clip_factor
            else:
                target = mean
        else:  # "percentile": clip to mu + z_thresh * sigma whenever above it (official code)
            spike = g > threshold
            target = threshold
        spike = spike & finite
        target = torch.where(spike, target, g)  # the "effective" norm that feeds the EMA
        applied = target if cfg.max_grad_norm is None else torch.clamp(target, max=cfg.max_grad_norm)
        clipped = finite & (g > applied)
        # On CPU a host decision costs nothing, so skip the multiply when nothing is clipped;
        # on accelerators always multiply (by 1 when not clipping) to avoid a sync.
        if g.device.type != "cpu" or bool(clipped):
            scale_gradients_(grads, torch.where(clipped, applied / g, torch.ones_like(g)))

        # EMA update with the clipped norm:                                         (paper eq. 2)
        #   mu <- alpha mu + (1 - alpha) g*;  sigma^2 <- alpha sigma^2 + (1 - alpha) (g* - mu_new)^2
        a = cfg.alpha
        new_mean = a * mean + (1 - a) * target
        new_var = a * var + (1 - a) * (target - new_mean) ** 2
        update = finite & ~spike if cfg.skip_update_on_spike else finite
        self._mean = torch.where(update, new_mean, mean)
        self._var = torch.where(update, new_var, var)
        self.steps += 1
        return ZClipStep(g, torch.where(clipped, applied, g), threshold, spike, finite, False)

    def _warmup_step(self, grads: list[Tensor], g: Tensor, finite: Tensor) -> ZClipStep:
        cfg = self.config
        nan = torch.full_like(g, float("nan"))
        if not bool(finite):  # warm-up already syncs once per step; skip the non-finite norm
            return ZClipStep(g, g, nan, torch.zeros_like(finite), finite, True)
        applied = g
        if cfg.max_grad_norm is not None:  # the ceiling applies during warm-up too (official)
            applied = torch.clamp(g, max=cfg.max_grad_norm)
            scale_gradients_(grads, torch.where(g > applied, applied / g, torch.ones_like(g)))
        self._warmup_norms.append(float(g))
        self.steps += 1
        if len(self._warmup_norms) >= cfg.warmup_steps:
            norms = torch.tensor(self._warmup_norms, dtype=torch.float64, device=g.device)
            self._mean = norms.mean()
            self._var = norms.var(unbiased=False)  # population variance, as the official code
            self._warmup_norms = []
        return ZClipStep(g, applied, nan, torch.zeros_like(finite), finite, True)

    # -- persistence ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "config": dataclasses.asdict(self.config),
            "steps": self.steps,
            "warmup_norms": list(self._warmup_norms),
            "mean": self.mean,
            "var": self.var,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore statistics (and config) saved by :meth:`state_dict`; the next step continues exactly.

        A state that is not a mapping, lacks a key, or holds a non-finite or negative statistic
        is refused with a typed error before anything changes.
        """
        if not isinstance(state, dict):
            raise ConfigError("ZClip state", _short(state), "the dict returned by ZClip.state_dict()")
        if state.get("version") != STATE_VERSION:
            raise ConfigError("state_dict version", state.get("version"), f"{STATE_VERSION} (a state saved by this ZClip)")
        missing = [k for k in ("config", "steps", "warmup_norms", "mean", "var") if k not in state]
        if missing:
            raise ConfigError("ZClip state", f"a dict without {', '.join(repr(k) for k in missing)}",
                              "the complete dict returned by ZClip.state_dict() (the checkpoint is truncated or from another object)")
        try:
            config = ZClipConfig(**state["config"])
        except TypeError as e:
            raise ConfigError("ZClip state 'config'", state["config"], f"the ZClipConfig fields saved by state_dict() ({e})") from None
        if (state["mean"] is None) != (state["var"] is None):
            raise ConfigError("ZClip state 'mean'/'var'", (state["mean"], state["var"]), "both None (warming up) or both numbers")
        for key in ("mean", "var"):
            value = state[key]
            if value is not None and not math.isfinite(float(value)):
                raise NonFiniteError(f"ZClip state {key!r}", value, fix="load a checkpoint saved before training diverged, or start ZClip afresh")
        if state["var"] is not None and float(state["var"]) < 0:
            raise ConfigError("ZClip state 'var'", state["var"], "a non-negative variance")
        norms = [float(x) for x in state["warmup_norms"]]
        if not all(math.isfinite(x) for x in norms):
            raise NonFiniteError("ZClip state 'warmup_norms'", norms, fix="load a checkpoint saved before training diverged, or start ZClip afresh")
        self.config = config
        self.steps = int(state["steps"])
        self._warmup_norms = norms
        if state["mean"] is None:
            self._mean = self._var = None
        else:
            self._mean = torch.tensor(float(state["mean"]), dtype=torch.float64)
            self._var = torch.tensor(float(state["var"]), dtype=torch.float64)

    def __repr__(self) -> str:
        stats = f"mean={self.mean:.4g}, std={self.var ** 0.5:.4g}" if self.initialized else f"warming up {len(self._warmup_norms)}/{self.config.warmup_steps}"
        return f"ZClip({stats}, steps={self.steps}, config={self.config})"
