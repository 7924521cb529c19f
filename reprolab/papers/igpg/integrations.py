"""IGPG on real formats: LoRA adapters of a ``transformers`` model through ``peft``.

The paper also generates LoRA weights (Sec. 4, "LoRA parameter generation"). A LoRA adapter is a
``{name: tensor}`` mapping (``peft.get_peft_model_state_dict``), so it goes through the same
vectorisation, VQ-VAE and prior as a CNN; the generated mapping is loaded back with
``peft.set_peft_model_state_dict``, which refuses names the model does not have.

    from peft import LoraConfig, get_peft_model
    model = get_peft_model(qwen2, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    template = lora_state(model)                             # the adapter's tensors: the "architecture"
    state = generator.generate(instruction, template)[0]     # an IGPG fitted on a zoo of adapters
    load_lora(model, state)                                  # via set_peft_model_state_dict
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...errors import ConfigError, MissingExtra, ShapeError


def _peft():
    try:
        import peft
    except ImportError:
        raise MissingExtra("peft", "igpg") from None
    return peft


def lora_state(model: torch.nn.Module, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """The LoRA tensors of a peft model (names as ``get_peft_model_state_dict`` gives them), detached copies."""
    peft = _peft()
    return {k: v.detach().clone() for k, v in peft.get_peft_model_state_dict(model, adapter_name=adapter_name).items()}


def load_lora(model: torch.nn.Module, state: Mapping[str, torch.Tensor], adapter_name: str = "default") -> torch.nn.Module:
    """Load generated LoRA tensors into a peft model with ``set_peft_model_state_dict``.

    Raises :class:`ConfigError` when a tensor name is not one of the model's adapter tensors and
    :class:`ShapeError` on a shape mismatch (peft itself would only warn)."""
    peft = _peft()
    own = peft.get_peft_model_state_dict(model, adapter_name=adapter_name)
    unknown = [k for k in state if k not in own]
    missing = [k for k in own if k not in state]
    if unknown or missing:
        raise ConfigError("state", f"unknown {unknown[:3]}, missing {missing[:3]}", "the adapter tensors of this peft model (lora_state(model))")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ShapeError(f"LoRA tensor {k!r}", tuple(v.shape), str(tuple(own[k].shape)))
    res = peft.set_peft_model_state_dict(model, dict(state), adapter_name=adapter_name)
    bad = [k for k in getattr(res, "unexpected_keys", []) if "lora" in k]
    if bad:
        raise ConfigError("state", f"unexpected keys {bad[:3]}", "the adapter tensors of this peft model")
    return model
