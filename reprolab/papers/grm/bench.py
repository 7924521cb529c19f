"""Benchmark ``grm``: accuracy and seconds per pair of the GRM (k = 1, voting@k) next to the spec sheet's peers.

All on the same HumanEval pairs (the study's construction: canonical solution vs a failing mutant,
shortest problems first), the same offline model, in one process, with NO response cache (every
second is real generation). Peers:

- ``pairwise judge``: the same model asked "Which response is correct? A or B" (``prompts/pairwise_v1.txt``),
  decided by ln p("A") vs ln p("B") of the next token, asked in both orders and averaged (position bias);
- ``logprob "correct"``: each response alone, "Is this response correct? Yes or No"
  (``prompts/correct_v1.txt``), scalar reward ln p("Yes") - ln p("No");
- ``MiniLM classifier``: logistic regression on all-MiniLM-L6-v2 embeddings of query + response,
  trained on pairs from other problems (disjoint), reward = P(correct).

Accuracy: 1 right, 0.5 tie (random tie-break), 0 wrong. Timings are on 2 shared, loaded cores (noisy).

Throughput (issue 19, item 2): the GRM's judgements (k samples of each evaluation pair through
``GenerativeRewardModel.sample``: the LLM room, two calls per sample, parsing) against llama.cpp's
own generation loop (``Llama.create_completion`` called directly on the same prompts, sampling and
stop strings, one call per sample), as generated tokens per wall second, interleaved by pair.
The ratio (ours / raw) should be at least 0.8: the room must not waste the budget.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .data import PreferencePair, build_pairs, load_humaneval
from .grm import GenerativeRewardModel, GRMConfig, load_prompt


def _acc(scores: list[float], correct: int) -> float:
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    return (1.0 / len(tied)) if correct in tied else 0.0


def pairwise_judge(llm: Any, p: PreferencePair) -> list[float]:
    t = load_prompt("pairwise_v1")
    score = [0.0, 0.0]
    for order in ((0, 1), (1, 0)):
        msg = [{"role": "user", "content": t.format(query=p.query.strip(), a=p.responses[order[0]].strip(), b=p.responses[order[1]].strip())}]
        lp = llm.choice_logprobs(llm.format_chat(msg), ["A", "B"])
        d = lp["A"] - lp["B"]
        score[order[0]] += d
        score[order[1]] -= d
    return score


def throughput(grm: GenerativeRewardModel, pairs: list[PreferencePair], k: int) -> dict[str, float]:
    """Generated tokens per second: ``grm.sample`` (ours) vs llama.cpp's ``create_completion`` on the same
    prompts (raw), interleaved by pair; needs the llama.cpp backend (``grm.llm._llm``)."""
    from ...llm.base import Sampling
    from ...llm.throughput import raw_speed
    from .grm import BOX_OPEN

    llm, cfg = grm.llm, grm.config
    if getattr(llm, "_llm", None) is None:
        return {}
    tok = {"ours": 0, "raw": 0}
    sec = {"ours": 0.0, "raw": 0.0}
    for p in pairs:
        before = llm.stats.completion_tokens
        t0 = time.perf_counter()
        grm.sample(p.query, p.responses, k=k)
        sec["ours"] += time.perf_counter() - t0
        tok["ours"] += llm.stats.completion_tokens - before
        prompt = llm.format_chat(grm.messages(p.query, p.responses)) + cfg.prefill
        base = Sampling(max_tokens=cfg.max_tokens, temperature=cfg.temperature, stop=(BOX_OPEN,), seed=cfg.seed)
        n, s = raw_speed(llm, [(prompt, base.one(i)) for i in range(k)])
        tok["raw"] += n
        sec["raw"] += s
    ours, raw = tok["ours"] / sec["ours"], tok["raw"] / sec["raw"]
    return {"ours_tokens_per_s": round(ours, 2), "raw_tokens_per_s": round(raw, 2), "ratio": round(ours / raw, 3),
            "ours_tokens": tok["ours"], "raw_tokens": tok["raw"]}


def logprob_correct(llm: Any, p: PreferencePair) -> list[float]:
    t = load_prompt("correct_v1")
    out = []
    for r in p.responses:
        lp = llm.choice_logprobs(llm.format_chat([{"role": "user", "content": t.format(query=p.query.strip(), response=r.strip())}]),
                                 ["Yes", "No"])
        out.append(lp["Yes"] - lp["No"])
    return out


@register_bench
class GRMBench(Benchmark):
    name = "grm"
    description = "accuracy and seconds per HumanEval pair: GRM k=1 and voting@k vs pairwise judge, log-prob of 'correct', MiniLM classifier"

    def run(self, quick: bool) -> BenchResult:
        from ...llm import load_for_study
        from .meta_rm import MiniLMEmbedder

        model = "qwen2.5-coder-0.5b"
        n_eval, n_train, k, max_tokens = (3, 30, 4, 96) if quick else (10, 60, 8, 112)
        probs = sorted(load_humaneval(), key=lambda p: (len(p.prompt) + len(p.canonical_solution), p.task_id))
        evl, _ = build_pairs(probs[: n_eval + 3], seed=0)
        evl = evl[:n_eval]
        used = {p.pair_id for p in evl}
        train, _ = build_pairs([q for q in probs if q.task_id not in used][:n_train], seed=1)

        llm = load_for_study(model, n_ctx=4096)
        grm = GenerativeRewardModel(llm, GRMConfig(max_tokens=max_tokens, seed=0, progress=False))
        emb = MiniLMEmbedder()
        from sklearn.linear_model import LogisticRegression

        x = emb([f"{p.query}\n{r}" for p in train for r in p.responses])
        y = [i == p.correct_index for p in train for i in range(len(p.responses))]
        clf = LogisticRegression(C=1.0, max_iter=2000).fit(x, y)

        methods = {
            "GRM k=1": lambda p: grm.score(p.query, p.responses, k=1).votes,
            f"GRM voting k={k}": lambda p: grm.score(p.query, p.responses, k=k).votes,
            "pairwise judge": lambda p: pairwise_judge(llm, p),
            'logprob "correct"': lambda p: logprob_correct(llm, p),
            "MiniLM classifier": lambda p: list(clf.predict_proba(emb([f"{p.query}\n{r}" for r in p.responses]))[:, 1]),
        }
        times: dict[str, list[float]] = {m: [] for m in methods}
        accs: dict[str, list[float]] = {m: [] for m in methods}
        for p in evl:  # interleaved by pair, so load drift hits every method alike
            for m, fn in methods.items():
                t0 = time.perf_counter()
                s = fn(p)
                times[m].append(time.perf_counter() - t0)
                accs[m].append(_acc([float(v) for v in s], p.correct_index))
        notes = {m: f"accuracy {100 * np.mean(accs[m]):.0f}% on {len(evl)} pairs" for m in methods}
        rows = bench_rows(times, "GRM k=1", "s per pair", notes)
        speed = throughput(GenerativeRewardModel(llm, GRMConfig(max_tokens=max_tokens, seed=1000, progress=False)), evl, 2)
        llm.close()
        return BenchResult(
            bench=self.name, baseline="GRM k=1", rows=rows,
            config={"model": model, "eval_pairs": len(evl), "classifier_train_pairs": len(train), "k": k, "max_tokens": max_tokens,
                    "temperature": 0.5, "cache": "none"},
            extra={"accuracy": {m: float(np.mean(a)) for m, a in accs.items()}, "per_pair_accuracy": accs,
                   "throughput_vs_raw_llama_cpp": speed,
                   "note": "2 shared, loaded CPU cores: timings are noisy; accuracy on few pairs is coarse"},
        )
