"""Run each study in a process of its own (issue 22, item 1).

Why: studies load native runtimes that do not share a machine politely. Whisper-LM's CTranslate2
brings Intel's OpenMP, torch brings GNU's; once both are loaded in one process their idle threads
spin against each other, and ZClip ran at 174-218 s after Whisper-LM inside ``reprolab demo``
against 98 s alone. Threads and OpenMP settings must be fixed before any of these libraries
loads, which only a fresh process guarantees.

:func:`run_studies` starts ``python -m reprolab.cli run NAME --in-process ...`` once per study,
with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` set to the study's
thread count in its environment (the user's own values win), and reads the result the child
wrote (``runs/<name>/<scale>/result.json``). A result that would be reused (same key, see
:func:`reprolab.study.reusable_result`) is read without starting a process. A child that fails
does not stop the others: its name and exit code are returned, and the CLI exits 2 at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .study import Result, Scale, load_result, reusable_result

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass
class StudyRun:
    """What one study's process left: its result (None if it failed), whether it was reused,
    and the child's exit code (0 when reused)."""

    name: str
    result: Result | None
    reused: bool
    returncode: int


def child_environment(threads: int | None = None) -> dict[str, str]:
    """The environment of a study's process: ours, with the thread counts fixed before any
    native library loads (values the user set explicitly are kept)."""
    env = dict(os.environ)
    n = threads or int(env.get("REPROLAB_THREADS", os.cpu_count() or 1))
    env["REPROLAB_THREADS"] = str(n)
    for var in THREAD_VARIABLES:
        env.setdefault(var, str(n))
    return env


def run_in_process(name: str, scale: Scale, seed: int, force: bool, out: Path, command: str, threads: int | None = None) -> StudyRun:
    """Run one study in a child process (or reuse its finished result without starting one)."""
    if not force:
        previous = reusable_result(name, scale, seed, out)
        if previous is not None:
            return StudyRun(name, previous, True, 0)
    args = [sys.executable, "-m", "reprolab.cli", "run", name, "--in-process", "--scale", scale.value, "--seed", str(seed),
            "--out", str(out), "--command", command, "--quiet"]
    if force:
        args.append("--force")
    proc = subprocess.run(args, env=child_environment(threads))
    result = load_result(out, name, scale) if proc.returncode == 0 else None
    return StudyRun(name, result, False, proc.returncode)
