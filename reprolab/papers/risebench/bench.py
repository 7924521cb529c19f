"""Benchmark ``risebench``: the three judges side by side on the same edited images.

The official judge (GPT-4.1 through ``gpt_eval.py``) needs the OpenAI API and no VLM runs offline, so the
comparison is among the judges this folder offers, on RISE-shapes outputs whose exact verdict is known:

- ``exact``: the scene reader against the expected scene (the reference: Spearman 1 by definition);
- ``logprob``: caption-then-judge, the official prompt read by a text LLM, score = the most likely digit;
- ``generate``: caption-then-judge, the LLM writes its explanation and "Final Score" as the official judge does
  (greedy, capped at ``GENERATE_TOKENS``), parsed by the official regex. The baseline: it is how the protocol is
  meant to be run.

The cap is ours (the official call allows 4096 tokens). The first quick run capped answers at 160 tokens and only
4 of 16 samples parsed: the prompts ask for "a detailed, step-by-step explanation" that ends with the score line,
and Qwen2.5-Coder 0.5B's explanations ran 230-550 tokens in a probe (one looped to 1024), so the cap cut the
"Final Score" line. ``GENERATE_TOKENS`` = 640 leaves room for such an answer and bounds the cost of one that loops;
answers the cap still cuts are counted (``generate_cut_by_cap``) and are incomplete, as the official parser makes them.

Outputs: the oracle with planted errors in half the tasks (its outputs grade the exact judge's scale) and identity
(R = 1 everywhere), one task per category; quick judges the planted-error oracle's 4 samples, full both editors'
8 samples. The judge LLM is Qwen2.5-Coder 0.5B at both scales: a complete official-format answer costs it about
10-40 s on 2 shared cores and the 1.5B generates about 3x slower, so the 1.5B is out of a benchmark's budget here.
Every judge sees the same outputs; seconds per judged sample (all of a sample's 2-3 judgements) are measured
round-robin over samples (a sample's three judges back to back, no response cache; llama.cpp reuses the KV cache
of a shared prompt prefix, as it would in any run). Spearman with the exact judge is over every (sample, dimension)
score both judges gave: on 8 samples it is a coarse number.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .editors import IdentityEditor, InstructionOnlyEditor, OracleEditor, PlantedErrorOracle
from .judges import CaptionJudge, ExactJudge
from .protocol import sample_requests
from .reader import GridReader
from .rise_shapes import make_tasks, render_grid, write_benchmark, write_image
from .scoring import parse_judgements
from .study import DIMS, _spearman

JUDGE_KEY = {"consistency": "judge1", "reasoning": "judge2", "plausibility": "judge3"}
GENERATE_TOKENS = 640  # the generative judge's cap (ours: the official call allows 4096); see the module docstring


@register_bench
class RiseBenchBench(Benchmark):
    name = "risebench"
    description = ("RISEBench judges side by side on the same RISE-shapes outputs: exact, caption-then-judge log-prob, and "
                   "generative (the official mode); seconds per judged sample and Spearman with the exact judge")

    def run(self, quick: bool) -> BenchResult:
        from ...llm import load_for_study

        model = "qwen2.5-coder-0.5b"
        root = Path("runs", "risebench", "bench")
        reader = GridReader.train(root / "reader.pt", scenes=800, steps=400)
        editors = ("oracle_err50",) if quick else ("oracle_err50", "identity")
        return self.measure(load_for_study(model, n_ctx=4096), reader, 1, root, quick=quick, model=model, editors=editors)

    def measure(self, llm: Any, reader: Any, per_cat: int, root: Path, *, quick: bool = True, model: str = "",
                editors: tuple[str, ...] = ("oracle", "oracle_err50", "identity", "instruction_only")) -> BenchResult:
        """The comparison on ``per_cat`` tasks per category and ``editors`` (of oracle, oracle_err50, identity,
        instruction_only) with ``llm`` as caption-then-judge and ``reader`` as scene reader."""
        from ...errors import ConfigError
        from ...runtime import track

        tasks = make_tasks(per_cat, seed=4242)
        by = {t.index: t for t in tasks}
        samples = write_benchmark(tasks, root / "data")
        known = {e.name: e for e in (OracleEditor(), PlantedErrorOracle(0.5, seed=1), IdentityEditor(), InstructionOnlyEditor(seed=1))}
        if not editors or any(e not in known for e in editors):
            raise ConfigError("editors", editors, f"names among {', '.join(known)}")
        eds = [known[e] for e in editors]
        jobs = []
        for ed in eds:
            for t, s in zip(tasks, samples):
                write_image(root / "outputs" / ed.name / "images" / t.category / f"{t.index}.png", ed.edit(t, render_grid(t.input)).image)
                jobs.append((ed.name, s))
        judges = {"exact": ExactJudge(by, reader), "logprob": CaptionJudge(llm, by, reader, mode="logprob"),
                  "generate": CaptionJudge(llm, by, reader, mode="generate", max_tokens=GENERATE_TOKENS)}
        seconds: dict[str, list[float]] = {k: [] for k in judges}
        scores: dict[str, dict[str, list]] = {k: {d: [] for d in DIMS} for k in judges}
        parsed = {k: 0 for k in judges}
        for name, s in track(jobs, "risebench bench: judging"):
            reqs = sample_requests(s, root / "outputs" / name, root / "data")
            for jname, judge in judges.items():
                t0 = time.perf_counter()
                texts = {JUDGE_KEY[d]: judge(rq) for d, rq in reqs.items()}
                seconds[jname].append(time.perf_counter() - t0)
                dims = parse_judgements({"judge1": None, **texts})
                parsed[jname] += dims is not None
                for d in DIMS:
                    scores[jname][d].append(getattr(dims, d) if dims is not None else None)
        rho: dict[str, dict[str, float]] = {}
        for jname in judges:
            rho[jname] = {}
            for d in DIMS:
                pairs = np.asarray([(a, b) for a, b in zip(scores["exact"][d], scores[jname][d]) if a is not None and b is not None],
                                   dtype=float).reshape(-1, 2)
                rho[jname][d] = _spearman(pairs[:, 0], pairs[:, 1]) if len(pairs) else 0.0
        notes = {k: (f"Spearman with exact C {rho[k]['consistency']:.2f} / R {rho[k]['reasoning']:.2f} / P {rho[k]['plausibility']:.2f}; "
                     f"{parsed[k]}/{len(jobs)} samples parsed") for k in judges}
        gen = judges["generate"]
        notes["generate"] += f"; {gen.cut} of {gen.generated} answers cut at the {GENERATE_TOKENS}-token cap"
        return BenchResult(bench=self.name, baseline="generate", rows=bench_rows(seconds, "generate", "s per judged sample", notes),
                           config={"tasks_per_category": per_cat, "samples": len(jobs), "editors": [e.name for e in eds], "llm": model,
                                   "generate_max_tokens": GENERATE_TOKENS, "quick": quick},
                           extra={"spearman_with_exact": rho, "parsed": parsed, "samples": len(jobs),
                                  "generate_answers": judges["generate"].generated, "generate_cut_by_cap": judges["generate"].cut,
                                  "seconds_per_sample_median": {k: float(np.median(v)) for k, v in seconds.items()},
                                  "speedup_logprob_vs_generate": float(np.median(seconds["generate"]) / np.median(seconds["logprob"])),
                                  "reader_held_out": getattr(getattr(reader, "detector", None), "held_out", {})})
