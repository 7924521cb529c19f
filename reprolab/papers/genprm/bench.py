"""Benchmark ``genprm``: cost and accuracy of three ways to judge the same step-by-step solutions.

- ``outcome``: one judgement of the whole solution's final answer (an outcome reward model,
  prompted; it cannot localise an error, so its first-error prediction is -1 when it accepts the
  solution and the last step when it rejects it);
- ``analysis``: GenPRM without code (the paper's ablation), one path per step;
- ``code``: GenPRM with verification code run in the sandbox, one path per step.

Same judge model, same solutions, variants interleaved per solution, no response cache (every
call generates). Reported per variant: seconds per judged step (median, IQR over solutions; for
``outcome`` one judgement per solution), first-error F1 and solution-level accuracy (a solution
is accepted when no step is judged wrong).

Throughput (issue 19, item 2): the code variant's completion requests on the first solutions are
recorded and replayed straight to llama.cpp's ``create_completion`` (``reprolab.llm.throughput``):
generated tokens per second of the LLM room (``llm.stats``: time inside its completion calls) against
llama.cpp alone on the same prompts and sampling, solution by solution. The ratio should be >= 0.8.
"""

from __future__ import annotations

import math
import time

from ...data.math_steps import make_problems, sample_candidates
from ...llm.throughput import raw_speed, recorded
from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .genprm import OUTPUT_START, SYSTEM_PROMPT, GenerativePRM, GenPRMConfig, p_yes, processbench_f1


def outcome_judge(llm, question: str, steps: list[str]) -> float:
    """P(Yes) that the final answer is right, from one forced judgement after the whole solution."""
    msgs = [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"Question: {question}\n\n" + "\n\n".join(steps) + "\n\nIs the final answer of this solution correct?"}]
    lp = llm.choice_logprobs(llm.format_chat(msgs) + OUTPUT_START, ["Yes", "No"])
    return p_yes(lp["Yes"], lp["No"])


def throughput(prm: GenerativePRM, sols: list) -> dict[str, float]:
    """Generated tokens per second of ``prm.score_steps`` through the LLM room (ours) and of the same
    requests sent to llama.cpp directly (raw), interleaved by solution; {} without a llama.cpp backend."""
    llm = prm.llm
    if getattr(llm, "_llm", None) is None:
        return {}
    tok, sec = {"ours": 0, "raw": 0}, {"ours": 0.0, "raw": 0.0}
    for p, c in sols:
        before = llm.stats.completion_tokens, llm.stats.seconds
        with recorded(llm) as requests:
            prm.score_steps(p.question, c.steps)
        tok["ours"] += llm.stats.completion_tokens - before[0]
        sec["ours"] += llm.stats.seconds - before[1]
        n, s = raw_speed(llm, requests)
        tok["raw"] += n
        sec["raw"] += s
    ours, raw = tok["ours"] / sec["ours"], tok["raw"] / sec["raw"]
    return {"ours_tokens_per_s": round(ours, 2), "raw_tokens_per_s": round(raw, 2), "ratio": round(ours / raw, 3),
            "ours_tokens": tok["ours"], "raw_tokens": tok["raw"], "solutions": len(sols)}


@register_bench
class GenPRMBench(Benchmark):
    name = "genprm"
    description = "seconds per judged step and first-error F1: outcome-only vs analysis-only vs code-verified GenPRM, same judge"

    def run(self, quick: bool) -> BenchResult:
        from ...llm import load_for_study
        from ...runtime import library_versions, machine_info

        model = "qwen2.5-coder-0.5b"
        n_problems, k = (2, 2) if quick else (6, 3)
        llm = load_for_study(model, n_ctx=4096)
        sols = [(p, c) for p in make_problems(n_problems, seed=11) for c in sample_candidates(p, k, 0.35, seed=11)]
        prms = {"analysis": GenerativePRM(llm, GenPRMConfig(verify=False, execute=False, max_tokens_analyze=64)),
                "code": GenerativePRM(llm, GenPRMConfig(max_tokens_analyze=64, max_tokens_code=96))}
        variants = ["outcome", "analysis", "code"]
        times: dict[str, list[float]] = {v: [] for v in variants}
        preds: dict[str, list[int]] = {v: [] for v in variants}
        for i, (p, c) in enumerate(sols):
            order = variants[i % 3:] + variants[: i % 3]  # rotate so no variant always runs first
            for v in order:
                t0 = time.perf_counter()
                if v == "outcome":
                    py = outcome_judge(llm, p.question, c.steps)
                    pred, judged = (-1 if py >= 0.5 else len(c.steps) - 1), 1
                else:
                    s = prms[v].score_steps(p.question, c.steps)
                    pred, judged = s.first_error, s.judged_steps
                times[v].append((time.perf_counter() - t0) / judged)
                preds[v].append(pred)
        gold = [c.first_error for _, c in sols]
        extra = {}
        notes = {}
        for v in variants:
            f1, ae, ac = processbench_f1(preds[v], gold)
            acc = sum((pr < 0) == (g < 0) for pr, g in zip(preds[v], gold)) / len(gold)
            extra[v] = {"f1": f1, "acc_error": ae, "acc_correct": ac, "solution_accuracy": acc}
            notes[v] = f"F1 {100 * f1:.1f}, solution accuracy {100 * acc:.0f}%" if not math.isnan(f1) else f"solution accuracy {100 * acc:.0f}%"
        extra["throughput_vs_raw_llama_cpp"] = throughput(
            GenerativePRM(llm, GenPRMConfig(max_tokens_analyze=64, max_tokens_code=96, seed=1000)), sols[:2])
        llm.close()
        return BenchResult(
            bench=self.name, baseline="outcome (s per judged step)",
            rows=bench_rows(times, "outcome", "s per judged step", notes),
            config={"model": model, "problems": n_problems, "candidates": k, "solutions": len(sols),
                    "erroneous": sum(g >= 0 for g in gold)},
            extra=extra, versions=library_versions(), machine=machine_info(),
        )
