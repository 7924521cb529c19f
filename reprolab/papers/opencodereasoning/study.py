"""Study ``opencodereasoning``: what execution filtering removes, and whether a student learns more without it.

OpenCodeReasoning (arXiv 2504.01943), Sec. 4 / Table 4 (execution filtering) at laptop scale. The paper
distils DeepSeek-R1 on 28k competitive-programming questions and fine-tunes Qwen2.5 7B-32B; ours
(spec sheet, "Our reproduction"): an offline Qwen2.5-Coder-1.5B-Instruct GGUF teacher (0.5B at
quick; a scripted stand-in at smoke) answers seeded stdin/stdout problems of difficulty 1-4
(:mod:`reprolab.data.code_problems`) with the recipe's prompt and sampling (T = 0.6, top-p 0.95,
``<think>`` injected; :mod:`.distill`, with the forced ``</think>`` of ``think_budget`` because the
teacher is not a reasoning model), the recipe's format filters run, every sample is labelled by
executing its code on the hidden tests in the sandbox, and a tiny GPT student (:mod:`.student`) is
fine-tuned on each arm's samples and scored by greedy pass@1 on held-out problems (same generator,
another seed, exact duplicates removed).

Arms (the same pre-trained student, the same epochs): ``all`` (every format-kept sample: the paper's
recipe), ``exec`` (only the samples that pass their tests: the usual practice), ``half`` (a seeded
50% of ``all``), ``code_only`` (``all``'s code without the reasoning: a peer, reported, not judged),
``base`` (pre-trained only); ``exec_equal_steps`` (the ``exec`` samples for as many optimizer steps as ``all``:
the spec sheet's "also at equal steps", reported, not judged).

Rules (fixed before the first full run; 95% intervals from ``reprolab.stats``):
(a) hard_removed: unit = question with at least one format-kept sample; "lost" = none of its kept
    samples passes. Share lost among hard questions (difficulty >= 3) minus among easy ones (<= 2),
    unpaired (Welch t below 20 per group, else bootstrap), direction greater, margin 0.
    Preconditions: >= 5 questions in each group, and execution keeps at least one sample (a teacher
    that never passes makes the filter remove everything alike).
(b) exec_hurts: unit = (seed, held-out problem) pair; pass@1(all) - pass@1(exec), paired, direction
    greater, margin 0 (identical 0/1 differences get the exact departing-units bound).
(c) distill_helps: the same for pass@1(all) - pass@1(base).
(d) more_data: the same for pass@1(all) - pass@1(half).
Preconditions of (b)-(d): (v2) the oracle control (the pre-trained student fine-tuned on the held-out problems' own
reference solutions, scored through the same evaluation path) reaches a mean pass@1 of at least 50% (else "not
testable (evaluation path)": a 0 elsewhere would be a bug, not a finding); some student arm reaches a mean pass@1 of
at least 5% (else "not reproduced (student capacity)", reported as not testable: a student that solves nothing
cannot rank data sets); for (b) also execution filtering removed at least one sample and kept at least one.

Scales: ``smoke`` (a scripted teacher on 8 questions x 2 samples, a 1-layer student trained for a few steps: the
code path in seconds); ``quick`` (Qwen2.5-Coder-0.5B, 12 questions x 2 samples of <= 160 tokens, one student
seed, 12 held-out problems of difficulty 1-2); ``full`` (Qwen2.5-Coder-1.5B, 28 questions x 2 samples of <= 224
tokens with <= 64 of reasoning, 2 student seeds, 24 held-out problems of difficulty 1-2; the student pre-trained
400 steps on 3 MB of stdlib source, 12 SFT epochs, both at lr 2e-3).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from ... import stats
from ...data.code_problems import CodeProblem, make_problems, run_tests_many
from ...runtime import atomic_write_text
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register, run_key
from .distill import DistillConfig, FilterConfig, filter_samples, generate_samples
from .records import Decontaminator, OCRRecord, export_sft, humaneval_benchmark, normalise, write_records
from .student import StudentConfig, answers, finetune, pass_at_1, pretrain_student

ARMS = ("all", "exec", "half", "code_only", "base")
EQUAL_STEPS = "exec_equal_steps"  # the exec arm trained for as many steps as the all arm (reported, not judged)
MIN_PASS = 0.05  # precondition of (b)-(d): some arm's mean pass@1
MIN_GROUP = 5  # precondition of (a): questions per difficulty group
MIN_ORACLE = 0.5  # precondition of (b)-(d) (v2): the oracle student's mean pass@1 (the evaluation path works)
PAPER = {"lcb_all": None, "lcb_exec_passing": None}  # see the README: the Table 4 numbers are quoted there after checking


@dataclass(frozen=True)
class OCRConfig:
    teacher: str  # offline GGUF asset, or "scripted" (smoke: a rule-based stand-in, no model)
    n_problems: int  # teacher questions, equal shares of difficulty 1-4
    n_samples: int  # teacher samples per question (recipe: 32)
    max_tokens: int  # teacher tokens per sample (reasoning + answer)
    think_budget: int  # reasoning tokens before </think> is forced (distill module doc)
    n_heldout: int  # student evaluation problems
    seeds: tuple[int, ...]  # student fine-tuning seeds
    student: StudentConfig = field(default_factory=StudentConfig)
    heldout_difficulties: tuple[int, ...] = (1, 2, 3, 4)
    oracle_epochs: int = 40  # the oracle control's SFT epochs on the held-out problems' own reference solutions
    n_ctx: int = 2048
    llm_threads: int = 2
    workers: int = 2  # sandboxes at a time


# ----------------------------------------------------------------------------- the rules

def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ival(c: stats.Comparison) -> str:
    def f(x: float) -> str:
        return ("-inf" if x < 0 else "+inf") if abs(x) >= 1e299 else f"{100 * x:+.1f}"
    return f"{f(c.effect)} [{f(c.low)}, {f(c.high)}] pts over {c.n} {c.unit}"


def judge_hard_removed(m: Metrics) -> Judgement:
    qs = m["questions"]
    hard = [q["lost"] for q in qs if q["kept"] > 0 and q["difficulty"] >= 3]
    easy = [q["lost"] for q in qs if q["kept"] > 0 and q["difficulty"] <= 2]
    pre = {f"at least {MIN_GROUP} hard and {MIN_GROUP} easy questions keep a sample after the format filters "
           f"({len(hard)} hard, {len(easy)} easy)": len(hard) >= MIN_GROUP and len(easy) >= MIN_GROUP,
           f"execution filtering keeps at least one sample ({m['exec_kept']})": m["exec_kept"] > 0}
    if not all(pre.values()):
        return Judgement.not_testable(f"hard {len(hard)}, easy {len(easy)} questions; {m['exec_kept']} samples pass", pre)
    c = stats.compare_unpaired(hard, easy, unit="questions", direction="greater", margin=0.0,
                               label="share of questions lost to execution filtering: hard (3-4) - easy (1-2)")
    ours = (f"execution filtering loses {_pct(np.mean(hard))} of hard questions vs {_pct(np.mean(easy))} of easy ones: "
            f"{_ival(c)}")
    return Judgement.from_headline(ours, c, preconditions=pre)


def _pairs(m: Metrics, arm: str) -> list[float]:
    return [x for seed in m["students"][arm]["pass"] for x in seed]


def _oracle(m: Metrics) -> tuple[dict[str, bool], float | None]:
    """(v2) The evaluation path's control: the student fine-tuned on the held-out problems' own reference
    solutions must pass them; if it does not, prompting, decoding, code extraction or the sandbox is broken,
    and a 0 pass@1 elsewhere says nothing about capacity."""
    got = (m.get("oracle") or {}).get("pass")
    top = float(np.mean(got)) if got else None
    shown = "not run" if top is None else _pct(top)
    return {f"the evaluation path works: the oracle student (fine-tuned on the held-out problems' own reference solutions) "
            f"reaches pass@1 >= {MIN_ORACLE:.0%} ({shown})": top is not None and top >= MIN_ORACLE}, top


def _capacity(m: Metrics) -> tuple[dict[str, bool], str]:
    best = max(ARMS, key=lambda a: float(np.mean(_pairs(m, a))) if _pairs(m, a) else 0.0)
    top = float(np.mean(_pairs(m, best))) if _pairs(m, best) else 0.0
    means = ", ".join(f"{a} {_pct(np.mean(_pairs(m, a)))}" for a in ARMS if _pairs(m, a))
    return {f"some student arm reaches pass@1 >= {MIN_PASS:.0%} (best: {best} {_pct(top)})": top >= MIN_PASS}, means


def _student_claim(m: Metrics, other: str, label: str, extra_pre: dict[str, bool] | None = None) -> Judgement:
    oracle_pre, oracle = _oracle(m)
    capacity_pre, means = _capacity(m)
    pre = {**oracle_pre, **capacity_pre, **(extra_pre or {})}
    if not all(pre.values()):
        if not all(oracle_pre.values()):
            head = "not testable (evaluation path: the oracle student fails its own training problems)"
        elif not all(capacity_pre.values()):
            head = "not reproduced (student capacity)"
        else:
            head = "not testable"
        return Judgement.not_testable(f"{head}: pass@1 {means}" + (f", oracle {_pct(oracle)}" if oracle is not None else ""), pre)
    a, b = _pairs(m, "all"), _pairs(m, other)
    c = stats.compare_paired(a, b, unit="seed x problem pairs", direction="greater", margin=0.0, unit_range=1.0, label=label)
    ours = f"pass@1 all {_pct(np.mean(a))} vs {other} {_pct(np.mean(b))}: {_ival(c)} (all arms: {means})"
    return Judgement.from_headline(ours, c, preconditions=pre)


def judge_exec_hurts(m: Metrics) -> Judgement:
    n_all, n_exec = m["students"]["all"]["n_train"], m["students"]["exec"]["n_train"]
    return _student_claim(m, "exec", "pass@1: SFT on all format-kept samples - on execution-passing samples only", {
        f"execution filtering removed some samples and kept some ({n_exec} of {n_all} kept)": 0 < n_exec < n_all})


def judge_distill_helps(m: Metrics) -> Judgement:
    return _student_claim(m, "base", "pass@1: SFT on distilled samples - pre-trained only")


def judge_more_data(m: Metrics) -> Judgement:
    return _student_claim(m, "half", "pass@1: SFT on all samples - on a seeded half")


# ----------------------------------------------------------------------------- the study

def heldout_problems(config: OCRConfig, train: list[CodeProblem], seed: int = 0, n: int | None = None) -> list[CodeProblem]:
    """The student's evaluation problems: the same generator with another seed, difficulties
    ``config.heldout_difficulties``, exact duplicates of a training question removed (the paper's exact-match dedup)."""
    n = config.n_heldout if n is None else n
    train_norm = {normalise(p.statement) for p in train}
    return [p for p in make_problems(n + 8, seed=seed + 7919, difficulties=config.heldout_difficulties, prefix="heldout")
            if normalise(p.statement) not in train_norm][:n]


def scripted_teacher(problems: list[CodeProblem]) -> Any:
    """Smoke scale's teacher: the reference solution for easy questions, a wrong one for most hard
    ones, and some malformed answers (a rule on the prompt, no model)."""
    from ...llm.fake import ScriptedLLM

    by_statement = {p.statement: p for p in problems}

    def respond(prompt: str, s: Any) -> str:
        p = next((q for st, q in by_statement.items() if st in prompt), None)
        if p is None:
            return "I cannot help."
        if not prompt.rstrip().endswith("</think>"):
            return "Read the numbers, apply each step in order, then print the result.\n</think>"
        if p.difficulty == 4 and s.seed % 2 == 1:
            return "Done."  # too short: rejected by the format filters
        code = p.solution if p.difficulty <= 2 or (p.difficulty == 3 and s.seed % 2 == 0) else "print(0)\n"
        return f"Here is the solution.\n```python\n{code}```\nIt reads the input and prints the answer."

    return ScriptedLLM(respond, name="scripted-ocr-teacher")


def _figures(m: Metrics, run: RunDir) -> None:
    from ...runtime import pyplot

    plt = pyplot()
    ds = sorted({q["difficulty"] for q in m["questions"]})
    by = m["by_difficulty"]
    fig, ax = plt.subplots(figsize=(6, 3.8))
    w = 0.27
    x = np.arange(len(ds))
    ax.bar(x - w, [by[str(d)]["teacher_pass_rate"] * 100 for d in ds], w, label="teacher samples passing their tests")
    ax.bar(x, [by[str(d)]["format_retention"] * 100 for d in ds], w, label="samples kept by the format filters")
    ax.bar(x + w, [by[str(d)]["exec_retention_questions"] * 100 for d in ds], w, label="questions kept by execution filtering")
    ax.set_xticks(x, [f"difficulty {d}" for d in ds])
    ax.set_ylabel("% (of samples / of questions)")
    ax.set_ylim(0, 105)
    ax.set_title(f"teacher {m['teacher']}: pass rate and retention by difficulty")
    ax.legend(fontsize=7)
    run.save_figure(fig, "retention_by_difficulty", "Per difficulty (number of composed operations): share of teacher samples whose "
                    "code passes every hidden test; share of samples the recipe's format filters keep; share of questions "
                    "(with a format-kept sample) that keep at least one sample after execution filtering.")

    fig, ax = plt.subplots(figsize=(6, 3.8))
    arms = [a for a in ARMS if m["students"][a]["pass"]]
    means, lows, highs = [], [], []
    for a in arms:
        v = np.asarray(_pairs(m, a), dtype=float)
        mu = float(v.mean())
        if len(v) > 1 and np.ptp(v) > 0:
            from scipy import stats as st

            ci = st.ttest_1samp(v, 0.0).confidence_interval(0.95)
            lo, hi = max(0.0, float(ci.low)), min(1.0, float(ci.high))
        else:
            lo = hi = mu
        means.append(100 * mu)
        lows.append(100 * (mu - lo))
        highs.append(100 * (hi - mu))
    ax.bar(arms, means, yerr=[lows, highs], capsize=4, color=["C0", "C3", "C2", "C1", "C7"][: len(arms)])
    ax.set_ylabel("student pass@1 on held-out problems (%)")
    ax.set_title(f"student pass@1 per arm ({len(m['seeds'])} seeds x {m['n_heldout']} problems, 95% t interval)")
    for i, a in enumerate(arms):
        ax.text(i, means[i] + 0.5, f"n={m['students'][a]['n_train']}", ha="center", fontsize=7)
    run.save_figure(fig, "pass_at_1_by_arm", "Greedy pass@1 of the tiny GPT student per training arm: all format-kept samples "
                    "(the recipe), execution-passing only, a seeded half, code without reasoning, pre-trained only; n = "
                    "training samples; bars: 95% t intervals over seed x problem pairs.")


@register
class OpenCodeReasoningStudy(Study):
    name = "opencodereasoning"
    paper = Paper("OpenCodeReasoning: Advancing Data Distillation for Competitive Coding", arxiv="2504.01943",
                  code="https://github.com/NVIDIA/NeMo-Skills/tree/main/recipes/opencodereasoning")
    claims = [
        Claim("hard_removed", "Execution filtering removes a larger share of hard questions than of easy ones.",
              "Sec. 4: filtering to test-passing solutions drops the hard questions the teacher fails, reducing instruction "
              "diversity (the paper's explanation of the accuracy loss)",
              "unit: question (with >= 1 format-kept sample); lost = no kept sample passes its hidden tests. Share lost, "
              "difficulty >= 3 minus difficulty <= 2, unpaired (Welch t < 20 per group, else bootstrap), direction greater, "
              "margin 0. Not testable with < 5 questions per group or when no sample passes", judge_hard_removed),
        Claim("exec_hurts", "A student fine-tuned on all format-filtered samples beats one fine-tuned on execution-passing samples "
              "only (same epochs).",
              "Sec. 4 / Table 4: execution filtering lowers LiveCodeBench pass@1 (see the README for the table's numbers)",
              "unit: (seed, held-out problem) pair; greedy pass@1(all) - pass@1(exec), paired (t < 20 pairs, else bootstrap; "
              "identical differences: exact departing-units bound), direction greater, margin 0. Not testable ('not reproduced "
              "(student capacity)') when no arm reaches 5% pass@1, or when execution filtering removed nothing or everything",
              judge_exec_hurts),
        Claim("distill_helps", "Fine-tuning on distilled reasoning traces beats the pre-trained student.",
              "Table 2: OCR-Qwen SFT models far above their base models",
              "unit: (seed, held-out problem) pair; pass@1(all) - pass@1(base), paired, direction greater, margin 0. Not "
              "testable ('not reproduced (student capacity)') when no arm reaches 5% pass@1", judge_distill_helps),
        Claim("more_data", "More distilled samples help: all samples beat half of them.",
              "Fig. 1 / scaling: accuracy rises with the data size",
              "unit: (seed, held-out problem) pair; pass@1(all) - pass@1(seeded half), paired, direction greater, margin 0. "
              "Not testable ('not reproduced (student capacity)') when no arm reaches 5% pass@1", judge_more_data),
    ]
    scales = {
        Scale.SMOKE: OCRConfig(teacher="scripted", n_problems=8, n_samples=2, max_tokens=64, think_budget=16, n_heldout=4, seeds=(0,),
                               student=StudentConfig(vocab_size=300, corpus_bytes=60_000, n_layer=1, n_head=2, n_embd=32,
                                                     block_size=256, pretrain_steps=3, pretrain_batch=4, pretrain_block=64,
                                                     sft_epochs=1, sft_batch=8, max_new_tokens=16)),
        # quick checks the pipeline end to end in about 2 minutes (214 s from scratch with 12 problems, 160-token answers,
        # 80 pre-training steps, 12 epochs and 256-token student answers; 2026-12-03); its student is too small to pass
        Scale.QUICK: OCRConfig(teacher="qwen2.5-coder-0.5b", n_problems=8, n_samples=2, max_tokens=128, think_budget=40, n_heldout=8,
                               seeds=(0,), heldout_difficulties=(1, 2),
                               student=StudentConfig(corpus_bytes=1_000_000, pretrain_steps=40, pretrain_lr=2e-3, sft_epochs=8,
                                                     sft_lr=2e-3, block_size=512, max_new_tokens=192)),
        Scale.FULL: OCRConfig(teacher="qwen2.5-coder-1.5b", n_problems=28, n_samples=2, max_tokens=224, think_budget=64, n_heldout=24,
                              seeds=(0, 1, 2), heldout_difficulties=(1, 2),
                              student=StudentConfig(pretrain_steps=400, pretrain_lr=2e-3, sft_epochs=12, sft_lr=2e-3)),
    }
    version = 2
    changelog = {1: "first version: rules (a)-(d) fixed before the first full run",
                 2: "v1's full run left every student arm at 0% pass@1. Checked first that this is not a bug: a new oracle "
                    "control (the pre-trained student fine-tuned on the held-out problems' own reference solutions, then "
                    "scored through the same prompt, greedy decoding, code extraction and sandbox) now runs in every study "
                    "and is a precondition of (b)-(d) (pass@1 >= 50%, else 'not testable (evaluation path)'), written "
                    "before the v2 run; v1's 0% came from an undertrained student (with v1's pre-trained student, SFT "
                    "at lr 5e-4 for 80 steps could not memorise the 16 held-out programs: 0/16; pre-training loss 5.1 "
                    "after 200 steps). Student changes (capacity, not rules): pre-training 400 steps at lr 2e-3, SFT 12 epochs at lr 2e-3 (same epochs for every arm, as "
                    "before), held-out problems of difficulty 1-2 only (24 at full), 2 student seeds at full (48 seed x "
                    "problem pairs, as v1's 3 x 16) to pay for the longer training. Rules (a)-(d) unchanged."}

    def run(self, config: OCRConfig, run: RunDir) -> Metrics:
        from ...runtime import track

        problems = make_problems(config.n_problems, seed=run.seed, prefix="ocr")
        heldout = heldout_problems(config, problems, run.seed)
        # decontamination against HumanEval (the recipe decontaminates against its benchmarks; ours are synthetic)
        try:
            flagged = len(Decontaminator(humaneval_benchmark()).split({p.problem_id: p.statement for p in problems})[1])
        except ImportError:
            flagged = None

        llm = self._teacher(config, problems, run)
        try:
            dcfg = DistillConfig(n_samples=config.n_samples, max_tokens=config.max_tokens, think_budget=config.think_budget, seed=run.seed)
            samples = generate_samples(llm, [(p.problem_id, p.statement) for p in problems], dcfg, progress=track)
            teacher_stats = llm.stats.to_json()
        finally:
            llm.close()
        by_id = {p.problem_id: p for p in problems}
        report = filter_samples([(s.output, s.finish_reason) for s in samples], FilterConfig())
        labels = run_tests_many([(r.code, by_id[s.question_id].tests) for s, r in zip(samples, report.results)], workers=config.workers)
        passed = [lab.all_passed for lab in labels]
        kept = [r.kept for r in report.results]

        questions = []
        for p in problems:
            idx = [i for i, s in enumerate(samples) if s.question_id == p.problem_id]
            k = sum(kept[i] for i in idx)
            kp = sum(kept[i] and passed[i] for i in idx)
            questions.append({"id": p.problem_id, "difficulty": p.difficulty, "samples": len(idx), "kept": k, "kept_passing": kp,
                              "any_passing": sum(passed[i] for i in idx), "lost": int(k > 0 and kp == 0)})
        by_difficulty = {}
        for d in sorted({p.difficulty for p in problems}):
            idx = [i for i, s in enumerate(samples) if by_id[s.question_id].difficulty == d]
            qd = [q for q in questions if q["difficulty"] == d and q["kept"] > 0]
            by_difficulty[str(d)] = {"samples": len(idx), "teacher_pass_rate": float(np.mean([passed[i] for i in idx])),
                                     "format_retention": float(np.mean([kept[i] for i in idx])),
                                     "exec_retention_questions": float(np.mean([1 - q["lost"] for q in qd])) if qd else 0.0}

        # the distilled data set in the released schema, and its TRL export
        records = [OCRRecord(f"{s.question_id}-{s.sample_index}", by_id[s.question_id].statement, r.output, "reprolab.code_problems",
                             "cc-by-4.0", "reprolab_code_problems", "train", str(by_id[s.question_id].difficulty), r.code or "")
                   for s, r in zip(samples, report.results) if r.kept]
        atomic_write_text(run.path / "teacher_samples.jsonl", "".join(
            json.dumps({"question": s.question_id, "i": s.sample_index, "output": s.output, "finish_reason": s.finish_reason,
                        "passed": ok}) + "\n" for s, ok in zip(samples, passed)))
        write_records(records, run.path / "distilled.jsonl")
        export_sft(records, run.path / "distilled_sft.jsonl")

        # the student arms
        train_all = [(by_id[s.question_id].statement, r.output) for s, r in zip(samples, report.results) if r.kept]
        train_exec = [(by_id[s.question_id].statement, r.output) for s, r, ok in zip(samples, report.results, passed) if r.kept and ok]
        train_code = [(by_id[s.question_id].statement, f"```python\n{r.code}\n```") for s, r in zip(samples, report.results)
                      if r.kept and r.code]
        cache = run.checkpoints / f"student-pretrain-{run_key(config.student)}"
        base, pre_info = pretrain_student(config.student, seed=0, cache_dir=cache, progress=track)
        hq = [p.statement for p in heldout]
        students: dict[str, dict[str, Any]] = {a: {"pass": [], "n_train": 0, "losses": []} for a in ARMS + (EQUAL_STEPS,)}
        base_pass = pass_at_1(answers(base, hq, config.student.max_new_tokens), heldout, workers=config.workers)
        # the oracle control (v2): SFT on the held-out problems' own reference solutions, in the answer format the
        # evaluation extracts; it must pass them, else the evaluation path (not the student's capacity) is at fault
        fence = "`" * 3
        oracle_st, oracle_info = finetune(base, [(p.statement, f"{fence}python\n{p.solution}{fence}") for p in heldout],
                                          replace(config.student, sft_epochs=config.oracle_epochs), seed=0)
        oracle_texts = answers(oracle_st, hq, config.student.max_new_tokens)
        oracle = {"pass": pass_at_1(oracle_texts, heldout, workers=config.workers), "epochs": config.oracle_epochs,
                  "train": oracle_info, "answer_example": oracle_texts[0]}
        del oracle_st
        samples_out: dict[str, str] = {}
        for seed in config.seeds:
            half = random.Random(f"half:{seed}").sample(train_all, len(train_all) // 2)
            # the exec arm again with as many optimizer steps as the all arm (more epochs): reported, not judged
            per = max(1, math.ceil(len(train_exec) / config.student.sft_batch))
            equal = replace(config.student, sft_epochs=max(1, round(config.student.sft_epochs
                                                                    * math.ceil(len(train_all) / config.student.sft_batch) / per)))
            for arm, data, scfg in (("all", train_all, config.student), ("exec", train_exec, config.student),
                                    ("half", half, config.student), ("code_only", train_code, config.student),
                                    (EQUAL_STEPS, train_exec, equal)):
                st, info = finetune(base, data, scfg, seed=seed)
                texts = answers(st, hq, config.student.max_new_tokens)
                students[arm]["pass"].append(pass_at_1(texts, heldout, workers=config.workers))
                students[arm]["n_train"] = len(data)
                students[arm]["losses"].append(info)
                samples_out.setdefault(arm, texts[0])
            students["base"]["pass"].append(base_pass)  # deterministic: the same for every seed
        students["base"]["losses"] = [pre_info]

        metrics: Metrics = {
            "teacher": config.teacher, "seeds": list(config.seeds), "n_heldout": len(heldout),
            "questions": questions, "by_difficulty": by_difficulty,
            "filter": {"samples": len(samples), "kept": report.kept, "rejected": report.rejected, "repaired": report.repaired},
            "exec_kept": int(sum(k and p for k, p in zip(kept, passed))), "teacher_pass_all_samples": float(np.mean(passed)),
            "samples": [{"question": s.question_id, "i": s.sample_index, "kept": r.kept, "reason": r.reason, "passed": ok,
                         "tokens": s.completion_tokens, "finish": s.finish_reason}
                        for s, r, ok in zip(samples, report.results, passed)],
            "humaneval_contaminated": flagged,
            "students": students, "oracle": oracle, "student_params": pre_info.get("params"), "student_answer_examples": samples_out,
            "teacher_stats": {k: (v if v == v else None) for k, v in teacher_stats.items()},
            "heldout_difficulties": [p.difficulty for p in heldout],
        }
        _figures(metrics, run)
        return metrics

    @staticmethod
    def _teacher(config: OCRConfig, problems: list[CodeProblem], run: RunDir) -> Any:
        if config.teacher == "scripted":
            return scripted_teacher(problems)
        from ...llm import load_for_study

        return load_for_study(config.teacher, n_ctx=config.n_ctx, n_threads=config.llm_threads, cache=run.checkpoints / "teacher.sqlite")
