"""A toy study with independent units, importable by the executors' child processes
(``REPROLAB_PLUGINS=tests.toy_units``). Each unit draws one number in a process of its own and
records that process's id; environment switches plant failures:
``TOY_UNITS_FAIL=<unit>`` raises (so does a unit named in the file ``TOY_UNITS_FAIL_FILE``: Ray's
workers keep the environment they started with, a file can change between runs), ``TOY_UNITS_KILL=<unit>`` kills the process (SIGKILL),
``TOY_UNITS_SLEEP=<unit>`` sleeps 600 s (for timeouts)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from reprolab import stats
from reprolab.study import Claim, Judgement, Paper, Scale, Study, register


@dataclass(frozen=True)
class ToyUnitsConfig:
    units: int
    value: float


def _judge(m):
    xs = [m[f"x_{u}"] for u in sorted(k[2:] for k in m if k.startswith("x_"))]
    return Judgement.from_headline(f"mean x {sum(xs) / len(xs):g}", stats.compare_to_value(xs, 1.0, unit="units"))


@register
class ToyUnits(Study):
    name = "toy_units"
    paper = Paper("A toy paper with units", arxiv="0000.00001")
    claims = [Claim("big", "x is larger than one", paper="x = 2", rule="mean x over the units > 1 (t interval)", judge=_judge)]
    scales = {Scale.SMOKE: ToyUnitsConfig(2, 2.0), Scale.QUICK: ToyUnitsConfig(3, 2.0), Scale.FULL: ToyUnitsConfig(3, 2.0)}

    def units(self, config):
        return [f"seed={i}" for i in range(config.units)]

    def run_unit(self, config, unit, run):
        marker = os.environ.get("TOY_UNITS_FAIL_FILE")
        if os.environ.get("TOY_UNITS_FAIL") == unit or (marker and os.path.exists(marker) and open(marker).read() == unit):
            raise RuntimeError(f"planted failure in {unit}")
        if os.environ.get("TOY_UNITS_KILL") == unit:
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("TOY_UNITS_SLEEP") == unit:
            time.sleep(600)
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        i = int(unit.split("=")[1])
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, i])
        run.save_figure(fig, f"line_{i}", f"unit {unit}")
        return {f"x_{i}": config.value + 0.1 * (i - 1), f"pid_{i}": os.getpid(), "threads": os.environ.get("OMP_NUM_THREADS")}
