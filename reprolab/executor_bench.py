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
``--full`` at ``quick``, which is ``reprolab demo`` itself (three times: about 45 minutes on 2 cores).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .study import Benchmark, BenchResult, BenchRow, register_bench, studies

RAY_STUDY = "foundation_agents"


def _cli(*args: str, env: dict[str, str] | None = None) -> float:
    """Run ``reprolab ARGS`` in a fresh process; its wall seconds (a failure raises)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "reprolab.cli", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"`reprolab {' '.join(args)}` failed ({proc.returncode}): {proc.stderr[-800:]}")
    return wall


def _walls(out: Path, names: list[str], scale: str) -> dict[str, float]:
    walls = {}
    for n in names:
        p = out / n / scale / "result.json"
        walls[n] = float(json.loads(p.read_text())["timings"].get("wall_s", float("nan"))) if p.exists() else float("nan")
    return walls


@register_bench
class RunnerBench(Benchmark):
    name = "runner"
    description = ("every study via the in-process loop vs a process per study vs each alone (wall time, per-study ratios); "
                   "the Ray executor's overhead per unit")

    def run(self, quick: bool) -> BenchResult:
        from .executor import child_environment

        scale = "smoke" if quick else "quick"
        names = list(studies())
        env = child_environment()
        env["REPROLAB_PROGRESS"] = "0"
        with tempfile.TemporaryDirectory(prefix="reprolab-bench-runner-") as tmp:
            root = Path(tmp)
            totals = {
                "in-process loop": _cli("run", "--all", "--in-process", "--force", "--scale", scale, "--out", str(root / "loop"), env=env),
                "process per study": _cli("run", "--all", "--force", "--scale", scale, "--out", str(root / "procs"), env=env),
            }
            alone = 0.0
            for n in names:
                alone += _cli("run", n, "--force", "--scale", scale, "--out", str(root / "alone"), env=env)
            totals["each study alone"] = alone
            per = {k: _walls(root / d, names, scale) for k, d in
                   (("in-process loop", "loop"), ("process per study", "procs"), ("each study alone", "alone"))}

            ray: dict[str, Any] = {}
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

        base = totals["in-process loop"]
        rows = [BenchRow(f"{k} (all {len(names)} studies at {scale})", v, 0.0, v / base) for k, v in totals.items()]
        ratios = {n: {"demo_vs_alone": round(per["process per study"][n] / per["each study alone"][n], 3),
                      "loop_vs_alone": round(per["in-process loop"][n] / per["each study alone"][n], 3)}
                  for n in names if per["each study alone"][n] > 0}
        within = [n for n, r in ratios.items() if abs(r["demo_vs_alone"] - 1) <= 0.10]
        return BenchResult(
            bench=self.name, baseline=f"in-process loop (all {len(names)} studies at {scale})", rows=rows,
            config={"scale": scale, "studies": names, "threads": env["REPROLAB_THREADS"]},
            extra={"per_study_wall_s": per, "per_study_ratios": ratios,
                   "within_10pct_of_alone": f"{len(within)} of {len(ratios)} studies", "ray": ray,
                   "note": "one measurement per variant on a shared 2-core machine: ratios near 1 are inside its noise"},
        )
