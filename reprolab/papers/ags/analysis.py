"""The analysis protocol of the AGS scientist (arXiv 2503.22444, Sec. 3 "Experimentation" -> analysis) and the
discovery test.

One symbolic-regression protocol, in this order:

1. a log-linear monomial fit, ``log y = log c + sum_i p_i log x_i`` (least squares), exponents snapped to
   multiples of 1/2 when within ``snap_tol`` (then the constant is refitted);
2. enumerated families over the features (the inputs, plus quantities that published laws define):
   ``c M(x) exp(k z)``, ``c M(x) z / (K + z)``, ``c M(x) (1 - exp(-k z))``, with ``M`` a snapped monomial
   prefactor and ``z`` a feature, its inverse, or a product / ratio of two features (products only for the
   last family); linear in log space for a fixed ``K`` or ``k``, which a bounded 1-D search sets;
3. candidate forms proposed by a language model (any sympy expression; its numbers and unknown symbols are
   free constants);
4. symbolic regression behind them, ``pyoperon`` 0.6.2 (or ``gplearn`` 0.4.3), only when no candidate of 1-3 fits at
   the noise level; its expression is expanded by sympy, negligible terms are pruned and its constants refitted;
5. sympy canonicalisation (:func:`canonical`) and selection by BIC with the known noise level:
   ``BIC = chi2 + k ln n``, ``chi2 = sum ((y - f) / (sigma y))^2`` (Schwarz 1978 with a known variance).

Choices where the paper is vague (it names no analysis method): the families above are ours (the
issue's catalogue: monomial, sum, exponential, saturating); a hypothesis proposed by the language model gets a
prior bonus of ``2 ln(prior_odds)`` on its BIC (``prior_odds = 10``); "fits at the noise level" is
``chi2 <= chi2_{0.999}(n - k)``.

Discovery (the issue's definition): a law is discovered when its published expression, written over the primitive
inputs, is *symbolically equal* to the truth with every constant within 1% (:func:`is_discovery`). Symbolic equality
is checked on :func:`canonical` forms: the same tree up to the order of commutative arguments, with every numeric
coefficient free and every numeric exponent exact; then the coefficients are paired along the tree and compared.
An equivalent form written differently (``z / (a + b z)`` vs ``c z / (K + z)``) is not recognised: the catalogue writes
each truth in its family's canonical form.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy as sp

from ...errors import ConfigError, MissingExtra, NonFiniteError

PRIOR_ODDS = 10.0  # a language-model proposal's prior odds against an enumerated form (ours)


# ------------------------------------------------------------------------------------------ canonical form
def canonical(expr: sp.Expr) -> sp.Expr:
    """Expanded products over sums, numeric exponents made exact rationals when within 1e-9 of one with a
    denominator <= 12; exponentials are not split (``exp(a + b)`` stays)."""
    expr = sp.sympify(expr)
    reps = {}
    for p in expr.atoms(sp.Pow):
        if p.exp.is_Float:
            q = sp.Rational(float(p.exp)).limit_denominator(12)
            if abs(float(q) - float(p.exp)) < 1e-9:
                reps[p] = sp.Pow(p.base, q)
    if reps:
        expr = expr.xreplace(reps)
    return sp.expand(expr, power_exp=False, power_base=False, log=False, multinomial=True, mul=True, deep=True)


def _coeff_split(e: sp.Expr) -> tuple[float, list[sp.Expr]]:
    """(product of the numeric factors, the other factors) of a product; (1, [e]) for anything else."""
    if e.is_Number:
        return float(e), []
    if not e.is_Mul:
        return 1.0, [e]
    c, rest = 1.0, []
    for a in e.args:
        if a.is_Number:
            c *= float(a)
        else:
            rest.append(a)
    return c, rest


def _exp_str(x: sp.Expr) -> str:
    q = sp.Rational(float(x)).limit_denominator(1000)
    return str(q) if abs(float(q) - float(x)) < 1e-9 else repr(float(x))


def skeleton(e: sp.Expr) -> str:
    """The form of ``e`` with every coefficient replaced by ``C`` (numeric exponents kept): two expressions of the same
    skeleton differ only in their constants."""
    if e.is_Number:
        return "C"
    if e.is_Symbol:
        return e.name
    if e.is_Mul:
        _, rest = _coeff_split(e)
        return "C*" + "*".join(sorted(skeleton(a) for a in rest))
    if e.is_Add:
        c, terms = e.as_coeff_Add()
        body = sorted(skeleton(a) for a in sp.Add.make_args(terms))
        return "(" + ("C+" if c != 0 else "") + "+".join(body) + ")"
    if e.is_Pow:
        ex = _exp_str(e.exp) if e.exp.is_Number else skeleton(e.exp)
        return f"({skeleton(e.base)})^({ex})"
    return f"{e.func.__name__}(" + ",".join(skeleton(a) for a in e.args) + ")"


def _match(a: sp.Expr, b: sp.Expr, pairs: list[tuple[float, float]]) -> bool:
    if a.is_Number or b.is_Number:
        if a.is_Number and b.is_Number:
            pairs.append((float(a), float(b)))
            return True
        return False
    if a.is_Mul or b.is_Mul:
        ca, ra = _coeff_split(a)
        cb, rb = _coeff_split(b)
        pairs.append((ca, cb))
        return _match_bag(ra, rb, pairs)
    if a.is_Symbol or b.is_Symbol:
        return a.is_Symbol and b.is_Symbol and a.name == b.name
    if a.is_Add and b.is_Add:
        ka, ta = a.as_coeff_Add()
        kb, tb = b.as_coeff_Add()
        if (ka != 0) != (kb != 0):
            return False
        if ka != 0:
            pairs.append((float(ka), float(kb)))
        return _match_bag(list(sp.Add.make_args(ta)), list(sp.Add.make_args(tb)), pairs)
    if a.is_Pow and b.is_Pow:
        if a.exp.is_Number and b.exp.is_Number:
            if abs(float(a.exp) - float(b.exp)) > 1e-9:
                return False
        elif not _match(a.exp, b.exp, pairs):
            return False
        return _match(a.base, b.base, pairs)
    if a.func != b.func or len(a.args) != len(b.args):
        return False
    return all(_match(x, y, pairs) for x, y in zip(a.args, b.args))


def _match_bag(xs: Sequence[sp.Expr], ys: Sequence[sp.Expr], pairs: list[tuple[float, float]]) -> bool:
    if len(xs) != len(ys):
        return False
    xs = sorted(xs, key=skeleton)
    ys = sorted(ys, key=skeleton)
    if [skeleton(x) for x in xs] != [skeleton(y) for y in ys]:
        return False
    return all(_match(x, y, pairs) for x, y in zip(xs, ys))


def is_discovery(published: sp.Expr, truth: sp.Expr, rtol: float = 0.01) -> bool:
    """True when ``published`` is symbolically equal to ``truth`` (both over the primitive inputs) with every
    constant within ``rtol`` of the truth's (relative; an exact 0 must be matched exactly)."""
    if not (0 <= rtol < 1):
        raise ConfigError("rtol", rtol, "a relative tolerance in [0, 1)")
    a, b = canonical(published), canonical(truth)
    pairs: list[tuple[float, float]] = []
    if not _match(a, b, pairs):
        return False
    return all(abs(p - t) <= rtol * abs(t) for p, t in pairs)


# ------------------------------------------------------------------------------------------ hypotheses
@dataclass
class Hypothesis:
    """A fitted candidate law. ``expr`` is over the feature symbols (inputs and derived quantities), ``primitive`` over
    the inputs only; ``score`` is the BIC less the prior bonus."""

    expr: sp.Expr
    primitive: sp.Expr
    family: str
    n_params: int
    chi2: float
    bic: float
    score: float
    n: int
    fn: Any = field(default=None, repr=False)  # vectorised f(X primitive) -> y
    names: list[str] = field(default_factory=list, repr=False)  # the inputs, in the columns' order
    derived: dict[str, sp.Expr] = field(default_factory=dict, repr=False)  # feature name -> expression over the inputs

    @property
    def key(self) -> str:
        return str(self.primitive)

    def predict(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = np.asarray(self.fn(*np.asarray(X, dtype=float).T), dtype=float)
        return np.broadcast_to(out, (np.asarray(X).shape[0],)).copy()

    def fits_noise(self) -> bool:
        """chi2 <= the 99.9% quantile of chi2(n - k): the residuals are no larger than the noise."""
        return bool(self.chi2 <= _noise_bound(self.n, self.n_params))

    def uncertainty(self, X: np.ndarray, sigma: float, at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(relative standard errors of the constants, relative prediction standard errors at ``at``) from the fit's
        design ``X``: Cov(log c) = sigma^2 (J^T J)^-1 with J = d log f / d log c by finite differences (Gauss-Newton)."""
        consts = sorted(self.expr.atoms(sp.Float), key=lambda f: (str(f)))
        consts = [c for c in consts if float(c) != 0]
        if not consts:
            return np.zeros(0), np.zeros(0 if at is None else len(at))
        ps = [sp.Symbol(f"_p{i}") for i in range(len(consts))]
        body = self.expr.xreplace(dict(zip(consts, ps)))
        feats = [sp.Symbol(nm, positive=True) for nm in self.names + list(self.derived)]
        f = sp.lambdify([*feats, *ps], body, "numpy")
        c0 = np.array([float(c) for c in consts])

        def jac(Xq: np.ndarray) -> np.ndarray:
            cols = _features(self.names, self.derived, Xq)
            with np.errstate(all="ignore"):
                base = np.log(np.abs(np.broadcast_to(np.asarray(f(*cols, *c0), dtype=float), (len(Xq),))))
                J = np.empty((len(Xq), len(c0)))
                for i in range(len(c0)):
                    c = c0.copy()
                    c[i] *= 1 + 1e-6
                    v = np.log(np.abs(np.broadcast_to(np.asarray(f(*cols, *c), dtype=float), (len(Xq),))))
                    J[:, i] = (v - base) / math.log1p(1e-6)
            return np.where(np.isfinite(J), J, 0.0)

        J = jac(np.asarray(X, dtype=float))
        try:
            cov = sigma ** 2 * np.linalg.inv(J.T @ J)
        except np.linalg.LinAlgError:
            cov = np.full((len(c0), len(c0)), np.inf)
        se = np.sqrt(np.abs(np.diag(cov)))
        if at is None:
            return se, np.zeros(0)
        Ja = jac(np.asarray(at, dtype=float))
        pred = np.sqrt(np.abs(np.einsum("ij,jk,ik->i", Ja, cov, Ja))) if np.all(np.isfinite(cov)) else np.full(len(at), np.inf)
        return se, pred


@dataclass(frozen=True)
class AnalysisConfig:
    """What the analysis may use (the autonomy levels switch these)."""

    families: bool = True  # enumerated exponential / saturating families (else the monomial fit only)
    sr: str = "pyoperon"  # "pyoperon" | "gplearn" | "none": the symbolic regression behind the enumeration
    sr_generations: int = 20  # SR budget (generations; population 100)
    snap_tol: float = 0.15  # exponent snapping to multiples of 1/2
    prior_odds: float = PRIOR_ODDS

    def __post_init__(self) -> None:
        if self.sr not in ("pyoperon", "gplearn", "none"):
            raise ConfigError("sr", self.sr, "'pyoperon', 'gplearn' or 'none'")
        if not isinstance(self.sr_generations, int) or self.sr_generations < 1:
            raise ConfigError("sr_generations", self.sr_generations, "an int >= 1")


class _Data:
    """Inputs, derived features and targets of one analysis."""

    def __init__(self, X: np.ndarray, y: np.ndarray, names: Sequence[str], derived: Mapping[str, sp.Expr], sigma: float):
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        if X.ndim != 2 or X.shape[1] != len(names) or len(y) != len(X):
            from ...errors import ShapeError

            raise ShapeError("X, y", (X.shape, y.shape), f"X of shape (n, {len(names)}) and y of shape (n,)")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise NonFiniteError("measurements", "NaN or inf in X or y", fix="drop failed measurements before the analysis")
        self.X, self.y, self.sigma = X, y, sigma
        self.names = list(names)
        self.syms = [sp.Symbol(n, positive=True) for n in names]
        self.derived = dict(derived)
        self.feat_names = self.names + list(self.derived)
        cols = [X[:, j] for j in range(X.shape[1])]
        for name, d in self.derived.items():
            f = sp.lambdify(self.syms, d, "numpy")
            with np.errstate(all="ignore"):
                cols.append(np.broadcast_to(np.asarray(f(*X.T), dtype=float), (len(X),)))
        self.F = np.column_stack(cols) if cols else np.zeros((len(X), 0))
        self.feat_syms = [sp.Symbol(n, positive=True) for n in self.feat_names]
        self.usable = [j for j in range(self.F.shape[1]) if np.all(np.isfinite(self.F[:, j])) and np.all(self.F[:, j] > 0)]
        self.logF = np.log(np.where(self.F > 0, self.F, 1.0))
        self.pos = bool(np.all(y > 0))
        self.logy = np.log(np.where(y > 0, y, 1.0))

    def to_primitive(self, expr: sp.Expr) -> sp.Expr:
        subs = {sp.Symbol(n, positive=True): d for n, d in self.derived.items()}
        return expr.xreplace(subs) if subs else expr


def _lstsq(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    r = b - A @ coef
    return coef, float(r @ r)


def _snap(p: float, tol: float) -> sp.Expr:
    s = round(2 * p) / 2
    if abs(p - s) <= tol:
        return sp.Rational(int(round(2 * p)), 2)
    return sp.Float(round(p, 3))


def _z_candidates(d: _Data, products_only: bool = False) -> list[tuple[sp.Expr, np.ndarray, tuple[int, ...]]]:
    out = []
    u = d.usable
    for j in u:
        s = d.feat_syms[j]
        out.append((s, d.F[:, j], (j,)))
        if not products_only:
            out.append((1 / s, 1 / d.F[:, j], (j,)))
    for a in range(len(u)):
        for b in range(a + 1, len(u)):
            i, j = u[a], u[b]
            si, sj = d.feat_syms[i], d.feat_syms[j]
            out.append((si * sj, d.F[:, i] * d.F[:, j], (i, j)))
            if not products_only:
                out.append((si / sj, d.F[:, i] / d.F[:, j], (i, j)))
                out.append((sj / si, d.F[:, j] / d.F[:, i], (i, j)))
    return out


def _excluded_prims(d: _Data, used: tuple[int, ...]) -> list[int]:
    """Primitive inputs a derived feature in ``used`` is made of (kept out of the prefactor: no duplicate roles)."""
    ex = set()
    for j in used:
        if j < len(d.names):
            continue
        ex |= {d.names.index(s.name) for s in d.derived[d.feat_names[j]].free_symbols if s.name in d.names}
    return sorted(ex)


class _Cand:
    """A candidate before sympy: its predictions on the data, its constant count, its family's size (a uniform prior
    over the family's members) and a builder of its expression (called only for the candidates kept)."""

    __slots__ = ("family", "values", "k", "size", "build", "prior")

    def __init__(self, family: str, values: np.ndarray, k: int, size: int, build, prior: float = 1.0):
        self.family, self.values, self.k, self.size, self.build, self.prior = family, values, k, size, build, prior


def _snapped_monomial(d: _Data, target: np.ndarray, tol: float, exclude: Sequence[int] = (), extra: np.ndarray | None = None):
    """Fit target = log c + sum p_j log x_j (+ k * extra), snap p_j, refit: (powers {j: p}, log M, [log c, k?], rss)."""
    prim = [j for j in range(len(d.names)) if j in d.usable and j not in exclude]
    n = len(target)
    ones = np.ones(n)
    cols = [ones] + [d.logF[:, j] for j in prim] + ([extra] if extra is not None else [])
    coef, _ = _lstsq(np.column_stack(cols), target)
    powers = {}
    logM = np.zeros(n)
    for j, p in zip(prim, coef[1:1 + len(prim)]):
        e = _snap(float(p), tol)
        if e != 0:
            powers[j] = e
            logM = logM + float(e) * d.logF[:, j]
    rest = [ones] + ([extra] if extra is not None else [])
    coef2, rss = _lstsq(np.column_stack(rest), target - logM)
    return powers, logM, [float(c) for c in coef2], rss


def _mono_expr(d: _Data, powers: Mapping[int, sp.Expr]) -> sp.Expr:
    return sp.Mul(*[d.feat_syms[j] ** e for j, e in powers.items()]) if powers else sp.Integer(1)


def _candidates_monomial(d: _Data, tol: float) -> list[_Cand]:
    if not d.pos:
        return []
    powers, logM, (logc,), _ = _snapped_monomial(d, d.logy, tol)
    return [_Cand("monomial", np.exp(logc + logM), 1, 1, lambda: sp.Float(math.exp(logc)) * _mono_expr(d, powers))]


def _candidates_exponential(d: _Data, tol: float) -> list[_Cand]:
    if not d.pos:
        return []
    out = []
    zs = _z_candidates(d)
    for z, zv, used in zs:
        if not np.all(np.isfinite(zv)) or np.ptp(zv) == 0:
            continue
        powers, logM, (logc, k), _ = _snapped_monomial(d, d.logy, tol, exclude=_excluded_prims(d, used), extra=zv)
        out.append(_Cand("exponential", np.exp(logc + logM + k * zv), 2, len(zs),
                         lambda logc=logc, powers=powers, k=k, z=z: sp.Float(math.exp(logc)) * _mono_expr(d, powers)
                         * sp.exp(sp.Float(k) * z)))
    return out


def _best_1d(d: _Data, g, lo: float, hi: float, tol: float, ex: Sequence[int]):
    """Minimise over log(theta) in [lo, hi] the log-space residual of log y - log g(theta) = log c + M."""
    from scipy.optimize import minimize_scalar

    prim = [j for j in range(len(d.names)) if j in d.usable and j not in ex]
    A = np.column_stack([np.ones(len(d.y))] + [d.logF[:, j] for j in prim])
    pinv = np.linalg.pinv(A)

    def loss(lt: float) -> float:
        gv = g(math.exp(lt))
        if not np.all(gv > 0):
            return 1e30
        t = d.logy - np.log(gv)
        r = t - A @ (pinv @ t)
        return float(r @ r)

    grid = np.linspace(lo, hi, 13)
    vals = [loss(x) for x in grid]
    i = int(np.argmin(vals))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(loss, bounds=(a, b), method="bounded", options={"xatol": 1e-6})
    theta = math.exp(float(res.x))
    gv = g(theta)
    powers, logM, (logc,), _ = _snapped_monomial(d, d.logy - np.log(gv), tol, exclude=ex)
    return theta, powers, logc, np.exp(logc + logM) * gv


def _candidates_saturating(d: _Data, tol: float) -> list[_Cand]:
    if not d.pos:
        return []
    out = []
    for j in d.usable:
        z, zv = d.feat_syms[j], d.F[:, j]
        if np.ptp(zv) == 0:
            continue
        lz = np.log(zv)
        ex = sorted(set(_excluded_prims(d, (j,))) | ({j} if j < len(d.names) else set()))
        K, powers, logc, vals = _best_1d(d, lambda K: zv / (K + zv), float(lz.min()) - 4, float(lz.max()) + 4, tol, ex)
        out.append(_Cand("saturating", vals, 2, len(d.usable),
                         lambda logc=logc, powers=powers, z=z, K=K: sp.Float(math.exp(logc)) * _mono_expr(d, powers) * z
                         / (z + sp.Float(K))))
    return out


def _candidates_saturating_exp(d: _Data, tol: float) -> list[_Cand]:
    if not d.pos:
        return []
    out = []
    zs = _z_candidates(d, products_only=True)
    for z, zv, used in zs:
        if not np.all(np.isfinite(zv)) or np.ptp(zv) == 0 or np.any(zv <= 0):
            continue
        lz = np.log(zv)
        ex = sorted(set(_excluded_prims(d, used)) | {j for j in used if j < len(d.names)})
        k, powers, logc, vals = _best_1d(d, lambda k: -np.expm1(-k * zv), -float(lz.max()) - 4, -float(lz.min()) + 4, tol, ex)
        out.append(_Cand("saturating-exponential", vals, 2, len(zs),
                         lambda logc=logc, powers=powers, z=z, k=k: sp.Float(math.exp(logc)) * _mono_expr(d, powers)
                         * (1 - sp.exp(sp.Float(-k) * z))))
    return out


# ------------------------------------------------------------------------------------------ free-form fits
def parametrise(expr: sp.Expr, inputs: Sequence[str]) -> tuple[sp.Expr, list[sp.Symbol], list[float]]:
    """Free constants of a proposed form: every number outside an exponent, every unknown symbol, and a coefficient for
    each top-level term that has none. Returns (expression over inputs and parameter symbols, parameters, starts)."""
    names = set(inputs)
    params: list[sp.Symbol] = []
    starts: list[float] = []

    def new(v: float) -> sp.Symbol:
        s = sp.Symbol(f"_c{len(params)}")
        params.append(s)
        starts.append(float(v))
        return s

    expr = sp.expand(sp.sympify(expr), power_exp=False, power_base=False, log=False)
    unknown = {s: new(1.0) for s in sorted(expr.free_symbols, key=lambda s: s.name) if s.name not in names}
    expr = expr.xreplace(unknown)

    def walk(e: sp.Expr) -> sp.Expr:
        if e.is_Number:
            return new(float(e))
        if e.is_Symbol or not e.args:
            return e
        if e.is_Pow:
            return sp.Pow(walk(e.base), e.exp if e.exp.is_Number else walk(e.exp))
        return e.func(*[walk(a) for a in e.args])

    out = []
    for t in sp.Add.make_args(expr):
        c, rest = _coeff_split(t)
        out.append(new(c) * (walk(sp.Mul(*rest)) if rest else sp.Integer(1)))
    return sp.Add(*out), params, starts


def refit(expr: sp.Expr, d: _Data, syms: Sequence[sp.Symbol] | None = None) -> sp.Expr | None:
    """Least-squares constants (relative residuals) of ``expr`` over the features; None when the fit fails."""
    from scipy.optimize import least_squares

    body, params, x0 = parametrise(expr, d.feat_names)
    if not params or len(params) >= len(d.y):
        return None
    try:
        f = sp.lambdify([*(syms or d.feat_syms), *params], body, "numpy")
    except Exception:  # noqa: BLE001 - sympy cannot print every expression a model writes
        return None
    cols = [d.F[:, j] for j in range(d.F.shape[1])]
    scale = np.where(d.y != 0, np.abs(d.y), 1.0)

    def res(p: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            v = np.broadcast_to(np.asarray(f(*cols, *p), dtype=float), d.y.shape)
        r = (v - d.y) / scale
        return np.where(np.isfinite(r), r, 1e6)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sol = least_squares(res, np.asarray(x0, dtype=float), method="lm" if len(params) < len(d.y) else "trf", max_nfev=400)
    except Exception:  # noqa: BLE001 - a degenerate proposal is dropped, not a crash
        return None
    if not np.all(np.isfinite(sol.x)):
        return None
    return body.xreplace({s: sp.Float(float(v)) for s, v in zip(params, sol.x)})


def _prune(expr: sp.Expr, d: _Data, rel: float = 1e-3) -> sp.Expr:
    """Drop additive terms whose largest magnitude over the data is below ``rel`` x the largest |y|."""
    terms = sp.Add.make_args(sp.expand(expr))
    if len(terms) == 1:
        return expr
    ymax = float(np.max(np.abs(d.y)))
    keep = []
    for t in terms:
        try:
            f = sp.lambdify(d.feat_syms, t, "numpy")
            with np.errstate(all="ignore"):
                v = np.broadcast_to(np.asarray(f(*[d.F[:, j] for j in range(d.F.shape[1])]), dtype=float), d.y.shape)
        except Exception:  # noqa: BLE001
            keep.append(t)
            continue
        if not np.all(np.isfinite(v)) or np.max(np.abs(v)) >= rel * ymax:
            keep.append(t)
    return sp.Add(*keep) if keep else expr


def prune_terms(expr: sp.Expr, X: np.ndarray, y: np.ndarray, names: Sequence[str], rel: float = 1e-3) -> sp.Expr:
    """``expr`` expanded, without the additive terms whose largest magnitude over the data ``X`` is below ``rel`` x the
    largest |y| (the clean-up we apply to symbolic-regression output, offered to any SR expression)."""
    return canonical(_prune(sp.expand(sp.sympify(expr)), _Data(X, y, names, {}, 1.0), rel))


def _round_constants(expr: sp.Expr, digits: int = 6) -> sp.Expr:
    return expr.xreplace({f: sp.Float(float(f"{float(f):.{digits}g}")) for f in expr.atoms(sp.Float)})


def symbolic_regression(d: _Data, backend: str, generations: int, seed: int) -> list[sp.Expr]:
    """Candidate expressions over the features from pyoperon or gplearn (imported lazily; ``pip install 'reprolab[ags]'``)."""
    X = d.F[:, d.usable] if d.usable else d.F
    syms = [d.feat_syms[j] for j in d.usable] if d.usable else d.feat_syms
    local = {f"X{i + 1}": s for i, s in enumerate(syms)}
    if backend == "pyoperon":
        try:
            from pyoperon.sklearn import SymbolicRegressor
        except ImportError as exc:
            raise MissingExtra("pyoperon", "ags") from exc
        reg = SymbolicRegressor(generations=generations, population_size=100, max_length=25, n_threads=1, random_state=seed,
                                allowed_symbols="add,sub,mul,div,constant,variable")
        reg.fit(X, d.y)
        text = reg.get_model_string(reg.model_, 8)
        local = {f"X{i + 1}": s for i, s in enumerate(syms)}
    elif backend == "gplearn":
        try:
            from gplearn.genetic import SymbolicRegressor
        except ImportError as exc:
            raise MissingExtra("gplearn (pip install --no-deps gplearn==0.4.3)", "ags") from exc
        reg = SymbolicRegressor(population_size=200, generations=generations, random_state=seed, n_jobs=1,
                                function_set=("add", "sub", "mul", "div"), parsimony_coefficient=0.001)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reg.fit(X, d.y)
        text = str(reg._program)
        local = {f"X{i}": s for i, s in enumerate(syms)}
        local.update({"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
                      "div": lambda a, b: a / b})
    else:
        raise ConfigError("sr", backend, "'pyoperon' or 'gplearn'")
    try:
        e = sp.sympify(text, locals=local)
    except (sp.SympifyError, TypeError, SyntaxError):
        return []
    e = _prune(sp.expand(e), d)
    return [e]


# ------------------------------------------------------------------------------------------ the protocol
def _features(names: Sequence[str], derived: Mapping[str, sp.Expr], X: np.ndarray) -> list[np.ndarray]:
    X = np.asarray(X, dtype=float)
    cols = [X[:, j] for j in range(X.shape[1])]
    syms = [sp.Symbol(n, positive=True) for n in names]
    for dexpr in derived.values():
        f = sp.lambdify(syms, dexpr, "numpy")
        with np.errstate(all="ignore"):
            cols.append(np.broadcast_to(np.asarray(f(*X.T), dtype=float), (len(X),)))
    return cols


def _build(expr: sp.Expr, d: _Data, family: str, chi2: float, k: int, score: float) -> Hypothesis | None:
    expr = _round_constants(canonical(expr))
    prim = canonical(d.to_primitive(expr))
    try:
        fn = sp.lambdify(d.syms, prim, "numpy")
    except Exception:  # noqa: BLE001
        return None
    n = len(d.y)
    return Hypothesis(expr, prim, family, k, chi2, chi2 + k * math.log(n), score, n, fn, list(d.names), dict(d.derived))


def _chi2(values: np.ndarray, d: _Data) -> float:
    scale = np.where(d.y != 0, np.abs(d.y), 1.0)
    v = np.asarray(values, dtype=float)
    if v.shape != d.y.shape or not np.all(np.isfinite(v)):
        return math.inf
    return float(np.sum(((d.y - v) / (d.sigma * scale)) ** 2))


def analyse(X: np.ndarray, y: np.ndarray, names: Sequence[str], *, sigma: float, config: AnalysisConfig = AnalysisConfig(),
            derived: Mapping[str, sp.Expr] | None = None, proposals: Sequence[sp.Expr] = (), seed: int = 0,
            window: float = 10.0, keep: int = 6) -> list[Hypothesis]:
    """Candidate laws for ``y = f(X)`` (columns ``names``), best (lowest score) first, one per distinct form: those
    whose score is within ``window`` of the best, at most ``keep``.

    score = BIC + 2 ln(size of the candidate's family) - 2 ln(prior odds): a uniform prior over each family's members
    (the more forms a family tried, the more a chance improvement is discounted), and a language model's proposal
    gets ``prior_odds``. ``derived``: quantities defined by published laws (name -> expression over ``names``), used as
    extra features; ``proposals``: candidate forms over ``names`` and the derived names."""
    if not (math.isfinite(sigma) and sigma > 0):
        raise ConfigError("sigma", sigma, "the lab's relative noise level, > 0")
    d = _Data(X, y, names, derived or {}, sigma)
    tol = config.snap_tol
    n = len(d.y)
    cands: list[_Cand] = list(_candidates_monomial(d, tol))
    if config.families:
        cands += _candidates_exponential(d, tol) + _candidates_saturating(d, tol) + _candidates_saturating_exp(d, tol)
    free: list[tuple[sp.Expr, str, float]] = []
    for p in proposals:
        e = refit(p, d)
        if e is not None:
            free.append((e, "proposal", config.prior_odds))

    def numeric(e: sp.Expr) -> np.ndarray | None:
        try:
            f = sp.lambdify(d.feat_syms, e, "numpy")
            with np.errstate(all="ignore"):
                return np.broadcast_to(np.asarray(f(*[d.F[:, j] for j in range(d.F.shape[1])]), dtype=float), d.y.shape)
        except Exception:  # noqa: BLE001
            return None

    for e, fam, prior in free:
        v = numeric(_round_constants(e))
        if v is not None:
            cands.append(_Cand(fam, v, max(len(e.atoms(sp.Float)), 1), 1, lambda e=e: e, prior))

    def scored(c: _Cand) -> tuple[float, float]:
        chi2 = _chi2(c.values, d)
        return chi2, chi2 + c.k * math.log(n) + 2 * math.log(c.size) - 2 * math.log(c.prior)

    rows = [(c, *scored(c)) for c in cands]
    fits = any(chi2 <= _noise_bound(n, c.k) for c, chi2, _ in rows)
    if config.sr != "none" and not fits and n >= 6:
        for e in symbolic_regression(d, config.sr, config.sr_generations, seed):
            e2 = refit(e, d)
            e2 = e2 if e2 is not None else e
            v = numeric(e2)
            if v is not None:
                c = _Cand(config.sr, v, max(len(e2.atoms(sp.Float)), 1), 1, lambda e2=e2: e2)
                rows.append((c, *scored(c)))
    rows = [r for r in rows if math.isfinite(r[2])]
    rows.sort(key=lambda r: r[2])
    out: dict[str, Hypothesis] = {}
    for c, chi2, score in rows:
        if len(out) >= keep or score > rows[0][2] + window:
            break
        h = _build(c.build(), d, c.family, chi2, c.k, score)
        if h is not None and h.key not in out:
            out[h.key] = h
    return list(out.values())


def _noise_bound(n: int, k: int) -> float:
    from scipy import stats as st

    return float(st.chi2.ppf(0.999, max(n - k, 1)))


def disagreement(hyps: Sequence[Hypothesis], X: np.ndarray, sigma: float, window: float = 10.0) -> np.ndarray:
    """Per row of ``X``: the largest |log f_h - log f_best| over the plausible hypotheses (score within ``window`` of
    the best), in units of the noise ``sigma``; a non-positive prediction counts as 1e3."""
    if not hyps:
        return np.full(len(X), np.inf)
    best = hyps[0]
    fb = best.predict(X)
    out = np.zeros(len(X))
    for h in hyps[1:]:
        if h.score > best.score + window:
            break
        fh = h.predict(X)
        with np.errstate(all="ignore"):
            dd = np.abs(np.log(np.abs(fh)) - np.log(np.abs(fb))) / sigma
        dd = np.where(np.isfinite(dd) & (fh > 0) & (fb > 0), dd, 1e3)
        out = np.maximum(out, dd)
    return out


__all__ = ["AnalysisConfig", "Hypothesis", "PRIOR_ODDS", "analyse", "canonical", "disagreement", "is_discovery", "parametrise",
           "prune_terms", "refit", "skeleton", "symbolic_regression"]
