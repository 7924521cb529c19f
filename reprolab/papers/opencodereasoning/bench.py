"""Benchmark ``opencodereasoning``: the recipe's filters with Tree-sitter vs ``ast``, and student pass@1 per data set.

1. Filter throughput (responses per second through :func:`filter_samples`) with the syntax check by
   Tree-sitter (the paper), by ``ast.parse`` (the recipe; the baseline) and without one, on the teacher
   outputs of the latest study run (``runs/opencodereasoning/{full,quick,smoke}/teacher_samples.jsonl``),
   interleaved; plus the agreement of the two checkers on every extracted code block (share of blocks
   both call valid or both invalid) and on the filters' keep/reject decisions.
2. Student pass@1, side by side in this run: the same pre-trained tiny GPT fine-tuned (same epochs,
   one seed) on our unfiltered set (every format-kept sample), on the execution-filtered set (the usual
   practice) and on the code-only set (no reasoning), scored on the same held-out problems.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...data.code_problems import make_problems
from ...study import Benchmark, BenchResult, Scale, bench_rows, register_bench, run_key
from .distill import FilterConfig, filter_samples, first_code_block, syntax_ok


def load_teacher_samples(out: str | Path = "runs") -> tuple[list[dict], str]:
    """The teacher samples of the latest study run (full, else quick, else smoke) and the scale they come from."""
    for scale in ("full", "quick", "smoke"):
        p = Path(out) / "opencodereasoning" / scale / "teacher_samples.jsonl"
        if p.is_file():
            return [json.loads(line) for line in p.read_text().splitlines() if line.strip()], scale
    return [], ""


@register_bench
class OpenCodeReasoningBench(Benchmark):
    name = "opencodereasoning"
    description = ("format filters with Tree-sitter vs ast (responses/s, agreement) and student pass@1: unfiltered vs "
                   "execution-filtered vs code-only SFT data")

    def run(self, quick: bool) -> BenchResult:
        from ...errors import ReprolabError
        from ...runtime import interleaved_timings
        from .study import OpenCodeReasoningStudy, heldout_problems
        from .student import answers, finetune, pass_at_1, pretrain_student

        rows_in, scale = load_teacher_samples()
        if not rows_in:
            raise ReprolabError("no teacher samples to benchmark on", fix="run `reprolab run opencodereasoning --scale quick` first")
        outputs = [(r["output"], r["finish_reason"]) for r in rows_in]
        checkers = {"tree-sitter": FilterConfig(syntax_checker="tree-sitter"), "ast (recipe)": FilterConfig(syntax_checker="ast"),
                    "no syntax check": FilterConfig(syntax_checker="none")}
        times = interleaved_timings({k: (lambda c=c: filter_samples(outputs, c)) for k, c in checkers.items()},
                                    repeats=5 if quick else 20, warmup=1)
        per_resp = {k: [t / len(outputs) for t in v] for k, v in times.items()}
        blocks = [b for o, _ in outputs if (b := first_code_block(o.split("</think>", 1)[-1])) is not None]
        agree = [syntax_ok(b, "ast") == syntax_ok(b, "tree-sitter") for b in blocks]
        kept_ast = [r.kept for r in filter_samples(outputs, checkers["ast (recipe)"]).results]
        kept_ts = [r.kept for r in filter_samples(outputs, checkers["tree-sitter"]).results]
        rows = bench_rows(per_resp, "ast (recipe)", "s per response",
                          {"tree-sitter": f"agrees with ast on {np.mean(agree):.1%} of {len(blocks)} code blocks"})

        # student pass@1 of the three data sets, side by side
        cfg = OpenCodeReasoningStudy.scales[Scale(scale)]
        train = make_problems(cfg.n_problems, seed=0, prefix="ocr")
        problems = {p.problem_id: p for p in train}
        heldout = heldout_problems(cfg, train, seed=0, n=min(12, cfg.n_heldout) if quick else None)  # the study's held-out set
        results = filter_samples(outputs, FilterConfig()).results
        data = {"unfiltered (ours)": [], "execution-filtered": [], "code-only": []}
        for r, f in zip(rows_in, results):
            if not f.kept or r["question"] not in problems:
                continue
            q = problems[r["question"]].statement
            data["unfiltered (ours)"].append((q, f.output))
            if r["passed"]:
                data["execution-filtered"].append((q, f.output))
            if f.code:
                data["code-only"].append((q, f"```python\n{f.code}\n```"))
        st_cfg = replace(cfg.student, pretrain_steps=min(cfg.student.pretrain_steps, 60)) if quick else cfg.student
        # the study run's pre-trained student when it is there (same config, same seed), else the bench's own cache
        study_cache = Path("runs") / "opencodereasoning" / scale / "checkpoints" / f"student-pretrain-{run_key(st_cfg)}"
        cache = study_cache if (study_cache / "done").exists() else Path("runs") / "bench" / "opencodereasoning" / f"student-{run_key(st_cfg)}"
        base, _ = pretrain_student(st_cfg, seed=0, cache_dir=cache)
        passes = {}
        for name, d in data.items():
            st, _ = finetune(base, d, st_cfg, seed=0)
            passes[name] = pass_at_1(answers(st, [p.statement for p in heldout], st_cfg.max_new_tokens), heldout)
        extra = {"agreement_code_blocks": float(np.mean(agree)) if agree else None, "code_blocks": len(blocks),
                 "agreement_keep_decisions": float(np.mean([a == b for a, b in zip(kept_ast, kept_ts)])),
                 "pass_at_1": {k: float(np.mean(v)) for k, v in passes.items()}, "train_sizes": {k: len(v) for k, v in data.items()},
                 "heldout": len(heldout), "teacher_samples_from": scale}
        return BenchResult(bench=self.name, baseline="ast (recipe) (s per response)", rows=rows,
                           config={"responses": len(outputs), "samples_from_scale": scale, "quick": quick}, extra=extra)
