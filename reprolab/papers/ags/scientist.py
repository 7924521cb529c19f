"""The closed-loop scientist and the community of scientists (AGS, arXiv 2503.22444, Sec. 3 and Fig. 1).

The paper's modules, on the agent room (:mod:`reprolab.agents`):

1. literature (:meth:`Scientist.literature`): BM25 retrieval (:class:`reprolab.agents.LongTermMemory`) from a
   knowledge base of published laws; a published law whose inputs (name and unit) are all inputs of the task
   gives the scientist a new feature, the quantity it defines;
2. proposal (:meth:`Scientist.propose`): a language model suggests candidate forms from the variables' names and
   units (:func:`reprolab.agents.ask_structured`, metered and traced with :class:`reprolab.agents.MeteredLLM`), next
   to the analysis' enumerated families; anonymised tasks show ``x1, x2, ...`` without units;
3. design (:meth:`Scientist.design`): ``active`` picks, from 64 random candidate inputs, those where the plausible
   hypotheses disagree most plus the best hypothesis' prediction error (model discrimination + parameter
   estimation); ``grid`` runs a full factorial grid (4 log-spaced levels per input) in a seeded random order;
4. analysis: :func:`.analysis.analyse`;
5. writing (:func:`write_report`): a markdown report with the law in LaTeX and its evidence;
6. reflection (:meth:`Scientist.reflect`): before publishing, 4 fresh experiments, 2 inside the design range and 2
   extrapolated (inputs up to 1.5x beyond it); each must agree with the law within 5 sigma plus 3 prediction
   standard errors, else the data join the evidence and the investigation goes on.

Stopping rule (ours; the paper has none): publish when at least ``n_min`` experiments were run, the best hypothesis
fits at the noise level, the plausible hypotheses (score within 10) agree within ``agree`` sigma over the design
range, and every constant's relative standard error is at most ``precision``; give up after ``max_experiments``.

Autonomy levels L0-L5 are ours (the paper's level definitions are not what we implement): see :meth:`Autonomy.level`.

:class:`Community` runs N scientists in rounds with a task board and a knowledge base, shared or one per agent; it
writes the reports, the knowledge base (JSONL) and its state after every round, and resumes from them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import sympy as sp

from ...agents import FailureCounter, LongTermMemory, Meter, MeteredLLM, Trace, ask_structured
from ...errors import ConfigError, MalformedFile
from ...runtime import atomic_write_text
from .analysis import AnalysisConfig, Hypothesis, analyse, disagreement, is_discovery
from .lab import Lab, Law


@dataclass(frozen=True)
class Autonomy:
    """What a scientist may do (one field per module switch)."""

    design: str = "active"  # "active" | "grid"
    families: bool = True  # enumerated exponential / saturating families (else the monomial fit only)
    sr: str = "pyoperon"  # symbolic regression behind the enumeration: "pyoperon" | "gplearn" | "none"
    sr_generations: int = 20
    llm_prior: bool = False  # language-model proposals with a prior bonus
    anonymise: bool = False  # the model sees x1, x2, ... without units (the literature prior's control)
    reflection: bool = True  # replication + extrapolation before publishing
    sharing: bool = True  # one task board and knowledge base for the community (else one per agent)
    batch: int = 4  # experiments per round
    n_min: int = 8
    max_experiments: int = 48  # per investigation, replications included
    precision: float = 0.004  # largest relative standard error of a constant at publication
    agree: float = 3.0  # plausible hypotheses must agree within this many sigma over the design range

    def __post_init__(self) -> None:
        if self.design not in ("active", "grid"):
            raise ConfigError("design", self.design, "'active' or 'grid'")
        for name in ("batch", "n_min", "max_experiments"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(name, v, "an int >= 1")
        AnalysisConfig(sr=self.sr, sr_generations=self.sr_generations)

    @classmethod
    def level(cls, n: int, **overrides: Any) -> Autonomy:
        """Our levels: L0 scripted grid + monomial fit; L1 + the full SR protocol; L2 + active design; L3 + LLM
        hypotheses; L4 + reflection; L5 + multi-agent sharing."""
        if n not in range(6):
            raise ConfigError("level", n, "an int in 0..5")
        a = cls(design="active" if n >= 2 else "grid", families=n >= 1, sr="pyoperon" if n >= 1 else "none",
                llm_prior=n >= 3, reflection=n >= 4, sharing=n >= 5)
        return replace(a, **overrides)

    @property
    def analysis(self) -> AnalysisConfig:
        return AnalysisConfig(families=self.families, sr=self.sr, sr_generations=self.sr_generations)


# ------------------------------------------------------------------------------------------ knowledge base
class KnowledgeBase:
    """Published laws in a :class:`reprolab.agents.LongTermMemory` (BM25), saved as JSONL."""

    def __init__(self) -> None:
        self.memory = LongTermMemory("bm25")

    def publish(self, law: Law, expr: sp.Expr, agent: str, round_: int) -> None:
        ins = [f"{v.name} [{v.unit}]" for v in law.inputs]
        text = (f"{law.output.name}: {law.output.meaning} [{law.output.unit}] = {expr}. Inputs: "
                + "; ".join(f"{v.name} {v.meaning} [{v.unit}]" for v in law.inputs))
        self.memory.write(text, kind="semantic", law=law.name, symbol=law.output.name, expr=str(expr), inputs=ins,
                          agent=agent, round=round_)

    def laws(self) -> set[str]:
        return {r.meta["law"] for r in self.memory.records}

    def __len__(self) -> int:
        return len(self.memory)

    def to_jsonl(self) -> str:
        return "".join(json.dumps({"text": r.text, **r.meta}) + "\n" for r in self.memory.records)

    @classmethod
    def from_jsonl(cls, text: str, path: str = "knowledge.jsonl") -> KnowledgeBase:
        kb = cls()
        for i, line in enumerate(text.splitlines()):
            try:
                d = json.loads(line)
                meta = {k: v for k, v in d.items() if k != "text"}
                kb.memory.write(d["text"], kind="semantic", **meta)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise MalformedFile(path, f"line {i + 1} is not a knowledge-base record ({exc})",
                                    fix="delete the run folder to start afresh") from None
        return kb


# ------------------------------------------------------------------------------------------ investigation
@dataclass
class Investigation:
    """The state of one scientist's work on one law (JSON-able, so a run resumes)."""

    law: str
    X: list[list[float]] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    experiments: int = 0
    replications: int = 0  # experiments spent on reflection
    rounds: int = 0
    grid_seed: int = 0
    grid_next: int = 0
    status: str = "open"  # open | published | abandoned
    published: str = ""  # the published expression over the primitive inputs
    kb_size: int = 0  # knowledge-base size when it started


@dataclass
class Outcome:
    law: str
    status: str
    experiments: int
    replications: int
    published: str
    correct: bool


_SCHEMA = {"type": "object", "properties": {"formulas": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
           "required": ["formulas"]}


class Scientist:
    """One closed-loop scientist. ``rng`` drives its designs and SR seeds; ``llm`` (any :mod:`reprolab.llm` backend)
    is needed only with ``autonomy.llm_prior``; ``proposals_cache`` shares model answers between scientists."""

    def __init__(self, name: str, lab: Lab, kb: KnowledgeBase, autonomy: Autonomy, *, seed: int = 0, llm: Any = None,
                 proposals_cache: dict[str, list[str]] | None = None, trace: Trace | None = None,
                 reports: Path | None = None):
        if autonomy.llm_prior and llm is None:
            raise ConfigError("llm", None, "a language model when autonomy.llm_prior is on")
        self.name, self.lab, self.kb, self.autonomy = name, lab, kb, autonomy
        self.rng = np.random.default_rng(seed)
        self.trace = trace
        self.llm = MeteredLLM(llm, Meter(), trace, agent=name) if llm is not None else None
        self.proposals_cache = proposals_cache if proposals_cache is not None else {}
        self.failures = FailureCounter()
        self.reports = reports

    # 1. literature
    def literature(self, law: Law) -> dict[str, sp.Expr]:
        """Quantities defined by published laws whose inputs are all inputs of ``law``: name -> expression."""
        ours = {f"{v.name} [{v.unit}]" for v in law.inputs}
        out: dict[str, sp.Expr] = {}
        for rec in self.kb.memory.retrieve(law.describe(), k=12):
            m = rec.meta
            if m["law"] == law.name or not set(m["inputs"]) <= ours or m["symbol"] in law.input_names:
                continue
            local = {n.split(" ")[0]: sp.Symbol(n.split(" ")[0], positive=True) for n in m["inputs"]}
            out.setdefault(m["symbol"], sp.sympify(m["expr"], locals=local))
        return out

    # 2. proposal
    def propose(self, law: Law) -> list[sp.Expr]:
        """Candidate forms from the language model (none without ``llm_prior``); unparsable answers are dropped."""
        if not self.autonomy.llm_prior:
            return []
        anon = self.autonomy.anonymise
        key = f"{law.name}|{'anon' if anon else 'named'}"
        if key not in self.proposals_cache:
            names = [f"x{i + 1}" for i in range(len(law.inputs))] if anon else list(law.input_names)
            target = "y" if anon else law.output.name
            msgs = [{"role": "system", "content": "You are a scientist. Propose candidate formulas for a law."},
                    {"role": "user", "content": f"{law.describe(anonymise=anon)} Propose up to 3 candidate formulas for "
                     f"{target} using only {', '.join(names)}, numbers and named constants, in Python syntax (use ** and exp). "
                     'Reply with JSON only: {"formulas": ["...", "..."]}'}]
            from ...llm import Sampling

            out = ask_structured(self.llm, msgs, _SCHEMA, Sampling(max_tokens=160, temperature=0.0, seed=0), counter=self.failures)
            self.proposals_cache[key] = list(out.value["formulas"]) if out.ok else []
        names = [f"x{i + 1}" for i in range(len(law.inputs))] if anon else list(law.input_names)
        local = {n: v.symbol for n, v in zip(names, law.inputs)}
        exprs = []
        for text in self.proposals_cache[key]:
            text = str(text).split("=")[-1].replace("^", "**")  # small models write "^" for powers
            for prefix in ("math.", "np.", "numpy.", "sympy.", "sp."):
                text = text.replace(prefix, "")
            try:
                e = sp.sympify(text, locals={**local, "e": sp.E, "E": sp.E, "pi": sp.pi})
            except (sp.SympifyError, TypeError, SyntaxError, ValueError, AttributeError):
                self.failures.fail("unparsable formula")
                continue
            if isinstance(e, sp.Expr) and e.free_symbols & set(local.values()):
                exprs.append(e)
        return exprs

    # 3. design
    def _pool(self, law: Law, n: int, factor: float = 1.0) -> np.ndarray:
        lo = np.log([v.low for v in law.inputs])
        hi = np.log([v.high * factor for v in law.inputs])
        return np.exp(self.rng.uniform(lo, hi, (n, len(law.inputs))))

    def design(self, inv: Investigation, law: Law, hyps: Sequence[Hypothesis]) -> np.ndarray:
        b = self.autonomy.batch
        if self.autonomy.design == "grid":
            levels = [np.exp(np.linspace(math.log(v.low), math.log(v.high), 4)) for v in law.inputs]
            grid = np.array(np.meshgrid(*levels, indexing="ij")).reshape(len(levels), -1).T
            order = np.random.default_rng(inv.grid_seed).permutation(len(grid))
            idx = [order[(inv.grid_next + i) % len(grid)] for i in range(b)]
            inv.grid_next += b
            return grid[idx]
        pool = self._pool(law, 64)
        if not hyps:
            return pool[:b]
        util = disagreement(hyps, pool, self.lab.sigma)
        _, pred = hyps[0].uncertainty(np.asarray(inv.X), self.lab.sigma, at=pool)
        util = util + np.where(np.isfinite(pred), pred, 1e3) / self.lab.sigma
        return pool[np.argsort(-util)[:b]]

    # 6. reflection
    def reflect(self, inv: Investigation, law: Law, h: Hypothesis) -> bool:
        X = np.vstack([self._pool(law, 2), self._pool(law, 2, factor=1.5)])
        y = self.lab.measure(law.name, X)
        inv.experiments += len(X)
        inv.replications += len(X)
        _, pred = h.uncertainty(np.asarray(inv.X), self.lab.sigma, at=X)
        f = h.predict(X)
        with np.errstate(all="ignore"):
            dev = np.abs(np.log(np.abs(y)) - np.log(np.abs(f)))
        ok = bool(np.all(np.isfinite(dev)) and np.all(f > 0) and np.all(dev <= 5 * self.lab.sigma + 3 * pred))
        inv.X.extend(X.tolist())
        inv.y.extend(y.tolist())
        if self.trace is not None:
            self.trace.log("reflection", agent=self.name, law=law.name, passed=ok, max_dev_sigma=float(np.max(dev) / self.lab.sigma))
        return ok

    # the loop: one round of work
    def start(self, law: Law) -> Investigation:
        return Investigation(law.name, grid_seed=int(self.rng.integers(2**31)), kb_size=len(self.kb))

    def step(self, inv: Investigation, law: Law, round_: int = 0) -> Investigation:
        """One round: design a batch, run it, analyse, and publish / give up when the stopping rule says so."""
        a = self.autonomy
        derived = self.literature(law)
        proposals = self.propose(law)
        hyps = self._analyse(inv, law, derived, proposals) if inv.y else []
        X = self.design(inv, law, hyps)
        y = self.lab.measure(law.name, X)
        inv.X.extend(X.tolist())
        inv.y.extend(y.tolist())
        inv.experiments += len(X)
        inv.rounds += 1
        if len(inv.y) >= a.n_min:
            hyps = self._analyse(inv, law, derived, proposals)
            if hyps and self._ready(inv, law, hyps):
                if not a.reflection or self.reflect(inv, law, hyps[0]):
                    self._publish(inv, law, hyps[0], round_)
                    return inv
        if inv.status == "open" and inv.experiments >= a.max_experiments:
            inv.status = "abandoned"
            if self.trace is not None:
                self.trace.log("abandoned", agent=self.name, law=law.name, experiments=inv.experiments)
        return inv

    def _analyse(self, inv: Investigation, law: Law, derived: Mapping[str, sp.Expr], proposals: Sequence[sp.Expr]) -> list[Hypothesis]:
        return analyse(np.asarray(inv.X), np.asarray(inv.y), law.input_names, sigma=self.lab.sigma, config=self.autonomy.analysis,
                       derived=derived, proposals=proposals, seed=int(self.rng.integers(2**31)))

    def _ready(self, inv: Investigation, law: Law, hyps: Sequence[Hypothesis]) -> bool:
        best = hyps[0]
        if not best.fits_noise():
            return False
        pool = self._pool(law, 64)
        if len(hyps) > 1 and float(np.max(disagreement(hyps, pool, self.lab.sigma))) > self.autonomy.agree:
            return False
        se, _ = best.uncertainty(np.asarray(inv.X), self.lab.sigma)
        return bool(len(se) == 0 or np.max(se) <= self.autonomy.precision)

    def _publish(self, inv: Investigation, law: Law, h: Hypothesis, round_: int) -> None:
        inv.status = "published"
        inv.published = str(h.primitive)
        self.kb.publish(law, h.primitive, self.name, round_)
        if self.reports is not None:
            atomic_write_text(self.reports / f"{law.name}.md", write_report(law, h, inv, self.name))
        if self.trace is not None:
            self.trace.log("published", agent=self.name, law=law.name, expr=inv.published, experiments=inv.experiments,
                           correct=is_discovery(h.primitive, law.truth))

    def investigate(self, law: Law) -> Outcome:
        """Work on ``law`` until it is published or abandoned."""
        inv = self.start(law)
        while inv.status == "open":
            self.step(inv, law)
        return outcome(inv, law)


def outcome(inv: Investigation, law: Law) -> Outcome:
    correct = bool(inv.published) and is_discovery(sp.sympify(inv.published, locals={v.name: v.symbol for v in law.inputs}), law.truth)
    return Outcome(law.name, inv.status, inv.experiments, inv.replications, inv.published, correct)


# 5. writing
def write_report(law: Law, h: Hypothesis, inv: Investigation, agent: str) -> str:
    """A markdown report: the law in LaTeX, the evidence (data, fit, alternatives, replication)."""
    lhs = sp.Symbol(law.output.name)
    lines = [f"# {law.output.meaning.capitalize()} ({law.name})", "", f"Author: {agent}", "",
             f"$$ {sp.latex(lhs)} = {sp.latex(h.expr)} $$", ""]
    if h.expr != h.primitive:
        lines += [f"In the measured inputs: $${sp.latex(h.primitive)}$$", ""]
    lines += ["## Evidence", "", f"- {inv.experiments} experiments ({inv.replications} in replication and extrapolation checks), "
              f"{inv.rounds} rounds.", f"- Fit: chi2 = {h.chi2:.2f} over n = {h.n} points with {h.n_params} constants; "
              f"BIC = {h.bic:.2f} ({h.family}).",
              "- Inputs: " + "; ".join(f"{v.name} = {v.meaning} [{v.unit}], {v.low:g} to {v.high:g}" for v in law.inputs), ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ community
class Community:
    """N scientists working in rounds on a lab's laws.

    ``shared``: one task board (an agent takes the next law nobody holds or has published) and one knowledge base;
    else every agent has its own board (all laws, its own seeded order) and its own knowledge base, as separate
    groups would. An agent does not retake a law it gave up on until its knowledge base has grown. ``out``: the run
    folder (reports/, knowledge*.jsonl, state.json, trace.jsonl); an existing state there is resumed."""

    def __init__(self, laws: Sequence[Law], n_agents: int, autonomy: Autonomy, *, seed: int = 0, sigma: float = 0.005,
                 p_fail: float = 0.0, llm: Any = None, out: str | Path | None = None):
        if not isinstance(n_agents, int) or n_agents < 1:
            raise ConfigError("n_agents", n_agents, "an int >= 1")
        self.laws = {law.name: law for law in laws}
        self.n, self.autonomy, self.seed = n_agents, autonomy, seed
        self.shared = autonomy.sharing
        self.lab = Lab(laws, sigma=sigma, p_fail=p_fail, seed=seed)
        self.out = Path(out) if out is not None else None
        self.trace = Trace(self.out / "trace.jsonl" if self.out else None)
        cache: dict[str, list[str]] = {}
        n_kb = 1 if self.shared else n_agents
        self.kbs = [KnowledgeBase() for _ in range(n_kb)]
        reports = None
        if self.out is not None:
            reports = self.out / "reports"
            reports.mkdir(parents=True, exist_ok=True)
        self.agents = [Scientist(f"agent{i}", self.lab, self.kbs[0 if self.shared else i], autonomy, seed=seed * 1000 + i + 1,
                                 llm=llm, proposals_cache=cache, trace=self.trace, reports=reports) for i in range(n_agents)]
        order = np.random.default_rng(seed).permutation(len(laws)).tolist()
        names = list(self.laws)
        if self.shared:
            self.boards = [[names[i] for i in order]]
        else:
            self.boards = [[names[i] for i in np.random.default_rng(seed * 1000 + i + 7).permutation(len(laws))] for i in range(n_agents)]
        self.current: list[Investigation | None] = [None] * n_agents
        self.given_up: list[dict[str, int]] = [{} for _ in range(n_agents)]
        self.events: list[dict[str, Any]] = []
        self.experiments_by_round: list[int] = []  # the lab's experiments (cumulative) after each round
        self.round = 0
        if self.out is not None and (self.out / "state.json").is_file():
            self._load()

    def _take(self, i: int) -> Investigation | None:
        kb = self.kbs[0 if self.shared else i]
        board = self.boards[0 if self.shared else i]
        held = {inv.law for inv in self.current if inv is not None} if self.shared else set()
        done = kb.laws()
        for name in board:
            if name in done or name in held:
                continue
            if name in self.given_up[i] and self.given_up[i][name] >= len(kb):
                continue
            return self.agents[i].start(self.laws[name])
        return None

    def run(self, rounds: int) -> list[dict[str, Any]]:
        """Run until ``rounds`` rounds are done (resuming from the saved state); returns the publication events."""
        while self.round < rounds:
            for i, agent in enumerate(self.agents):
                if self.current[i] is None:
                    self.current[i] = self._take(i)
                inv = self.current[i]
                if inv is None:
                    continue
                law = self.laws[inv.law]
                agent.step(inv, law, self.round)
                if inv.status != "open":
                    o = outcome(inv, law)
                    self.events.append({"round": self.round, "agent": i, "law": law.name, "status": inv.status,
                                        "correct": o.correct, "experiments": inv.experiments, "composite": law.form == "composite"})
                    if inv.status == "abandoned":
                        self.given_up[i][law.name] = len(agent.kb)
                    self.current[i] = None
            self.round += 1
            self.experiments_by_round.append(self.lab.ledger.experiments)
            self._save()
        return self.events

    def discoveries(self, upto_round: int | None = None, composite_only: bool = False) -> int:
        """Distinct laws published correctly (by any agent) by the end of round ``upto_round`` (all rounds: None)."""
        return len({e["law"] for e in self.events if e["status"] == "published" and e["correct"]
                    and (upto_round is None or e["round"] < upto_round) and (not composite_only or e["composite"])})

    def _save(self) -> None:
        if self.out is None:
            return
        state = {"round": self.round, "n": self.n, "seed": self.seed, "autonomy": asdict(self.autonomy),
                 "lab": self.lab.state_dict(), "agents": [a.rng.bit_generator.state for a in self.agents],
                 "current": [asdict(c) if c is not None else None for c in self.current], "given_up": self.given_up,
                 "events": self.events, "boards": self.boards, "experiments_by_round": self.experiments_by_round,
                 "proposals": self.agents[0].proposals_cache}
        for j, kb in enumerate(self.kbs):
            atomic_write_text(self.out / f"knowledge{j}.jsonl", kb.to_jsonl())
        atomic_write_text(self.out / "state.json", json.dumps(state))

    def _load(self) -> None:
        p = self.out / "state.json"
        try:
            state = json.loads(p.read_text())
        except json.JSONDecodeError as exc:
            raise MalformedFile(str(p), f"not JSON ({exc.msg})", fix="delete the run folder to start afresh") from None
        if state.get("n") != self.n or state.get("seed") != self.seed or state.get("autonomy") != asdict(self.autonomy):
            raise ConfigError("out", str(self.out), "a folder of a run with the same agents, seed and autonomy (or a new folder)")
        self.round = state["round"]
        self.lab.load_state_dict(state["lab"])
        for a, s in zip(self.agents, state["agents"]):
            a.rng.bit_generator.state = s
        self.current = [Investigation(**c) if c is not None else None for c in state["current"]]
        self.given_up = state["given_up"]
        self.events = state["events"]
        self.experiments_by_round = state["experiments_by_round"]
        self.boards = state["boards"]
        self.agents[0].proposals_cache.update(state.get("proposals", {}))
        for j in range(len(self.kbs)):
            kbp = self.out / f"knowledge{j}.jsonl"
            self.kbs[j] = KnowledgeBase.from_jsonl(kbp.read_text() if kbp.is_file() else "", str(kbp))
        for i, a in enumerate(self.agents):
            a.kb = self.kbs[0 if self.shared else i]


__all__ = ["Autonomy", "Community", "Investigation", "KnowledgeBase", "Outcome", "Scientist", "outcome", "write_report"]
