"""Study ``shortv``: does choosing layers by Layer Contribution matter, in a model whose layers use visual tokens?

No VLM weights exist offline, so we train small MLLMs with LLaVA's real classes (a tiny
``LlavaForConditionalGeneration``; :mod:`reprolab.nn.mllm`) on our synthetic shapes VQA set, several training
seeds per run. Since v4 the model and task are built so that the language model must work on the
visual tokens inside its layers (issue 20; v2's model lost only 5.7-9 points with visual tokens
frozen in all layers, so no layer choice could matter):

- the projector reads the CLIP **patch embeddings** (``vision_feature_layer=0``): no vision-tower
  layer mixes patches, so whatever relates one patch to another happens in the language model;
- the questions are **relational** (:data:`STUDY_KINDS`: colour of the unique shape, counting by colour
  and by shape, "are there more red shapes than blue shapes", "what colour is the leftmost shape"): the answer
  depends on several objects, and shape is a
  property of several 8x8 patches of a 32x32 image.

Per training seed (one model each; trained in parallel processes of one thread each when the
run has two or more threads), through the method's public API only:

1. Layer Contribution of every layer for visual and text tokens on a seeded calibration draw of
   ``calib`` training questions (the paper: 40), KL in the official code's direction.
2. Accuracy (exact match of the first generated token on held-out questions) of the unmodified
   model, with a blank image, with visual tokens frozen in all L layers, in each single layer, and in
   the lowest-LC ``N`` layers for N = 25%, 50%, 75% of L; ``random_draws`` random layer sets of each
   size. That is the calibration of issue 20 (0/25/50/75/100% frozen, by LC and at random), kept in
   ``metrics["calibration"]``.
3. FastV (K = 2, R = 50%) alone and with ShortV at 50% (reported, no claim); decoder FLOPs, analytic and
   counted (first seed); the paper's Table 1 TFLOPs from the LLaVA shapes and the prompt lengths the
   paper states (576 visual, 64 text tokens, arXiv v2 Sec. 4.1-4.2).

Rules (study v4, committed before any v4 model was trained; the calibration probes and runs came after and changed
only the training length and depth):
(a) ``freeze_half``: per test question (pooled over seeds), (lc_half - base) + RHO * (base - all_frozen), mean > 0:
    the lowest-LC half costs less than RHO = 1/4 of what freezing all layers costs (a tolerance relative
    to that cost, not in points); bootstrap interval.
(b) ``random_worse``: per (seed, test question), the mean over N = 25/50/75% of L of [LC-chosen correct - share of
    the >= 20 random N-layer sets that answer it], > 0 (paired bootstrap); supporting: > 0 at each N and in each seed.
(c) ``lc_predicts``: rank correlation between a layer's visual LC (calibration questions) and the accuracy
    drop when only that layer is frozen (test questions), ranks within each seed, units (seed, layer) but the
    last layer (both exactly 0 there by construction), paired bootstrap > 0.
(d) ``lc_small`` (v2's claim (a), rule unchanged, now over seeds x layers): log10 text LC - log10 visual LC > 1.
Preconditions ("not testable", never partly): the model learned the task (majority + 10 points), it uses the
image (a blank image costs > 5 points, interval), and for (a)-(c) its layers use the visual tokens (freezing them
in all layers costs > 10 points, interval). The FLOPs identity is a unit test (tests/papers/test_shortv.py).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ... import stats
from ...data.shapes import BACKGROUND
from ...data.vqa_shapes import VQAConfig, make_vqa
from ...runtime import load_checkpoint, save_checkpoint, torch_threads, track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from ...nn.mllm import MLLMConfig, ShapesVQAProcessor, TrainConfig, accuracy_by_kind, answer_correct, build_mllm, build_tokenizer, train_mllm
from .shortv import PAPER_TABLE1, FastVConfig, apply_shortv, layer_contribution, measured_flops, paper_tflops, prefill_flops, remove_shortv

ABOVE_CHANCE = 0.10  # precondition: the model beats the majority baseline by 10 points (it learned the task)
BLANK_MARGIN = 0.05  # precondition: a blank image costs more than 5 points (the model uses the image)
LAYERS_MARGIN = 0.10  # precondition for (a)-(c): freezing visual tokens in all layers costs more than 10 points
RHO = 0.25  # (a): the lowest-LC half may cost at most a quarter of the all-layers cost
LC_ORDERS = 1.0  # (d): visual LC at least 10x below text LC (geometric mean over layers)
LC_FLOOR = 1e-12  # LC values are floored here before log10
FRACTIONS = (0.25, 0.5, 0.75)  # (b): frozen fractions of the L layers
STUDY_KINDS = ("colour", "count", "count_shape", "compare", "extreme")  # questions needing several objects / patches (same_colour: 70% "no", left out)
STUDY_VQA = VQAConfig(objects=(2, 4), kinds=STUDY_KINDS)
SMOKE_MODEL = MLLMConfig(hidden=32, intermediate=64, layers=4, vision_layers=1, vision_hidden=32, vision_feature_layer=0)
PAPER = {"gqa": (61.9, 60.9), "gqa_random": 56.1, "frozen": (19, 32)}  # Table 1 / Table 6 (LLaVA-1.5-7B, N = 19)


@dataclass(frozen=True)
class ShortVStudyConfig:
    model: MLLMConfig
    train: TrainConfig
    vqa: VQAConfig
    seeds: int  # training seeds (one model each)
    train_questions: int  # training set size per seed (fresh scenes)
    test_questions: int  # held-out questions (the same for every seed)
    calib: int  # calibration questions for LC (seeded draw from the seed's training set)
    random_draws: int  # random layer sets per frozen fraction and seed
    fractions: tuple[float, ...] = FRACTIONS
    flops_batch: int = 4
    parallel: bool = True  # train the seeds in parallel processes (one thread each) when threads allow
    question_first: bool = True  # v6: the question before the image (ShapesVQAProcessor(question_first=True)); v4-v5: after


def frozen_counts(layers: int, fractions=FRACTIONS) -> list[int]:
    """N for each fraction of ``layers`` (rounded; 12 layers -> 3, 6, 9)."""
    return [int(round(f * layers)) for f in fractions]


# ----------------------------------------------------------------------------- one training seed


def _seed_unit(job: tuple[ShortVStudyConfig, int, int, str, bool]) -> Metrics:
    """Train (or load) one model and measure everything on it. Runs in a worker process or inline."""
    cfg, data_seed, model_seed, ckpt, with_flops = job
    with torch_threads(1):  # tiny ops: one thread is faster than two on a shared 2-core machine
        return _measure_seed(cfg, data_seed, model_seed, ckpt, with_flops)


def _worker_init() -> None:
    os.environ["REPROLAB_PROGRESS"] = "0"
    torch.set_num_threads(1)


def _measure_seed(cfg: ShortVStudyConfig, data_seed: int, model_seed: int, ckpt: str, with_flops: bool) -> Metrics:
    tok = build_tokenizer()
    model = build_mllm(cfg.model, tok, seed=model_seed)
    proc = ShapesVQAProcessor(tok, model.config, question_first=cfg.question_first)
    train = make_vqa(cfg.train_questions, cfg.vqa, seed=1000 + model_seed)
    saved = load_checkpoint(ckpt)
    if saved is None:
        out = train_mllm(model, proc, train, cfg.train, seed=model_seed)
        saved = {"model": model.state_dict(), "losses": out.losses, "seconds": out.seconds}
        save_checkpoint(ckpt, saved)
    else:
        model.load_state_dict(saved["model"])
    model.eval()
    test = make_vqa(cfg.test_questions, cfg.vqa, seed=50_000 + data_seed)
    L = cfg.model.layers
    ns = frozen_counts(L, cfg.fractions)

    samples = [{"image": train.images[i], "text": train.questions[i]} for i in range(min(len(train), 400))]
    lc = layer_contribution(model, proc, samples, n=cfg.calib, seed=model_seed, progress=False)

    def correct(layers, fastv=None, data=test) -> np.ndarray:
        apply_shortv(model, layers, fastv=fastv)
        try:
            return answer_correct(model, proc, data, batch=250)
        finally:
            remove_shortv(model)

    base = correct([])
    blank = correct([], data=dataclasses.replace(test, images=np.full_like(test.images, BACKGROUND)))
    all_frozen = correct(list(range(L)))
    single = [float(correct([l]).mean()) for l in range(L)]
    items = {"baseline": base, "blank_image": blank, "all_frozen": all_frozen}
    chosen, random = {}, {}
    rng = np.random.default_rng(10_000 + model_seed)
    for n in ns:
        chosen[str(n)] = lc.lowest(n)
        items[f"lc_{n}"] = correct(chosen[str(n)])
        sets = [sorted(int(i) for i in rng.choice(L, size=n, replace=False)) for _ in range(cfg.random_draws)]
        count = np.zeros(len(test), dtype=int)
        accs = []
        for s in sets:
            hit = correct(s)
            count += hit
            accs.append(float(hit.mean()))
        random[str(n)] = {"layer_sets": sets, "accuracy": accs, "correct_count": count.tolist()}
    half = str(ns[len(ns) // 2])
    fastv = FastVConfig()
    metrics: Metrics = {
        "model_seed": model_seed,
        "training": {"seconds": round(float(saved["seconds"]), 2), "final_loss": float(np.mean(saved["losses"][-50:])), "steps": len(saved["losses"])},
        "lc": {"direction": lc.direction, "visual": lc.visual.tolist(), "text": lc.text.tolist(),
               "reverse_direction": {k: v.tolist() for k, v in lc.reverse.items()}},
        "chosen": chosen,
        "items": {k: np.asarray(v).astype(int).tolist() for k, v in items.items()},
        "random": random,
        "single_layer": single,
        "accuracy": {
            "baseline": float(base.mean()),
            "baseline_per_kind": accuracy_by_kind(base, test.kinds),
            "all_frozen_per_kind": accuracy_by_kind(all_frozen, test.kinds),
            "lc_half_per_kind": accuracy_by_kind(items[f"lc_{half}"], test.kinds),
            "blank_image": float(blank.mean()),
            "all_frozen": float(all_frozen.mean()),
            "fastv": float(correct([], fastv).mean()),
            "shortv_half_fastv": float(correct(chosen[half], fastv).mean()),
        },
    }
    if with_flops:
        metrics["flops"] = _flops(model, proc, test, chosen[half], fastv, cfg.flops_batch)
    return metrics


def _flops(model, proc, test, chosen, fastv, B) -> dict[str, Any]:
    batch = proc(images=list(test.images[:B]), text=[test.questions[0]] * B)  # one question: no padding
    n_vis = int((batch["input_ids"][0] == model.config.image_token_id).sum())
    n_text = batch["input_ids"].shape[1] - n_vis
    tc = model.config.text_config

    def measure(layers, fv=None) -> int:
        apply_shortv(model, layers, fastv=fv)
        try:
            with torch.no_grad():
                return measured_flops(model, **batch, logits_to_keep=1)
        finally:
            remove_shortv(model)

    m_base, m_sv = measure([]), measure(chosen)
    p_base, p_sv = prefill_flops(tc, n_text, n_vis, batch=B), prefill_flops(tc, n_text, n_vis, chosen, batch=B)
    p_fv, p_both = prefill_flops(tc, n_text, n_vis, (), fastv, batch=B), prefill_flops(tc, n_text, n_vis, chosen, fastv, batch=B)
    return {
        "text_tokens": n_text, "visual_tokens": n_vis, "shortv_layers": list(chosen),
        "decoder_base": p_base / B, "decoder_shortv": p_sv / B, "decoder_fastv": p_fv / B, "decoder_shortv_fastv": p_both / B,
        "predicted_fraction": 1 - p_sv / p_base, "predicted_fraction_fastv": 1 - p_fv / p_base, "predicted_fraction_both": 1 - p_both / p_base,
        "predicted_saving": p_base - p_sv, "measured_saving": m_base - m_sv, "measured_model_total": m_base,
    }


# ----------------------------------------------------------------------------- judging


def _seeds(m: Metrics) -> list[Metrics]:
    return [m["seeds"][k] for k in sorted(m["seeds"], key=int)]


def _pooled(m: Metrics, arm: str) -> np.ndarray:
    """Per-question 0/1 of one arm, the seeds' test questions one after the other."""
    return np.concatenate([np.asarray(s["items"][arm], dtype=float) for s in _seeds(m)])


UNIT_Q = "test questions x training seeds"


def _preconditions(m: Metrics, layers_matter: bool) -> dict[str, bool]:
    base = _pooled(m, "baseline")
    pre = {
        f"the models learned the task (accuracy >= majority baseline + {ABOVE_CHANCE:.0%})": base.mean() >= m["chance"] + ABOVE_CHANCE,
        f"the models use the image (a blank image costs > {BLANK_MARGIN:.0%}, 95% interval)":
            stats.compare_paired(base, _pooled(m, "blank_image"), unit=UNIT_Q, margin=BLANK_MARGIN, unit_range=1.0).outcome == stats.Outcome.HOLDS,
    }
    if layers_matter:
        pre[f"the language models use the visual tokens (freezing them in all {m['layers']} layers costs > {LAYERS_MARGIN:.0%}, 95% interval)"] = (
            stats.compare_paired(base, _pooled(m, "all_frozen"), unit=UNIT_Q, margin=LAYERS_MARGIN, unit_range=1.0).outcome == stats.Outcome.HOLDS)
    return pre


def _judge_freeze(m: Metrics) -> Judgement:
    n = m["n_frozen"][len(m["n_frozen"]) // 2]
    base, half, allf = _pooled(m, "baseline"), _pooled(m, f"lc_{n}"), _pooled(m, "all_frozen")
    d = (half - base) + RHO * (base - allf)
    c = stats.compare_to_value(d, 0.0, unit=UNIT_Q, direction="greater", margin=0.0,
                               label=f"(lowest-LC {n} of {m['layers']} layers - unmodified) + {RHO:g} x (unmodified - all layers frozen)")
    cost_all, cost_half = base.mean() - allf.mean(), base.mean() - half.mean()
    per_seed = [(np.mean(s["items"]["baseline"]) - np.mean(s["items"][f"lc_{n}"]), np.mean(s["items"]["baseline"]) - np.mean(s["items"]["all_frozen"])) for s in _seeds(m)]
    ours = (f"N={n}/{m['layers']}, {len(per_seed)} seeds: accuracy {base.mean():.3f} -> {half.mean():.3f} (cost {cost_half * 100:.1f} points) vs all layers "
            f"frozen {allf.mean():.3f} (cost {cost_all * 100:.1f} points): the half costs {cost_half / cost_all if cost_all > 0 else float('nan'):.0%} of "
            f"the all-layers cost (tolerance {RHO:.0%}); decoder FLOPs -{m['flops']['predicted_fraction']:.1%}; majority {m['chance']:.3f}, blank image "
            f"{_pooled(m, 'blank_image').mean():.3f}")
    supporting = {f"every seed: the half costs <= {RHO:.0%} of the all-layers cost": all(h <= RHO * a for h, a in per_seed)}
    return Judgement.from_headline(ours, c, supporting=supporting, preconditions=_preconditions(m, layers_matter=True))


def _judge_random(m: Metrics) -> Judgement:
    """Per (seed, test question): the mean over the fractions of [LC-chosen correct - share of the random
    draws of that size that answer it], paired bootstrap. Question-level units, not (seed, draw) units: the
    LC arm is one layer set per seed, so draws as units would ignore that arm's own sampling noise."""
    diffs, per_fraction, per_seed, beaten = [], {n: [] for n in m["n_frozen"]}, [], []
    for s in _seeds(m):
        rows = []
        for n in m["n_frozen"]:
            lc_q = np.asarray(s["items"][f"lc_{n}"], dtype=float)
            r = s["random"][str(n)]
            rows.append(lc_q - np.asarray(r["correct_count"], dtype=float) / len(r["accuracy"]))
            per_fraction[n].append(lc_q.mean() - np.mean(r["accuracy"]))
            beaten.append(float(np.mean(lc_q.mean() > np.asarray(r["accuracy"]))))
        diffs.append(np.mean(rows, axis=0))
        per_seed.append(float(np.mean(rows)))
    draws = len(_seeds(m)[0]["random"][str(m["n_frozen"][0])]["accuracy"])
    c = stats.compare_to_value(np.concatenate(diffs), 0.0, unit=UNIT_Q, direction="greater", margin=0.0, unit_range=1.0,
                               label=f"accuracy, LC-chosen - random layer sets of the same size ({draws} draws), mean over N = "
                                     f"{', '.join(map(str, m['n_frozen']))}")
    ours = (f"{len(per_seed)} seeds x {draws} draws per N; LC-chosen minus random, points: "
            + ", ".join(f"N={n}: {np.mean(v) * 100:+.1f}" for n, v in per_fraction.items())
            + f"; LC above {np.mean(beaten):.0%} of the draws (mean over seeds and N)")
    supporting = {f"LC beats random at N={n} (mean over seeds and draws)": float(np.mean(v)) > 0 for n, v in per_fraction.items()}
    supporting["LC beats random in every seed (mean over N)"] = all(x > 0 for x in per_seed)
    return Judgement.from_headline(ours, c, supporting=supporting, preconditions=_preconditions(m, layers_matter=True))


def _ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return (rankdata(x) - 1) / max(len(x) - 1, 1)


def _rank_corr(rows: np.ndarray) -> float:
    """Spearman correlation of the two columns (0 when a column is constant: the zero arm of the comparison)."""
    from scipy.stats import spearmanr

    if np.ptp(rows[:, 0]) == 0 or np.ptp(rows[:, 1]) == 0:
        return 0.0
    return float(spearmanr(rows[:, 0], rows[:, 1]).statistic)


def lc_drop_rows(m: Metrics) -> np.ndarray:
    """(seeds x (L-1), 2): within-seed ranks of visual LC and of the single-layer accuracy drop, last layer left out."""
    rows = []
    for s in _seeds(m):
        lc = np.asarray(s["lc"]["visual"])[:-1]
        drop = np.mean(s["items"]["baseline"]) - np.asarray(s["single_layer"])[:-1]
        rows.append(np.stack([_ranks(lc), _ranks(drop)], 1))
    return np.concatenate(rows)


def _judge_predicts(m: Metrics) -> Judgement:
    rows = lc_drop_rows(m)
    c = stats.compare_statistic(rows, np.zeros_like(rows), _rank_corr, unit="layers x training seeds (all but the last layer)",
                                direction="greater", margin=0.0, paired=True,
                                label="Spearman(visual LC, accuracy drop when only that layer is frozen), within-seed ranks")
    per_seed = []
    for s in _seeds(m):
        lc = np.asarray(s["lc"]["visual"])[:-1]
        drop = np.mean(s["items"]["baseline"]) - np.asarray(s["single_layer"])[:-1]
        per_seed.append(_rank_corr(np.stack([lc, drop], 1)))
    ours = f"Spearman(LC, drop) pooled {c.effect:.2f}; per seed " + ", ".join(f"{r:.2f}" for r in per_seed)
    return Judgement.from_headline(ours, c, supporting={"positive in every seed": all(r > 0 for r in per_seed)},
                                   preconditions=_preconditions(m, layers_matter=True))


def _judge_lc(m: Metrics) -> Judgement:
    vis = np.concatenate([np.asarray(s["lc"]["visual"])[:-1] for s in _seeds(m)])  # the last layer's visual LC is 0 by construction
    txt = np.concatenate([np.asarray(s["lc"]["text"])[:-1] for s in _seeds(m)])
    lv, lt = np.log10(np.maximum(vis, LC_FLOOR)), np.log10(np.maximum(txt, LC_FLOOR))
    c = stats.compare_paired(lv, lt, unit="layers x training seeds (all but the last layer)", direction="less", margin=LC_ORDERS,
                             label="log10 LC, text - visual tokens, per layer")
    small = float(np.mean(vis < 0.10 * txt.mean()))
    ours = (f"median LC visual {np.median(vis):.2e} vs text {np.median(txt):.2e}; visual {10 ** c.effect:.1f}x smaller (geometric mean over "
            f"{c.n} layers x seeds); {small:.0%} of them have visual LC < 10% of the mean text LC")
    return Judgement.from_headline(ours, c, supporting={"visual LC < 10% of the mean text LC in >= half the layers": small >= 0.5},
                                   preconditions=_preconditions(m, layers_matter=False))


# ----------------------------------------------------------------------------- the study


@register
class ShortVStudy(Study):
    name = "shortv"
    paper = Paper("ShortV: Efficient Multimodal Large Language Models by Freezing Visual Tokens in Ineffective Layers", arxiv="2504.00502", code="https://github.com/icip-cas/ShortV")
    version = 6
    changelog = {1: "first version: tiny Llava trained on shapes VQA; LC, ShortV with the lowest-LC half, random layer sets, FastV. "
                    "Before the first full run, after the first quick run, the vision tower went from two layers to one: with two, "
                    "the projector did all the visual work (freezing every layer cost nothing), so claim (c) could not be tested. "
                    "Rules unchanged.",
                 2: "issue 14: each rule restated as one headline comparison on reprolab.stats with a named unit and margin: (a) over "
                    "layers (all but the last), log10 text LC - log10 visual LC > 1; (b) paired over test questions, non-inferiority "
                    "with a 2-point margin (twice the paper's GQA drop; was a 3-point point-estimate tolerance); (c) paired over test "
                    "questions, LC-chosen vs the mean of the random draws, > 0 (was the mean of 10 draws below LC on one number). "
                    "Preconditions: majority + 10 points, a blank image costs > 5 points (new measurement), and for (b, c) freezing "
                    "all layers costs > 2 points (new: else no layer choice can matter). The FLOPs identity left the claims (a unit "
                    "test). Metrics keep per-question correctness of every arm; random draws at N = L/2: quick 12 (was 6), full 30 "
                    "(was 10); the accuracy-vs-N figure uses curve_draws (quick 4, full 5; was random_draws). The checkpoint is named "
                    "by RunDir.key (the study's own hash is gone), so the model is retrained for v2.",
                 3: "rules (b) and (c) pass unit_range=1 (per-question correctness) to reprolab.stats: questions that all show "
                    "the same difference get the exact bound on departing questions, not a zero-width interval. Cannot move "
                    "the v2 record (2000 questions, differences vary); re-judged (`reprolab rejudge shortv --write`), not rerun",
                 4: "issue 20: a model whose language model must work on the visual tokens, and rules that can tell. v2's model lost "
                    "only 9 points (5.7 in v1) with visual tokens frozen in all 12 layers, so its 2-point margin was larger than "
                    "what freezing half the layers at random cost. Model: the projector reads the CLIP patch embeddings "
                    "(vision_feature_layer=0, no patch mixing before the LM); task: relational questions (STUDY_KINDS: count by "
                    "colour and by shape, more-than comparison, leftmost/rightmost/topmost/bottommost, colour of the "
                    "unique shape), 2-4 objects; several training seeds per run (trained in parallel processes). Claims: (a) "
                    "freeze_half now relative: the lowest-LC half costs < 1/4 of the all-layers cost (was 2 points absolute); (b) "
                    "random_worse at 25/50/75% frozen, >= 20 random draws per fraction and seed, paired over questions x seeds (was 30 draws at 50%, "
                    "paired over questions); (c) new lc_predicts: Spearman(visual LC, single-layer accuracy drop) > 0; (d) lc_small "
                    "kept (rule unchanged, units now seeds x layers). Precondition for (a)-(c): all layers frozen costs > 10 points "
                    "(was 2). The FLOPs check of Table 1 uses the paper's stated prompt (576 visual + 64 text tokens, v2 Sec. "
                    "4.1-4.2) for all four Table-1 models; `PAPER_TEXT_TOKENS` chosen to land on 8.5 is gone.",
                 5: "issue 20, item 1: the full scale trains twice as long on fresh questions (6,000 steps x 64 from 100,000 training "
                    "questions per seed; v4: 3,000 from 30,000), because v4's models lost only 12.4 points with every layer frozen "
                    "(target 20). Calibration probes (one seed each, run before v5, README): 6,000 steps on v4's 30,000 questions gave "
                    "25.6 and 8.1 points (seeds 2, 3), on 100,000 questions 21.7 and 31.3 (seeds 1, 3). Rules, preconditions, "
                    "question set and model unchanged; quick and smoke unchanged.",
                 6: "issue 20, item 1: the prompt puts the question before the image (`question_first`, all scales), then the "
                    "question's last word as the answer cue. v5's record lost 17.9 points with every layer frozen (target 20) because "
                    "two of four seeds did the relational work in the text tokens after the image (7.2 and 11.6 points). Probes before "
                    "v6 (README), v5's recipe with the question first: seed 0 37.3 points, seed 2 25.3. Rules, preconditions, questions, "
                    "model size and training unchanged."}
    claims = [
        Claim("freeze_half", "Freezing visual tokens in the lowest-LC half of the layers costs little of what freezing them everywhere costs",
              paper="Table 1-2: LLaVA-1.5-7B, 19 of 32 layers: GQA 61.9 -> 60.9, 99% of the average score kept (24 layers: 92%)",
              rule=f"headline: per test question (pooled over the training seeds), (lowest-LC L/2 - unmodified) + {RHO:g} x (unmodified - all "
                   f"layers frozen), mean > 0 with a 95% bootstrap interval, i.e. the half costs less than {RHO:.0%} of the all-layers cost; "
                   f"supporting: the same in every seed; preconditions: majority + {ABOVE_CHANCE * 100:.0f} points, a blank image costs > "
                   f"{BLANK_MARGIN * 100:.0f} points, all layers frozen costs > {LAYERS_MARGIN * 100:.0f} points (intervals)",
              judge=_judge_freeze),
        Claim("random_worse", "Layers chosen by lowest LC beat random layer sets of the same size",
              paper="Table 6: LLaVA-1.5-7B, 19 random layers: GQA 56.1 vs 60.9 with LC (MMBench 58.4 vs 64.8)",
              rule="headline: per (training seed, test question), the mean over N = 25%, 50%, 75% of L of [lowest-LC N layers correct (0/1) - "
                   "share of the random N-layer sets (>= 20 per N and seed at full) that answer it], > 0 with a 95% paired bootstrap interval; "
                   "supporting: > 0 at each N, and in each seed; preconditions as freeze_half",
              judge=_judge_random),
        Claim("lc_predicts", "LC from a small calibration set predicts how much freezing each layer costs",
              paper="Sec. 2.3 / 3: LC (KL of the output when a layer's visual updates are removed) ranks the ineffective layers",
              rule="headline: Spearman correlation between visual LC (40 calibration questions) and the accuracy drop on the test "
                   "questions when only that layer is frozen, ranks within each seed, units (seed, layer) without the last layer, "
                   "paired bootstrap interval > 0; supporting: positive in every seed; preconditions as freeze_half",
              judge=_judge_predicts),
        Claim("lc_small", "Visual tokens' Layer Contribution is below the text tokens' (an order of magnitude)",
              paper="Fig. 3: LLaVA-1.5-7B/13B, every layer's visual LC below its text LC, many near zero",
              rule=f"headline: mean over (seed, layer) units, all but the last layer, of log10(text LC) - log10(visual LC), 95% interval > "
                   f"{LC_ORDERS:g}; supporting: visual LC < 10% of the mean text LC in >= half of them; preconditions: the model learned "
                   f"the task and uses the image",
              judge=_judge_lc),
    ]
    scales = {
        Scale.SMOKE: ShortVStudyConfig(model=SMOKE_MODEL, train=TrainConfig(steps=8, batch=16, warmup=2), vqa=STUDY_VQA, seeds=2, train_questions=96,
                                       test_questions=48, calib=4, random_draws=2, flops_batch=2, parallel=False),
        Scale.QUICK: ShortVStudyConfig(model=MLLMConfig(layers=8, vision_layers=1, vision_feature_layer=0), train=TrainConfig(steps=800, batch=64, lr=3e-3, warmup=40),
                                       vqa=STUDY_VQA, seeds=2, train_questions=10000, test_questions=500, calib=40, random_draws=20),
        Scale.FULL: ShortVStudyConfig(model=MLLMConfig(layers=8, vision_layers=1, vision_feature_layer=0), train=TrainConfig(steps=6000, batch=64, lr=3e-3, warmup=100),
                                      vqa=STUDY_VQA, seeds=4, train_questions=100000, test_questions=1000, calib=40, random_draws=20),
    }

    def run(self, config: ShortVStudyConfig, run: RunDir) -> Metrics:
        cfg = config
        L = cfg.model.layers
        seeds = [run.seed * 100 + i for i in range(cfg.seeds)]
        jobs = [(cfg, run.seed, s, str(run.checkpoints / f"{run.key_with(s)}-mllm.pt"), i == 0) for i, s in enumerate(seeds)]
        workers = min(len(jobs), torch.get_num_threads()) if cfg.parallel else 1
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init) as ex:
                parts = list(track(ex.map(_seed_unit, jobs), "shortv: training seeds (parallel)", total=len(jobs)))
        else:
            parts = [_seed_unit(j) for j in track(jobs, "shortv: training seeds")]
        test = make_vqa(cfg.test_questions, cfg.vqa, seed=50_000 + run.seed)
        chance = test.chance_accuracy()
        ns = frozen_counts(L, cfg.fractions)
        per_seed = {str(p["model_seed"]): p for p in parts}
        flops = parts[0].pop("flops")
        flops["paper_table1_tflops"] = {name: {"paper": list(row["tflops"]), "ours": [round(x, 2) for x in paper_tflops(name)]} for name, row in PAPER_TABLE1.items()}
        calib = {
            "frozen_fraction": [0.0, *cfg.fractions, 1.0],
            "frozen_layers": [0, *ns, L],
            "lc": [[p["accuracy"]["baseline"], *[float(np.mean(p["items"][f"lc_{n}"])) for n in ns], p["accuracy"]["all_frozen"]] for p in parts],
            "random_mean": [[p["accuracy"]["baseline"], *[float(np.mean(p["random"][str(n)]["accuracy"])) for n in ns], p["accuracy"]["all_frozen"]] for p in parts],
            "random_sd": [[0.0, *[float(np.std(p["random"][str(n)]["accuracy"])) for n in ns], 0.0] for p in parts],
        }
        metrics: Metrics = {"layers": L, "n_frozen": ns, "image_tokens": cfg.model.image_tokens, "chance": chance["all"], "chance_per_kind": chance,
                            "seeds": per_seed, "calibration": calib, "flops": flops}
        self._figures(run, metrics)
        return metrics

    def _figures(self, run: RunDir, m: Metrics) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        seeds = _seeds(m)
        L = m["layers"]
        x = np.arange(L)
        fig, ax = plt.subplots(figsize=(7, 3.6))
        floor = 1e-8
        vis = np.array([s["lc"]["visual"] for s in seeds])
        txt = np.array([s["lc"]["text"] for s in seeds])
        ax.bar(x - 0.2, np.maximum(vis.mean(0), floor), 0.4, label="visual tokens (mean over seeds)")
        ax.bar(x + 0.2, np.maximum(txt.mean(0), floor), 0.4, label="text tokens")
        for v in vis:
            ax.plot(x - 0.2, np.maximum(v, floor), "k.", ms=3)
        ax.set_yscale("log")
        ax.set_xlabel("decoder layer")
        ax.set_ylabel("layer contribution, KL (nats)")
        ax.legend(fontsize=8)
        run.save_figure(fig, "layer_contribution", "Layer Contribution per layer (KL of the first generated token), visual vs text tokens, mean over training seeds (dots: each seed's visual LC); log scale")

        c = m["calibration"]
        fig, ax = plt.subplots(figsize=(6, 3.8))
        f = np.asarray(c["frozen_fraction"]) * 100
        for i, s in enumerate(seeds):
            ax.plot(f, c["lc"][i], "o-", color="C0", alpha=0.8, label="lowest-LC layers" if i == 0 else None)
            ax.errorbar(f, c["random_mean"][i], yerr=c["random_sd"][i], fmt="s--", color="C1", alpha=0.8, capsize=3, label="random layers (mean +- sd of draws)" if i == 0 else None)
        ax.axhline(m["chance"], color="red", lw=0.8, ls=":", label="majority baseline")
        ax.axhline(float(np.mean([s["accuracy"]["blank_image"] for s in seeds])), color="black", lw=0.8, ls="-.", label="blank image")
        ax.set_xlabel("layers with frozen visual tokens (% of L)")
        ax.set_ylabel("exact-match accuracy (first token)")
        ax.legend(fontsize=8)
        run.save_figure(fig, "accuracy_vs_frozen", "calibration: held-out accuracy with 0/25/50/75/100% of the layers frozen, chosen by lowest LC or at random, one line per training seed")

        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for i, s in enumerate(seeds):
            lc = np.maximum(np.asarray(s["lc"]["visual"])[:-1], floor)
            drop = (np.mean(s["items"]["baseline"]) - np.asarray(s["single_layer"])[:-1]) * 100
            ax.plot(lc, drop, "o", label=f"seed {s['model_seed']}")
        ax.set_xscale("log")
        ax.set_xlabel("visual LC of the layer (calibration questions)")
        ax.set_ylabel("accuracy drop, only this layer frozen (points)")
        ax.legend(fontsize=8)
        run.save_figure(fig, "lc_vs_drop", "per layer (all but the last): visual LC against the accuracy lost on the test questions when only that layer's visual tokens are frozen")
