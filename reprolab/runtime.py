"""What every study and method needs from its surroundings.

Seeding, thread count, device choice, progress bars, atomic writes, checkpoints, and a
record of the machine and library versions that produced a result.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

# ----------------------------------------------------------------------------- seeding, device


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch Generator seeded the same way."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op threads (default: the ``REPROLAB_THREADS`` variable, else all cores), and keep freed
    memory for reuse (:func:`keep_freed_memory`): every study, unit and bench starts here."""
    if n is None:
        n = int(os.environ.get("REPROLAB_THREADS", os.cpu_count() or 1))
    import torch

    torch.set_num_threads(max(1, n))
    keep_freed_memory()
    return torch.get_num_threads()


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse instead of returning it to the system (blocks up to
    32 MiB from the heap, no trimming). Large tensors freed and allocated again at every step are otherwise fresh
    pages each time, and every first touch is a page fault: in a virtual machine these dominate memory-bound work
    (ACTalker's selective scan, 64 x 256 x 66 x 8 states, forward + backward on 2 threads: about 50,000 faults and
    240-330 ms per call, 0 faults and 130-160 ms with this; 2026-12-02). Peak memory is unchanged; the process keeps
    what it freed. Returns whether it applied (glibc on Linux only); ``REPROLAB_KEEP_FREED_MEMORY=0`` turns it off."""
    if os.environ.get("REPROLAB_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) == 1
        return ok and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[int]:
    """Run a block with ``n`` intra-op torch threads, then restore the previous setting. For studies of
    many tiny tensor ops: on a shared 2-core machine two threads wait at every op's barrier and run such
    work several times slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend: studies draw their figures headless."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def default_device() -> torch.device:
    """CUDA when present, else CPU (override with ``REPROLAB_DEVICE``)."""
    import torch

    if "REPROLAB_DEVICE" in os.environ:
        return torch.device(os.environ["REPROLAB_DEVICE"])
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------- progress

_live_progress = None  # the one rich Progress on screen; nested bars become its tasks


def _progress_enabled() -> bool:
    return os.environ.get("REPROLAB_PROGRESS", "1") != "0"


@contextlib.contextmanager
def progress_display() -> Iterator[Any]:
    """Open one progress display; every :func:`track` inside it adds a row to it."""
    global _live_progress
    if _live_progress is not None or not _progress_enabled():
        yield _live_progress
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        transient=False,
    )
    _live_progress = progress
    try:
        with progress:
            yield progress
    finally:
        _live_progress = None


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` with a progress bar (a row of the open display, or a display of its own)."""
    if not _progress_enabled():
        yield from items
        return
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_display() as progress:
        task = progress.add_task(description, total=total)
        nested = len(progress.tasks) > 1
        try:
            for item in items:
                yield item
                progress.advance(task)
        finally:
            if nested:  # inner bars disappear when done so the display stays short
                progress.remove_task(task)


def _one_thread_worker() -> None:
    import torch

    os.environ["REPROLAB_PROGRESS"] = "0"
    torch.set_num_threads(1)
    keep_freed_memory()


def process_map(fn: Any, jobs: list[Any], description: str, parallel: bool = True) -> list[Any]:
    """``[fn(job) for job in jobs]``, in spawned worker processes of one torch thread each (as many as this
    process has torch threads) when ``parallel`` and that is more than one, else inline. ``fn`` and the jobs
    must pickle (a module-level function). Results come back in job order."""
    import torch

    workers = min(len(jobs), torch.get_num_threads()) if parallel else 1
    if workers <= 1:
        return [fn(j) for j in track(jobs, description)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread_worker) as ex:
        return list(track(ex.map(fn, jobs), f"{description} (parallel)", total=len(jobs)))


def thread_map(fn: Any, items: Iterable[Any], max_workers: int, description: str | None = None) -> list[Any]:
    """``[fn(x) for x in items]`` with at most ``max_workers`` threads (for I/O-bound calls such as requests to an
    HTTP model server), results in item order; a progress bar as results arrive when ``description`` is given.
    One worker (or one item) runs inline."""
    items = list(items)
    if max_workers <= 1 or len(items) <= 1:
        return [fn(x) for x in (track(items, description) if description else items)]
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=min(max_workers, len(items))) as pool:
        futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
        done = as_completed(futures)
        got = {futures[f]: f.result() for f in (track(done, description, total=len(items)) if description else done)}
    return [got[i] for i in range(len(items))]


# ----------------------------------------------------------------------------- atomic files


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _is_tensor(obj: Any) -> bool:
    """A torch tensor, without importing torch (a process that never loaded it holds none)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if _is_tensor(obj):
        return obj.detach().cpu().tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "value"):  # enums
        return obj.value
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def plain_tree(obj: Any, where: str = "result") -> Any:
    """A copy of a nested structure with numpy / torch numbers and arrays turned into plain
    Python ones, refusing NaN or infinity of any type (JSON has no honest spelling for them)."""
    from .errors import NonFiniteError

    if _is_tensor(obj):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, (np.floating, np.integer, np.bool_)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        raise NonFiniteError(where, obj, fix="the study produced a non-finite number; record it as None with a reason")
    if isinstance(obj, dict):
        return {k: plain_tree(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_tree(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def check_finite_tree(obj: Any, where: str = "result") -> None:
    """Refuse NaN/inf anywhere in a nested structure of numbers (Python, numpy or torch)."""
    plain_tree(obj, where)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Save a torch checkpoint atomically (a crash mid-save leaves the previous one intact)."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """Load a checkpoint written by :func:`save_checkpoint`, or None if there is none."""
    path = Path(path)
    if not path.exists():
        return None
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def resume_training(path: str | os.PathLike | None, model: Any, optimizer: Any, ema: list | None, generator: Any) -> tuple[int, Any] | None:
    """Restore a training loop from a checkpoint written by :func:`save_training`: the model's and the
    optimizer's state, the EMA copies (when both sides keep them) and the noise generator, in place.
    Returns ``(step, losses)`` to continue from, or None when there is no checkpoint (or ``path`` is None)."""
    state = load_checkpoint(path) if path is not None else None
    if state is None:
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state.get("ema") is not None:
        for e, saved in zip(ema, state["ema"]):
            e.copy_(saved)
    generator.set_state(state["generator"])
    return int(state["step"]), state["losses"]


def save_training(path: str | os.PathLike | None, model: Any, optimizer: Any, ema: list | None, generator: Any, step: int,
                  losses: Any, config: Any) -> None:
    """Checkpoint a training loop atomically (what :func:`resume_training` restores); nothing when ``path`` is None."""
    if path is not None:
        save_checkpoint(path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "ema": ema, "losses": losses,
                               "generator": generator.get_state(), "step": step, "config": config})


def readable_file(path: str | os.PathLike, what: str, fix: str) -> Path:
    """``path`` as a Path if it names a regular file this process can open for reading; else the
    typed one-line error :class:`~reprolab.errors.MalformedFile` (the CLI exits 2 with it) naming
    the file, what is wrong (missing, a folder, unreadable) and ``fix``. For every input file a
    user passes on the command line or to a loader."""
    from .errors import MalformedFile

    p = Path(path)
    if not p.exists():
        raise MalformedFile(str(p), f"no such {what} file", fix=fix)
    if not p.is_file():
        raise MalformedFile(str(p), f"not a regular file, so not a {what} file (a folder or a device?)", fix=fix)
    try:
        with open(p, "rb") as f:
            f.read(1)
    except OSError as e:
        raise MalformedFile(str(p), f"cannot read the {what} file ({e.strerror or e})", fix=fix) from None
    return p


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and prove it is writable, else raise :class:`OutputNotWritable`."""
    from .errors import OutputNotWritable

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe."):
            pass
    except OSError as e:
        raise OutputNotWritable(str(path), e.strerror or type(e).__name__) from None
    return path


# ----------------------------------------------------------------------------- provenance


def library_versions(extra: Iterable[str] = (), imported: bool = False) -> dict[str, str]:
    """Versions of python, reprolab, torch, numpy and ``extra``; with ``imported=True`` also of
    every installed distribution that provides a module imported in this process (what a study
    actually ran on: transformers, diffusers, llama_cpp, ...)."""
    from importlib import metadata

    names = {"reprolab", "torch", "numpy", *extra}
    if imported:
        providers = metadata.packages_distributions()
        for mod in list(sys.modules):
            top = mod.partition(".")[0]
            names.update(providers.get(top, ()))
    out = {"python": platform.python_version()}
    for n in sorted(names, key=str.lower):
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "not installed"
    return out


def git_commit(path: str | os.PathLike | None = None) -> str:
    """The commit of the checkout this package runs from, with ``+dirty`` when files differ; ""
    outside a git checkout (an installed wheel) or without git."""
    import subprocess

    here = Path(path) if path else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return ""
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "executable": sys.executable,
    }
    return info


def interleaved_timings(calls: dict[str, Any], repeats: int, warmup: int = 3, setup: Any = None) -> dict[str, list[float]]:
    """Seconds per call of each function, measured round-robin so drift hits every variant alike.

    ``setup()`` (untimed) runs before every timed call, e.g. to restore gradients a call mutates.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(warmup + repeats):
        for name, fn in calls.items():
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(dt)
    return times


def median_iqr(xs: list[float]) -> tuple[float, float]:
    q1, med, q3 = np.percentile(np.asarray(xs), [25, 50, 75])
    return float(med), float(q3 - q1)
