"""Network weights <-> fixed-size chunks, with a manifest to undo it (IGPG Sec. 3.1, "vectorisation").

Per layer the paper flattens the weight then the bias and concatenates them; *layer-wise* order pads
each layer's vector to a multiple of the chunk size on its own (a chunk never mixes two layers),
*architecture-wise* order concatenates all layers and pads once at the end. The :class:`Manifest`
keeps every tensor's name, shape, dtype and offset, so :func:`chunks_to_state_dict` returns exactly the
tensors :func:`state_dict_to_chunks` was given (tested bit for bit).

"Layer" here is the module that owns the parameters: tensors whose names share the prefix before the
last dot (``features.0.weight``, ``features.0.bias``) form one layer, in ``state_dict`` order with the
weight before the bias (the paper's order). Buffers (BatchNorm statistics) are left out unless
``include_buffers=True``. Any ``nn.Module`` or a plain ``{name: tensor}`` mapping (a peft LoRA
state dict) is accepted.

Scaling: the official data loader multiplies weights by ``scale`` (1-10) before the VQ-VAE; the
manifest carries the scale and :func:`chunks_to_state_dict` divides it back out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from ...errors import ConfigError, MalformedFile, NonFiniteError, ShapeError

Order = Literal["layer", "architecture"]


@dataclass(frozen=True)
class TensorEntry:
    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int  # position of the tensor's first value in the padded flat vector
    layer: str
    scale: float = 1.0  # the tensor was multiplied by this (per-tensor standardisation) before chunking


@dataclass(frozen=True)
class Manifest:
    """How a network was flattened: its tensors, the order, the chunk size, the padded length."""

    entries: tuple[TensorEntry, ...]
    order: str
    chunk_size: int
    n_chunks: int
    scale: float = 1.0

    @property
    def n_params(self) -> int:
        return sum(math.prod(e.shape) for e in self.entries)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def layers(self) -> list[str]:
        seen: list[str] = []
        for e in self.entries:
            if e.layer not in seen:
                seen.append(e.layer)
        return seen

    def to_json(self) -> str:
        d = asdict(self)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            d = json.loads(text)
            entries = tuple(TensorEntry(e["name"], tuple(e["shape"]), e["dtype"], int(e["offset"]), e["layer"], float(e.get("scale", 1.0)))
                            for e in d["entries"])
            return cls(entries, d["order"], int(d["chunk_size"]), int(d["n_chunks"]), float(d.get("scale", 1.0)))
        except (ValueError, KeyError, TypeError) as e:
            raise MalformedFile("manifest", f"not an IGPG manifest ({type(e).__name__}: {e})",
                                fix="pass the manifest written by state_dict_to_chunks / save_generated") from None

    def same_layout(self, other: Manifest) -> bool:
        return (self.entries, self.order, self.chunk_size, self.n_chunks) == (other.entries, other.order, other.chunk_size, other.n_chunks)


def named_tensors(model: nn.Module | Mapping[str, torch.Tensor], include_buffers: bool = False) -> dict[str, torch.Tensor]:
    """The tensors to vectorise, in order: parameters (and buffers if asked) of a module, or a mapping."""
    if isinstance(model, nn.Module):
        out = dict(model.named_parameters())
        if include_buffers:
            out.update({k: v for k, v in model.named_buffers() if v.is_floating_point()})
        return out
    if not isinstance(model, Mapping):
        raise ConfigError("model", type(model).__name__, "an nn.Module or a {name: tensor} mapping")
    for k, v in model.items():
        if not isinstance(v, torch.Tensor):
            raise ConfigError(f"model[{k!r}]", type(v).__name__, "a torch.Tensor")
    return dict(model)


def _layer_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def _grouped(tensors: dict[str, torch.Tensor]) -> list[tuple[str, list[str]]]:
    """Layers in first-appearance order; inside a layer, weight-like tensors before biases (paper order)."""
    groups: dict[str, list[str]] = {}
    for name in tensors:
        groups.setdefault(_layer_of(name), []).append(name)
    return [(layer, sorted(names, key=lambda n: n.endswith("bias"))) for layer, names in groups.items()]


def state_dict_to_chunks(model: nn.Module | Mapping[str, torch.Tensor], chunk_size: int, order: Order = "layer",
                         scale: float = 1.0, include_buffers: bool = False,
                         tensor_scales: Mapping[str, float] | None = None) -> tuple[torch.Tensor, Manifest]:
    """Flatten ``model``'s tensors into ``(n_chunks, chunk_size)`` float32 chunks (zero-padded), times ``scale``
    and, per tensor, times ``tensor_scales[name]`` (e.g. 1 / the zoo's std of that tensor; default 1)."""
    if chunk_size < 1:
        raise ConfigError("chunk_size", chunk_size, "a positive number of values")
    if order not in ("layer", "architecture"):
        raise ConfigError("order", order, "'layer' or 'architecture'")
    if not (math.isfinite(scale) and scale > 0):
        raise ConfigError("scale", scale, "a positive finite number")
    tensors = named_tensors(model, include_buffers)
    if not tensors:
        raise ConfigError("model", "no tensors", "a model with parameters")
    pieces: list[torch.Tensor] = []
    entries: list[TensorEntry] = []
    offset = 0
    for layer, names in _grouped(tensors):
        for name in names:
            t = tensors[name].detach()
            if not t.is_floating_point():
                raise ConfigError(name, str(t.dtype), "floating-point tensors only")
            if not torch.isfinite(t).all():
                raise NonFiniteError(f"tensor {name!r}", t[~torch.isfinite(t)][:3].tolist(), fix="repair the model before vectorising it")
            ts = float((tensor_scales or {}).get(name, 1.0))
            if not (math.isfinite(ts) and ts > 0):
                raise ConfigError(f"tensor_scales[{name!r}]", ts, "a positive finite factor")
            flat = t.reshape(-1).to(torch.float32).cpu() * ts
            entries.append(TensorEntry(name, tuple(t.shape), str(t.dtype).replace("torch.", ""), offset, layer, ts))
            pieces.append(flat)
            offset += flat.numel()
        if order == "layer" and offset % chunk_size:
            pad = chunk_size - offset % chunk_size
            pieces.append(torch.zeros(pad))
            offset += pad
    if offset % chunk_size:
        pad = chunk_size - offset % chunk_size
        pieces.append(torch.zeros(pad))
        offset += pad
    vec = torch.cat(pieces) * scale
    return vec.view(-1, chunk_size), Manifest(tuple(entries), order, chunk_size, offset // chunk_size, float(scale))


def chunks_to_state_dict(chunks: torch.Tensor, manifest: Manifest) -> dict[str, torch.Tensor]:
    """Undo :func:`state_dict_to_chunks`: ``(n_chunks, chunk_size)`` -> ``{name: tensor}`` in the original dtypes."""
    want = (manifest.n_chunks, manifest.chunk_size)
    if chunks.dim() != 2 or tuple(chunks.shape) != want:
        raise ShapeError("chunks", tuple(chunks.shape), f"{want} (this manifest's layout)")
    if not torch.isfinite(chunks).all():
        raise NonFiniteError("generated chunks", chunks[~torch.isfinite(chunks)][:3].tolist(),
                             fix="the decoder produced NaN/inf: check the VQ-VAE checkpoint")
    vec = chunks.reshape(-1) / manifest.scale
    out = {}
    for e in manifest.entries:
        n = math.prod(e.shape)
        out[e.name] = (vec[e.offset:e.offset + n] / e.scale).reshape(e.shape).to(getattr(torch, e.dtype)).clone()
    return out


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor]) -> nn.Module:
    """Copy generated tensors into ``model`` (parameters only need be present; buffers are kept), on the model's device."""
    own = dict(model.named_parameters()) | dict(model.named_buffers())
    missing = [k for k in dict(model.named_parameters()) if k not in state]
    unknown = [k for k in state if k not in own]
    if missing or unknown:
        raise ConfigError("state", f"missing {missing[:3]}, unknown {unknown[:3]}", "the tensors of this architecture (same names)")
    with torch.no_grad():
        for k, v in state.items():
            if tuple(own[k].shape) != tuple(v.shape):
                raise ShapeError(f"tensor {k!r}", tuple(v.shape), str(tuple(own[k].shape)))
            own[k].copy_(v.to(own[k].device, own[k].dtype))
    return model
