"""Read and rewrite the output of any named module of a torch / transformers model.

Two context managers; both always remove their hooks on exit, also when the body raises.

    from reprolab.nn.hooks import record_activations, splice

    with record_activations(model, ["vision_model.encoder.layers.3"]) as rec:
        model(pixel_values=x)
    h = rec["vision_model.encoder.layers.3"]          # the module's output (first element of a tuple)

    with splice(model, "_blocks.15", lambda out: sae(out)):   # replace the output by f(output)
        y = model(x)

Module names are those of ``model.named_modules()`` (``"encoder.layers.3"``, ``"_blocks.15"``).
A module that returns a tuple (as transformers layers may) is handled by applying the
recorder / function to its first element (``index=0``) and keeping the rest unchanged;
pass another ``index`` to pick another element, or ``index=None`` to get the raw output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from ..errors import ReprolabError, ShapeError, UnknownName

Reducer = Callable[[torch.Tensor], torch.Tensor]


def get_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` in ``model.named_modules()``; unknown names suggest near matches."""
    modules = dict(model.named_modules())
    if name not in modules:
        raise UnknownName("module", name, module_suggestions(list(modules), name))
    return modules[name]


def module_suggestions(names: list[str], name: str, n: int = 8) -> list[str]:
    """A short list of module names close to ``name``, at any depth: names that end with it or
    that it ends with (a wrapper prefix such as ``vision_model.`` added or dropped across library
    versions), then the closest by string similarity, then the children of its deepest existing parent."""
    import difflib

    names = [m for m in names if m]
    tail = [m for m in names if m.endswith("." + name) or name.endswith("." + m)]
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    parent = name
    while parent and parent not in names:
        parent = parent.rpartition(".")[0]
    depth = parent.count(".") + 1 if parent else 0
    children = [m for m in names if m.count(".") == depth and (not parent or m.startswith(parent + "."))]
    return list(dict.fromkeys(tail + close + children))[: max(n, len(tail) + len(close))]


def _pick(output: Any, index: int | None, name: str) -> torch.Tensor:
    if index is None or isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        if not output or not isinstance(output[index], torch.Tensor):
            raise ShapeError(f"output of module {name!r}", type(output).__name__, f"a tensor at position {index}")
        return output[index]
    if hasattr(output, "__getitem__"):  # transformers ModelOutput
        return output[index]
    raise ShapeError(f"output of module {name!r}", type(output).__name__, "a tensor or a tuple of tensors")


def _replace(output: Any, index: int | None, new: torch.Tensor) -> Any:
    if index is None or isinstance(output, torch.Tensor):
        return new
    if isinstance(output, tuple):
        return output[:index] + (new,) + output[index + 1 :]
    if isinstance(output, list):
        return output[:index] + [new] + output[index + 1 :]
    output[index] = new  # ModelOutput supports item assignment of existing keys
    return output


class ActivationRecorder:
    """What :func:`record_activations` yields: ``rec[name]`` is the concatenation over calls.

    Each forward call appends one tensor per module (after ``reduce``, detached and moved to
    ``device`` if given); ``rec[name]`` concatenates them along dim 0, ``rec.calls[name]``
    keeps them separate.
    """

    def __init__(self, names: list[str]):
        self.calls: dict[str, list[torch.Tensor]] = {n: [] for n in names}

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.calls:
            raise UnknownName("recorded module", name, list(self.calls))
        if not self.calls[name]:
            raise ReprolabError(f"module {name!r} was never called while recording", fix="run a forward pass inside the `with record_activations(...)` block, through the path that uses this module")
        return torch.cat(self.calls[name], dim=0)

    def clear(self) -> None:
        for v in self.calls.values():
            v.clear()


@contextlib.contextmanager
def record_activations(
    model: nn.Module,
    names: str | Iterable[str],
    *,
    reduce: Reducer | None = None,
    index: int | None = 0,
    detach: bool = True,
    device: torch.device | str | None = None,
) -> Iterator[ActivationRecorder]:
    """Record the outputs of the named modules during the forward passes run inside the block.

    ``reduce`` maps each output before storage, e.g. ``lambda h: h[:, 0]`` (a ViT's class
    token) or ``lambda h: h.mean((2, 3))`` (global average pool of a conv map), so memory
    holds only what you need. ``device="cpu"`` moves records off the accelerator.
    """
    names = [names] if isinstance(names, str) else list(names)
    modules = {n: get_module(model, n) for n in names}
    rec = ActivationRecorder(names)
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            out = _pick(output, index, name)
            if reduce is not None:
                out = reduce(out)
            if detach:
                out = out.detach()
            if device is not None:
                out = out.to(device)
            rec.calls[name].append(out)

        return hook

    try:
        for n, m in modules.items():
            handles.append(m.register_forward_hook(make_hook(n)))
        yield rec
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def splice(model: nn.Module, name: str, fn: Callable[[torch.Tensor], torch.Tensor], *, index: int | None = 0, check_shape: bool = True) -> Iterator[nn.Module]:
    """Replace the output ``h`` of module ``name`` by ``fn(h)`` for forward passes inside the block.

    ``fn`` sees the tensor the module returned (the element ``index`` of a tuple output) and
    must return a tensor of the same shape (checked unless ``check_shape=False``); NaN or inf
    in its result raises :class:`~reprolab.errors.NonFiniteError` rather than flowing on. Yields
    the spliced module. The hook is removed on exit, also when the body raises.
    """
    from ..errors import NonFiniteError

    module = get_module(model, name)

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        h = _pick(output, index, name)
        new = fn(h)
        if not isinstance(new, torch.Tensor):
            raise ShapeError(f"splice function output at {name!r}", type(new).__name__, f"a tensor of shape {tuple(h.shape)}")
        if check_shape and new.shape != h.shape:
            raise ShapeError(f"splice function output at {name!r}", tuple(new.shape), f"the module's output shape {tuple(h.shape)}")
        if not torch.isfinite(new).all():
            raise NonFiniteError(f"splice function output at {name!r}", "NaN/inf", fix="check the spliced function (e.g. an SAE with non-finite weights or an edit value of inf)")
        return _replace(output, index, new.to(h.dtype))

    handle = module.register_forward_hook(hook)
    try:
        yield module
    finally:
        handle.remove()
