"""Study ``gpt_imgeval``: a GenEval-style harness checked against exact truth, a diagnosis across training
budgets, and GPT-ImgEval's architecture probe, on shapes scenes.

Rules (fixed in code before the first quick or full run):

- validity (a): every prompt's scene is rendered twice, once exactly (:func:`.prompts.render_prompt`)
  and once with a planted mistake of the tag's kind, so the exact verdict (:func:`.prompts.exact_verdict`,
  the decision logic on the true objects) is True about half the time. The harness (ShapesDetector +
  masked-crop colour, GenEval's decision logic) judges each render clean and degraded (Gaussian noise
  sigma 0.05, blur sigma 0.7 px, JPEG q50). Headline: per-image agreement with the exact verdict on the
  clean renders against 0.85 (the spec's "partly" bar; exact binomial interval, 95%; unit: renders).
  Supporting (the spec's "reproduced" bar): clean agreement >= 0.95, each degraded agreement >= 0.90, and
  per tag |harness accuracy - exact accuracy| <= 0.03 on the clean renders. Precondition: the exact verdicts
  hold both values (between 20% and 80% True).
- diagnosis (b): a text-conditional tiny diffusion model (:mod:`reprolab.nn.text_diffusion`) trained on
  (render, prompt) pairs is checkpointed at three budgets; each budget generates ``images_per_prompt``
  images for the same evaluation prompts with the same seeds, and the harness scores them. Headline: the
  smaller of the two step-to-step rises of the overall score (mean of the six tag accuracies), by a paired
  bootstrap over prompts (percentile, 90% interval, margin 0; unit: prompts). Supporting: at the largest
  budget, single_object is strictly the easiest tag and position and color_attr are no easier than any of
  two_object / counting / colors and strictly below their mean, in >= 80% of 1000 bootstrap resamples of the prompts. Preconditions: at
  the largest budget the harness finds an object (v3: a detection it keeps, score > 0.3, from a proposal under half the image) in >= 50%
  of the images and the overall score is > 0. The generator predicts x0 (v3) and the budgets are snapshots of one training run on
  one learning-rate schedule (v3).
  (The spec's "partly if only one of the two holds" is the lab's partly: a held headline with a failed
  supporting check; a failed headline is not lifted by the ordering.)
- probe (c) (full scale only; "not run" at smoke and quick): the VQ-VAE + GPT generator (VQ-AR) and the hybrid
  (its codes decoded by an image-conditioned diffusion decoder) are trained on the same pairs; an
  :class:`.probe.ArchitectureProbe` is trained on half of the diffusion and VQ-AR images and tested on
  the other half, then labels the hybrid images. Headline: the share of hybrid images labelled
  "diffusion" against 0.70 (exact binomial, 95%; unit: hybrid images). Precondition: held-out accuracy
  >= 0.9. The opposite outcome is an honest "not reproduced".

Scales: smoke (seconds: the code path), quick (a few minutes: small budgets, no probe), full.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ... import stats
from ...errors import StudySkipped
from ...imageeval import DetectorConfig, MaskedCropColour, ShapesDetector, degrade, paired_bootstrap, resample_share
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .geneval import TAGS, GenEvalConfig, evaluate_image
from .prompts import SIZES_USED, exact_verdict, make_prompt, make_prompts, render_prompt

GPT4O = {"single_object": 0.99, "two_object": 0.92, "counting": 0.85, "colors": 0.92, "position": 0.75, "color_attr": 0.61}
GPT4O_OVERALL = 0.84
VALIDITY_HEADLINE = 0.85
VALIDITY_CLEAN = 0.95
VALIDITY_DEGRADED = 0.90
VALIDITY_TAG_GAP = 0.03
DIAGNOSIS_CONFIDENCE = 0.90
ORDER_SHARE = 0.80
PROBE_ACCURACY = 0.90
PROBE_SHARE = 0.70
DEGRADATIONS = ("noise:0.05", "blur:0.7", "jpeg:50")
GENEVAL_THRESHOLD = GenEvalConfig().threshold  # (b)'s "the harness finds an object": a detection the harness keeps (score > 0.3)
MAX_AREA = 0.5  # v3: a proposal over half the image is a cluttered canvas, not an object (our largest object covers about 0.13)


@dataclass(frozen=True)
class GPTImgEvalConfig:
    image_size: int
    det_scenes: int
    det_steps: int
    det_width: int
    validity_per_tag: int  # (a): prompts per tag, each rendered exactly and with a planted error
    eval_per_tag: int  # (b): evaluation prompts per tag
    images_per_prompt: int
    train_pairs: int  # (render, caption) training pairs
    budgets: tuple[int, ...]  # diffusion optimizer steps at each checkpoint
    batch: int
    channels: tuple[int, ...]
    text_dim: int
    lr: float
    sample_steps: int
    guidance: float
    probe: bool  # (c)
    vq_steps: int = 0
    gpt_steps: int = 0
    hybrid_steps: int = 0
    probe_images: int = 0  # per generator
    threads: int | None = None  # torch threads for the run (1 at smoke: tiny models are faster on one thread of a shared machine)


def _training_pairs(n: int, size: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    rng = np.random.default_rng(seed)
    images, captions = [], []
    for _ in range(n):
        m = make_prompt(TAGS[int(rng.integers(len(TAGS)))], rng)
        img, _ = render_prompt(m, rng, size)
        images.append(img)
        captions.append(m["prompt"])
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, captions


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return (x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)


def overall_of(rows: np.ndarray) -> float:
    """rows (N, 2) of [prompt accuracy, tag index]: the unweighted mean of the tag accuracies present."""
    tags = rows[:, 1].astype(int)
    return float(np.mean([rows[tags == t, 0].mean() for t in np.unique(tags)]))


def tag_means(rows: np.ndarray) -> dict[str, float]:
    tags = rows[:, 1].astype(int)
    return {TAGS[t]: float(rows[tags == t, 0].mean()) for t in np.unique(tags)}


def ordering_holds(rows: np.ndarray) -> bool:
    """single_object strictly easiest; position and color_attr no easier than any middle tag and strictly below the
    middle tags' mean (v2: with ties allowed alone, all-zero tags made the ordering hold vacuously)."""
    m = tag_means(rows)
    if len(m) < len(TAGS):
        return False
    middle = [m["two_object"], m["counting"], m["colors"]]
    hardest = max(m["position"], m["color_attr"])
    return m["single_object"] > max(middle + [m["position"], m["color_attr"]]) and hardest <= min(middle) and hardest < float(np.mean(middle))


# ----------------------------------------------------------------------------- judges
def _judge_validity(m: Metrics) -> Judgement:
    v = m["validity"]
    clean = v["conditions"]["clean"]
    agree = np.asarray(clean["agree"], dtype=bool)
    truth = np.asarray(clean["truth"], dtype=bool)
    harness = np.asarray(clean["harness"], dtype=bool)
    tags = np.asarray(clean["tag"])
    pre = {"the exact verdicts hold both values (20-80% True)": 0.2 <= truth.mean() <= 0.8}
    head = stats.compare_proportion(int(agree.sum()), len(agree), VALIDITY_HEADLINE, unit="renders",
                                    label="per-image agreement of the harness with the exact verdict, clean renders, vs 0.85")
    gaps = {t: abs(float(harness[tags == t].mean()) - float(truth[tags == t].mean())) for t in TAGS if (tags == t).any()}
    sup = {f"clean agreement >= {VALIDITY_CLEAN}": agree.mean() >= VALIDITY_CLEAN}
    for cond, c in v["conditions"].items():
        if cond != "clean":
            sup[f"{cond} agreement >= {VALIDITY_DEGRADED}"] = float(np.mean(c["agree"])) >= VALIDITY_DEGRADED
    sup[f"per-tag |harness - exact| <= {VALIDITY_TAG_GAP}"] = max(gaps.values()) <= VALIDITY_TAG_GAP
    ours = ("agreement " + ", ".join(f"{cond} {np.mean(c['agree']):.3f}" for cond, c in v["conditions"].items())
            + f" over {len(agree)} renders each; largest per-tag gap {max(gaps.values()):.3f} ({max(gaps, key=gaps.get)})")
    return Judgement.from_headline(ours, head, sup, pre)


def _rows(d: dict[str, Any], budget: int) -> np.ndarray:
    return np.stack([np.asarray(d["accuracy"][str(budget)], dtype=float), np.asarray(d["tag_index"], dtype=float)], 1)


def _judge_diagnosis(m: Metrics) -> Judgement:
    d = m["diagnosis"]
    budgets = d["budgets"]
    last = budgets[-1]
    rows = {b: _rows(d, b) for b in budgets}
    pre = {f"the harness finds an object (a detection with score > 0.3) in >= 50% of the images at {last} steps": d["detected_share"][str(last)] >= 0.5,
           f"overall > 0 at {last} steps": overall_of(rows[last]) > 0}
    comps = [paired_bootstrap(rows[b1], rows[b0], statistic=overall_of, unit="prompts", confidence=DIAGNOSIS_CONFIDENCE,
                              label=f"overall at {b1} minus at {b0} steps") for b0, b1 in zip(budgets, budgets[1:])]
    head = min(comps, key=lambda c: c.low)
    share = resample_share(rows[last], ordering_holds, n_resamples=1000)
    sup = {f"single_object easiest, position and color_attr hardest in >= {ORDER_SHARE:.0%} of resamples ({share:.0%})": share >= ORDER_SHARE}
    tm = tag_means(rows[last])
    ours = ("overall " + " -> ".join(f"{overall_of(rows[b]):.3f}" for b in budgets) + f" at {budgets} steps; at {last}: "
            + ", ".join(f"{t} {tm.get(t, float('nan')):.2f}" for t in TAGS))
    return Judgement.from_headline(ours, head, sup, pre)


def _judge_probe(m: Metrics) -> Judgement:
    p = m.get("probe")
    if not p or not p.get("ran"):
        return Judgement.not_run("the probe runs at full scale only (quick and smoke skip (c))")
    acc = float(np.mean(p["held_out_correct"]))
    pre = {f"held-out accuracy >= {PROBE_ACCURACY} ({acc:.3f})": acc >= PROBE_ACCURACY}
    hyb = np.asarray(p["hybrid_p_diffusion"], dtype=float)
    k = int((hyb > 0.5).sum())
    head = stats.compare_proportion(k, len(hyb), PROBE_SHARE, unit="hybrid images", label="share of hybrid images labelled diffusion vs 0.70")
    ours = f"held-out accuracy {acc:.3f}; hybrid images labelled diffusion {k}/{len(hyb)} = {k / len(hyb):.2f}"
    return Judgement.from_headline(ours, head, {}, pre)


@register
class GPTImgEvalStudy(Study):
    name = "gpt_imgeval"
    paper = Paper("GPT-ImgEval: A Comprehensive Benchmark for Diagnosing GPT4o in Image Generation", arxiv="2504.02782",
                  code="https://github.com/PicoTrex/GPT-ImgEval")
    version = 3
    changelog = {
        1: "first version: harness validity against exact truth, diagnosis over three diffusion budgets, architecture probe (full only)",
        2: ("after the first quick run, before any full run: the diagnosis ordering check also needs position and color_attr strictly "
            "below the mean of two_object / counting / colors (the quick run's generator scored 0 on all five non-single tags, "
            "and ties let the ordering hold vacuously in 89% of resamples)"),
        3: ("v2's record read (b) not testable with the object share falling 76% -> 34% -> 29% as training went on; a bug, in two parts. "
            "(1) The harness: every object v2 'found' in generated images was one proposal covering the whole canvas (area 0.98-1.0 "
            "of the image; real objects cover at most about 0.13), which the detector's CNN named a shape: the share measured how "
            "noisy the canvas was, not objects. ShapesDetector now drops proposals over half the image (DetectorConfig.max_area = 0.5; "
            "no clean, noisy, blurred or JPEG render has one, so (a) is unchanged), and (b)'s 'the harness finds an object' now "
            "counts detections the harness keeps (score > 0.3, GenEval's threshold) instead of any hypothesis over 0.05. "
            "(2) The generator: epsilon-prediction with a few DDIM steps left the tiny model's samples colour noise for hundreds of "
            "steps (measured: still noise at 450 quick steps); it now predicts x0 (nn.text_diffusion's new default, carried by the "
            "model so training and sampling cannot disagree), which gives clean backgrounds with objects from the first budget. "
            "Also: the budgets are now snapshots of one run on one learning-rate schedule over the largest budget (v2 restarted "
            "warm-up and cosine decay at each budget; the EMA was already carried over). Rules otherwise unchanged. Written before any v3 run; then, "
            "from the first v3 quick run's timing alone (its verdicts change nothing here), quick became budgets 30/90/270 (was "
            "50/150/450), 400 detector steps (was 500) and 12 validity prompts per tag (was 15), for the 2-minute target."),
    }
    claims = [
        Claim("validity", "A GenEval-style harness agrees with the exact verdict per image, clean and degraded",
              paper="GPT-ImgEval scores GPT-4o with GenEval's detector-based harness (overall 0.84)",
              rule=(f"headline: clean per-image agreement with the exact verdict vs {VALIDITY_HEADLINE} (exact binomial, 95%, unit: renders; "
                    f"renders of each prompt exact and with a planted error); supporting: clean >= {VALIDITY_CLEAN}, noise/blur/JPEG q50 each "
                    f">= {VALIDITY_DEGRADED}, per tag |harness - exact| <= {VALIDITY_TAG_GAP}; not testable unless exact verdicts are 20-80% True"),
              judge=_judge_validity),
        Claim("diagnosis", "Overall rises with training budget; single_object is easiest, position and color_attr hardest",
              paper="GPT-4o: single_object 0.99, position 0.75, color_attr 0.61 (position and attribute binding weakest for nearly every model)",
              rule=(f"headline: the smaller step-to-step rise of overall across 3 diffusion budgets, paired bootstrap over prompts, "
                    f"{DIAGNOSIS_CONFIDENCE:.0%} interval > 0; supporting: tag ordering at the largest budget in >= {ORDER_SHARE:.0%} of 1000 "
                    "bootstrap resamples; not testable unless the harness keeps a detection (score > 0.3) in >= 50% of images and overall > 0 at the largest budget"),
              judge=_judge_diagnosis),
        Claim("probe", "A paradigm probe trained on diffusion vs VQ-AR images labels AR-backbone + diffusion-head images 'diffusion'",
              paper="most GPT-4o images classified as diffusion (Sec. 5): 'AR backbone + diffusion head'",
              rule=(f"headline: share of hybrid images labelled diffusion vs {PROBE_SHARE} (exact binomial, 95%, unit: hybrid images); "
                    f"not testable unless held-out accuracy >= {PROBE_ACCURACY}; full scale only"),
              judge=_judge_probe),
    ]
    scales = {
        Scale.SMOKE: GPTImgEvalConfig(
            image_size=32, det_scenes=30, det_steps=10, det_width=8, validity_per_tag=1, eval_per_tag=1, images_per_prompt=1,
            train_pairs=12, budgets=(1, 2, 3), batch=4, channels=(8, 16, 16), text_dim=16, lr=2e-3, sample_steps=1, guidance=2.0, probe=False,
            threads=1,
        ),  # fmt: skip
        Scale.QUICK: GPTImgEvalConfig(
            image_size=32, det_scenes=1200, det_steps=400, det_width=32, validity_per_tag=12, eval_per_tag=10, images_per_prompt=2,
            train_pairs=3000, budgets=(30, 90, 270), batch=16, channels=(16, 32, 32), text_dim=32, lr=2e-3, sample_steps=10, guidance=3.0,
            probe=False,
        ),  # fmt: skip
        Scale.FULL: GPTImgEvalConfig(
            image_size=32, det_scenes=2000, det_steps=800, det_width=32, validity_per_tag=50, eval_per_tag=25, images_per_prompt=2,
            train_pairs=6000, budgets=(150, 450, 1350), batch=32, channels=(16, 32, 32), text_dim=32, lr=2e-3, sample_steps=12, guidance=3.0,
            probe=True, vq_steps=400, gpt_steps=400, hybrid_steps=300, probe_images=120,
        ),  # fmt: skip
    }

    def run(self, config: GPTImgEvalConfig, run: RunDir) -> Metrics:
        if config.threads is not None:
            from ...runtime import torch_threads

            with torch_threads(config.threads):
                return self._run(config, run)
        return self._run(config, run)

    def _run(self, config: GPTImgEvalConfig, run: RunDir) -> Metrics:
        try:
            import diffusers  # noqa: F401
        except ImportError as e:
            raise StudySkipped(f"diffusers is not installed ({e}); pip install diffusers==0.42.0") from None
        det = ShapesDetector.train(DetectorConfig(image_size=config.image_size, scenes=config.det_scenes, steps=config.det_steps,
                                                  width=config.det_width, sizes=SIZES_USED, max_area=MAX_AREA),
                                   checkpoint=run.checkpoints / f"{run.key}-detector.pt", seed=run.seed, eval_scenes=max(20, config.det_scenes // 5))
        metrics: Metrics = {"detector": det.held_out}
        metrics["validity"] = self._validity(config, run, det)
        diag, gen = self._diagnosis(config, run, det)
        metrics["diagnosis"] = diag
        metrics["probe"] = self._probe(config, run, gen) if config.probe else {"ran": False}
        self._figures(metrics, run)
        return metrics

    # ------------------------------------------------------------------ (a)
    def _validity(self, cfg: GPTImgEvalConfig, run: RunDir, det: ShapesDetector) -> dict[str, Any]:
        prompts = make_prompts(per_tag=cfg.validity_per_tag, seed=run.seed + 1)
        rng = np.random.default_rng(run.seed + 2)
        colour = MaskedCropColour()
        renders = []
        for p in prompts:
            for err in (False, True):
                img, objs = render_prompt(p, rng, cfg.image_size, error=err)
                renders.append((p, img, exact_verdict(objs, p, cfg.image_size)))
        out: dict[str, Any] = {"conditions": {}}
        for cond in ("clean",) + DEGRADATIONS:
            harness, truth, tags = [], [], []
            for i, (p, img, ex) in enumerate(renders):
                x = degrade(img, cond, seed=run.seed * 7919 + i)
                harness.append(int(evaluate_image(x, p, det, colour)["correct"]))
                truth.append(int(ex))
                tags.append(p["tag"])
            out["conditions"][cond.split(":")[0] if cond != "clean" else "clean"] = {
                "harness": harness, "truth": truth, "tag": tags, "agree": [int(h == t) for h, t in zip(harness, truth)]}
        return out

    # ------------------------------------------------------------------ (b)
    def _diagnosis(self, cfg: GPTImgEvalConfig, run: RunDir, det: ShapesDetector) -> tuple[dict[str, Any], dict[str, Any]]:
        from ...nn.diffusion import DiffusionBatch, TrainConfig
        from ...nn.text_diffusion import CaptionTokenizer, TextDiffusionConfig, build_text_unet, sample_text, train_text_diffusion

        x, captions = _training_pairs(cfg.train_pairs, cfg.image_size, run.seed + 3)
        prompts = make_prompts(per_tag=cfg.eval_per_tag, seed=run.seed + 4)
        tok = CaptionTokenizer.from_texts(captions + [p["prompt"] for p in prompts], max_len=12)
        ids = tok.encode(captions)
        torch.manual_seed(run.seed)
        model = build_text_unet(TextDiffusionConfig(vocab_size=len(tok), max_len=12, sample_size=cfg.image_size, block_out_channels=cfg.channels,
                                                    text_dim=cfg.text_dim, norm_num_groups=min(8, min(cfg.channels))))

        def batch_at(step: int) -> DiffusionBatch:
            g = torch.Generator().manual_seed(run.seed * 100_003 + step)
            idx = torch.randint(0, len(x), (cfg.batch,), generator=g)
            return DiffusionBatch(x0=x[idx], class_labels=ids[idx])

        colour = MaskedCropColour()
        texts = [p["prompt"] for p in prompts for _ in range(cfg.images_per_prompt)]
        out: dict[str, Any] = {"budgets": list(cfg.budgets), "tag_index": [TAGS.index(p["tag"]) for p in prompts], "accuracy": {},
                               "detected_share": {}, "losses": {}}
        images_last = None
        prev = None
        horizon = cfg.budgets[-1]
        for b in cfg.budgets:
            # one checkpoint file per budget, started from the previous budget's: a rerun never mixes budgets. v3: the legs
            # follow one learning-rate schedule over the largest budget (schedule_steps), so the budgets are snapshots of one
            # uninterrupted run (v2 restarted the warm-up and cosine decay at every budget)
            ckpt = run.checkpoints / f"{run.key}-text-diffusion-{b}.pt"
            if prev is not None and not ckpt.exists():
                shutil.copyfile(prev, ckpt)
            prev = ckpt
            res = train_text_diffusion(model, batch_at, TrainConfig(steps=b, schedule_steps=horizon, lr=cfg.lr, warmup=min(50, max(1, horizon // 10)),
                                                                   cfg_dropout=0.1, checkpoint_every=max(10, b // 4),
                                                                   prediction_type=model.config_.prediction_type),
                                       checkpoint=ckpt, seed=run.seed, description=f"text diffusion to {b} steps")
            out["losses"][str(b)] = float(np.mean(res.losses["mse"][-20:]))
            gen = torch.Generator().manual_seed(run.seed + 5)
            imgs = torch.cat([sample_text(model, tok, texts[i:i + 64], guidance_scale=cfg.guidance, num_inference_steps=cfg.sample_steps, generator=gen)
                              for i in range(0, len(texts), 64)])
            u8 = _to_uint8(imgs)
            correct, found = [], []
            for j, img in enumerate(u8):
                p = prompts[j // cfg.images_per_prompt]
                correct.append(evaluate_image(img, p, det, colour)["correct"])
                found.append(any(d.score > GENEVAL_THRESHOLD for d in det.detect(img)))
            acc = np.asarray(correct, dtype=float).reshape(len(prompts), cfg.images_per_prompt).mean(1)
            out["accuracy"][str(b)] = [float(a) for a in acc]
            out["detected_share"][str(b)] = float(np.mean(found))
            images_last = u8
        return out, {"x": x, "captions": captions, "tok": tok, "ids": ids, "diffusion_images": images_last, "texts": texts, "model": model}

    # ------------------------------------------------------------------ (c)
    def _probe(self, cfg: GPTImgEvalConfig, run: RunDir, gen: dict[str, Any]) -> dict[str, Any]:
        from ...nn.diffusion import TrainConfig
        from ...nn.gpt import GPT
        from ...nn.text_diffusion import sample_text
        from ...nn.vq_gpt import HybridDecoder, ImageVQVAE, ImageVQVAEConfig, code_gpt_config, sample_codes, train_code_gpt, train_image_vqvae
        from .probe import ArchitectureProbe

        x, ids, tok = gen["x"], gen["ids"], gen["tok"]
        n = cfg.probe_images
        torch.manual_seed(run.seed)
        vq = ImageVQVAE(ImageVQVAEConfig(image_size=cfg.image_size, hidden=32, embed_dim=32, n_embed=128, downsample=4))

        def images_at(step: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(run.seed * 7 + step)
            return x[torch.randint(0, len(x), (cfg.batch,), generator=g)]

        train_image_vqvae(vq, images_at, cfg.vq_steps, checkpoint=run.checkpoints / f"{run.key}-vq.pt", checkpoint_every=100)
        codes = torch.cat([vq.encode(x[i:i + 256]) for i in range(0, len(x), 256)])
        grid = vq.config.grid
        gpt = GPT(code_gpt_config(128, len(tok), tok.max_len, grid, n_layer=3, n_embd=96, n_head=4))

        def code_batch(step: int):
            g = torch.Generator().manual_seed(run.seed * 11 + step)
            idx = torch.randint(0, len(x), (cfg.batch,), generator=g)
            return codes[idx], ids[idx]

        train_code_gpt(gpt, code_batch, 128, cfg.gpt_steps, checkpoint=run.checkpoints / f"{run.key}-gpt.pt", checkpoint_every=100, seed=run.seed)
        hybrid = HybridDecoder(vq)
        hybrid.train(images_at, TrainConfig(steps=cfg.hybrid_steps, lr=cfg.lr, warmup=20, cfg_dropout=0.0, checkpoint_every=100),
                     checkpoint=run.checkpoints / f"{run.key}-hybrid.pt", seed=run.seed)
        rng = np.random.default_rng(run.seed + 6)
        prompts = [make_prompt(TAGS[int(rng.integers(len(TAGS)))], rng)["prompt"] for _ in range(n)]
        g = torch.Generator().manual_seed(run.seed + 7)
        diff = torch.cat([sample_text(gen["model"], tok, prompts[i:i + 64], guidance_scale=cfg.guidance, num_inference_steps=cfg.sample_steps, generator=g)
                          for i in range(0, n, 64)])
        sampled = torch.cat([sample_codes(gpt, tok.encode(prompts[i:i + 64]), 128, grid * grid, guidance_scale=cfg.guidance, generator=g)
                             for i in range(0, n, 64)])
        ar = (vq.decode(sampled).clamp(-1, 1) + 1) / 2
        hyb = (hybrid.decode(sampled, num_inference_steps=cfg.sample_steps, generator=g) + 1) / 2
        probe = ArchitectureProbe(input_size=96, seed=run.seed)
        fd, fa, fh = probe.features(diff), probe.features(ar), probe.features(hyb)
        half = n // 2
        probe.fit_features(fd[:half], fa[:half])
        p_test = np.r_[probe.proba_features(fd[half:]), probe.proba_features(fa[half:])]
        y_test = np.r_[np.ones(n - half), np.zeros(n - half)]
        return {"ran": True, "held_out_correct": [int(c) for c in ((p_test > 0.5) == y_test)],
                "held_out_p_diffusion": [round(float(v), 4) for v in p_test], "held_out_is_diffusion": [int(v) for v in y_test],
                "hybrid_p_diffusion": [round(float(v), 4) for v in probe.proba_features(fh)]}

    # ------------------------------------------------------------------ figures
    def _figures(self, m: Metrics, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        d = m["diagnosis"]
        fig, ax = plt.subplots(figsize=(8, 3.6))
        w = 0.8 / len(d["budgets"])
        for k, b in enumerate(d["budgets"]):
            tm = tag_means(_rows(d, b))
            ax.bar(np.arange(len(TAGS)) + (k - (len(d["budgets"]) - 1) / 2) * w, [tm.get(t, 0) for t in TAGS], w, label=f"{b} steps")
        ax.scatter(np.arange(len(TAGS)), [GPT4O[t] for t in TAGS], marker="_", s=400, color="k", label="GPT-4o (paper)", zorder=3)
        ax.set_xticks(np.arange(len(TAGS)), TAGS, rotation=15)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("GenEval accuracy")
        ax.legend(fontsize=7, ncol=2)
        run.save_figure(fig, "tags", "Per-tag accuracy of the tiny text-conditional diffusion model at each training budget; black marks: GPT-4o in the paper")
        p = m.get("probe") or {}
        if p.get("ran"):
            fig, ax = plt.subplots(figsize=(6, 3.2))
            ph = np.asarray(p["hybrid_p_diffusion"])
            pt = np.asarray(p["held_out_p_diffusion"])
            yt = np.asarray(p["held_out_is_diffusion"], dtype=bool)
            bins = np.linspace(0, 1, 21)
            ax.hist(pt[yt], bins, alpha=0.5, label="held-out diffusion")
            ax.hist(pt[~yt], bins, alpha=0.5, label="held-out VQ-AR")
            ax.hist(ph, bins, histtype="step", color="k", lw=2, label="hybrid (AR codes + diffusion decoder)")
            ax.set_xlabel("probe P(diffusion)")
            ax.set_ylabel("images")
            ax.legend(fontsize=7)
            run.save_figure(fig, "probe", "The architecture probe's confidence that an image is diffusion-made, per generator (the paper's histogram for GPT-4o)")
