"""Activations on disk, streamed in chunks, and the SAE training loop with resume.

    store = ActivationStore.create("acts/", d=320)          # or ActivationWriter as a context manager
    with ActivationWriter("acts/", d=320, shard_size=65536) as w:
        for batch in loader: w.append(acts_of(batch))        # (n, d) float32 chunks
    store = ActivationStore("acts/")
    result = train_sae(sae, store, TrainConfig(steps=10_000, batch_size=4096), checkpoint="ckpt.pt")

Memory: the store is a folder of ``.npy`` shards read through ``numpy.memmap``; an epoch
visits the shards in a seeded random order and shuffles within a window of
``shuffle_shards`` shards, so at most ``shuffle_shards * shard_size`` vectors are in memory
at once whatever the data set's size.

Training (the official trainer's step, dictionary_learning/trainers/batch_top_k.py):
b_dec <- geometric median of the first batch; loss; backward; remove the decoder gradient
parallel to its atoms; clip gradients to norm 1; Adam (0.9, 0.999); LambdaLR (linear warm-up
over ``warmup_steps``, constant, linear decay to 0 from ``decay_start``); re-normalise the
atoms; from ``threshold_start_step`` update theta. Dead latents: no firing in the last
``dead_tokens_threshold`` vectors (counted per latent across steps).

Resume: a checkpoint (saved atomically every ``checkpoint_every`` steps and at the end)
holds the SAE, the optimizer, the step, the per-latent counters and the data position
(epoch and batch index; the order of an epoch is a function of the seed and the epoch),
so an interrupted run resumed from it ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from ...runtime import atomic_write_json, load_checkpoint, save_checkpoint, track
from .sae import BatchTopKSAE, official_lr

MANIFEST = "store.json"


class ActivationWriter:
    """Append (n, d) chunks to a new activation store; the folder is published on close.

    Until ``close()`` (or the end of the ``with`` block without an exception) the data live
    in a hidden staging folder; an exception removes it, so no half-written store remains.
    """

    def __init__(self, folder: str | os.PathLike, d: int, shard_size: int = 65536, dtype: str = "float32"):
        if int(d) < 1 or int(shard_size) < 1:
            raise ConfigError("d / shard_size", (d, shard_size), "positive integers")
        self.folder = Path(folder)
        self.d, self.shard_size, self.dtype = int(d), int(shard_size), np.dtype(dtype)
        self.staging = self.folder.with_name(f".{self.folder.name}.partial")
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        self.shards: list[dict[str, Any]] = []
        self.count = 0
        self.closed = False

    def append(self, chunk: torch.Tensor | np.ndarray) -> None:
        arr = chunk.detach().to("cpu").float().numpy() if isinstance(chunk, torch.Tensor) else np.asarray(chunk)
        if arr.ndim != 2 or arr.shape[1] != self.d:
            raise ShapeError("activation chunk", tuple(arr.shape), f"(n, {self.d})")
        if not np.isfinite(arr).all():
            raise NonFiniteError("activation chunk", "NaN/inf", fix="check the model that produced the activations (e.g. fp16 overflow)")
        self._buffer.append(arr.astype(self.dtype, copy=False))
        self._buffered += len(arr)
        while self._buffered >= self.shard_size:
            self._flush(self.shard_size)

    def _flush(self, n: int) -> None:
        data = np.concatenate(self._buffer, axis=0)
        shard, rest = data[:n], data[n:]
        name = f"shard_{len(self.shards):05d}.npy"
        np.save(self.staging / name, shard)
        self.shards.append({"file": name, "rows": int(len(shard))})
        self.count += len(shard)
        self._buffer = [rest] if len(rest) else []
        self._buffered = len(rest)

    def close(self) -> ActivationStore:
        if self._buffered:
            self._flush(self._buffered)
        manifest = {"format": "reprolab.activations/1", "d": self.d, "dtype": self.dtype.name, "count": self.count, "shards": self.shards}
        atomic_write_json(self.staging / MANIFEST, manifest)
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.staging.rename(self.folder)
        self.closed = True
        return ActivationStore(self.folder)

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ActivationStore:
    """A folder of ``.npy`` shards + ``store.json``; iterate batches with bounded memory."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.exists():
            raise MalformedFile(str(self.folder), f"has no {MANIFEST}", fix="write the store with ActivationWriter (an interrupted write leaves no manifest: write it again)")
        try:
            m = json.loads(path.read_text())
            self.d, self.count, self.shards = int(m["d"]), int(m["count"]), list(m["shards"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise MalformedFile(str(path), f"is not an activation-store manifest ({e})") from None
        if sum(s["rows"] for s in self.shards) != self.count:
            raise MalformedFile(str(path), "shard rows do not add up to count")

    @classmethod
    def from_array(cls, folder: str | os.PathLike, data: torch.Tensor | np.ndarray, shard_size: int = 65536) -> ActivationStore:
        arr = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data)
        if arr.ndim != 2:
            raise ShapeError("activations", tuple(arr.shape), "(n, d)")
        with ActivationWriter(folder, arr.shape[1], shard_size) as w:
            for i in range(0, len(arr), shard_size):
                w.append(arr[i : i + shard_size])
        return cls(folder)

    def __len__(self) -> int:
        return self.count

    def shard(self, i: int) -> np.ndarray:
        """Shard ``i`` as a read-only memory map, shape checked."""
        info = self.shards[i]
        path = self.folder / info["file"]
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise MalformedFile(str(path), f"cannot be read as .npy ({e})", fix="rewrite the store with ActivationWriter") from None
        if arr.shape != (info["rows"], self.d):
            raise MalformedFile(str(path), f"has shape {arr.shape}, the manifest says {(info['rows'], self.d)}")
        return arr

    def read_all(self) -> np.ndarray:
        """Every vector (for small stores only)."""
        return np.concatenate([np.asarray(self.shard(i)) for i in range(len(self.shards))], axis=0)

    def epoch_batches(self, batch_size: int, seed: int, epoch: int, shuffle_shards: int = 4) -> Iterator[np.ndarray]:
        """Batches of one epoch in a seeded order; memory holds at most ``shuffle_shards`` shards.

        The last incomplete batch of each shuffle window is carried into the next window, so
        every batch but the epoch's last has exactly ``batch_size`` rows.
        """
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.shards))
        carry = np.empty((0, self.d), dtype=np.float32)
        for w in range(0, len(order), shuffle_shards):
            window = np.concatenate([carry] + [np.asarray(self.shard(i), dtype=np.float32) for i in order[w : w + shuffle_shards]], axis=0)
            window = window[rng.permutation(len(window))]
            n_full = len(window) // batch_size
            for b in range(n_full):
                yield window[b * batch_size : (b + 1) * batch_size]
            carry = window[n_full * batch_size :]
        if len(carry):
            yield carry


@dataclass(frozen=True)
class TrainConfig:
    """The training loop's settings (official script's values in the comments)."""

    steps: int  # optimizer steps (official 110,000)
    batch_size: int = 4096  # vectors per step (official 4096)
    lr: float | None = None  # None -> 2e-4 / sqrt(omega / 2^14) (official rule)
    warmup_steps: int | None = None  # linear lr warm-up; None -> min(1000, steps // 10) (official 1000 of 110k steps)
    decay_start: int | None = None  # linear decay to 0 from this step (official: steps - 1, i.e. none)
    grad_clip: float = 1.0  # gradient-norm clip (official)
    seed: int = 0  # data order
    shuffle_shards: int = 4  # shuffle window, in shards (memory bound)
    checkpoint_every: int = 500  # steps between checkpoints (when a path is given)
    log_every: int = 10  # steps between recorded losses

    def __post_init__(self) -> None:
        if int(self.steps) < 1:
            raise ConfigError("steps", self.steps, "a positive integer")
        if self.warmup_steps is None:  # short runs get a warm-up shorter than the run (frozen dataclass)
            object.__setattr__(self, "warmup_steps", min(1000, int(self.steps) // 10))
        if int(self.batch_size) < 1:
            raise ConfigError("batch_size", self.batch_size, "a positive integer")
        if not (0 <= self.warmup_steps < max(self.steps, 1)):
            raise ConfigError("warmup_steps", self.warmup_steps, f"an integer in [0, steps={self.steps})")
        if self.decay_start is not None and not (self.warmup_steps < self.decay_start < self.steps):
            raise ConfigError("decay_start", self.decay_start, f"an integer in (warmup_steps, steps={self.steps}) or None")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError("lr", self.lr, "a positive finite number or None (official rule)")

    def lr_factor(self, step: int) -> float:
        """The official schedule: step / warmup, then 1, then (steps - step) / (steps - decay_start)."""
        if step < self.warmup_steps:
            return step / self.warmup_steps
        if self.decay_start is not None and step >= self.decay_start:
            return (self.steps - step) / (self.steps - self.decay_start)
        return 1.0


@dataclass
class TrainResult:
    steps: int
    lr: float
    history: list[dict[str, float]]  # every log_every steps: step, mse, aux, total, dead_fraction, lr
    dead_fraction: float  # latents dead at the end (no firing in the last dead_tokens_threshold vectors)
    vectors_per_second: float  # training throughput of this call (excludes resumed steps)
    resumed_from: int  # step the run resumed from (0 = fresh)
    fired: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # (omega,) vectors on which each latent fired


def effective_threshold_start(threshold_start_step: int, steps: int) -> int:
    """The first step whose batch updates the inference threshold: ``threshold_start_step + 1``
    (the official ``step > threshold_start_step``, 1000 of 110k steps), or 10% into the run when
    the run is shorter than 10 x that, so that every run ends with a learned threshold
    (``encode`` works after any training, however short)."""
    return min(int(threshold_start_step) + 1, int(steps) // 10)


def geometric_median(points: torch.Tensor, max_iter: int = 100, tol: float = 1e-5) -> torch.Tensor:
    """Weiszfeld's algorithm (as the official trainer initialises b_dec)."""
    guess = points.mean(0)
    for _ in range(max_iter):
        prev = guess
        w = 1.0 / (points - guess).norm(dim=1).clamp_min(1e-12)
        guess = (w[:, None] * points).sum(0) / w.sum()
        if (guess - prev).norm() < tol:
            break
    return guess


def train_sae(
    sae: BatchTopKSAE,
    store: ActivationStore,
    config: TrainConfig,
    checkpoint: str | os.PathLike | None = None,
    description: str = "train SAE",
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``sae`` in place on ``store``; resume from ``checkpoint`` when it exists.

    ``stop_after`` ends the call after that many steps *of this call* (an interruption, for
    tests), leaving the checkpoint to resume from. Device: the SAE's.
    """
    if store.d != sae.config.d_in:
        raise ShapeError("activation store", f"(n, {store.d})", f"(n, {sae.config.d_in}) (the SAE's d_in)")
    device = sae.W_dec.device
    lr = config.lr if config.lr is not None else official_lr(sae.width)
    opt = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda=config.lr_factor)
    since_fired = torch.zeros(sae.width, dtype=torch.long, device=device)
    fired = torch.zeros(sae.width, dtype=torch.long, device=device)
    step, epoch, batch_in_epoch = 0, 0, 0
    history: list[dict[str, float]] = []
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    state = load_checkpoint(ckpt_path) if ckpt_path is not None else None
    if state is not None:
        if state.get("config") != sae.config.to_json() or state.get("train") != asdict(config):
            raise MalformedFile(str(ckpt_path), "was written for another SAE or training config", fix="delete it, or pass the checkpoint of this run")
        sae.load_state_dict(state["sae"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        since_fired, fired = state["since_fired"].to(device), state["fired"].to(device)
        step, epoch, batch_in_epoch, history = state["step"], state["epoch"], state["batch_in_epoch"], state["history"]
    resumed_from = step
    threshold_start = effective_threshold_start(sae.config.threshold_start_step, config.steps)

    def save() -> None:
        if ckpt_path is not None:
            save_checkpoint(ckpt_path, {
                "config": sae.config.to_json(), "train": asdict(config), "sae": sae.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "since_fired": since_fired.cpu(), "fired": fired.cpu(), "step": step, "epoch": epoch,
                "batch_in_epoch": batch_in_epoch, "history": history,
            })

    def batches() -> Iterator[np.ndarray]:
        nonlocal epoch, batch_in_epoch
        while True:
            for i, b in enumerate(store.epoch_batches(config.batch_size, config.seed, epoch, config.shuffle_shards)):
                if i < batch_in_epoch:
                    continue  # resume inside an epoch: skip the batches already used
                batch_in_epoch = i + 1
                yield b
            epoch, batch_in_epoch = epoch + 1, 0

    t0, vectors, done = time.perf_counter(), 0, 0
    sae.train()
    data = batches()
    for _ in track(range(step, config.steps), description, total=config.steps - step):
        x = torch.from_numpy(next(data)).to(device)
        if step == 0:
            with torch.no_grad():
                sae.b_dec.copy_(geometric_median(x))
        dead = since_fired >= sae.config.dead_tokens_threshold
        out = sae.training_forward(x, dead)
        if not torch.isfinite(out.loss):
            raise NonFiniteError(f"SAE loss at step {step}", float(out.loss.detach()), fix="lower the learning rate, or check the activations for huge values (normalise them)")
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        sae.remove_parallel_decoder_grad()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), config.grad_clip)
        opt.step()
        sched.step()
        sae.normalize_decoder()
        if step >= threshold_start:
            sae.update_threshold(out.z.detach())
        with torch.no_grad():
            did_fire = (out.z > 0).any(0)
            since_fired += len(x)
            since_fired[did_fire] = 0
            fired += (out.z > 0).sum(0)
        if step % config.log_every == 0 or step == config.steps - 1:
            history.append({"step": step, **out.losses, "dead_fraction": float(dead.float().mean()), "lr": sched.get_last_lr()[0]})
        step += 1
        done += 1
        vectors += len(x)
        if ckpt_path is not None and (step % config.checkpoint_every == 0 or step == config.steps):
            save()
        if stop_after is not None and done >= stop_after:
            save()
            break
    elapsed = time.perf_counter() - t0
    sae.eval()
    dead_end = since_fired >= sae.config.dead_tokens_threshold
    return TrainResult(step, lr, history, float(dead_end.float().mean()), vectors / max(elapsed, 1e-9), resumed_from, fired.cpu().numpy())


@torch.no_grad()
def encode_all(sae: BatchTopKSAE, x: torch.Tensor | np.ndarray, batch_size: int = 4096) -> torch.Tensor:
    """Inference codes of many vectors, in chunks (returns CPU float32 (N, omega))."""
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    dev = sae.W_dec.device
    return torch.cat([sae.encode(xt[i : i + batch_size].to(dev).float()).cpu() for i in range(0, len(xt), batch_size)])
