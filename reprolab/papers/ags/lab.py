"""Simulated labs with hidden laws, for the Autonomous Generalist Scientist (AGS; arXiv 2503.22444).

The paper is a concept paper: its AGS runs experiments in virtual and physical labs with robots
(Sec. 3, "Experimentation"). We stand in for the world with a :class:`Lab` whose laws are hidden
sympy expressions over named variables with units and ranges. A measurement returns the law's value
with seeded multiplicative Gaussian noise; each experiment costs money and time (the physical lab
is slower and dearer than the virtual one); a robot fails with probability ``p_fail`` and the run
is retried (each attempt is paid for).

Choices where the paper is vague (it gives no lab model):
- Noise is relative: ``y_obs = y * (1 + sigma * eps)``, eps ~ N(0, 1); the lab publishes ``sigma``
  (an instrument's datasheet), so the scientist can judge a fit against the noise.
- Costs: virtual 1 money unit and 0.1 h per attempt; physical 20 units and 2 h (a ratio, not a price).
- Inputs must lie in ``[low, high] * extrapolation`` of each variable: the design range is
  ``[low, high]``; measurements up to ``extrapolation`` (3x) beyond it are allowed, for the
  scientist's extrapolation check.
- The catalogue writes each law in the canonical form of its family (``c*z/(K + z)`` for
  saturation, ``c*exp(k*z)`` for exponentials), the form the discovery test compares against.
- Composite laws are built on a quantity that another law defines (kinetic energy, gas pressure,
  pendulum period, ...): in the lab their inputs are primitive variables only, so the composite is a
  function of the primitives through that quantity; a scientist who knows the other law can use the
  quantity as a feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ...errors import ConfigError, NonFiniteError, ReprolabError

FORMS = ("monomial", "sum", "exponential", "saturating", "composite")


class ExperimentFailed(ReprolabError, RuntimeError):
    """A robot failed ``attempts`` times in a row on one experiment."""

    def __init__(self, law: str, attempts: int):
        super().__init__(f"experiment on {law!r} failed {attempts} times in a row",
                         fix="raise Lab(max_retries=...) or lower p_fail")
        self.law = law
        self.attempts = attempts


@dataclass(frozen=True)
class Variable:
    """A measurable quantity: symbol name, meaning, unit and design range (low < high, both > 0)."""

    name: str
    meaning: str
    unit: str
    low: float = 1.0
    high: float = 10.0

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ConfigError("Variable.name", self.name, "a Python identifier")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 < self.low < self.high):
            raise ConfigError(f"range of {self.name}", (self.low, self.high), "0 < low < high, both finite")

    @property
    def symbol(self) -> sp.Symbol:
        return sp.Symbol(self.name, positive=True)


@dataclass(frozen=True)
class Law:
    """A hidden law ``output = expr(inputs)``.

    ``expr`` is written over the inputs' symbols, except for a composite law, whose ``expr`` may use
    the ``output`` symbol of the laws in ``builds_on``; :attr:`truth` substitutes them, so it is
    always over primitive inputs. ``inputs`` of a composite are the primitives of the whole chain."""

    name: str
    output: Variable
    inputs: tuple[Variable, ...]
    expr: sp.Expr
    form: str
    builds_on: tuple[str, ...] = ()
    truth: sp.Expr = field(default=None, compare=False)  # set by the catalogue (expr over primitives)

    def __post_init__(self) -> None:
        if self.form not in FORMS:
            raise ConfigError("Law.form", self.form, f"one of {FORMS}")
        if self.truth is None:
            object.__setattr__(self, "truth", self.expr)
        free = {s.name for s in self.truth.free_symbols}
        names = {v.name for v in self.inputs}
        if not free <= names:
            raise ConfigError(f"inputs of law {self.name!r}", sorted(names), f"a superset of the law's symbols {sorted(free)}")

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.inputs)

    def evaluate(self, X: np.ndarray) -> np.ndarray:
        """Noise-free values at ``X`` of shape (n, len(inputs))."""
        f = sp.lambdify([v.symbol for v in self.inputs], self.truth, "numpy")
        X = np.atleast_2d(np.asarray(X, dtype=float))
        return np.broadcast_to(np.asarray(f(*X.T), dtype=float), (X.shape[0],)).copy()

    def describe(self, anonymise: bool = False) -> str:
        """The task as a scientist sees it: names, meanings and units (or x1.. without units when anonymised)."""
        if anonymise:
            ins = ", ".join(f"x{i + 1}" for i in range(len(self.inputs)))
            return f"Find y as a function of {ins}."
        ins = "; ".join(f"{v.name} = {v.meaning} [{v.unit}]" for v in self.inputs)
        return f"Find {self.output.name} = {self.output.meaning} [{self.output.unit}] as a function of: {ins}."


@dataclass(frozen=True)
class LabCosts:
    """Money and hours per attempt (an attempt that fails is paid for too)."""

    money: float
    hours: float


COSTS = {"virtual": LabCosts(1.0, 0.1), "physical": LabCosts(20.0, 2.0)}


@dataclass
class Ledger:
    """What a lab spent: experiments asked for, attempts made (retries included), failures, money, hours."""

    experiments: int = 0
    attempts: int = 0
    failures: int = 0
    money: float = 0.0
    hours: float = 0.0

    def to_json(self) -> dict[str, float]:
        return {"experiments": self.experiments, "attempts": self.attempts, "failures": self.failures,
                "money": round(self.money, 6), "hours": round(self.hours, 6)}


class Lab:
    """A lab holding hidden laws; :meth:`measure` runs experiments on one of them.

    ``kind``: "virtual" or "physical" (costs in :data:`COSTS`); ``sigma``: relative noise;
    ``p_fail``: probability that a robot run fails (retried up to ``max_retries`` times);
    ``seed``: the noise and failure stream (its state is part of :meth:`state_dict`, so a resumed
    run draws the same numbers)."""

    def __init__(self, laws: Sequence[Law], *, kind: str = "virtual", sigma: float = 0.01, p_fail: float = 0.0,
                 max_retries: int = 10, extrapolation: float = 3.0, seed: int = 0):
        if kind not in COSTS:
            raise ConfigError("kind", kind, f"one of {sorted(COSTS)}")
        if not (math.isfinite(sigma) and 0 <= sigma < 0.5):
            raise ConfigError("sigma", sigma, "a relative noise level in [0, 0.5)")
        if not (0 <= p_fail < 1):
            raise ConfigError("p_fail", p_fail, "a probability in [0, 1)")
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError("max_retries", max_retries, "an int >= 0")
        if not extrapolation >= 1:
            raise ConfigError("extrapolation", extrapolation, "a factor >= 1")
        self.laws = {law.name: law for law in laws}
        if len(self.laws) != len(laws):
            raise ConfigError("laws", [law.name for law in laws], "laws with distinct names")
        self.kind, self.sigma, self.p_fail, self.max_retries, self.extrapolation = kind, sigma, p_fail, max_retries, extrapolation
        self.costs = COSTS[kind]
        self.rng = np.random.default_rng(seed)
        self.ledger = Ledger()
        self._fns = {name: sp.lambdify([v.symbol for v in law.inputs], law.truth, "numpy") for name, law in self.laws.items()}

    def law(self, name: str) -> Law:
        if name not in self.laws:
            from ...errors import UnknownName

            raise UnknownName("law", name, list(self.laws))
        return self.laws[name]

    def measure(self, name: str, X: np.ndarray | Sequence[Sequence[float]] | Mapping[str, float]) -> np.ndarray:
        """Noisy values of law ``name`` at the rows of ``X`` (shape (n, d), columns in the law's input order, or
        one mapping name -> value). Each row is one experiment: paid per attempt, retried on robot failure."""
        law = self.law(name)
        if isinstance(X, Mapping):
            missing = [v for v in law.input_names if v not in X]
            if missing:
                raise ConfigError("X", dict(X), f"a value for every input of {name!r}: {list(law.input_names)}")
            X = [[X[v] for v in law.input_names]]
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(law.inputs):
            from ...errors import ShapeError

            raise ShapeError(f"inputs of {name!r}", X.shape, f"(n, {len(law.inputs)}) in the order {list(law.input_names)}")
        if not np.all(np.isfinite(X)):
            raise NonFiniteError(f"inputs of {name!r}", X[~np.isfinite(X)][:3].tolist(), fix="pass finite inputs")
        for j, v in enumerate(law.inputs):
            lo, hi = v.low / self.extrapolation, v.high * self.extrapolation
            bad = (X[:, j] < lo) | (X[:, j] > hi)
            if bad.any():
                raise ConfigError(f"{v.name} (law {name!r})", float(X[bad, j][0]), f"a value in [{lo:g}, {hi:g}]")
        out = np.empty(len(X))
        y = np.broadcast_to(np.asarray(self._fns[name](*X.T), dtype=float), (len(X),))
        for i in range(len(X)):
            self._run_robot(name)
            out[i] = y[i] * (1.0 + self.sigma * self.rng.standard_normal())
        return out

    def _run_robot(self, name: str) -> None:
        for attempt in range(self.max_retries + 1):
            self.ledger.attempts += 1
            self.ledger.money += self.costs.money
            self.ledger.hours += self.costs.hours
            if self.p_fail == 0 or self.rng.random() >= self.p_fail:
                self.ledger.experiments += 1
                return
            self.ledger.failures += 1
        raise ExperimentFailed(name, self.max_retries + 1)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "ledger": self.ledger.to_json()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.ledger = Ledger(**state["ledger"])


# ------------------------------------------------------------------------------------------- catalogue
def _v(name: str, meaning: str, unit: str, low: float, high: float) -> Variable:
    return Variable(name, meaning, unit, low, high)


def _F(x: float) -> sp.Float:
    return sp.Float(x)


def catalogue() -> list[Law]:
    """The 24 hidden laws: 8 monomials, 2 sums, 3 exponentials, 3 saturating laws, 8 composites.

    Constants are in scaled units (e.g. G = 6.674, k = 8.99) so values stay of order 1-1000;
    the composites use the outputs of the first 8 laws."""
    m, v, V, r = _v("m", "mass", "kg", 1, 10), _v("v", "speed", "m/s", 1, 10), _v("V", "volume", "m^3", 0.1, 1), _v("r", "distance", "m", 1, 10)
    m1, m2 = _v("m1", "mass of body 1", "kg", 1, 10), _v("m2", "mass of body 2", "kg", 1, 10)
    q1, q2 = _v("q1", "charge 1", "uC", 1, 10), _v("q2", "charge 2", "uC", 1, 10)
    L, g = _v("L", "pendulum length", "m", 0.1, 2), _v("g", "gravitational acceleration", "m/s^2", 1, 25)
    n, T, Vg = _v("n", "amount of gas", "mol", 0.1, 2), _v("T", "temperature", "K", 100, 500), _v("V", "gas volume", "L", 1, 20)
    I, R = _v("I", "current", "A", 0.1, 5), _v("R", "resistance", "ohm", 1, 100)
    h, k, x = _v("h", "height", "m", 0.1, 10), _v("k", "spring constant", "N/m", 10, 100), _v("x", "extension", "m", 0.1, 1)
    A, Ea = _v("A", "pre-exponential factor", "1/s", 1, 100), _v("Ea", "activation energy", "J/mol", 100, 2000)
    N0, lam, t = _v("N0", "initial count", "1", 100, 1000), _v("lam", "decay constant", "1/s", 0.01, 0.5), _v("t", "time", "s", 0.1, 10)
    P0 = _v("P0", "sea-level pressure", "kPa", 50, 150)
    Vmax, S = _v("Vmax", "maximum rate", "mM/s", 1, 10), _v("S", "substrate concentration", "mM", 0.1, 20)
    P = _v("P", "gas pressure", "kPa", 0.1, 10)
    Tk = _v("T", "temperature", "K", 5, 40)
    A0 = _v("A0", "initial amplitude", "cm", 1, 10)
    tc = _v("t", "time", "s", 0.1, 5)

    def out(name: str, meaning: str, unit: str) -> Variable:
        return Variable(name, meaning, unit, 1.0, 2.0)  # outputs have no design range

    sy = {s.name: s.symbol for s in (m, v, V, r, m1, m2, q1, q2, L, g, n, T, I, R, h, k, x, A, Ea, N0, lam, t, P0, Vmax, S, P, A0)}
    S_ = lambda name: sp.Symbol(name, positive=True)  # noqa: E731
    laws = [
        # monomials (the foundations of the composites)
        Law("kinetic_energy", out("E_k", "kinetic energy", "J"), (m, v), _F(0.5) * sy["m"] * sy["v"] ** 2, "monomial"),
        Law("density", out("rho", "density", "kg/m^3"), (m, V), sy["m"] / sy["V"], "monomial"),
        Law("gravitation", out("F_g", "gravitational force", "N"), (m1, m2, r), _F(6.674) * sy["m1"] * sy["m2"] / sy["r"] ** 2, "monomial"),
        Law("pendulum", out("T_p", "pendulum period", "s"), (L, g), _F(6.2832) * sp.sqrt(sy["L"] / sy["g"]), "monomial"),
        Law("ideal_gas", out("P_gas", "gas pressure", "kPa"), (n, T, Vg), _F(8.314) * sy["n"] * sy["T"] / sy["V"], "monomial"),
        Law("coulomb", out("F_c", "electrostatic force", "N"), (q1, q2, r), _F(8.99) * sy["q1"] * sy["q2"] / sy["r"] ** 2, "monomial"),
        Law("joule_power", out("P_el", "electrical power", "W"), (I, R), sy["I"] ** 2 * sy["R"], "monomial"),
        Law("centripetal", out("F_cp", "centripetal force", "N"), (m, v, r), sy["m"] * sy["v"] ** 2 / sy["r"], "monomial"),
        # sums
        Law("mechanical_energy", out("E", "mechanical energy", "J"), (m, v, h),
            _F(0.5) * sy["m"] * sy["v"] ** 2 + _F(9.81) * sy["m"] * sy["h"], "sum"),
        Law("spring_energy", out("E_s", "energy of a mass on a spring", "J"), (k, x, m, v),
            _F(0.5) * sy["k"] * sy["x"] ** 2 + _F(0.5) * sy["m"] * sy["v"] ** 2, "sum"),
        # exponentials
        Law("arrhenius", out("k_r", "reaction rate constant", "1/s"), (A, Ea, T), sy["A"] * sp.exp(_F(-0.1203) * sy["Ea"] / sy["T"]),
            "exponential"),
        Law("radioactive_decay", out("N", "remaining count", "1"), (N0, lam, t), sy["N0"] * sp.exp(-sy["lam"] * sy["t"]), "exponential"),
        Law("barometric", out("P_h", "pressure at height", "kPa"), (P0, h, T), sy["P0"] * sp.exp(_F(-34.17) * sy["h"] / sy["T"]),
            "exponential"),
        # saturating
        Law("michaelis_menten", out("v_r", "reaction velocity", "mM/s"), (Vmax, S), sy["Vmax"] * sy["S"] / (sy["S"] + _F(2.5)),
            "saturating"),
        Law("langmuir", out("theta", "surface coverage", "1"), (P,), sy["P"] / (sy["P"] + _F(1.25)), "saturating"),
        Law("monod", out("mu", "growth rate", "1/h"), (S,), _F(0.9) * sy["S"] / (sy["S"] + _F(0.3)), "saturating"),
    ]
    by = {law.name: law for law in laws}
    comp = [
        # composite laws: (name, output, primitive inputs, expression over the quantity of another law, that law)
        ("boltzmann_factor", out("p_b", "Boltzmann occupation factor", "1"), (m, v, Tk),
         lambda q: sp.exp(-q / sy["T"]), "kinetic_energy"),
        ("adsorption", out("theta_g", "surface coverage from a gas", "1"), (n, T, Vg),
         lambda q: q / (q + _F(40.0)), "ideal_gas"),
        ("pendulum_damping", out("A_d", "amplitude of a damped pendulum", "cm"), (A0, tc, L, g),
         lambda q: sy["A0"] * sp.exp(_F(-0.35) * sy["t"] / q), "pendulum"),
        ("binding_fraction", out("f_b", "fraction of bound pairs", "1"), (m1, m2, r),
         lambda q: q / (q + _F(3.0)), "gravitation"),
        ("ion_pairing", out("p_i", "ion pairing probability", "1"), (q1, q2, r),
         lambda q: sp.exp(_F(-0.05) * q), "coulomb"),
        ("joule_heating", out("dT", "temperature rise of a heated body", "K"), (I, R, tc),
         lambda q: _F(40.0) * (1 - sp.exp(_F(-0.01) * q * sy["t"])), "joule_power"),
        ("flotation", out("f_s", "submerged fraction", "1"), (m, V),
         lambda q: q / (q + _F(20.0)), "density"),
        ("skid_probability", out("p_s", "probability of skidding", "1"), (m, v, r),
         lambda q: q / (q + _F(50.0)), "centripetal"),
    ]
    for name, o, ins, f, base in comp:
        b = by[base]
        expr = f(S_(b.output.name))
        truth = expr.subs(S_(b.output.name), b.truth)
        laws.append(Law(name, o, ins, expr, "composite", builds_on=(base,), truth=truth))
    return laws


def catalogue_subset(names: Sequence[str] | None = None, n: int | None = None) -> list[Law]:
    """Laws of the catalogue by name, or the first ``n`` with every composite's foundation kept."""
    laws = catalogue()
    if names is not None:
        by = {law.name: law for law in laws}
        unknown = [x for x in names if x not in by]
        if unknown:
            from ...errors import UnknownName

            raise UnknownName("law", unknown[0], list(by))
        return [by[x] for x in names]
    return laws if n is None else laws[:n]


__all__ = ["COSTS", "ExperimentFailed", "FORMS", "Lab", "LabCosts", "Law", "Ledger", "Variable", "catalogue", "catalogue_subset"]
