"""Benchmark ``ags``: law recovery and seconds per law, our analysis protocol vs pyoperon alone vs gplearn, on the
same noisy data.

Data: for each of the 16 non-composite laws of the catalogue (4 with ``quick``), 32 inputs drawn log-uniformly in the
design range and measured with 0.5% relative noise (seeded). Recovery is :func:`.analysis.is_discovery` (symbolically
equal after sympy canonicalisation, constants within 1%) of each method's expression.

- ``ours``: :func:`.analysis.analyse` (monomial fit, enumerated families, pyoperon with 20 generations behind them
  when nothing fits, BIC);
- ``pyoperon alone``: ``pyoperon.sklearn.SymbolicRegressor`` (0.6.2) with population 500, 50 generations, arithmetic
  operators, its model string read by sympy;
- ``gplearn``: ``gplearn.genetic.SymbolicRegressor`` (0.4.3) with population 500, 20 generations, arithmetic operators
  (left out, and named in ``extra``, when not installed: ``pip install --no-deps gplearn==0.4.3``).
PySR is not a peer: it cannot run offline (juliacall downloads Julia at its first import).
The baseline of the time ratios is pyoperon alone.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import sympy as sp

from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .analysis import AnalysisConfig, analyse, is_discovery, prune_terms
from .lab import Lab, catalogue

BENCH_LAWS = ("kinetic_energy", "density", "gravitation", "pendulum", "ideal_gas", "coulomb", "joule_power", "centripetal",
              "mechanical_energy", "spring_energy", "arrhenius", "radioactive_decay", "barometric", "michaelis_menten",
              "langmuir", "monod")
QUICK_LAWS = ("kinetic_energy", "pendulum", "arrhenius", "michaelis_menten")


def noisy_data(law, n: int = 32, sigma: float = 0.005, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = np.log([v.low for v in law.inputs]), np.log([v.high for v in law.inputs])
    X = np.exp(rng.uniform(lo, hi, (n, len(law.inputs))))
    return X, Lab([law], sigma=sigma, seed=seed).measure(law.name, X)


def _ours(law, X, y) -> sp.Expr:
    return analyse(X, y, law.input_names, sigma=0.005, config=AnalysisConfig(sr="pyoperon", sr_generations=20))[0].primitive


def _pyoperon(law, X, y) -> sp.Expr:
    from pyoperon.sklearn import SymbolicRegressor

    reg = SymbolicRegressor(population_size=500, generations=50, max_length=30, n_threads=1, random_state=0,
                            allowed_symbols="add,sub,mul,div,constant,variable").fit(X, y)
    local = {f"X{i + 1}": v.symbol for i, v in enumerate(law.inputs)}
    return prune_terms(sp.sympify(reg.get_model_string(reg.model_, 8), locals=local), X, y, law.input_names)


def _gplearn(law, X, y) -> sp.Expr:
    from gplearn.genetic import SymbolicRegressor

    reg = SymbolicRegressor(population_size=500, generations=20, random_state=0, n_jobs=1, function_set=("add", "sub", "mul", "div"),
                            parsimony_coefficient=0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, y)
    local: dict[str, Any] = {f"X{i}": v.symbol for i, v in enumerate(law.inputs)}
    local.update({"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b})
    return prune_terms(sp.sympify(str(reg._program), locals=local), X, y, law.input_names)


def methods() -> tuple[dict[str, Any], dict[str, str]]:
    out: dict[str, Any] = {"ours": _ours}
    missing: dict[str, str] = {}
    try:
        import pyoperon  # noqa: F401

        out["pyoperon alone"] = _pyoperon
    except ImportError as exc:
        missing["pyoperon alone"] = str(exc)
    try:
        import gplearn  # noqa: F401

        out["gplearn"] = _gplearn
    except ImportError as exc:
        missing["gplearn"] = f"{exc} (pip install --no-deps gplearn==0.4.3)"
    return out, missing


def recover(names: tuple[str, ...]) -> dict[str, dict[str, list]]:
    """Per method: recovered (1/0), seconds and the expression, law by law (methods interleaved per law)."""
    by = {law.name: law for law in catalogue()}
    run, missing = methods()
    res: dict[str, dict[str, list]] = {m: {"recovered": [], "seconds": [], "expr": []} for m in run}
    X0, y0 = noisy_data(by[names[0]], n=12)
    for fn in run.values():  # warm-up (imports, JIT-free first calls), untimed
        try:
            fn(by[names[0]], X0, y0)
        except Exception:  # noqa: BLE001
            pass
    for name in names:
        law = by[name]
        X, y = noisy_data(law)
        for m, fn in run.items():
            t0 = time.perf_counter()
            try:
                e = fn(law, X, y)
                ok = bool(is_discovery(e, law.truth))
            except Exception as exc:  # noqa: BLE001 - a peer failing on a law is a measured failure
                e, ok = f"error: {exc}", False
            res[m]["seconds"].append(time.perf_counter() - t0)
            res[m]["recovered"].append(float(ok))
            res[m]["expr"].append(str(e)[:300])
    res["_missing"] = missing  # type: ignore[assignment]
    return res


@register_bench
class AGSBench(Benchmark):
    name = "ags"
    description = ("law recovery rate and seconds per law on the same noisy data: our analysis protocol vs pyoperon alone vs "
                   "gplearn (16 planted laws, 32 points, 0.5% noise)")

    def run(self, quick: bool) -> BenchResult:
        names = QUICK_LAWS if quick else BENCH_LAWS
        res = recover(names)
        missing = res.pop("_missing")
        times = {m: r["seconds"] for m, r in res.items()}
        base = "pyoperon alone" if "pyoperon alone" in times else "ours"
        notes = {m: f"recovered {int(sum(r['recovered']))}/{len(names)} laws ({100 * np.mean(r['recovered']):.0f}%)"
                 for m, r in res.items()}
        return BenchResult(bench=self.name, baseline=base, rows=bench_rows(times, base, "s per law", notes),
                           config={"laws": list(names), "points": 32, "sigma": 0.005, "ours_sr_generations": 20,
                                   "pyoperon": "population 500, 50 generations", "gplearn": "population 500, 20 generations"},
                           extra={"per_law": {m: dict(r, laws=list(names)) for m, r in res.items()}, "missing": missing,
                                  "note": "PySR is not compared: it downloads Julia at its first import (no network here)"})


__all__ = ["AGSBench", "BENCH_LAWS", "noisy_data", "recover"]
