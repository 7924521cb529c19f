"""Study ``shortv``: are many layers ineffective for visual tokens, and can we freeze them there?

No VLM weights exist offline, so we train a small MLLM with LLaVA's real classes (a tiny
``LlavaForConditionalGeneration``: CLIP-style vision tower, projector, Llama language model of
8-12 layers; :mod:`.mllm`) on our synthetic shapes VQA set (:mod:`reprolab.data.vqa_shapes`:
colour, count, position and relation questions with one-word exact answers), cached per scale.
Then, through the method's public API only:

1. Layer Contribution of every layer for visual and for text tokens on a seeded calibration set
   of ``calib`` training questions (the paper: 40, 20 GQA + 20 Flickr30k), KL in the official
   code's direction ``KL(p_l || p)`` (the other direction is recorded, with the layers it would pick).
2. ShortV with the ``N = L // 2`` lowest-LC layers (about half; the paper: 19 of 32): exact-match
   accuracy of the first generated token on held-out questions, before and after, and the decoder
   FLOPs saved: predicted by the analytic count and measured with ``torch.utils.flop_counter``.
3. The same ``N`` chosen at random, ``random_draws`` seeded draws; and the accuracy curve over
   every ``N`` in ``0..L`` for LC-chosen and random layers.
4. FastV (K = 2, R = 50%) alone and with ShortV (the paper's Table 3 composition): reported, no claim.

Rules (fixed in code before the first full run; see ``claims``):
(a) median visual LC < median text LC, and in at least half of the layers the visual LC is below
    10% of the mean text LC;
(b) the trained model is clearly above the majority-answer baseline (+10 points, otherwise the
    claim cannot be tested), freezing the lowest-LC half keeps accuracy within 3 points of the
    unmodified model, and the measured FLOPs saving equals the analytic prediction within 1%;
(c) at the same N, the mean accuracy over random draws is below the LC-chosen accuracy and the
    LC choice is at least as accurate as 3/4 of the random draws.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data.vqa_shapes import VQAConfig, make_vqa
from ...runtime import load_checkpoint, save_checkpoint, track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .mllm import MLLMConfig, ShapesVQAProcessor, TrainConfig, answer_accuracy, build_mllm, build_tokenizer, train_mllm
from .shortv import FastVConfig, apply_shortv, layer_contribution, measured_flops, prefill_flops, remove_shortv

ACC_TOLERANCE = 0.03  # (b): accuracy may drop by at most 3 points ("within a few points"; paper GQA -1.0, VQAv2 -0.8)
ABOVE_CHANCE = 0.10  # (b): the model must beat the majority baseline by 10 points for the claim to mean anything
FLOPS_TOLERANCE = 0.01  # (b): measured saving vs analytic prediction
SMALL_LC = 0.10  # (a): "small" = below 10% of the mean text LC
RANDOM_QUANTILE = 0.75  # (c): LC choice at least as accurate as 75% of the random draws
PAPER = {"tflops": (8.5, 4.7), "gqa": (61.9, 60.9), "vqav2": (76.5, 75.7), "frozen": (19, 32)}
PAPER_TEXT_TOKENS = 64  # text tokens of a LLaVA-1.5 prompt in our FLOPs check of Table 1 (the paper does not say; 64 gives its 8.5 TFLOPs)


@dataclass(frozen=True)
class ShortVStudyConfig:
    model: MLLMConfig
    train: TrainConfig
    vqa: VQAConfig
    train_questions: int  # training set size (fresh scenes)
    test_questions: int  # held-out questions for accuracy
    calib: int  # calibration questions for LC (seeded draw from the training set)
    random_draws: int  # random layer sets per N
    flops_batch: int = 4  # prompts in the FLOPs measurement


def _judge_lc(m: Metrics) -> Judgement:
    vis, txt = np.asarray(m["lc"]["visual"]), np.asarray(m["lc"]["text"])
    small = float(np.mean(vis < SMALL_LC * txt.mean()))
    checks = {
        "median visual LC < median text LC": float(np.median(vis)) < float(np.median(txt)),
        "visual LC < 10% of mean text LC in >= half the layers": small >= 0.5,
    }
    ours = f"median LC visual {np.median(vis):.2e} vs text {np.median(txt):.2e}; {small:.0%} of {len(vis)} layers have visual LC < 10% of mean text LC ({(vis < txt).mean():.0%} below text LC)"
    return Judgement.from_checks(ours, checks)


def _judge_freeze(m: Metrics) -> Judgement:
    a = m["accuracy"]
    base, lc = a["baseline"], a["lc_half"]
    f = m["flops"]
    err = abs(f["measured_saving"] - f["predicted_saving"]) / max(f["predicted_saving"], 1)
    checks = {
        "model above majority baseline + 10 points": base >= m["chance"] + ABOVE_CHANCE,
        "accuracy within 3 points": lc >= base - ACC_TOLERANCE,
        "measured FLOPs saving = prediction within 1%": err <= FLOPS_TOLERANCE,
    }
    ours = (
        f"N={m['n_frozen']}/{m['layers']}: accuracy {base:.3f} -> {lc:.3f} (majority baseline {m['chance']:.3f}); decoder FLOPs {f['decoder_base'] / 1e6:.2f} -> {f['decoder_shortv'] / 1e6:.2f} MFLOPs per prompt "
        f"(-{f['predicted_fraction']:.1%} predicted, measured saving off by {err:.2%}); our count on LLaVA-1.5-7B shapes: {f['llava7b_tflops'][0]:.2f} -> {f['llava7b_tflops'][1]:.2f} TFLOPs"
    )
    return Judgement.from_checks(ours, checks)


def _judge_random(m: Metrics) -> Judgement:
    a = m["accuracy"]
    rand = np.asarray(a["random_half"])
    lc = a["lc_half"]
    beaten = float(np.mean(lc >= rand))
    checks = {"mean random accuracy < LC-chosen accuracy": float(rand.mean()) < lc, "LC choice >= 3/4 of the random draws": beaten >= RANDOM_QUANTILE}
    ours = f"N={m['n_frozen']}: LC-chosen {lc:.3f} vs random {rand.mean():.3f} +- {rand.std():.3f} over {len(rand)} draws (LC >= {beaten:.0%} of them)"
    return Judgement.from_checks(ours, checks)


def _key(cfg: ShortVStudyConfig, seed: int, version: int) -> str:
    part = {"model": dataclasses.asdict(cfg.model), "train": dataclasses.asdict(cfg.train), "vqa": dataclasses.asdict(cfg.vqa), "n": cfg.train_questions}
    return hashlib.sha256(json.dumps([part, seed, version], sort_keys=True).encode()).hexdigest()[:12]


def trained_model(cfg: ShortVStudyConfig, run: RunDir, version: int):
    """(model, processor, training record): from ``run.checkpoints`` if cached there, else trained and cached."""
    tok = build_tokenizer()
    model = build_mllm(cfg.model, tok, seed=run.seed)
    proc = ShapesVQAProcessor(tok, model.config)
    path = run.checkpoints / f"{_key(cfg, run.seed, version)}-mllm.pt"
    ck = load_checkpoint(path)
    if ck is None:
        train = make_vqa(cfg.train_questions, cfg.vqa, seed=1000 + run.seed)
        out = train_mllm(model, proc, train, cfg.train, seed=run.seed)
        ck = {"model": model.state_dict(), "losses": out.losses, "seconds": out.seconds, "config": dataclasses.asdict(cfg.model)}
        save_checkpoint(path, ck)
    else:
        model.load_state_dict(ck["model"])
    model.eval()
    return model, proc, {"losses": ck["losses"], "seconds": ck["seconds"], "checkpoint": path.name}


@register
class ShortVStudy(Study):
    name = "shortv"
    paper = Paper("ShortV: Efficient Multimodal Large Language Models by Freezing Visual Tokens in Ineffective Layers", arxiv="2504.00502", code="https://github.com/icip-cas/ShortV")
    version = 1
    changelog = {1: "first version: tiny Llava trained on shapes VQA; LC, ShortV with the lowest-LC half, random layer sets, FastV. "
                    "Before the first full run, after the first quick run, the vision tower went from two layers to one: with two, "
                    "the projector did all the visual work (freezing every layer cost nothing), so claim (c) could not be tested. "
                    "Rules unchanged."}
    claims = [
        Claim("lc_small", "Visual tokens' Layer Contribution is small in many layers and below the text tokens'", paper="Fig. 2: LLaVA-1.5-7B, many layers with visual LC near zero, text LC large in every layer", rule="median visual LC < median text LC, and visual LC < 10% of the mean text LC in at least half of the layers", judge=_judge_lc),
        Claim("freeze_half", "Freezing visual tokens in the lowest-LC half of the layers keeps accuracy within a few points and cuts FLOPs by the predicted fraction", paper="Table 1: LLaVA-1.5-7B, 19 of 32 layers: 8.5 -> 4.7 TFLOPs, GQA 61.9 -> 60.9, VQAv2 76.5 -> 75.7", rule="model >= majority baseline + 10 points; accuracy(ShortV, N = L//2 lowest LC) >= accuracy(model) - 3 points; measured decoder FLOPs saving within 1% of the analytic one", judge=_judge_freeze),
        Claim("random_worse", "The same number of randomly chosen layers loses more accuracy than the LC choice", paper="Sec. 5 / Fig. 5: LC-based selection beats random and position-based selection", rule="at N = L//2: mean accuracy over the random draws < LC-chosen accuracy, and LC-chosen >= 75% of the draws", judge=_judge_random),
    ]
    scales = {
        Scale.SMOKE: ShortVStudyConfig(model=MLLMConfig(hidden=32, intermediate=64, layers=4, vision_layers=1, vision_hidden=32), train=TrainConfig(steps=8, batch=16, warmup=2), vqa=VQAConfig(), train_questions=96, test_questions=48, calib=4, random_draws=2, flops_batch=2),
        Scale.QUICK: ShortVStudyConfig(model=MLLMConfig(layers=8, vision_layers=1), train=TrainConfig(steps=700, batch=32), vqa=VQAConfig(), train_questions=4000, test_questions=600, calib=40, random_draws=6),
        Scale.FULL: ShortVStudyConfig(model=MLLMConfig(layers=12, vision_layers=1), train=TrainConfig(steps=6000, batch=32, lr=2e-3, warmup=100), vqa=VQAConfig(), train_questions=20000, test_questions=2000, calib=40, random_draws=10),
    }

    def run(self, config: ShortVStudyConfig, run: RunDir) -> Metrics:
        cfg = config
        model, proc, training = trained_model(cfg, run, self.version)
        test = make_vqa(cfg.test_questions, cfg.vqa, seed=50_000 + run.seed)
        train_pool = make_vqa(max(cfg.calib, 200), cfg.vqa, seed=1000 + run.seed)  # same scenes as the start of the training set
        L = cfg.model.layers
        n_frozen = L // 2

        # 1. Layer Contribution on a seeded calibration draw
        samples = [{"image": train_pool.images[i], "text": train_pool.questions[i]} for i in range(len(train_pool))]
        lc = layer_contribution(model, proc, samples, n=cfg.calib, seed=run.seed)
        chosen = lc.lowest(n_frozen)

        def acc(layers, fastv=None) -> dict[str, float]:
            apply_shortv(model, layers, fastv=fastv)
            try:
                return answer_accuracy(model, proc, test)
            finally:
                remove_shortv(model)

        base = acc([])
        lc_half = acc(chosen)
        rng = np.random.default_rng(10_000 + run.seed)
        draws = [sorted(int(i) for i in rng.choice(L, size=n_frozen, replace=False)) for _ in range(cfg.random_draws)]
        random_half = [acc(d)["all"] for d in track(draws, "random layer sets")]

        # accuracy vs N for LC-chosen and random layer sets (random: fresh draws per N)
        curve_lc, curve_rand = [], []
        for n in track(range(L + 1), "accuracy vs frozen layers"):
            curve_lc.append(acc(lc.lowest(n))["all"])
            curve_rand.append([acc(sorted(int(i) for i in rng.choice(L, size=n, replace=False)))["all"] for _ in range(cfg.random_draws)])

        fastv = FastVConfig()
        fastv_acc = acc([], fastv)["all"]
        both_acc = acc(chosen, fastv)["all"]

        flops = self._flops(model, proc, test, chosen, fastv, cfg)
        chance = test.chance_accuracy()
        metrics: Metrics = {
            "layers": L,
            "n_frozen": n_frozen,
            "chosen_layers": chosen,
            "image_tokens": cfg.model.image_tokens,
            "chance": chance["all"],
            "chance_per_kind": chance,
            "training": {"seconds": round(training["seconds"], 2), "final_loss": float(np.mean(training["losses"][-50:])), "checkpoint": training["checkpoint"]},
            "lc": {
                "direction": lc.direction,
                "visual": lc.visual.tolist(),
                "text": lc.text.tolist(),
                "reverse_direction": {k: v.tolist() for k, v in lc.reverse.items()},
                "chosen_by_reverse_direction": sorted(int(i) for i in np.argsort(lc.reverse["visual"], kind="stable")[:n_frozen]),
            },
            "accuracy": {
                "baseline": base["all"],
                "baseline_per_kind": base,
                "lc_half": lc_half["all"],
                "lc_half_per_kind": lc_half,
                "random_half": random_half,
                "random_layer_sets": draws,
                "curve_lc": curve_lc,
                "curve_random": curve_rand,
                "fastv": fastv_acc,
                "shortv_fastv": both_acc,
            },
            "flops": flops,
        }
        self._figures(run, metrics)
        return metrics

    def _flops(self, model, proc, test, chosen, fastv, cfg) -> dict[str, Any]:
        batch = proc(images=list(test.images[: cfg.flops_batch]), text=[test.questions[0]] * cfg.flops_batch)  # same question: no padding
        n_vis = int((batch["input_ids"][0] == model.config.image_token_id).sum())
        n_text = batch["input_ids"].shape[1] - n_vis
        tc = model.config.text_config
        B = cfg.flops_batch

        def measure(layers, fv=None) -> int:
            apply_shortv(model, layers, fastv=fv)
            try:
                with torch.no_grad():
                    return measured_flops(model, **batch, logits_to_keep=1)
            finally:
                remove_shortv(model)

        m_base, m_sv, m_fv, m_both = measure([]), measure(chosen), measure([], fastv), measure(chosen, fastv)
        p_base = prefill_flops(tc, n_text, n_vis, batch=B)
        p_sv = prefill_flops(tc, n_text, n_vis, chosen, batch=B)
        p_fv = prefill_flops(tc, n_text, n_vis, (), fastv, batch=B)
        p_both = prefill_flops(tc, n_text, n_vis, chosen, fastv, batch=B)
        from transformers import LlamaConfig

        l7 = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32)
        paper7b = (prefill_flops(l7, PAPER_TEXT_TOKENS, 576) / 1e12, prefill_flops(l7, PAPER_TEXT_TOKENS, 576, range(PAPER["frozen"][0])) / 1e12)
        return {
            "text_tokens": n_text,
            "visual_tokens": n_vis,
            "decoder_base": p_base / B,
            "decoder_shortv": p_sv / B,
            "decoder_fastv": p_fv / B,
            "decoder_shortv_fastv": p_both / B,
            "predicted_fraction": 1 - p_sv / p_base,
            "predicted_fraction_fastv": 1 - p_fv / p_base,
            "predicted_fraction_both": 1 - p_both / p_base,
            "predicted_saving": p_base - p_sv,
            "measured_saving": m_base - m_sv,
            "measured_saving_fastv": m_base - m_fv,
            "measured_saving_both": m_base - m_both,
            "predicted_saving_fastv": p_base - p_fv,
            "predicted_saving_both": p_base - p_both,
            "measured_model_total": m_base,
            "measured_model_shortv": m_sv,
            "llava7b_tflops": list(paper7b),
        }

    def _figures(self, run: RunDir, m: Metrics) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        L = m["layers"]
        x = np.arange(L)
        fig, ax = plt.subplots(figsize=(7, 3.6))
        floor = 1e-8  # LC is exactly 0 for visual tokens in the last layer; draw it at the floor of the log axis
        ax.bar(x - 0.2, np.maximum(m["lc"]["visual"], floor), 0.4, label="visual tokens")
        ax.bar(x + 0.2, np.maximum(m["lc"]["text"], floor), 0.4, label="text tokens")
        for i in m["chosen_layers"]:
            ax.axvspan(i - 0.45, i + 0.45, color="grey", alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_xlabel("decoder layer")
        ax.set_ylabel("layer contribution, KL (nats)")
        ax.set_title("LC per layer (shaded: the ShortV layers, lowest visual LC)")
        ax.legend()
        run.save_figure(fig, "layer_contribution", "Layer Contribution (KL of the first generated token) per layer, when the layer's updates of visual (blue) or text (orange) tokens are removed; log scale; shaded layers are the ShortV choice")

        a = m["accuracy"]
        n = np.arange(L + 1)
        rand = np.asarray(a["curve_random"])
        fig, ax = plt.subplots(figsize=(6, 3.8))
        ax.plot(n, a["curve_lc"], "o-", label="lowest-LC layers (ShortV)")
        ax.errorbar(n, rand.mean(1), yerr=rand.std(1), fmt="s--", capsize=3, label=f"random layers (mean +- std, {rand.shape[1]} draws)")
        ax.axhline(a["baseline"] - ACC_TOLERANCE, color="grey", lw=0.8, ls=":", label="unmodified - 3 points")
        ax.axhline(m["chance"], color="red", lw=0.8, ls=":", label="majority baseline")
        ax.axvline(m["n_frozen"], color="grey", lw=0.8)
        ax.set_xlabel("layers with frozen visual tokens (N)")
        ax.set_ylabel("exact-match accuracy (first token)")
        ax.legend(fontsize=8)
        run.save_figure(fig, "accuracy_vs_frozen", "held-out accuracy vs number of ShortV layers, chosen by lowest LC or at random; vertical line: N = L/2 of the claims")
