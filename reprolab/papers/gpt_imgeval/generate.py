"""Filling a GenEval image folder from a text-to-image generator (a diffusers pipeline or any callable).

The folder layout is GenEval's (``generation/diffusers_generate.py`` and its README)::

    outdir/00000/metadata.jsonl        the prompt's line of evaluation_metadata.jsonl (one JSON object)
    outdir/00000/samples/0000.png      n_samples images per prompt
    ...

As in the official script, the random state is reset to ``seed`` before every prompt (so a
prompt's images do not depend on which prompts came before it). Every file is written
atomically, and a prompt folder that already holds ``n_samples`` images and the same metadata
is skipped, so an interrupted run resumes where it stopped.

``generator`` is either a diffusers ``DiffusionPipeline`` (called as
``pipe(prompt=..., num_images_per_prompt=k, generator=torch.Generator(device).manual_seed(seed), **call_kwargs).images``)
or any callable ``fn(prompt, n, seed) -> list of images`` (PIL images, (H, W, 3) uint8 or (3, H, W) floats).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ...errors import ConfigError, MalformedFile
from ...runtime import atomic_write_text, ensure_writable_dir, track
from .geneval import check_metadata, save_image


class PipelineGenerator:
    """``fn(prompt, n, seed)`` over a diffusers text-to-image pipeline."""

    def __init__(self, pipeline: Any, **call_kwargs: Any):
        self.pipeline = pipeline
        self.call_kwargs = call_kwargs

    def __call__(self, prompt: str, n: int, seed: int) -> list[Any]:
        device = getattr(self.pipeline, "device", torch.device("cpu"))
        gen = torch.Generator(device=device).manual_seed(int(seed))
        out = self.pipeline(prompt=prompt, num_images_per_prompt=n, generator=gen, **self.call_kwargs)
        images = getattr(out, "images", out)
        if images is None or len(images) != n:
            raise MalformedFile("the pipeline's output", f"{0 if images is None else len(images)} images for {n} asked", fix="a text-to-image pipeline returning .images")
        return list(images)


def _is_diffusers_pipeline(obj: Any) -> bool:
    """A diffusers ``DiffusionPipeline`` (checked by class name, so that diffusers is not imported for plain callables)."""
    return any(c.__name__ == "DiffusionPipeline" and c.__module__.startswith("diffusers") for c in type(obj).__mro__)


def _as_generator(generator: Any, call_kwargs: Mapping[str, Any]) -> Callable[[str, int, int], list[Any]]:
    if _is_diffusers_pipeline(generator):
        return PipelineGenerator(generator, **call_kwargs)
    if not callable(generator):
        raise ConfigError("generator", type(generator).__name__, "a diffusers pipeline or a callable fn(prompt, n, seed) -> images")
    return generator


def fill_folder(generator: Any, metadatas: Sequence[Mapping[str, Any]], outdir: str | Path, *, n_samples: int = 4, seed: int = 42,
                batch_size: int | None = None, **call_kwargs: Any) -> Path:
    """Generate ``n_samples`` images per prompt into GenEval's folder layout (see the module docstring)."""
    if n_samples < 1:
        raise ConfigError("n_samples", n_samples, "a positive number of images per prompt")
    root = ensure_writable_dir(outdir)
    fn = _as_generator(generator, call_kwargs)
    batch = batch_size or n_samples
    for index, metadata in track(list(enumerate(metadatas)), "generating GenEval images", total=len(metadatas)):
        check_metadata(dict(metadata), f"prompt {index}")
        folder = root / f"{index:0>5}"
        samples = folder / "samples"
        text = json.dumps(dict(metadata))
        meta_file = folder / "metadata.jsonl"
        if meta_file.exists() and meta_file.read_text() == text and all((samples / f"{k:04}.png").exists() for k in range(n_samples)):
            continue
        samples.mkdir(parents=True, exist_ok=True)
        atomic_write_text(meta_file, text)
        count = 0
        while count < n_samples:
            k = min(batch, n_samples - count)
            images = fn(metadata["prompt"], k, seed + count)
            if len(images) != k:
                raise MalformedFile("the generator's output", f"{len(images)} images for {k} asked", fix="return exactly n images")
            for im in images:
                save_image(samples / f"{count:04}.png", im)
                count += 1
    return root
