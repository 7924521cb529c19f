"""Benchmark ``sandbox``: the start-up overhead of one :func:`reprolab.sandbox.run_python` call.

Model-written code runs thousands of times in a study (GenPRM judges every step, DeepSeek-GRM
checks every HumanEval candidate), so the fixed cost per call matters. We time a trivial
snippet (``print(1)``) end to end -- temp dir, process start, every layer, supervision, the
kill and clean-up -- with every layer, with each of the three layers left out, and against
the baseline a user would otherwise write: a plain ``subprocess.run([python, "-I", "-c",
code])`` with no confinement at all. Interleaved, so drift hits every variant alike.
"""

from __future__ import annotations

import subprocess
import sys

from ..runtime import interleaved_timings
from ..sandbox import LAYERS, Sandbox, SandboxLimits, missing_layers
from ..study import Benchmark, BenchResult, bench_rows, register_bench

_SNIPPET = "print(1)"


@register_bench
class SandboxBench(Benchmark):
    name = "sandbox"
    description = "per-call start-up overhead of run_python with every layer vs a plain `python -I -c` subprocess (ratio)"

    def run(self, quick: bool) -> BenchResult:
        missing = tuple(missing_layers())
        limits = SandboxLimits(timeout_s=10)
        full = Sandbox(limits, allow_weaker=missing)

        def plain() -> None:
            p = subprocess.run([sys.executable, "-I", "-c", _SNIPPET], capture_output=True, timeout=30)
            assert p.stdout == b"1\n"

        def boxed(box: Sandbox):
            def call() -> None:
                r = box.run(_SNIPPET)
                assert r.ok and r.stdout == "1\n", r.message
            return call

        calls = {"python -I -c (no sandbox)": plain, "run_python, every layer": boxed(full)}
        for layer in LAYERS:
            if layer not in missing:
                calls[f"without {layer}"] = boxed(Sandbox(limits, allow_weaker=missing + (layer,), without=(layer,)))
        times = interleaved_timings(calls, repeats=10 if quick else 60, warmup=2)
        rows = bench_rows(times, "python -I -c (no sandbox)", "one call of print(1)")
        ratio = next(r.ratio for r in rows if r.name.startswith("run_python, every layer"))
        base = next(r.seconds for r in rows if r.name.startswith("python -I -c"))
        return BenchResult(
            bench=self.name,
            baseline="python -I -c (no sandbox) (one call of print(1))",
            rows=rows,
            config={"snippet": _SNIPPET, "repeats": 10 if quick else 60, "python": sys.executable},
            extra={"overhead_ratio": round(ratio, 3), "overhead_ms": round((ratio - 1) * base * 1000, 1),
                   "missing_layers": list(missing), "isolation": list(full.run(_SNIPPET).isolation)},
        )
