"""Benchmark ``runner``: what the process executor costs and saves against today's in-process loop,
and the Ray executor's overhead per unit of work (issue 22, item 5).

Three ways to run every registered study, each from a fresh ``reprolab`` process, one after the
other, into scratch folders (nothing reused, ``--force``):

- ``in-process loop``: ``reprolab run --all --in-process`` (the loop before issue 22; the baseline);
- ``process per study``: ``reprolab run --all`` (the local executor: a process per study, and per
  unit for a study that declares units);
- ``each study alone``: ``reprolab run NAME``, one command per study: what "run alone" means when
  we say a study's time inside the demo is within 10% of its time alone.

Per study, the wall time its ``result.json`` records is compared across the three (ratios in
``extra``). Then the Ray executor: ``foundation_agents`` (five units) with ``--executor ray`` on a
local instance against the local executor; ``(ray - local) / units`` is the overhead per unit.

Scale: ``reprolab bench runner`` runs the studies at ``smoke`` (minutes; mostly start-up costs);
``--full`` at ``quick``, which is ``reprolab demo`` itself (three times: about an hour on 2 cores).

``REPROLAB_BENCH_RUNNER_KEEP=DIR`` runs in DIR and keeps every run's files (else a temporary folder).
``REPROLAB_BENCH_RUNNER_ARMS`` (comma-separated, default ``loop,procs,alone,ray``) picks the arms:
``procs,alone`` is all that "within 10% of alone" needs (the baseline is then the first arm run).
An arm may be named more than once, and the runs go in the order written: ``procs,alone,procs``
brackets the alone runs between two demos, so that a drift of the machine over the hour (a warming
page cache, another tenant) weighs on both arms alike instead of on whichever came second. A study's
wall for an arm is then the mean over that arm's runs, and ``extra["per_run_wall_s"]`` keeps each run.
A study that fails in one arm is named in ``extra["failed"]`` and left out of the ratios; the
others are still measured. With ``REPROLAB_BENCH_RUNNER_KEEP`` each command's stderr is kept
beside its runs (``<run>.stderr.txt``), so a failure can be read afterwards.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..study import Benchmark, BenchResult, BenchRow, register_bench, studies

RAY_STUDY = "foundation_agents"
ARMS = {"loop": "in-process loop", "procs": "process per study", "alone": "each study alone", "ray": "ray"}


def _arms() -> list[str]:
    raw = os.environ.get("REPROLAB_BENCH_RUNNER_ARMS", "loop,procs,alone,ray")
    arms = [a.strip() for a in raw.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise ValueError(f"REPROLAB_BENCH_RUNNER_ARMS={raw!r}: unknown arm(s) {bad}; choose from {', '.join(ARMS)}")
    return arms


def _cli(*args: str, env: dict[str, str] | None = None, check: bool = True, log: Path | None = None) -> float:
    """Run ``reprolab ARGS`` in a fresh process; its wall seconds (a failure raises unless ``check=False``:
    a study that fails inside ``run --all`` exits 2 after the others ran, and their walls still count).
    ``log``: a file the command's stderr is appended to."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reprolab.cli", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if log is not None:
        with open(log, "a") as fh:
            fh.write(f"$ reprolab {' '.join(args)}  (exit {proc.returncode}, {wall:.1f} s)\n{proc.stderr}\n")
    if proc.returncode != 0 and check:
        raise RuntimeError(f"`reprolab {' '.join(args)}` failed ({proc.returncode}): {proc.stderr[-800:]}")
    return wall


def _walls(out: Path, names: list[str], scale: str) -> dict[str, float | None]:
    """Each study's recorded wall seconds; None where it left no result (it failed) or no finite time."""
    walls: dict[str, float | None] = {}
    for n in names:
        p = out / n / scale / "result.json"
        w = json.loads(p.read_text())["timings"].get("wall_s") if p.exists() else None
        walls[n] = float(w) if w is not None and math.isfinite(w) else None
    return walls


def _mean(walls: list[float | None]) -> float | None:
    """The mean of one study's walls over an arm's runs; None if it failed in any of them."""
    return None if not walls or any(w is None for w in walls) else sum(walls) / len(walls)  # type: ignore[arg-type]


@register_bench
class RunnerBench(Benchmark):
    name = "runner"
    description = ("every study via the in-process loop vs a process per study vs each alone (wall time, per-study ratios); "
                   "the Ray executor's overhead per unit")

    def run(self, quick: bool) -> BenchResult:
        from ..executor import child_environment

        scale = "smoke" if quick else "quick"
        names = list(studies())
        env = child_environment()
        env["REPROLAB_PROGRESS"] = "0"
        arms = _arms()
        keep = os.environ.get("REPROLAB_BENCH_RUNNER_KEEP")  # a folder to run in and keep (the runs' own result.json)
        with (contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="reprolab-bench-runner-")) as tmp:
            root = Path(tmp)
            root.mkdir(parents=True, exist_ok=True)
            runs: list[tuple[str, str]] = []  # (arm, its folder), in the order run
            run_totals: dict[str, float] = {}
            for arm in (a for a in arms if a != "ray"):
                k = sum(a == arm for a, _ in runs) + 1
                folder = arm if k == 1 else f"{arm}-{k}"
                runs.append((arm, folder))
                log = root / f"{folder}.stderr.txt" if keep else None
                if arm == "alone":
                    run_totals[folder] = sum(_cli("run", n, "--force", "--scale", scale, "--out", str(root / folder),
                                                  env=env, check=False, log=log) for n in names)
                else:
                    extra_args = ["--in-process"] if arm == "loop" else []
                    run_totals[folder] = _cli("run", "--all", *extra_args, "--force", "--scale", scale,
                                              "--out", str(root / folder), env=env, check=False, log=log)
            per_run = {folder: _walls(root / folder, names, scale) for _, folder in runs}
            totals: dict[str, float] = {}
            per: dict[str, dict[str, float | None]] = {}
            for arm in dict.fromkeys(a for a, _ in runs):
                folders = [f for a, f in runs if a == arm]
                totals[ARMS[arm]] = sum(run_totals[f] for f in folders) / len(folders)
                per[ARMS[arm]] = {n: _mean([per_run[f][n] for f in folders]) for n in names}
            failed = {k: [n for n, w in v.items() if w is None] for k, v in per.items()}
            failed = {k: v for k, v in failed.items() if v}

            ray: dict[str, Any] = {}
            if "ray" in arms:
                try:
                    import ray as _ray  # noqa: F401

                    units = 5
                    local = _cli("run", RAY_STUDY, "--force", "--scale", scale, "--out", str(root / "ray-local"), env=env)
                    remote = _cli("run", RAY_STUDY, "--force", "--scale", scale, "--executor", "ray", "--cpus-per-unit", "1",
                                  "--out", str(root / "ray"), env=env)
                    ray = {"study": RAY_STUDY, "units": units, "local_s": round(local, 2), "ray_s": round(remote, 2),
                           "overhead_per_unit_s": round((remote - local) / units, 2),
                           "note": "ray_s includes starting a local Ray instance (once per command)"}
                except ImportError:
                    ray = {"skipped": "ray is not installed: pip install 'reprolab[distributed]'"}

        base_name = next(iter(totals)) if totals else None
        base = totals[base_name] if base_name else float("nan")
        rows = [BenchRow(f"{k} (all {len(names)} studies at {scale})", v, 0.0, v / base) for k, v in totals.items()]
        ratios: dict[str, dict[str, float]] = {}
        alone_w = per.get(ARMS["alone"], {})
        for n in names:
            a = alone_w.get(n)
            if not a:
                continue
            r = {f"{key}_vs_alone": round(w / a, 3) for key, arm in (("demo", "procs"), ("loop", "loop"))
                 if (w := per.get(ARMS[arm], {}).get(n))}
            procs_runs = [per_run[f].get(n) for arm, f in runs if arm == "procs"]
            if r and len(procs_runs) > 1 and all(procs_runs):
                r["demo_runs_vs_alone"] = [round(w / a, 3) for w in procs_runs]  # type: ignore[operator]
            if r:
                ratios[n] = r
        within = [n for n, r in ratios.items() if "demo_vs_alone" in r and abs(r["demo_vs_alone"] - 1) <= 0.10]
        measured = sum("demo_vs_alone" in r for r in ratios.values())
        return BenchResult(
            bench=self.name, baseline=f"{base_name} (all {len(names)} studies at {scale})", rows=rows,
            config={"scale": scale, "studies": names, "threads": env["REPROLAB_THREADS"], "arms": arms},
            extra={"per_study_wall_s": per, "order": [f for _, f in runs],
                   "per_run_wall_s": per_run if len(runs) > len(per) else {},
                   "per_study_ratios": ratios, "failed": failed,
                   "within_10pct_of_alone": f"{len(within)} of {measured} studies", "ray": ray,
                   "note": ("one measurement per variant: ratios near 1 are inside its noise" if len(runs) == len(per) else
                            f"walls are means over each arm's runs, in the order {[f for _, f in runs]}")},
        )
