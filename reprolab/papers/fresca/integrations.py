"""FreSca in diffusers: a denoiser wrapper for any pipeline with batched CFG, and a guider.

Any diffusers pipeline with classifier-free guidance batches ``[uncond, cond]`` through its
denoiser and then computes, in its own ``__call__``,

    noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)

:class:`FreScaDenoiser` wraps the denoiser (``UNet2DConditionModel``, ``UNet2DModel``, a
transformer) and returns ``[eps_u, eps_u + F(eps_c - eps_u)]`` for such a call, so that exact
line becomes ``eps_u + w * F(eps_c - eps_u)``: FreSca, with the pipeline untouched::

    from reprolab.papers.fresca import FreScaConfig, fresca_pipeline
    pipe = StableDiffusionPipeline.from_pretrained(...)
    with fresca_pipeline(pipe, FreScaConfig(scale_low=1.0, scale_high=1.25)):
        image = pipe("a photo of a cat", guidance_scale=7.5).images[0]

For Marigold (no CFG) ``fresca_pipeline(pipe, config, target="prediction")`` applies F to the
denoiser's whole output at every step, as the official Marigold demo does.

:class:`FreScaGuidance` is the same method as a ``diffusers.guiders`` guider (modular
pipelines), a :class:`~diffusers.guiders.ClassifierFreeGuidance` whose ``forward`` scales the
guidance difference.

Limits (stated, not hidden): the wrapper needs the pipeline's CFG to be *one batched call*
with the unconditional half first (every classic diffusers pipeline: SD 1.x/2.x, SDXL, SD3,
PixArt, ...). Pipelines that call the model twice (Flux ``true_cfg``) or batch three ways
(InstructPix2Pix) need the guider or :func:`fresca_guidance`. ``guidance_rescale`` in a
pipeline then rescales against the wrapped conditional half ``eps_u + F(delta)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ...errors import ConfigError, MissingExtra, NonFiniteError, ShapeError
from .fresca import FreScaConfig, frequency_scale

TARGETS = ("guidance", "prediction")
DENOISER_NAMES = ("unet", "transformer")


def _diffusers():
    try:
        import diffusers

        return diffusers
    except ImportError:
        raise MissingExtra("diffusers", "fresca") from None


class FreScaDenoiser(torch.nn.Module):
    """Wraps a denoiser so a pipeline's own CFG line computes FreSca.

    denoiser: the model the pipeline calls (its output may be a tensor, a tuple whose first
        element is the prediction, or a diffusers ``BaseOutput`` with ``.sample``).
    config: :class:`FreScaConfig` (l, h, cut-off, mask).
    target: ``"guidance"`` (default): on a CFG call (batch ``[uncond, cond]``) return
        ``[eps_u, eps_u + F(eps_c - eps_u)]``; ``"prediction"``: return ``F(pred)`` for every call
        (the official Marigold variant).
    is_cfg_call: a function saying whether the current call is a batched CFG call (for a
        pipeline: ``lambda: pipe.do_classifier_free_guidance``). Default: every call is.

    Every other attribute (``config``, ``dtype``, ``device``, ``add_embedding``, ...) is the
    wrapped model's, so the pipeline sees no difference.
    """

    def __init__(self, denoiser: torch.nn.Module, config: FreScaConfig | None = None, target: str = "guidance", is_cfg_call: Callable[[], bool] | None = None):
        super().__init__()
        if target not in TARGETS:
            raise ConfigError("target", target, " or ".join(repr(t) for t in TARGETS))
        self.denoiser = denoiser
        self.fresca = config if config is not None else FreScaConfig()
        if not isinstance(self.fresca, FreScaConfig):
            raise ConfigError("config", type(config).__name__, "a FreScaConfig")
        self.target = target
        self.is_cfg_call = is_cfg_call
        self.enabled = True

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("denoiser"), name)

    def forward(self, sample: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        out = self.denoiser(sample, *args, **kwargs)
        if not self.enabled:
            return out
        pred = _prediction_of(out)
        if self.target == "prediction":
            return _replace_prediction(out, frequency_scale(pred, self.fresca, check_finite=False))  # checked above
        if self.is_cfg_call is not None and not self.is_cfg_call():
            return out
        if self.fresca.is_uniform and self.fresca.scale_low == 1.0:  # l = h = 1: plain CFG, bit for bit
            return out
        if pred.shape[0] % 2:
            raise ShapeError("the denoiser's output in a CFG call", tuple(pred.shape), "an even batch [uncond..., cond...] (is this pipeline's CFG one batched call? pass is_cfg_call, or use FreScaGuidance)")
        uncond, cond = pred.chunk(2)
        # eps_u + F(eps_c - eps_u) in the conditional half: the pipeline's u + w*(c' - u) is then FreSca
        guided_cond = uncond + frequency_scale(cond - uncond, self.fresca, check_finite=False)  # pred checked above
        return _replace_prediction(out, torch.cat([uncond, guided_cond]))


def _prediction_of(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        pred = out
    elif hasattr(out, "sample"):
        pred = out.sample
    elif isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        pred = out[0]
    else:
        raise ShapeError("the denoiser's output", type(out).__name__, "a tensor, a tuple (prediction, ...) or an output with .sample")
    if not torch.isfinite(pred).all():
        raise NonFiniteError("the denoiser's prediction", "NaN or inf entries", fix="the wrapped model produced non-finite values before FreSca; check its weights and dtype")
    return pred


def _replace_prediction(out: Any, new: torch.Tensor) -> Any:
    if isinstance(out, torch.Tensor):
        return new
    if hasattr(out, "sample"):
        return type(out)(**{**out, "sample": new})
    return type(out)([new, *out[1:]]) if isinstance(out, list) else (new, *out[1:])


@contextlib.contextmanager
def fresca_pipeline(pipe: Any, config: FreScaConfig | None = None, target: str = "guidance", denoiser: str | None = None) -> Iterator[FreScaDenoiser]:
    """Run a diffusers pipeline with FreSca inside the ``with`` block; the pipeline is restored after.

    ``denoiser``: the pipeline attribute to wrap (default: the first of ``unet``, ``transformer``).
    The wrapper asks ``pipe.do_classifier_free_guidance`` (when the pipeline has it) whether a
    call is a CFG call, so ``guidance_scale <= 1`` leaves the pipeline's output unchanged.
    """
    name = denoiser or next((n for n in DENOISER_NAMES if getattr(pipe, n, None) is not None), None)
    if name is None or getattr(pipe, name, None) is None:
        raise ConfigError("denoiser", denoiser, f"the name of the pipeline's denoiser attribute (one of {', '.join(DENOISER_NAMES)}, or pass denoiser=...)")
    original = getattr(pipe, name)
    if isinstance(original, FreScaDenoiser):
        raise ConfigError(name, "a FreScaDenoiser", "an unwrapped denoiser (fresca_pipeline blocks do not nest)")
    has_flag = target == "guidance" and hasattr(type(pipe), "do_classifier_free_guidance")
    wrapper = FreScaDenoiser(original, config, target=target, is_cfg_call=(lambda: bool(pipe.do_classifier_free_guidance)) if has_flag else None)
    object.__setattr__(pipe, name, wrapper)  # not through DiffusionPipeline.__setattr__: the config stays as it was
    try:
        yield wrapper
    finally:
        object.__setattr__(pipe, name, original)


def _make_guidance_class():
    guiders = getattr(_diffusers(), "guiders", None)
    if guiders is None or not hasattr(guiders, "ClassifierFreeGuidance"):
        raise MissingExtra("diffusers>=0.35 (diffusers.guiders)", "fresca")
    from diffusers.configuration_utils import register_to_config

    class FreScaGuidance(guiders.ClassifierFreeGuidance):
        """FreSca (arXiv 2504.02154) as a diffusers guider: CFG with the guidance difference frequency-scaled.

        ``pred = pred_uncond + guidance_scale * F(pred_cond - pred_uncond)`` (with
        ``use_original_formulation``: ``pred_cond + guidance_scale * F(...)``), then the optional
        ``guidance_rescale`` exactly as :class:`ClassifierFreeGuidance`. Only ``forward`` differs.
        Guidance stays on at ``guidance_scale == 1`` when ``scale_low != scale_high`` (FreSca then
        still changes the prediction).
        """

        @register_to_config
        def __init__(self, guidance_scale: float = 7.5, scale_low: float = 1.0, scale_high: float = 1.5, freq_cutoff: int = 20, mask: str = "box", guidance_rescale: float = 0.0, use_original_formulation: bool = False, start: float = 0.0, stop: float = 1.0, enabled: bool = True):
            super().__init__(guidance_scale=guidance_scale, guidance_rescale=guidance_rescale, use_original_formulation=use_original_formulation, start=start, stop=stop, enabled=enabled)
            self.fresca = FreScaConfig(scale_low=scale_low, scale_high=scale_high, freq_cutoff=freq_cutoff, mask=mask)

        def forward(self, pred_cond: torch.Tensor, pred_uncond: torch.Tensor | None = None):
            from diffusers.guiders.guider_utils import GuiderOutput, rescale_noise_cfg

            if not self._is_cfg_enabled():
                pred = pred_cond
            else:
                shift = frequency_scale(pred_cond - pred_uncond, self.fresca)  # F(delta)
                pred = (pred_cond if self.use_original_formulation else pred_uncond) + self.guidance_scale * shift
            if self.guidance_rescale > 0.0:
                pred = rescale_noise_cfg(pred, pred_cond, self.guidance_rescale)
            return GuiderOutput(pred=pred, pred_cond=pred_cond, pred_uncond=pred_uncond)

        def _is_cfg_enabled(self) -> bool:
            enabled = super()._is_cfg_enabled()
            if enabled or not self._enabled or self.fresca.is_uniform:
                return enabled
            # CFG's own test says "off" at w == 1 (or 0 for the original form); FreSca is not the identity there
            if self._num_inference_steps is not None:
                lo, hi = int(self._start * self._num_inference_steps), int(self._stop * self._num_inference_steps)
                if not lo <= self._step < hi:
                    return False
            return True

    FreScaGuidance.__module__ = __name__
    return FreScaGuidance


_GUIDANCE_CLASS = None


def __getattr__(name: str):
    global _GUIDANCE_CLASS
    if name == "FreScaGuidance":
        if _GUIDANCE_CLASS is None:
            _GUIDANCE_CLASS = _make_guidance_class()
        return _GUIDANCE_CLASS
    raise AttributeError(name)
