"""A small model zoo in the spirit of the Tiny Model Zoo: tasks, architectures, training, evaluation.

Tasks are 4-way image classification on 28x28 grey images (:data:`N_CLASSES`), drawn from three
offline sources: class subsets of Fashion-MNIST (Debian ``dataset-fashion-mnist``), class subsets of
scikit-learn's digits (8x8, bilinearly upsampled to 28x28) and the ``shape`` / ``texture`` attributes of
:mod:`reprolab.data.shapes` (rendered at 28x28, mean of the RGB channels). A task's label ``k`` is the
``k``-th class of its ``classes`` tuple, in that order (so two tasks with the same classes in a
different order are different tasks: the generator must read the order from the instruction).

Architectures (:data:`ARCHITECTURES`): two small CNNs (1.3k and 1.1k parameters) and an MLP (1.1k); smaller than
the spec sheet's 2-10k because every parameter costs tokens of the prior's sequence on 2 CPU cores.
Zoo members start from a few *shared initialisations* per architecture (seed ``s`` of every task
starts from init ``s``), as model-zoo practice does: it limits permutation symmetry between members,
which a generator over raw weights cannot undo. Training: Adam, lr 3e-3, batch 64, a few epochs.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError, ShapeError

N_CLASSES = 4
IMAGE_SIZE = 28


def cnn_a(n_classes: int = N_CLASSES) -> nn.Module:
    """2 conv layers (3x3) + global average pool + linear: 1,316 parameters."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, n_classes))


def cnn_b(n_classes: int = N_CLASSES) -> nn.Module:
    """5x5 then 3x3 conv + global average pool + linear: 1,136 parameters."""
    return nn.Sequential(nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(8, 12, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, n_classes))


def mlp(n_classes: int = N_CLASSES) -> nn.Module:
    """4x4 average pool to 7x7, then 49 -> 20 -> classes: 1,084 parameters."""
    return nn.Sequential(nn.AvgPool2d(4), nn.Flatten(), nn.Linear(49, 20), nn.ReLU(), nn.Linear(20, n_classes))


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {"cnn_a": cnn_a, "cnn_b": cnn_b, "mlp": mlp}


def build(arch: str, init_seed: int | None = None, n_classes: int = N_CLASSES) -> nn.Module:
    """An architecture of the zoo; with ``init_seed`` its PyTorch default init drawn from that seed."""
    if arch not in ARCHITECTURES:
        raise ConfigError("arch", arch, f"one of {sorted(ARCHITECTURES)}")
    if init_seed is None:
        return ARCHITECTURES[arch](n_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        return ARCHITECTURES[arch](n_classes)


# ----------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """A 4-way task: ``source`` and the ordered ``classes`` (source class ids) its labels 0..3 stand for."""

    source: str  # "fashion", "digits", "shape", "texture"
    classes: tuple[int, ...]

    @property
    def name(self) -> str:
        return f"{self.source}:{'-'.join(map(str, self.classes))}"


@dataclass
class TaskData:
    task: Task
    x_train: torch.Tensor  # (N, 1, 28, 28) float32 in [-1, 1]
    y_train: torch.Tensor  # (N,) int64 in 0..3
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class SourcePool:
    """All images of one source, by source class: train and test pools."""

    train: dict[int, torch.Tensor]
    test: dict[int, torch.Tensor]


def _to_pool(x: np.ndarray, y: np.ndarray) -> dict[int, torch.Tensor]:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1) * 2.0 - 1.0
    return {int(c): t[y == c] for c in np.unique(y)}


def load_sources(sources: tuple[str, ...] = ("fashion", "digits", "shape", "texture"), shapes_n: int = 3000,
                 fashion_limit: int = 20000, seed: int = 0) -> dict[str, SourcePool]:
    """Image pools per source (images in [-1, 1], (n, 1, 28, 28)), read offline."""
    out: dict[str, SourcePool] = {}
    for s in sources:
        if s == "fashion":
            from ...data.fashion_mnist import load_fashion_mnist

            tr, te = load_fashion_mnist("train", limit=fashion_limit), load_fashion_mnist("test")
            out[s] = SourcePool(_to_pool(tr.images / 255.0, tr.labels), _to_pool(te.images / 255.0, te.labels))
        elif s == "digits":
            from sklearn.datasets import load_digits

            d = load_digits()
            x = F.interpolate(torch.from_numpy(d.images / 16.0).float().unsqueeze(1), size=IMAGE_SIZE, mode="bilinear",
                              align_corners=False).squeeze(1).clamp(0, 1).numpy()
            idx = np.random.default_rng(seed).permutation(len(x))
            cut = int(len(x) * 2 / 3)
            out[s] = SourcePool(_to_pool(x[idx[:cut]], d.target[idx[:cut]]), _to_pool(x[idx[cut:]], d.target[idx[cut:]]))
        elif s in ("shape", "texture"):
            from ...data.shapes import ShapesDataset

            tr = ShapesDataset.generate(shapes_n, image_size=IMAGE_SIZE, seed=seed + 11)
            te = ShapesDataset.generate(max(shapes_n // 3, 60), image_size=IMAGE_SIZE, seed=seed + 12)
            out[s] = SourcePool(_to_pool(tr.images.mean(1), tr.labels[s]), _to_pool(te.images.mean(1), te.labels[s]))
        else:
            raise ConfigError("source", s, "'fashion', 'digits', 'shape' or 'texture'")
    return out


SOURCE_CLASSES = {"fashion": 10, "digits": 10, "shape": 6, "texture": 4}


def make_tasks(counts: dict[str, int], seed: int = 0) -> list[Task]:
    """``counts[source]`` distinct seeded ordered 4-class subsets per source (texture: permutations of its 4)."""
    rng = random.Random(seed)
    tasks: list[Task] = []
    for source, n in counts.items():
        if source not in SOURCE_CLASSES:
            raise ConfigError("source", source, f"one of {sorted(SOURCE_CLASSES)}")
        pool = list(itertools.permutations(range(SOURCE_CLASSES[source]), N_CLASSES))
        if n > len(pool):
            raise ConfigError(f"counts[{source!r}]", n, f"at most {len(pool)} tasks")
        seen: set[frozenset[int]] = set()
        picked: list[Task] = []
        for p in rng.sample(pool, len(pool)):
            key = frozenset(p)
            if key in seen and len(seen) < len(pool) and source != "texture":  # prefer distinct class sets
                continue
            seen.add(key)
            picked.append(Task(source, tuple(p)))
            if len(picked) == n:
                break
        tasks += picked
    return tasks


def task_data(task: Task, pools: dict[str, SourcePool], n_train: int, n_test: int, seed: int = 0) -> TaskData:
    """A class-balanced train set of ``n_train`` and test set of ``n_test`` images (seeded)."""
    g = torch.Generator().manual_seed(seed)
    pool = pools[task.source]

    def take(split: dict[int, torch.Tensor], n: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for label, c in enumerate(task.classes):
            imgs = split[c]
            k = min(n // N_CLASSES, len(imgs))
            xs.append(imgs[torch.randperm(len(imgs), generator=g)[:k]])
            ys.append(torch.full((k,), label, dtype=torch.int64))
        return torch.cat(xs), torch.cat(ys)

    xtr, ytr = take(pool.train, n_train)
    xte, yte = take(pool.test, n_test)
    return TaskData(task, xtr, ytr, xte, yte)


# ----------------------------------------------------------------------------- training and evaluation


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    if x.dim() != 4 or len(x) != len(y):
        raise ShapeError("x", tuple(x.shape), "(N, 1, 28, 28) with one label per image")
    model.eval()
    dev = next(model.parameters()).device
    correct = 0
    for i in range(0, len(x), batch):
        out = model(x[i:i + batch].to(dev)).nan_to_num(0.0, 0.0, 0.0)  # a generated net may overflow: score it, do not crash
        correct += int((out.argmax(1).cpu() == y[i:i + batch]).sum())
    return correct / len(x)


@dataclass
class TrainLog:
    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)


def train(model: nn.Module, data: TaskData, steps: int, *, lr: float = 3e-3, batch: int = 64, seed: int = 0,
          eval_every: int = 0, stop_at: float | None = None) -> TrainLog:
    """Adam on shuffled mini-batches for ``steps`` steps; with ``eval_every`` the test accuracy is logged
    (step 0 first) and training stops once it reaches ``stop_at``."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    dev = next(model.parameters()).device
    log = TrainLog()
    n = len(data.x_train)
    perm = torch.randperm(n, generator=g)
    pos = 0

    def check(step: int) -> bool:
        acc = accuracy(model, data.x_test, data.y_test)
        log.steps.append(step)
        log.accuracy.append(acc)
        return stop_at is not None and acc >= stop_at

    if eval_every and check(0):
        return log
    for step in range(1, steps + 1):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + batch]
        pos += batch
        model.train()
        loss = F.cross_entropy(model(data.x_train[idx].to(dev)), data.y_train[idx].to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if eval_every and step % eval_every == 0 and check(step):
            return log
    return log


def steps_to_reach(log: TrainLog, target: float, cap: int) -> int:
    """First logged step whose accuracy reaches ``target``; ``cap`` when none did (censored)."""
    for s, a in zip(log.steps, log.accuracy):
        if a >= target:
            return s
    return cap


@dataclass
class Member:
    task: Task
    arch: str
    seed: int  # also the shared initialisation it started from
    state: dict[str, torch.Tensor]
    accuracy: float


def build_zoo(tasks: list[Task], archs: tuple[str, ...], seeds: tuple[int, ...], datas: dict[str, TaskData], steps: int,
              lr: float = 3e-3, progress: bool = True) -> list[Member]:
    """Train every (task, architecture, seed) member from the shared init ``seed`` of its architecture."""
    from ...runtime import track

    jobs = [(t, a, s) for t in tasks for a in archs for s in seeds]
    out = []
    for t, a, s in (track(jobs, "igpg: model zoo") if progress else jobs):
        model = build(a, init_seed=1000 + s)
        train(model, datas[t.name], steps, lr=lr, seed=s)
        out.append(Member(t, a, s, {k: v.detach().clone() for k, v in model.state_dict().items()},
                          accuracy(model, datas[t.name].x_test, datas[t.name].y_test)))
    return out
