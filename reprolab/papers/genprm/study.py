"""Study ``genprm``: does generative step verification scale with N, gain from code, and pick better answers?

No PRM weights, ProcessBench or GSM8K exist offline, so (spec sheet, "Our reproduction"):
- the judge is an off-the-shelf instruct model prompted in GenPRM's exact format (offline
  GGUF Qwen2.5-Coder; quick 0.5B, full 1.5B), NOT the paper's fine-tuned GenPRM: expect far
  lower absolute F1 than the paper's; what we can test is the direction of each effect;
- the solutions come from :mod:`reprolab.data.math_steps`: generated word/algebra problems with
  4-step solutions, written by a toy policy that is right with probability ``p_correct`` and
  otherwise makes one of two systematic mistakes per problem at a known step (exact labels).

Labelled set: every distinct candidate plus, per problem, its correct solution and one corrupted at
a seeded step (so both classes are present); identical solutions are judged once.
Protocol. Every solution is judged step by step (ProcessBench: stop at the first step
judged wrong; the prediction is that step, or -1), in two arms: ``code`` (analysis, verification
code run in the sandbox, output fed back; the paper's full GenPRM) and ``analysis`` (the paper's
ablation without code). Maj@N uses the first N of N_max paths per step (each path seeded by
(step, sample), and the response cache makes N = 1, 2, 4 share their paths). Best-of-K: for
each problem, the candidate with the highest min-step reward (code arm, N_max) vs the most
frequent final answer among the same K candidates (ties: the earliest).

Rules (fixed in code before the first full run):
(1) maj_scaling: code-arm F1 at N_max > F1 at N = 1.
(2) code_helps: F1(code) > F1(analysis) at each N (all N: reproduced; some: partly).
(3) bon_vs_majority: at each K, PRM best-of-K accuracy > majority-vote accuracy.
Malformed paths (no Yes/No probability) and truncated stages are counted and reported.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from ...data.math_steps import KINDS, Problem, Solution, corrupt, make_problems, sample_candidates, solve
from ...runtime import atomic_write_json, track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .genprm import GenerativePRM, GenPRMConfig, best_index, majority_vote, nan_to_none, processbench_f1

PAPER_F1 = {"GenPRM-1.5B": (57.3, 63.4), "GenPRM-7B": (75.2, 80.5)}  # ProcessBench F1, Maj@1 -> Maj@8
ARMS = ("code", "analysis")


@dataclass(frozen=True)
class GenPRMStudyConfig:
    model: str  # offline asset judging the steps
    n_problems: int
    candidates: int  # K solutions per problem from the toy policy
    p_correct: float  # the toy policy's chance of a fully correct solution
    n_values: tuple[int, ...]  # Maj@N evaluated (the largest is sampled, smaller ones are prefixes)
    bon_sizes: tuple[int, ...]  # K' <= candidates for best-of-K'
    max_tokens_analyze: int
    max_tokens_code: int
    n_ctx: int = 4096


def _gt(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and a > b


def _f1_str(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _judge_scaling(m: Metrics) -> Judgement:
    f = m["f1"]["code"]
    lo, hi = f[str(m["n_values"][0])]["f1"], f[str(m["n_values"][-1])]["f1"]
    ours = f"code-arm F1 at N={m['n_values'][0]}: {_f1_str(lo)}, at N={m['n_values'][-1]}: {_f1_str(hi)}"
    return Judgement.from_checks(ours, {f"F1 rises from N={m['n_values'][0]} to N={m['n_values'][-1]}": _gt(hi, lo)})


def _judge_code(m: Metrics) -> Judgement:
    checks, parts = {}, []
    for n in m["n_values"]:
        c, a = m["f1"]["code"][str(n)]["f1"], m["f1"]["analysis"][str(n)]["f1"]
        checks[f"N={n}: code F1 > analysis-only F1"] = _gt(c, a)
        parts.append(f"N={n}: code {_f1_str(c)} vs analysis {_f1_str(a)}")
    return Judgement.from_checks("; ".join(parts), checks)


def _judge_bon(m: Metrics) -> Judgement:
    checks, parts = {}, []
    for k, b in m["bon"].items():
        checks[f"K={k}: PRM best-of-K beats majority voting"] = b["prm"] > b["majority"]
        parts.append(f"K={k}: PRM {100 * b['prm']:.0f}% vs majority {100 * b['majority']:.0f}% (oracle {100 * b['oracle']:.0f}%)")
    return Judgement.from_checks("; ".join(parts), checks)


@register
class GenPRMStudy(Study):
    name = "genprm"
    paper = Paper("GenPRM: Scaling Test-Time Compute of Process Reward Models via Generative Reasoning", arxiv="2504.00891",
                  code="https://github.com/RyanLiu112/GenPRM")
    claims = [
        Claim("maj_scaling", "Sampling more verification paths per step (Maj@N) raises first-error F1.",
              "ProcessBench F1: GenPRM-1.5B 57.3 (Maj@1) -> 63.4 (Maj@8); 7B 75.2 -> 80.5",
              "code-arm F1 at the largest N > F1 at N = 1", _judge_scaling),
        Claim("code_helps", "Executing the verification code raises F1 over analysis alone at equal N.",
              "ablation: dropping code verification lowers ProcessBench F1",
              "F1(code) > F1(analysis) at each N (all: reproduced; some: partly)", _judge_code),
        Claim("bon_vs_majority", "Best-of-N selection with the PRM beats majority voting of answers at equal N.",
              "GenPRM as a verifier beats majority voting in best-of-N on MATH/AMC/AIME (Fig. 1, Sec. 4.3)",
              "at each K, PRM best-of-K accuracy > majority-vote accuracy", _judge_bon),
    ]
    scales = {
        Scale.SMOKE: GenPRMStudyConfig(model="gemma-3-270m", n_problems=1, candidates=2, p_correct=0.5, n_values=(1, 2),
                                       bon_sizes=(2,), max_tokens_analyze=12, max_tokens_code=16, n_ctx=1024),
        Scale.QUICK: GenPRMStudyConfig(model="qwen2.5-coder-0.5b", n_problems=1, candidates=2, p_correct=0.35, n_values=(1, 2),
                                       bon_sizes=(2,), max_tokens_analyze=48, max_tokens_code=64),
        Scale.FULL: GenPRMStudyConfig(model="qwen2.5-coder-1.5b", n_problems=2, candidates=4, p_correct=0.35, n_values=(1, 2, 4),
                                      bon_sizes=(2, 4), max_tokens_analyze=96, max_tokens_code=128),
    }
    version = 1
    changelog = {1: "first version: toy-policy candidates with exact labels; code vs analysis-only arms; Maj@N by prefix of N_max paths"}

    def run(self, config: GenPRMStudyConfig, run: RunDir) -> Metrics:
        from ...llm import load_for_study

        llm = load_for_study(config.model, n_ctx=config.n_ctx, cache=run.checkpoints / "llm.sqlite")
        problems = make_problems(config.n_problems, seed=run.seed)
        cands: list[tuple[Problem, list[Solution]]] = [(p, sample_candidates(p, config.candidates, config.p_correct, seed=run.seed))
                                                       for p in problems]
        # The labelled set (first-error F1): every distinct candidate, plus per problem its correct solution
        # and one corrupted at a seeded (step, kind), so both classes are always present. Best-of-K uses
        # the candidates only. Identical solutions are judged once.
        rng = random.Random(run.seed)
        solutions: dict[tuple[str, ...], tuple[Problem, Solution]] = {}
        for p, cs in cands:
            extra = [solve(p), corrupt(p, rng.randrange(len(p.plan)), rng.choice(KINDS))]
            for c in [*cs, *extra]:
                solutions.setdefault(tuple(c.steps), (p, c))
        keys = list(solutions)
        n_max = max(config.n_values)
        prms = {arm: GenerativePRM(llm, GenPRMConfig(n=n_max, verify=arm == "code", execute=arm == "code", seed=run.seed,
                                                     max_tokens_analyze=config.max_tokens_analyze, max_tokens_code=config.max_tokens_code))
                for arm in ARMS}
        jobs = [(arm, n, key) for n in sorted(config.n_values) for arm in ARMS for key in keys]
        scores: dict[tuple[str, int, tuple[str, ...]], Any] = {}
        seconds = {arm: 0.0 for arm in ARMS}
        judged = {arm: 0 for arm in ARMS}
        for arm, n, key in track(jobs, "genprm: judging solutions"):
            p, sol = solutions[key]
            before = llm.stats.seconds
            s = prms[arm].score_steps(p.question, sol.steps, n=n)
            if n == n_max:  # cost per judged step at N_max (generation time only; cache hits excluded)
                seconds[arm] += llm.stats.seconds - before
                judged[arm] += s.judged_steps
            scores[(arm, n, key)] = s

        gold = [solutions[k][1].first_error for k in keys]
        f1: dict[str, dict[str, Any]] = {arm: {} for arm in ARMS}
        health: dict[str, dict[str, int]] = {arm: {"malformed": 0, "truncated": 0, "paths": 0} for arm in ARMS}
        exec_status: dict[str, int] = {}
        for arm in ARMS:
            for n in config.n_values:
                pred = [scores[(arm, n, k)].first_error for k in keys]
                f, ae, ac = processbench_f1(pred, gold)
                f1[arm][str(n)] = {"f1": f, "acc_error": ae, "acc_correct": ac, "pred": pred}
            for k in keys:
                s = scores[(arm, n_max, k)]
                health[arm]["malformed"] += s.malformed
                for ps in s.paths:
                    for path in ps:
                        health[arm]["paths"] += 1
                        health[arm]["truncated"] += path.truncated
                        if path.execution_status:
                            exec_status[path.execution_status] = exec_status.get(path.execution_status, 0) + 1
        bon = {}
        for kk in config.bon_sizes:
            prm_ok = maj_ok = oracle = 0
            for p, cs in cands:
                sub = cs[:kk]
                best = best_index([scores[("code", n_max, tuple(c.steps))].aggregate("min") for c in sub])
                maj = majority_vote([c.answer_text for c in sub])
                prm_ok += sub[best].answer == p.answer
                maj_ok += sub[maj].answer == p.answer
                oracle += any(c.answer == p.answer for c in sub)
            bon[str(kk)] = {"prm": prm_ok / len(cands), "majority": maj_ok / len(cands), "oracle": oracle / len(cands),
                            "problems": len(cands)}

        # the judged rationales, for reading (the cache holds the raw generations)
        atomic_write_json(run.path / "judgements.json", {
            f"{arm}/solution{i}": {"question": solutions[k][0].question, "gold_first_error": solutions[k][1].first_error,
                                   "kind": solutions[k][1].kind, "steps": list(k), **scores[(arm, n_max, k)].to_json()}
            for arm in ARMS for i, k in enumerate(keys)})
        metrics: Metrics = {
            "model": config.model, "n_values": list(config.n_values), "solutions": len(gold),
            "erroneous": sum(g >= 0 for g in gold), "f1": f1, "bon": bon, "health": health, "exec_status": exec_status,
            "seconds_per_judged_step": {arm: seconds[arm] / max(judged[arm], 1) for arm in ARMS},
            "llm": llm.stats.to_json(),
            "paper_f1": PAPER_F1,
        }
        metrics = nan_to_none(metrics)
        self._figures(metrics, run)
        llm.close()
        return metrics

    @staticmethod
    def _figures(m: Metrics, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        ax = axes[0]
        ns = m["n_values"]
        for arm, style in (("code", "o-"), ("analysis", "s--")):
            ax.plot(ns, [100 * (m["f1"][arm][str(n)]["f1"] or 0.0) for n in ns], style, label=f"ours, {arm}")
        for name, (a, b) in PAPER_F1.items():
            ax.plot([1, 8], [a, b], ":", alpha=0.6, label=f"paper {name}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("N (verification paths per step)")
        ax.set_ylabel("first-error F1 (%)")
        ax.set_title(f"Maj@N, judge {m['model']}")
        ax.legend(fontsize=7)
        ax = axes[1]
        ks = list(m["bon"])
        x = range(len(ks))
        for j, key in enumerate(("prm", "majority", "oracle")):
            ax.bar([i + 0.27 * (j - 1) for i in x], [100 * m["bon"][k][key] for k in ks], width=0.27, label=key)
        ax.set_xticks(list(x), [f"K={k}" for k in ks])
        ax.set_ylabel("problems answered right (%)")
        ax.set_title("best-of-K: PRM (min step reward) vs majority vote")
        ax.legend(fontsize=7)
        fig.tight_layout()
        run.save_figure(fig, "genprm", "Left: first-error F1 vs N for the code and analysis-only arms, beside the paper's "
                        "Maj@1 -> Maj@8 (fine-tuned GenPRM on ProcessBench). Right: best-of-K accuracy of PRM selection vs "
                        "majority voting on the toy policy's candidates (oracle = some candidate is right).")
