"""Study ``ags``: the AGS paper's four hypotheses, operationalised on simulated labs with planted laws.

The paper (arXiv 2503.22444) reports no experiments and no numbers; each claim below turns one of its hypotheses
into a measurement on our :class:`.Lab` (README, "Our reproduction"). The laws are planted, so "discovery" is
measurable (:func:`.analysis.is_discovery`: symbolically equal, constants within 1%), and "exponential vs linear"
becomes a fitted exponent.

Rules (fixed in code before the first quick or full run; every headline is a bootstrap over seeds,
:mod:`reprolab.stats` with ``method="bootstrap"`` (BCa), 95%):

- closed_loop: per seed, log(median experiments to discovery with active design / the same with grid design), over
  the laws both arms discovered in that seed (single-law investigations, L4 without the LLM); reproduced when the
  interval of the mean log ratio lies wholly below 0 (the ratio's interval < 1). Not testable when some seed has
  fewer than 2 laws discovered by both arms.
- flywheel: per seed, composite laws discovered with a shared knowledge base and task board minus without (isolated
  agents), summed over N >= 2 (community runs of R rounds); reproduced when the interval lies wholly above 0;
  supporting: the shared communities discover more laws in the second half of the rounds than in the first (summed
  over N and seeds). Not testable when no composite law is discovered in either arm.
- scaling: per seed, the exponent alpha of discoveries after R rounds = a N^alpha (least squares on N in the agents'
  list) for shared communities; reproduced when alpha_shared's interval lies wholly above 0; supporting: mean
  alpha_shared > mean alpha_isolated (else partly). Not testable when the largest shared community saturates the law
  set (>= 80% of it discovered in some seed) or discovers nothing. Capability scaling (SR budget, LLM prior) is
  reported beside it, not judged.
- reflection: per seed, the false-discovery rate among published laws without reflection minus with it (single-law
  investigations, active design, by a "hasty" scientist who publishes as soon as the best law fits at the noise level:
  no agreement or precision requirement, so that reflection is the only safeguard; the careful stopping rule of the
  other arms leaves reflection nothing to catch); reproduced when the interval lies wholly above 0; the extra
  experiments of the replications are reported. Not testable when no false discovery is made without reflection.
- literature: per seed, log(median experiments to discovery with the LLM prior / without) over the laws both
  discovered, variables named; reproduced when wholly below 0; supporting (the control): with anonymised variables
  the same interval is not wholly below 0. Not run without a language model (quick); not testable when the model
  gave no parsable formula.

Scales: smoke = 3 laws, 2 seeds, a scripted model (code path only); quick = 8 laws, 2 seeds, N in {1, 4}, no LLM;
full = 24 laws (16 for the single-law claims), 5 seeds, N in {1, 2, 4, 8}, Qwen2.5-Coder 0.5B for the prior (one cached
call per law and condition).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ... import stats
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .lab import Lab, catalogue_subset
from .scientist import Autonomy, Community, KnowledgeBase, Scientist

ARMS = ("active", "grid", "hasty", "hasty_reflection", "llm_named", "llm_anonymised")
HASTY = {"precision": 1.0, "agree": 1e6}  # the reflection claim's scientist: publishes once the best law fits the noise


@dataclass(frozen=True)
class AGSConfig:
    single_laws: tuple[str, ...]  # laws of the single-law claims (closed loop, reflection, literature)
    community_laws: tuple[str, ...]  # the community's law set
    seeds: int
    agents: tuple[int, ...]  # N of the communities
    rounds: int  # R
    llm: str  # "none" | "scripted" | an offline GGUF asset
    sr_generations: int = 20
    sigma: float = 0.005  # the labs' relative noise
    p_fail: float = 0.05  # robot failure probability (retried)
    capability: bool = True  # report capability scaling (SR budget, LLM prior) for N = 1


SINGLE_ALL = ("kinetic_energy", "density", "gravitation", "pendulum", "ideal_gas", "coulomb", "joule_power", "centripetal",
              "mechanical_energy", "spring_energy", "arrhenius", "radioactive_decay", "barometric", "michaelis_menten",
              "langmuir", "monod")
QUICK_LAWS = ("kinetic_energy", "ideal_gas", "centripetal", "arrhenius", "michaelis_menten", "boltzmann_factor", "adsorption",
              "skid_probability")


def _median_log_ratio(a: list[dict], b: list[dict]) -> float | None:
    """log(median experiments of a / of b) over the laws both discovered; None when none."""
    ea = {o["law"]: o["experiments"] for o in a if o["correct"]}
    eb = {o["law"]: o["experiments"] for o in b if o["correct"]}
    both = sorted(set(ea) & set(eb))
    if not both:
        return None
    return math.log(float(np.median([ea[k] for k in both])) / float(np.median([eb[k] for k in both])))


def _both(a: list[dict], b: list[dict]) -> int:
    return len({o["law"] for o in a if o["correct"]} & {o["law"] for o in b if o["correct"]})


def _ratio_head(m: Metrics, arm: str, base: str, label: str) -> tuple[stats.Comparison, list[float]]:
    r = [_median_log_ratio(a, b) for a, b in zip(m["single"][arm], m["single"][base])]
    r = [x for x in r if x is not None]
    c = stats.compare_to_value(r or [0.0], 0.0, unit="seeds", direction="less", method="bootstrap", label=label)
    return c, r


def _exp(x: float) -> float:
    return math.exp(max(min(x, 700.0), -700.0))  # an unbounded interval side stays printable


def _ratio_words(c: stats.Comparison) -> str:
    return f"ratio {_exp(-c.effect):.2f} [{_exp(-c.high):.3g}, {_exp(-c.low):.3g}] over {c.n} {c.unit}"


def judge_closed_loop(m: Metrics) -> Judgement:
    c, _ = _ratio_head(m, "active", "grid", "median experiments to discovery, active / grid (log ratio)")
    both = [_both(a, b) for a, b in zip(m["single"]["active"], m["single"]["grid"])]
    med = {arm: float(np.mean([np.median([o["experiments"] for o in s if o["correct"]] or [0]) for s in m["single"][arm]]))
           for arm in ("active", "grid")}
    ours = (f"median experiments to discovery: active {med['active']:.1f} vs grid {med['grid']:.1f} (means over seeds); "
            f"active / grid {_ratio_words(c)}")
    return Judgement.from_headline(ours, c, preconditions={"every seed has >= 2 laws discovered by both arms": min(both) >= 2})


def judge_flywheel(m: Metrics) -> Judgement:
    big = [str(n) for n in m["agents"] if n >= 2]
    sh = [sum(m["community"]["shared"][n][s]["composites"] for n in big) for s in range(m["seeds"])]
    iso = [sum(m["community"]["isolated"][n][s]["composites"] for n in big) for s in range(m["seeds"])]
    c = stats.compare_paired(sh, iso, unit="seeds", direction="greater", method="bootstrap",
                             label="composite laws discovered, shared - isolated (sum over N >= 2)")
    first = sum(m["community"]["shared"][n][s]["first_half"] for n in big for s in range(m["seeds"]))
    second = sum(m["community"]["shared"][n][s]["second_half"] for n in big for s in range(m["seeds"]))
    ours = (f"composites discovered per seed (sum over N in {big}): shared {np.mean(sh):.1f} vs isolated {np.mean(iso):.1f}, "
            f"difference {c.effect:+.2f} [{c.low:.2f}, {c.high:.2f}] over {c.n} seeds; shared communities: {first} discoveries "
            f"in the first half of the rounds, {second} in the second")
    return Judgement.from_headline(ours, c, supporting={"shared: more discoveries in the second half of the rounds than the first":
                                                        second > first},
                                   preconditions={"some composite law discovered in either arm": max(sh + iso) > 0})


def fit_power(ns: list[float], ds: list[float]) -> float:
    """alpha of d = a n^alpha by least squares on d (scipy curve_fit; zeros allowed), starting from the log-log slope."""
    from scipy.optimize import curve_fit

    ns_a, ds_a = np.asarray(ns, dtype=float), np.asarray(ds, dtype=float)
    if np.all(ds_a == 0):
        return 0.0
    pos = ds_a > 0
    a0 = float(np.polyfit(np.log(ns_a[pos]), np.log(ds_a[pos]), 1)[0]) if pos.sum() >= 2 else 1.0
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 4 points, 2 parameters: the covariance is not used
            (a, alpha), _ = curve_fit(lambda n, a, al: a * n ** al, ns_a, ds_a, p0=[max(ds_a[0], 0.5), a0], maxfev=4000)
        return float(alpha) if math.isfinite(alpha) else a0
    except RuntimeError:
        return a0


def alphas(m: Metrics, mode: str) -> list[float]:
    ns = list(m["agents"])
    return [fit_power(ns, [m["community"][mode][str(n)][s]["discoveries"] for n in ns]) for s in range(m["seeds"])]


def judge_scaling(m: Metrics) -> Judgement:
    a_sh, a_iso = alphas(m, "shared"), alphas(m, "isolated")
    c = stats.compare_to_value(a_sh, 0.0, unit="seeds", direction="greater", method="bootstrap",
                               label="alpha of discoveries = a N^alpha, shared communities")
    nmax = str(max(m["agents"]))
    top = [m["community"]["shared"][nmax][s]["discoveries"] for s in range(m["seeds"])]
    ours = (f"alpha_shared {np.mean(a_sh):.2f} [{c.low:.2f}, {c.high:.2f}] over {c.n} seeds, alpha_isolated {np.mean(a_iso):.2f}; "
            f"N = {nmax} shared discovers {np.mean(top):.1f} of {m['n_community_laws']} laws")
    return Judgement.from_headline(ours, c, supporting={"alpha_shared > alpha_isolated (means)": np.mean(a_sh) > np.mean(a_iso)},
                                   preconditions={f"N = {nmax} does not saturate the law set (< 80% discovered in every seed)":
                                                  max(top) < 0.8 * m["n_community_laws"],
                                                  f"N = {nmax} discovers some law": min(top) > 0})


def _fdr(outs: list[dict]) -> tuple[float, int, int]:
    pub = [o for o in outs if o["status"] == "published"]
    false = sum(1 for o in pub if not o["correct"])
    return (false / len(pub) if pub else 0.0), false, len(pub)


def judge_reflection(m: Metrics) -> Judgement:
    off = [_fdr(s) for s in m["single"]["hasty"]]
    on = [_fdr(s) for s in m["single"]["hasty_reflection"]]
    c = stats.compare_paired([x[0] for x in off], [x[0] for x in on], unit="seeds", direction="greater", method="bootstrap",
                             label="false-discovery rate, without - with reflection")
    reps = [o["replications"] for s in m["single"]["hasty_reflection"] for o in s if o["status"] == "published"]
    ours = (f"false-discovery rate {100 * np.mean([x[0] for x in off]):.1f}% without reflection vs "
            f"{100 * np.mean([x[0] for x in on]):.1f}% with ({sum(x[1] for x in off)} / {sum(x[2] for x in off)} vs "
            f"{sum(x[1] for x in on)} / {sum(x[2] for x in on)} published), difference {100 * c.effect:+.1f} points "
            f"[{100 * c.low:.1f}, {100 * c.high:.1f}] over {c.n} seeds; extra experiments per published law "
            f"{np.mean(reps) if reps else 0:.1f}")
    return Judgement.from_headline(ours, c, preconditions={"some false discovery without reflection (something to lower)":
                                                           sum(x[1] for x in off) > 0})


def judge_literature(m: Metrics) -> Judgement:
    if m.get("llm") in (None, "none"):
        return Judgement.not_run("no language model at this scale (the prior needs one; see the full run)")
    c, _ = _ratio_head(m, "llm_named", "active", "median experiments to discovery, LLM prior / none (log ratio), named")
    ctrl, _ = _ratio_head(m, "llm_anonymised", "active", "the same, anonymised variables")
    ours = (f"named: with / without the LLM prior {_ratio_words(c)}; anonymised (control): {_ratio_words(ctrl)}; "
            f"{m['llm_parsed']['named']} / {m['llm_parsed']['anonymised']} laws got a parsable formula (named / anonymised)")
    return Judgement.from_headline(ours, c, supporting={"the anonymised control shows no gain (its interval is not wholly below 1)":
                                                        ctrl.outcome != stats.Outcome.HOLDS},
                                   preconditions={"the model gave a parsable formula for some named law": m["llm_parsed"]["named"] > 0})


@register
class AGSStudy(Study):
    name = "ags"
    paper = Paper("Scaling Laws in Scientific Discovery with AI and Robot Scientists (Autonomous Generalist Scientist)",
                  arxiv="2503.22444")
    version = 2
    changelog = {1: "first version: closed loop, flywheel, scaling, reflection and literature prior on simulated labs",
                 2: "after the first quick run (before any full run): the reflection claim's arms became a 'hasty' scientist "
                    "(publishes once the best law fits the noise), because the careful stopping rule made no false discovery "
                    "(0 of 10), leaving reflection nothing to lower; rounds 10 -> 8 (full) and 6 -> 5 (quick) so that the "
                    "largest community does not saturate the law set (quick N = 4 found 69% of it in 6 rounds)"}
    claims = [
        Claim("closed_loop", "A closed loop cuts the resources per discovery: active design needs fewer experiments per "
              "discovery than a grid design.", "hypothesis (i), no number (Sec. 1, 3)",
              "unit: seeds. Per seed, log(median experiments to discovery, active / grid) over the laws both discovered "
              "(single-law investigations); bootstrap (BCa, 95%) of the mean; reproduced when the ratio's interval < 1",
              judge_closed_loop),
        Claim("flywheel", "Accumulated knowledge accelerates later discoveries: with a shared knowledge base more composite "
              "laws are found, and the second half of the run is faster.", "hypothesis (iii), the flywheel (Fig. on "
              "scaling, as summarised by alphaXiv)",
              "unit: seeds. Per seed, composite laws discovered shared - isolated, summed over N >= 2; bootstrap, 95%, "
              "wholly > 0; supporting: more discoveries in the second half of the rounds than the first (shared)",
              judge_flywheel),
        Claim("scaling", "Discovery scales with the number of agents: discoveries ~ a N^alpha with alpha > 0, higher when "
              "they share knowledge.", "hypothesis (ii), no number",
              "unit: seeds. Per seed, alpha of discoveries after R rounds = a N^alpha for N in the agents' list, shared; "
              "bootstrap, 95%, wholly > 0; supporting: alpha_shared > alpha_isolated (else partly); not testable when "
              "the largest community saturates the law set", judge_scaling),
        Claim("reflection", "Reflection makes results more reliable: replication and an extrapolation check before "
              "publishing lower the false-discovery rate.", "hypothesis (iv), no number",
              "unit: seeds. Per seed, false-discovery rate without - with reflection (single-law investigations by a "
              "scientist who publishes once the best law fits the noise, no precision or agreement requirement); "
              "bootstrap, 95%, wholly > 0; the replications' extra experiments are reported", judge_reflection),
        Claim("literature", "A literature prior (an LLM's candidate forms from names and units) saves experiments, and not "
              "when the variables are anonymised.", "Sec. 3, literature review and proposal; our control",
              "unit: seeds. Per seed, log(median experiments to discovery, with / without the LLM prior), named variables; "
              "bootstrap, 95%, ratio interval < 1; supporting: the anonymised control's interval is not wholly < 1",
              judge_literature),
    ]
    scales = {
        Scale.SMOKE: AGSConfig(("kinetic_energy", "arrhenius"), ("kinetic_energy", "boltzmann_factor", "michaelis_menten"),
                               seeds=2, agents=(1, 2), rounds=3, llm="scripted", sr_generations=5, capability=False),
        Scale.QUICK: AGSConfig(QUICK_LAWS[:5], QUICK_LAWS, seeds=2, agents=(1, 4), rounds=5, llm="none", capability=False),
        Scale.FULL: AGSConfig(SINGLE_ALL, tuple(law.name for law in catalogue_subset()), seeds=5, agents=(1, 2, 4, 8), rounds=8,
                              llm="qwen2.5-coder-0.5b"),
    }

    def run(self, config: AGSConfig, run: RunDir) -> Metrics:
        try:
            import pyoperon  # noqa: F401
        except ImportError:
            from ...errors import StudySkipped

            raise StudySkipped("pyoperon is not installed", fix="pip install 'reprolab[ags]'") from None
        llm = self._llm(config, run)
        m: dict[str, Any] = {"seeds": config.seeds, "agents": list(config.agents), "llm": config.llm,
                             "n_community_laws": len(config.community_laws), "config": asdict(config)}
        single = catalogue_subset(config.single_laws)
        def auto(**kw: Any) -> Autonomy:  # L4 without the LLM prior unless asked (the prior has its own claim)
            return Autonomy.level(4, **{"llm_prior": False, "sr_generations": config.sr_generations, **kw})

        arms = {"active": auto(), "grid": auto(design="grid"), "hasty": auto(reflection=False, **HASTY),
                "hasty_reflection": auto(**HASTY)}
        if llm is not None:
            arms["llm_named"] = auto(llm_prior=True)
            arms["llm_anonymised"] = auto(llm_prior=True, anonymise=True)
        cache: dict[str, list[str]] = {}
        m["single"] = {}
        costs = {}
        for arm, arm_auto in arms.items():
            m["single"][arm] = []
            for s in range(config.seeds):
                outs = []
                lab = Lab(single, sigma=config.sigma, p_fail=config.p_fail, seed=1000 + s)
                for j, law in enumerate(single):
                    sci = Scientist(f"{arm}{s}", lab, KnowledgeBase(), arm_auto, seed=10_000 * s + j, llm=llm, proposals_cache=cache)
                    outs.append(asdict(sci.investigate(law)))
                m["single"][arm].append(outs)
                costs.setdefault(arm, []).append(lab.ledger.to_json())
        m["costs"] = costs
        if llm is not None:
            m["llm_parsed"] = {"named": sum(1 for k, v in cache.items() if k.endswith("|named") and v),
                               "anonymised": sum(1 for k, v in cache.items() if k.endswith("|anon") and v)}
            m["llm_proposals"] = cache
            m["llm_usage"] = {"calls": llm.stats.calls, "cache_hits": llm.stats.cache_hits}
        comm_laws = catalogue_subset(config.community_laws)
        m["community"] = {"shared": {}, "isolated": {}}
        for mode in ("shared", "isolated"):
            for n in config.agents:
                rows = []
                for s in range(config.seeds):
                    com = Community(comm_laws, n, auto(sharing=mode == "shared"), seed=s, sigma=config.sigma, p_fail=config.p_fail,
                                    out=run.checkpoints / "community" / run.key_with(mode, n, s, config.rounds))
                    com.run(config.rounds)
                    half = config.rounds // 2
                    rows.append({"discoveries": com.discoveries(), "composites": com.discoveries(composite_only=True),
                                 "first_half": com.discoveries(half), "second_half": com.discoveries() - com.discoveries(half),
                                 "by_round": [com.discoveries(r + 1) for r in range(config.rounds)],
                                 "experiments_by_round": list(com.experiments_by_round),
                                 "published": sum(1 for e in com.events if e["status"] == "published"),
                                 "false": sum(1 for e in com.events if e["status"] == "published" and not e["correct"])})
                m["community"][mode][str(n)] = rows
        if config.capability:
            m["capability"] = self._capability(config, comm_laws, run, auto)
        self._figures(m, config, run)
        return m

    @staticmethod
    def _llm(config: AGSConfig, run: RunDir):
        if config.llm == "none":
            return None
        if config.llm == "scripted":
            return scripted_llm()
        from ...llm import load_for_study

        return load_for_study(config.llm, n_ctx=2048, cache=run.checkpoints / "llm.sqlite")

    @staticmethod
    def _capability(config: AGSConfig, laws, run: RunDir, auto) -> dict[str, Any]:
        """Capability scaling, reported (not judged): discoveries of one agent in R rounds against its SR budget."""
        out = {}
        g = config.sr_generations
        for label, a in (("monomial fit only (L0 analysis)", auto(families=False, sr="none")), ("families, no SR", auto(sr="none")),
                         (f"families + pyoperon ({g} generations)", auto()),
                         (f"families + pyoperon ({4 * g} generations)", auto(sr_generations=4 * g))):
            ds = []
            for s in range(config.seeds):
                com = Community(laws, 1, a, seed=s, sigma=config.sigma, p_fail=config.p_fail,
                                out=run.checkpoints / "capability" / run.key_with(label, s, config.rounds))
                com.run(config.rounds)
                ds.append(com.discoveries())
            out[label] = ds
        return out

    @staticmethod
    def _figures(m: Metrics, config: AGSConfig, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for k, n in enumerate(config.agents):
            for mode, ls in (("shared", "-"), ("isolated", "--")):
                rows = m["community"][mode][str(n)]
                d = np.mean([r["by_round"] for r in rows], axis=0)
                e = np.mean([r["experiments_by_round"] for r in rows], axis=0)
                axes[0].plot(range(1, config.rounds + 1), d, ls, color=colors[k % len(colors)], label=f"N={n} {mode}")
                axes[1].plot(e, d, ls, color=colors[k % len(colors)])
        axes[0].set_xlabel("round")
        axes[1].set_xlabel("experiments run by the community (cumulative)")
        for ax in axes:
            ax.set_ylabel("laws discovered (mean over seeds)")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        run.save_figure(fig, "discoveries", "Laws discovered (symbolically equal, constants within 1%) against rounds (left) and "
                        "against the community's experiments (right), per number of agents N, shared (solid) or isolated "
                        "(dashed) knowledge; mean over seeds.")
        fig, ax = plt.subplots(figsize=(5, 3.4))
        for i, mode in enumerate(("shared", "isolated")):
            a = alphas(m, mode)
            c = stats.compare_to_value(a, 0.0, unit="seeds", method="bootstrap")
            ax.errorbar([i], [c.effect], yerr=[[c.effect - max(c.low, -10)], [min(c.high, 10) - c.effect]], fmt="o", capsize=5)
            ax.scatter([i] * len(a), a, s=10, color="gray")
        ax.axhline(0, color="gray", lw=1)
        ax.set_xticks([0, 1], ["shared", "isolated"])
        ax.set_ylabel("alpha in discoveries = a N^alpha")
        fig.tight_layout()
        run.save_figure(fig, "exponents", "Fitted scaling exponent alpha per seed (gray) and its mean with the 95% bootstrap interval; "
                        "the paper gives no number (no reference line).")


def scripted_llm():
    """The smoke scale's model: it proposes the textbook form when it sees the kinetic-energy task's names, nothing
    useful otherwise (code path only, not a literature prior)."""
    from ...llm.fake import ScriptedLLM

    def respond(prompt: str, s: Any) -> str:
        if "kinetic energy" in prompt:
            return '{"formulas": ["0.5*m*v**2", "m*v"]}'
        if "Reply with only the corrected JSON" in prompt:
            return '{"formulas": []}'
        return "I am not sure."

    return ScriptedLLM(respond)


__all__ = ["AGSConfig", "AGSStudy", "alphas", "fit_power", "judge_closed_loop", "judge_flywheel", "judge_literature",
           "judge_reflection", "judge_scaling", "scripted_llm"]
