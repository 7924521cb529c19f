"""ZClip in Lightning and in the Hugging Face Trainer (both imported lazily).

Lightning::

    trainer = lightning.Trainer(callbacks=[ZClipLightningCallback(max_grad_norm=None)])

Hugging Face::

    args = TrainingArguments(..., max_grad_norm=0.0)   # turn the Trainer's fixed clipping off
    trainer = Trainer(model, args, callbacks=[ZClipTrainerCallback(max_grad_norm=None)])

Both call :meth:`ZClip.step` exactly once per optimizer step, after gradients are final
(after accumulation and, with AMP, after unscaling), and before ``optimizer.step()``.
Their ZClip statistics are saved in checkpoints (Lightning: the callback's state_dict;
HF: ``zclip_state.pt`` in each checkpoint folder) and restored on resume.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ...errors import MissingExtra
from .zclip import ZClip, ZClipConfig


def _lightning():
    try:
        import lightning

        return lightning
    except ImportError:
        try:
            import pytorch_lightning as lightning

            return lightning
        except ImportError:
            raise MissingExtra("lightning", "zclip") from None


def _transformers():
    try:
        import transformers

        return transformers
    except ImportError:
        raise MissingExtra("transformers", "zclip") from None


def _make_lightning_callback_class():
    L = _lightning()

    class ZClipLightningCallback(L.Callback):
        """Applies ZClip in ``on_before_optimizer_step``; one ZClip per optimizer.

        The official callback clips all of ``pl_module``'s parameters with one ZClip; with
        several optimizers that updates its statistics several times per step. We keep one
        ZClip per optimizer and clip only that optimizer's parameters.
        """

        def __init__(self, config: ZClipConfig | None = None, **overrides: Any):
            super().__init__()
            self.config = ZClip(config, **overrides).config
            self.zclips: dict[int, ZClip] = {}
            self.last_step = None

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            if getattr(trainer, "gradient_clip_val", None):
                warnings.warn(
                    f"Trainer(gradient_clip_val={trainer.gradient_clip_val}) clips before ZClip does; set it to None to use ZClip alone",
                    stacklevel=2,
                )

        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            try:
                index = trainer.optimizers.index(optimizer)
            except (ValueError, AttributeError):
                index = 0
            zclip = self.zclips.setdefault(index, ZClip(self.config))
            self.last_step = zclip.step(optimizer)
            if pl_module is not None and hasattr(pl_module, "log") and getattr(trainer, "_logger_connector", None) is not None:
                try:
                    pl_module.log(f"zclip/grad_norm_{index}", self.last_step.grad_norm.float(), on_step=True, prog_bar=False)
                except Exception:  # logging is best-effort (e.g. outside a training step)
                    pass

        def state_dict(self) -> dict[str, Any]:
            return {str(i): z.state_dict() for i, z in self.zclips.items()}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            for i, s in state_dict.items():
                z = ZClip(self.config)
                z.load_state_dict(s)
                self.zclips[int(i)] = z

    return ZClipLightningCallback


def _make_trainer_callback_class():
    transformers = _transformers()

    class ZClipTrainerCallback(transformers.TrainerCallback):
        """Applies ZClip in ``on_pre_optimizer_step`` of a ``transformers.Trainer``.

        The Trainer clips to ``args.max_grad_norm`` *before* this hook; set it to 0 to run
        ZClip alone (a warning says so otherwise).
        """

        STATE_FILE = "zclip_state.pt"

        def __init__(self, config: ZClipConfig | None = None, **overrides: Any):
            self.zclip = ZClip(config, **overrides)
            self.last_step = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if getattr(args, "max_grad_norm", 0) and args.max_grad_norm > 0:
                warnings.warn(
                    f"TrainingArguments(max_grad_norm={args.max_grad_norm}) clips before ZClip does; set max_grad_norm=0 to use ZClip alone",
                    stacklevel=2,
                )
            resume = getattr(args, "resume_from_checkpoint", None)
            if isinstance(resume, str) and (Path(resume) / self.STATE_FILE).exists():
                self.load(Path(resume) / self.STATE_FILE)

        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            target = kwargs.get("optimizer") or kwargs.get("model")
            if target is None:
                raise RuntimeError("the Trainer passed neither optimizer nor model to on_pre_optimizer_step")
            self.last_step = self.zclip.step(target)

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            import torch

            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.exists():
                torch.save(self.zclip.state_dict(), folder / self.STATE_FILE)

        def load(self, path: str | Path) -> None:
            import torch

            self.zclip.load_state_dict(torch.load(path, weights_only=False))

    return ZClipTrainerCallback


_cache: dict[str, type] = {}


def __getattr__(name: str) -> type:
    makers = {"ZClipLightningCallback": _make_lightning_callback_class, "ZClipTrainerCallback": _make_trainer_callback_class}
    if name in makers:
        if name not in _cache:
            _cache[name] = makers[name]()
        return _cache[name]
    raise AttributeError(name)
