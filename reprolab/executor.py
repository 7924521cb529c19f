"""Run studies, and the independent units of a study, each in a process of its own; locally or on Ray.

Why processes (issue 22): studies load native runtimes that do not share a machine politely.
Whisper-LM's CTranslate2 brings Intel's OpenMP, torch brings GNU's; once both are loaded in one
process their idle threads spin against each other, and ZClip ran at 174-218 s after Whisper-LM
inside ``reprolab demo`` against 98 s alone. Threads and OpenMP settings must be fixed before any
of these libraries loads, which only a fresh process guarantees.

What runs where:

- a study without units (:meth:`reprolab.study.Study.units` returns ``[]``): one process,
  ``python -m reprolab.cli run NAME --in-process``;
- a study with units: one process per unit not yet finished (``reprolab.cli run-unit NAME UNIT``,
  which saves ``units/<unit>/unit.json`` and its figures), then one short process that combines
  the saved units into ``result.json`` (judging the claims);
- with ``executor="ray"`` the same processes are started inside Ray tasks (``num_cpus`` each), on a
  running cluster (``RAY_ADDRESS`` / ``ray_address``) or a local instance started for the call. A
  task runs in a scratch folder on its node and sends its files back, so the driver's ``runs/``
  ends up exactly as a local run leaves it (the nodes need not share a disk).

A unit that fails (an exception: its traceback is in ``units/<unit>/failed.json``; a killed
process; a timeout) does not stop the others. The study's ``result.json`` is then written with
status ``incomplete``, every claim ``not run``, and the reason naming the missing units; running
the same command again runs only those units (finished units are reused by the run's key).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import runtime
from .errors import MissingExtra, ReprolabError
from .study import (
    RESULT_FILE,
    UNITS_DIR,
    Result,
    RunDir,
    Scale,
    config_dict,
    get_study,
    load_result,
    load_unit,
    not_run_claims,
    reusable_result,
    unit_failure,
)

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
EXECUTORS = ("local", "ray")


@dataclass
class UnitFailure:
    """A unit that did not finish: why, and the tail of its traceback when it raised."""

    unit: str
    error: str
    traceback: str = ""


@dataclass
class StudyRun:
    """What one study's processes left: its result (None if it failed as a whole), whether it was
    reused, the exit code of its last process (0 when reused), and the units that failed."""

    name: str
    result: Result | None
    reused: bool
    returncode: int
    failed_units: list[UnitFailure] = field(default_factory=list)
    units_run: list[str] = field(default_factory=list)


def child_environment(threads: int | None = None) -> dict[str, str]:
    """The environment of a study's process: ours, with the thread counts fixed before any
    native library loads (values the user set explicitly are kept)."""
    env = dict(os.environ)
    n = threads or int(env.get("REPROLAB_THREADS", os.cpu_count() or 1))
    env["REPROLAB_THREADS"] = str(n)
    for var in THREAD_VARIABLES:
        env.setdefault(var, str(n))
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "reprolab.cli", *args]


def _describe_exit(code: int | None, timeout_s: float | None) -> str:
    if code is None:
        return f"timed out after {timeout_s:g} s"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code}"


def _run_local(args: list[str], threads: int | None, timeout_s: float | None) -> int | None:
    """A CLI process here; its exit code, or None when it ran past ``timeout_s`` (it is killed)."""
    proc = subprocess.Popen(args, env=child_environment(threads))
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


# --------------------------------------------------------------------------------------- Ray


def _ray_task(args: list[str], rel: str, threads: int, timeout_s: float | None) -> dict[str, Any]:
    """Inside a Ray worker: run the CLI with ``--out`` a scratch folder, return its exit code and
    the files it wrote under ``rel`` (relative to --out; checkpoints stay on the node)."""
    with tempfile.TemporaryDirectory(prefix="reprolab-ray-") as scratch:
        full = [sys.executable, *args[1:], "--out", scratch]
        code = _run_local(full, threads, timeout_s)
        files: dict[str, bytes] = {}
        root = Path(scratch) / rel
        if root.exists():
            for f in root.rglob("*"):
                if f.is_file() and "checkpoints" not in f.relative_to(root).parts and ".partial" not in f.parts:
                    files[str(f.relative_to(scratch))] = f.read_bytes()
        return {"code": code, "files": files}


class RayPool:
    """Ray tasks for CLI processes. Connects to ``address`` (or ``RAY_ADDRESS``), else starts a
    local instance for the call (``num_cpus``: this machine's count); ``cpus_per_task`` is each
    task's ``num_cpus`` and its thread count."""

    def __init__(self, address: str | None = None, cpus_per_task: int = 2, num_cpus: int | None = None):
        try:
            import ray
        except ImportError as exc:
            raise MissingExtra("ray", "distributed") from exc
        self.ray = ray
        self.cpus_per_task = cpus_per_task
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.started = not ray.is_initialized()
        if self.started:
            opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
            if address:
                ray.init(address=address, **opts)
            else:
                ray.init(num_cpus=num_cpus or os.cpu_count() or 1, **opts)
        self._remote = ray.remote(_ray_task)

    def submit(self, args: list[str], rel: str, timeout_s: float | None) -> Any:
        return self._remote.options(num_cpus=self.cpus_per_task, max_retries=0).remote(args, rel, self.cpus_per_task, timeout_s)

    def gather(self, refs: dict[str, Any], out: Path) -> dict[str, int | None | str]:
        """Wait for every task; write their files under ``out``; name -> exit code (or the Ray
        error's text when the worker itself died)."""
        codes: dict[str, int | None | str] = {}
        for name, ref in refs.items():
            try:
                got = self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a dead worker is a failed unit, not a crash of the run
                codes[name] = f"the Ray worker failed: {type(exc).__name__}: {str(exc)[:300]}"
                continue
            for rel, data in got["files"].items():
                runtime.atomic_write_bytes(out / rel, data)
            codes[name] = got["code"]
        return codes

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


# --------------------------------------------------------------------------------------- a study


def _incomplete_result(name: str, scale: Scale, seed: int, out: Path, failures: list[UnitFailure], command: str,
                       done: list[str]) -> Result:
    """``result.json`` of a study whose units did not all finish: every claim ``not run``, and the
    reason naming the missing units (their tracebacks are in units/<unit>/failed.json)."""
    cls = get_study(name)
    config = cls.config_for(scale)
    run = RunDir(out / name / scale.value, scale, seed, config=config, study=name, version=cls.version)
    missing = "; ".join(f"{f.unit} ({f.error})" for f in failures)
    reason = (f"{len(failures)} of {len(failures) + len(done)} units missing: {missing}. Rerun the same command to run "
              f"only those (tracebacks: {out / name / scale.value / UNITS_DIR}/<unit>/failed.json)")
    result = Result(
        study=name, title=cls.paper.title, arxiv=cls.paper.arxiv, version=cls.version, scale=scale.value, seed=seed,
        status="incomplete", reason=reason, config=config_dict(config),
        metrics={"units_done": done, "units_missing": [f.unit for f in failures]},
        claims=not_run_claims(cls, reason),
        figures=[], timings={"started": time.strftime("%Y-%m-%dT%H:%M:%S")}, versions={}, machine=runtime.machine_info(),
        command=command, key=run.key, commit=runtime.git_commit(),
    )
    runtime.atomic_write_json(out / name / scale.value / RESULT_FILE, runtime.plain_tree(result.to_json()))
    return result


def run_in_process(name: str, scale: Scale, seed: int, force: bool, out: Path, command: str, threads: int | None = None,
                   executor: str = "local", pool: RayPool | None = None, unit_timeout_s: float | None = None,
                   on_unit: Callable[[str, str], None] | None = None, fresh: bool = False) -> StudyRun:
    """Run one study: its units (if it declares any) each in a process of its own, then the
    combining process; or the whole study in one process. Reuses a finished result of the same
    key unless ``force`` (or ``fresh``: run again, but keep finished units and checkpoints, e.g. to
    recombine them). ``executor="ray"`` needs ``pool``."""
    if executor not in EXECUTORS:
        raise ReprolabError(f"unknown executor {executor!r}", fix=f"use one of {', '.join(EXECUTORS)}")
    if executor == "ray" and pool is None:
        raise ReprolabError("the Ray executor needs a RayPool", fix="create one with RayPool(address)")
    out = Path(out)
    if not force and not fresh:
        previous = reusable_result(name, scale, seed, out)
        if previous is not None:
            return StudyRun(name, previous, True, 0)
    folder = out / name / scale.value
    if force:  # from scratch: no finished units, no checkpoints (the previous result stays until replaced)
        for sub in ("checkpoints", UNITS_DIR):
            if (folder / sub).exists():
                shutil.rmtree(folder / sub)

    cls = get_study(name)
    config = cls.config_for(scale)
    units = cls().units(config)
    key = RunDir(folder, scale, seed, config=config, study=name, version=cls.version).key
    common = ["--scale", scale.value, "--seed", str(seed)]
    todo = [u for u in units if load_unit(out, name, scale, u, key) is None]
    failures: list[UnitFailure] = []
    if todo:
        if executor == "local":
            codes: dict[str, int | None | str] = {}
            for u in todo:
                if on_unit:
                    on_unit(name, u)
                codes[u] = _run_local(_cli("run-unit", name, u, *common, "--out", str(out)), threads, unit_timeout_s)
        else:
            assert pool is not None
            rel = str(Path(name) / scale.value / UNITS_DIR)
            refs = {u: pool.submit(_cli("run-unit", name, u, *common), rel, unit_timeout_s) for u in todo}
            codes = pool.gather(refs, out)
        for u, code in codes.items():
            if code == 0 and load_unit(out, name, scale, u, key) is None and unit_failure(out, name, scale, u) is None:
                continue  # skipped (StudySkipped): the combining process meets the same skip and records it
            if code != 0:
                fail = unit_failure(out, name, scale, u) if isinstance(code, int) and code > 0 else None
                why = code if isinstance(code, str) else _describe_exit(code, unit_timeout_s)
                failures.append(UnitFailure(u, fail["error"] if fail else why, (fail or {}).get("traceback", "")[-2000:]))
    if failures:
        done = [u for u in units if u not in {f.unit for f in failures}]
        res = _incomplete_result(name, scale, seed, out, failures, command, done)
        return StudyRun(name, res, False, 1, failures, todo)

    # the study itself (no units), or the short process that combines the saved units
    args = _cli("run", name, "--in-process", *common, "--command", command, "--quiet")
    args += ["--force"] if force and not units else ["--fresh"]
    if executor == "local" or units:  # combining reads the units from the driver's disk: always here
        code = _run_local(args + ["--out", str(out)], threads, None)
    else:
        assert pool is not None
        code = pool.gather({name: pool.submit(args, str(Path(name) / scale.value), None)}, out)[name]
    result = load_result(out, name, scale) if code == 0 else None
    return StudyRun(name, result, False, code if isinstance(code, int) else 1, [], todo)
