"""ZClip in Lightning and in the Hugging Face Trainer (both imported lazily).

Lightning::

    trainer = lightning.Trainer(callbacks=[ZClipLightningCallback(max_grad_norm=None)])

Hugging Face::

    args = TrainingArguments(..., max_grad_norm=0.0)   # turn the Trainer's fixed clipping off
    trainer = Trainer(model, args, callbacks=[ZClipTrainerCallback(max_grad_norm=None)])

Both call :meth:`ZClip.step` exactly once per optimizer step, after gradients are final
(after accumulation and, with AMP, after unscaling), and before ``optimizer.step()``.
Their ZClip statistics are saved in checkpoints (Lightning: the callback's state_dict;
HF: the callback's entry in ``trainer_state.json``) and restored on resume.

Distributed: under DDP (Lightning ``strategy="ddp"``, the HF Trainer under ``torchrun``) each
rank's gradients are already averaged when the hooks run, so every rank's ZClip sees the same
global norm, scales by the same factor and keeps the same statistics. Lightning's FSDP
strategy: the callback passes the root FSDP module's process group, so the norm is summed over
the shards; the HF Trainer's FSDP (through Accelerate) is not tested here.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ...errors import ConfigError, MissingExtra
import torch

from .zclip import ZClip, ZClipConfig, _sharded_group


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
            # Lightning's FSDP strategy shards gradients: sum the squared norms over its process group
            # (under DDP the gradients are already averaged, every rank sees the global norm).
            root = getattr(getattr(trainer, "strategy", None), "model", None)
            group = _sharded_group(root) if isinstance(root, torch.nn.Module) else None
            self.last_step = zclip.step(optimizer, process_group=group)
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

    class ZClipTrainerCallback(transformers.TrainerCallback, transformers.trainer_callback.ExportableState):
        """Applies ZClip in ``on_pre_optimizer_step`` of a ``transformers.Trainer``.

        The Trainer clips to ``args.max_grad_norm`` *before* this hook; set it to 0 to run
        ZClip alone (a warning says so otherwise).

        Resume: ZClip's statistics are saved with every checkpoint in ``trainer_state.json``
        (the Trainer's ``stateful_callbacks``, as ``ExportableState``), and restored in
        ``on_train_begin`` from the state the Trainer loaded, so
        ``trainer.train(resume_from_checkpoint=path)`` and ``resume_from_checkpoint=True``
        both continue ZClip exactly where the checkpoint left it (the Trainer loads the state
        before ``on_train_begin``). One ZClipTrainerCallback per Trainer. Under DDP every rank
        holds the same (averaged) gradients, so every rank's ZClip takes the same decision.
        """

        STATE_FILE = "zclip_state.pt"  # written by earlier versions; still read on resume when present

        def __init__(self, config: ZClipConfig | None = None, **overrides: Any):
            self.zclip = ZClip(config, **overrides)
            self.last_step = None
            self.restored_from: str | None = None  # where the statistics came from on resume

        def state(self) -> dict[str, Any]:
            """What the Trainer saves in ``trainer_state.json`` (JSON: floats round-trip exactly)."""
            import dataclasses

            return {"args": dataclasses.asdict(self.zclip.config), "attributes": {"_saved_zclip_state": self.zclip.state_dict()}}

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if getattr(args, "max_grad_norm", 0) and args.max_grad_norm > 0:
                warnings.warn(
                    f"TrainingArguments(max_grad_norm={args.max_grad_norm}) clips before ZClip does; set max_grad_norm=0 to use ZClip alone",
                    stacklevel=2,
                )
            saved = getattr(self, "_saved_zclip_state", None)  # set by the Trainer's restore_callback_states_from_checkpoint
            stored = (getattr(state, "stateful_callbacks", None) or {}).get(type(self).__name__) if state is not None else None
            if isinstance(stored, list):
                if len(stored) > 1:
                    raise ConfigError("ZClipTrainerCallback", f"{len(stored)} saved states in the checkpoint", "one ZClipTrainerCallback per Trainer")
                stored = stored[0] if stored else None
            if saved is None and isinstance(stored, dict):
                saved = stored.get("attributes", {}).get("_saved_zclip_state")
            if saved is not None:
                self.zclip.load_state_dict(saved)
                self.restored_from = "trainer_state.json"
                self._saved_zclip_state = None
                return
            resume = getattr(args, "resume_from_checkpoint", None)  # checkpoints written before the state moved
            if state is not None and getattr(state, "global_step", 0) > 0 and isinstance(resume, str) and (Path(resume) / self.STATE_FILE).exists():
                self.load(Path(resume) / self.STATE_FILE)
                self.restored_from = str(Path(resume) / self.STATE_FILE)

        def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            target = kwargs.get("optimizer") or kwargs.get("model")
            if target is None:
                raise ConfigError("on_pre_optimizer_step arguments", sorted(kwargs), "the Trainer's optimizer or model (transformers >= 4.41 passes both)")
            self.last_step = self.zclip.step(target)

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
