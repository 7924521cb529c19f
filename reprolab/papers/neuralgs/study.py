"""Study ``neuralgs``: does NeuralGS shrink an original 3DGS scene >= 10x at < 0.5 dB PSNR loss, does
each step of its ablation raise PSNR, and is it smaller than fp16 + zip and pruning + SH VQ at equal
PSNR?

The paper compresses 3DGS scenes trained on Mip-NeRF 360, Tanks & Temples and Deep Blending (millions
of Gaussians, GPU hours). None exist offline, so we make one honestly (``reprolab.gaussians``):

1. a procedural scene (textured ground and spheres, Lambert + Blinn-Phong shading, so colour is
   view-dependent) is ray traced analytically from ``train_views`` cameras on rings around it and
   ``test_views`` held-out cameras at other angles and heights;
2. an original 3DGS (SH degree 3) is fitted to the training images by our PyTorch rasterizer,
   starting from points sampled on the surfaces (no densification: see ``gaussians/fit.py``), and
   saved as a real ``.ply`` (cached per scale and seed under ``run.checkpoints``);
3. NeuralGS and its ablations compress that ``.ply`` given the training views; the peers compress it
   too; every method is decoded from its bytes and rendered at the held-out views.

Scaled down, and said so: a few thousand Gaussians instead of millions; 48-64 px images; MLP fitting
and fine-tuning for hundreds to thousands of steps instead of 60k and 25k; 4-6 clusters of MLPs of
width 24-36 instead of 6-140 clusters of width 128 (one 128-wide MLP, 65k parameters, is larger in
fp16 than the whole quick-scale scene's 493 kB .ply would allow at 10x). The widths give the MLPs
~14-16 parameters per kept Gaussian; the paper spends 100-140 x 65k on ~1.8M kept Gaussians
(Mip-NeRF 360), 3.6-5 per Gaussian, so our budget per Gaussian is 3-4x more generous than the
paper's, while the 10x size target caps it at ~17. One seed per scale.

Rules (version 2, issue 14). The unit of sampling is the held-out view: every method is rendered at
the same ``test_views`` cameras, so each view gives one paired PSNR difference between two methods
(PSNR of the render against the ray-traced ground truth, dB). Each claim has one headline comparison
(``reprolab.stats.compare_paired`` over the views: a t interval below 20 views, a BCa bootstrap from
20) in the paper's direction with a stated margin:

- ``size_quality``: PSNR(NeuralGS) - PSNR(original) > -0.5 dB per view (non-inferiority margin
  ``MAX_PSNR_LOSS``); supporting: the file is >= ``MIN_RATIO`` = 10x smaller than the .ply (a byte
  count: no noise, so it is shown beside the headline, and a miss makes the claim ``partly``).
- ``clustering``, ``importance``, ``frequency_loss``: each step of the paper's ablation table raises
  PSNR, PSNR(arm with the part) - PSNR(arm without) > 0.1 dB per view (``ABLATION_MIN_GAIN``, a quarter
  of the paper's smallest step; version 2 had margin 0, see the changelog of version 3).
- ``beats_fp16_zip``, ``beats_prune_vq``: PSNR(NeuralGS) - PSNR(peer) > -0.5 dB per view; supporting:
  the NeuralGS file is smaller than the peer's.

Precondition of every claim: the original 3DGS learned the scene (mean held-out PSNR >=
``MIN_ORIGINAL_PSNR`` = 20 dB); below it every method compresses a scene that is mostly wrong.

What the interval covers: view-to-view variation of one fitted scene and one training seed per arm;
it says nothing of how a second seed or scene would move the arms (not afforded here).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import torch

from ...gaussians import GaussianScene, psnr, read_ply, render, scene_to_ply_bytes, ssim, write_ply
from ...gaussians.fit import FitConfig, fit_gaussians, initial_scene
from ...gaussians.procedural import ProceduralViews, procedural_views, surface_points
from ...runtime import atomic_write_json, track
from ... import stats
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .baselines import fp16_unzip, fp16_zip, prune_sh_vq, prune_sh_vq_decode
from .neuralgs import NeuralGSConfig, NeuralGSFile, compress, decompress, importance_scores

MIN_RATIO = 10.0  # claim (a): at least 10x smaller than the .ply ...
MAX_PSNR_LOSS = 0.5  # ... at a held-out PSNR loss below 0.5 dB; also "equal PSNR" against the peers
MIN_ORIGINAL_PSNR = 20.0  # precondition: the original 3DGS reproduces the held-out views at all
# v3: an ablation step must raise PSNR by at least a quarter of the paper's smallest step (+0.42 dB, the
# frequency loss on Deep Blending), not merely by more than 0: v2's margin 0 called +0.004 dB "reproduced".
ABLATION_MIN_GAIN = 0.1
UNIT = "held-out views"
VIEW_RULE = "per held-out view, paired on the same views (unit: held-out views; t interval below 20 views, BCa bootstrap from 20)"

# ablation arms (paper Table 4, Deep Blending): name -> (clusters used?, importance weighting, frequency loss)
ARMS = {
    "single_mlp": dict(single=True, importance_weighting=False, freq=False),
    "clustered": dict(single=False, importance_weighting=False, freq=False),
    "clustered_importance": dict(single=False, importance_weighting=True, freq=False),
    "neuralgs": dict(single=False, importance_weighting=True, freq=True),
}
PAPER_ABLATION = {"single_mlp": 23.71, "clustered": 28.98, "clustered_importance": 29.67, "neuralgs": 30.09}
LABEL = {
    "original": "original 3DGS (.ply)",
    "fp16_zip": "fp16 + zip",
    "prune_vq": "pruning + SH VQ",
    "single_mlp": "one MLP",
    "clustered": "clustered MLPs",
    "clustered_importance": "clustered + importance",
    "neuralgs": "NeuralGS (+ freq. loss)",
}


@dataclass(frozen=True)
class NeuralGSStudyConfig:
    n_gaussians: int  # initial points on the surfaces = Gaussians of the original 3DGS (before its opacity pruning)
    image_size: int  # square images, pixels
    train_views: int
    test_views: int
    gs_iterations: int  # original 3DGS fitting steps (official: 30k)
    num_clusters: int  # NeuralGS clusters (paper: 6-10 for small object scenes)
    mlp_width: int  # paper: 128; scaled with the scene (see module docstring)
    fit_iterations: int  # paper: 60k
    finetune_iterations: int  # paper: 25k
    vq_codebook: int = 256  # pruning + SH VQ peer
    supersampling: int = 3  # rays per pixel side for the ground truth


def _views(config: NeuralGSStudyConfig) -> tuple[ProceduralViews, ProceduralViews]:
    train = procedural_views(config.train_views, config.image_size, heights=(1.0, 1.7, 0.6), ss=config.supersampling)
    test = procedural_views(config.test_views, config.image_size, heights=(1.3, 0.8), phase=0.5 / config.test_views + 0.11, ss=config.supersampling)
    return train, test


def original_scene(config: NeuralGSStudyConfig, train: ProceduralViews, run: RunDir, seed: int) -> tuple[GaussianScene, str, float]:
    """The fitted original 3DGS as a .ply (cached per scale/seed); returns (scene, path, fit seconds or 0 if cached)."""
    path = run.checkpoints / f"original-3dgs-{run.key_with('original 3dgs', seed)}.ply"
    if path.exists():
        return read_ply(path), str(path), 0.0
    t0 = time.perf_counter()
    pts, cols = surface_points(config.n_gaussians, torch.Generator().manual_seed(seed))
    init = initial_scene(pts, cols, sh_degree=3)
    scene = fit_gaussians(init, train.cameras, train.images, FitConfig(iterations=config.gs_iterations, sh_degree=3), seed=seed, description="fit original 3DGS")
    write_ply(path, scene)
    return read_ply(path), str(path), time.perf_counter() - t0


def evaluate(scene: GaussianScene, views: ProceduralViews) -> dict:
    """Mean PSNR / SSIM over the views, and the per-view PSNRs the rules compare (one per view, in order)."""
    with torch.no_grad():
        imgs = [render(scene, c).image.clamp(0, 1) for c in views.cameras]
    per_view = [float(psnr(i, t)) for i, t in zip(imgs, views.images)]
    return {
        "psnr": float(np.mean(per_view)),
        "psnr_views": per_view,
        "ssim": float(np.mean([float(ssim(i, t)) for i, t in zip(imgs, views.images)])),
    }


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _preconditions(m: Metrics) -> dict[str, bool]:
    o = m["methods"]["original"]["psnr"]
    return {f"the original 3DGS learned the scene (held-out PSNR {o:.2f} >= {MIN_ORIGINAL_PSNR:g} dB)": o >= MIN_ORIGINAL_PSNR}


def _compare(m: Metrics, a: str, b: str, margin: float) -> stats.Comparison:
    """Per held-out view, PSNR(a) - PSNR(b), paired on the same views (the paper's side: a higher)."""
    return stats.compare_paired(m["methods"][a]["psnr_views"], m["methods"][b]["psnr_views"], unit=UNIT, direction="greater",
                                margin=margin, label=f"PSNR {LABEL[a]} - {LABEL[b]} (dB)")


def _span(c: stats.Comparison) -> str:
    return f"{c.effect:+.2f} [{c.low:+.2f}, {c.high:+.2f}] dB over {c.n} views"


def _judge_size_quality(m: Metrics) -> Judgement:
    ng, orig = m["methods"]["neuralgs"], m["methods"]["original"]
    c = _compare(m, "neuralgs", "original", -MAX_PSNR_LOSS)
    ratio = orig["bytes"] / ng["bytes"]
    return Judgement.from_headline(
        f"{ratio:.1f}x smaller ({orig['bytes'] / 1e3:.0f} kB -> {ng['bytes'] / 1e3:.1f} kB), held-out PSNR {orig['psnr']:.2f} -> {ng['psnr']:.2f} dB; NeuralGS - original {_span(c)}",
        c, supporting={f"size ratio >= {MIN_RATIO:g}x": ratio >= MIN_RATIO}, preconditions=_preconditions(m),
    )


def _ablation_judge(with_part: str, without: str):
    def judge(m: Metrics) -> Judgement:
        c = _compare(m, with_part, without, ABLATION_MIN_GAIN)
        p = m["methods"]
        return Judgement.from_headline(f"held-out PSNR {LABEL[without]} {p[without]['psnr']:.2f} -> {LABEL[with_part]} {p[with_part]['psnr']:.2f} dB; difference {_span(c)}",
                                       c, preconditions=_preconditions(m))
    return judge


def _peer_judge(peer: str):
    def judge(m: Metrics) -> Judgement:
        ng, pm = m["methods"]["neuralgs"], m["methods"][peer]
        c = _compare(m, "neuralgs", peer, -MAX_PSNR_LOSS)
        return Judgement.from_headline(
            f"NeuralGS {ng['bytes'] / 1e3:.1f} kB at {ng['psnr']:.2f} dB vs {LABEL[peer]} {pm['bytes'] / 1e3:.1f} kB at {pm['psnr']:.2f} dB; NeuralGS - peer {_span(c)}",
            c, supporting={f"smaller than {LABEL[peer]}": ng["bytes"] < pm["bytes"]}, preconditions=_preconditions(m),
        )
    return judge


@register
class NeuralGSStudy(Study):
    name = "neuralgs"
    paper = Paper("NeuralGS: Bridging Neural Fields and 3D Gaussian Splatting for Compact 3D Representations", arxiv="2503.23162", code="https://github.com/PKU-YuanGroup/NeuralGS")
    version = 3
    changelog = {
        1: "first version: procedural scene, fitted original 3DGS (.ply), NeuralGS + 3 ablations + fp16/zip + pruning/SH-VQ, one seed",
        2: "issue 14: each claim judged by one headline comparison of per-view PSNR, paired on the same held-out views (unit: "
           "held-out views; reprolab.stats), in the paper's direction with a stated margin (-0.5 dB non-inferiority against the "
           "original and the peers, 0 dB for each ablation step); the ablation chain split into three claims (clustering, "
           "importance, frequency_loss: v1's one claim was lifted to 'partly' by a +0.004 dB step) and the peers claim into "
           "beats_fp16_zip and beats_prune_vq; size ratios are supporting checks (byte counts, no noise); precondition: the "
           "original 3DGS reaches 20 dB on the held-out views; more held-out views (smoke 4, quick 12, full 24; were 3/5/8); full "
           "with 1500 3DGS fitting and 3000 attribute-fitting steps (were 2500 and 4000) to stay within ~20 min on 2 cores "
           "(v1's full took 1541 s on a shared machine); cache names from RunDir.key. These rules were written after seeing "
           "version 1's full result (12.6x at -1.47 dB; one MLP 26.00 < clustered 30.19 > + importance 29.88 = + freq. loss 29.88)",
        3: "rule change after the v2 full run (said here, as the lab requires): the three ablation claims need a gain of at "
           "least 0.1 dB per view (a quarter of the paper's smallest ablation step, +0.42 dB for the frequency loss), not "
           "> 0. The v2 record had frequency_loss at +0.004 [+0.00, +0.01] dB over 24 views, 'reproduced' under margin 0: "
           "a real but negligible effect, 100x below the paper's, exactly the kind of verdict issue 14 names. Under v3 it "
           "is not reproduced, importance (-0.02 [-0.10, +0.06] dB) also not reproduced (a gain of 0.1 dB is excluded), "
           "clustering (+3.31 dB) unchanged. The v2 record is re-judged (`reprolab rejudge neuralgs --write`), not rerun",
    }
    claims = [
        Claim(
            "size_quality",
            f"NeuralGS makes an original 3DGS scene at least {MIN_RATIO:g}x smaller at a held-out PSNR loss under {MAX_PSNR_LOSS} dB",
            paper="45x smaller on average at equal quality; Mip-NeRF 360: 754.6 MB -> 8.69 MB, PSNR 27.51 -> 27.53 dB (Table 1)",
            rule=f"PSNR(NeuralGS) - PSNR(original) {VIEW_RULE} > -{MAX_PSNR_LOSS} dB (non-inferiority margin {MAX_PSNR_LOSS} dB); "
                 f"supporting: .ply bytes / NeuralGS bytes >= {MIN_RATIO:g}; precondition: original >= {MIN_ORIGINAL_PSNR:g} dB",
            judge=_judge_size_quality,
        ),
        Claim(
            "clustering",
            "Clustered MLPs reach a higher held-out PSNR than one MLP for the whole scene",
            paper="Deep Blending PSNR: one MLP 23.71 -> clustered 28.98 dB (ablation table)",
            rule=f"PSNR(clustered) - PSNR(one MLP) {VIEW_RULE} > {ABLATION_MIN_GAIN:g} dB (margin: a quarter of the paper's smallest ablation step); same pruning, widths and steps in both arms",
            judge=_ablation_judge("clustered", "single_mlp"),
        ),
        Claim(
            "importance",
            "Importance-weighted clustering and fitting raise held-out PSNR over plain clustering",
            paper="Deep Blending PSNR: clustered 28.98 -> + importance 29.67 dB (ablation table)",
            rule=f"PSNR(clustered + importance) - PSNR(clustered) {VIEW_RULE} > {ABLATION_MIN_GAIN:g} dB (margin: a quarter of the paper's smallest ablation step)",
            judge=_ablation_judge("clustered_importance", "clustered"),
        ),
        Claim(
            "frequency_loss",
            "The frequency loss in fine-tuning raises held-out PSNR further",
            paper="Deep Blending PSNR: + importance 29.67 -> + frequency loss 30.09 dB (ablation table)",
            rule=f"PSNR(NeuralGS) - PSNR(clustered + importance) {VIEW_RULE} > {ABLATION_MIN_GAIN:g} dB (margin: a quarter of the paper's smallest ablation step)",
            judge=_ablation_judge("neuralgs", "clustered_importance"),
        ),
        Claim(
            "beats_fp16_zip",
            "NeuralGS is smaller than fp16 + zip of the raw attributes at equal PSNR",
            paper="NeuralGS 45x smaller than the original; fp16 storage halves it at most (paper's comparison table)",
            rule=f"PSNR(NeuralGS) - PSNR(fp16 + zip) {VIEW_RULE} > -{MAX_PSNR_LOSS} dB (non-inferiority margin {MAX_PSNR_LOSS} dB); supporting: fewer bytes",
            judge=_peer_judge("fp16_zip"),
        ),
        Claim(
            "beats_prune_vq",
            "NeuralGS is smaller than pruning + SH vector quantisation at equal PSNR",
            paper="NeuralGS compresses original 3DGS 45x; LightGaussian-style pruning + VQ reaches ~15x (paper's comparison table)",
            rule=f"PSNR(NeuralGS) - PSNR(pruning + SH VQ) {VIEW_RULE} > -{MAX_PSNR_LOSS} dB (non-inferiority margin {MAX_PSNR_LOSS} dB); supporting: fewer bytes",
            judge=_peer_judge("prune_vq"),
        ),
    ]
    scales = {
        Scale.SMOKE: NeuralGSStudyConfig(n_gaussians=300, image_size=24, train_views=8, test_views=4, gs_iterations=40, num_clusters=2, mlp_width=16, fit_iterations=60, finetune_iterations=8, vq_codebook=32, supersampling=1),
        Scale.QUICK: NeuralGSStudyConfig(n_gaussians=2000, image_size=48, train_views=20, test_views=12, gs_iterations=400, num_clusters=4, mlp_width=24, fit_iterations=800, finetune_iterations=100),
        Scale.FULL: NeuralGSStudyConfig(n_gaussians=6000, image_size=64, train_views=36, test_views=24, gs_iterations=1500, num_clusters=6, mlp_width=36, fit_iterations=3000, finetune_iterations=1000),
    }

    def run(self, config: NeuralGSStudyConfig, run: RunDir) -> Metrics:
        # The rasterizer is many small tensor ops: on 2 shared cores, 2 intra-op threads ran it up to
        # 40x slower than 1 (measured), so the study runs single-threaded and restores the setting.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._run(config, run)
        finally:
            torch.set_num_threads(threads)

    def _run(self, config: NeuralGSStudyConfig, run: RunDir) -> Metrics:
        train, test = _views(config)
        scene, ply_path, fit_s = original_scene(config, train, run, run.seed)
        ply_bytes = len(scene_to_ply_bytes(scene))
        methods: dict[str, dict] = {"original": {"bytes": ply_bytes, **evaluate(scene, test), "train_psnr": evaluate(scene, train)["psnr"]}}
        decoded: dict[str, GaussianScene] = {"original": scene}

        # peers
        raw, t_c = _timed(fp16_zip, scene)
        dec, t_d = _timed(fp16_unzip, raw)
        methods["fp16_zip"] = {"bytes": len(raw), **evaluate(dec, test), "compress_s": t_c, "decompress_s": t_d}
        decoded["fp16_zip"] = dec
        t0 = time.perf_counter()
        scores = importance_scores(scene, train.cameras)
        raw = prune_sh_vq(scene, scores, 0.4, config.vq_codebook, seed=run.seed)
        t_c = time.perf_counter() - t0
        dec, t_d = _timed(prune_sh_vq_decode, raw)
        methods["prune_vq"] = {"bytes": len(raw), **evaluate(dec, test), "compress_s": t_c, "decompress_s": t_d}
        decoded["prune_vq"] = dec

        # NeuralGS and its ablations (each cached: a second run resumes)
        stats = {}
        for arm, spec in track(list(ARMS.items()), "NeuralGS arms"):
            cfg = NeuralGSConfig(
                num_clusters=1 if spec["single"] else config.num_clusters,
                importance_weighting=spec["importance_weighting"],
                lambda_freq=0.01 if spec["freq"] else 0.0,
                mlp_width=config.mlp_width,
                fit_iterations=config.fit_iterations,
                finetune_iterations=config.finetune_iterations,
            )
            key = run.key_with(arm, cfg)
            path, meta_path = run.checkpoints / f"{arm}-{key}.ngs", run.checkpoints / f"{arm}-{key}.json"
            if path.exists() and meta_path.exists():
                f, meta = NeuralGSFile.load(path), json.loads(meta_path.read_text())
            else:
                f = compress(ply_path, train.cameras, train.images, cfg, seed=run.seed, description=arm)
                meta = f.stats
                f.save(path)
                atomic_write_json(meta_path, meta)
            dec, t_d = _timed(decompress, path)
            methods[arm] = {"bytes": path.stat().st_size, **evaluate(dec, test), "train_psnr": evaluate(dec, train)["psnr"], "compress_s": meta["times"]["total_s"], "decompress_s": t_d, "clusters": meta["clusters"], "mlp_parameters": meta["mlp_parameters"]}
            stats[arm] = {k: meta[k] for k in ("kept_gaussians", "cluster_sizes", "fit_loss_first_last", "finetune_loss_first_last", "times")}
            decoded[arm] = dec
        for name, m in methods.items():
            m["ratio"] = ply_bytes / m["bytes"]
            m["psnr_loss"] = methods["original"]["psnr"] - m["psnr"]

        metrics: Metrics = {
            "methods": methods,
            "original_gaussians": scene.num_gaussians,
            "original_fit_s": fit_s,
            "original_sh_degree": scene.sh_degree,
            "neuralgs_stats": stats,
            "paper_mlp_parameters_per_cluster": _mlp_params(128, 5, 10, 56),
        }
        self._figures(config, decoded, test, methods, run)
        return metrics

    # -- figures --------------------------------------------------------------------------
    def _figures(self, config: NeuralGSStudyConfig, decoded: dict, test: ProceduralViews, methods: dict, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        shown = ["original", "neuralgs", "fp16_zip", "prune_vq", "single_mlp"]
        v = 0
        gt = test.images[v]
        fig, axes = plt.subplots(2, len(shown) + 1, figsize=(2.4 * (len(shown) + 1), 5))
        axes[0, 0].imshow(gt.numpy())
        axes[0, 0].set_title("ground truth", fontsize=8)
        axes[1, 0].axis("off")
        with torch.no_grad():
            for j, name in enumerate(shown, start=1):
                img = render(decoded[name], test.cameras[v]).image.clamp(0, 1)
                err = (img - gt).abs().mean(-1)
                axes[0, j].imshow(img.numpy())
                axes[0, j].set_title(f"{LABEL[name]}\n{methods[name]['bytes'] / 1e3:.1f} kB, {psnr(img, gt):.2f} dB", fontsize=8)
                im = axes[1, j].imshow(err.numpy(), cmap="magma", vmin=0, vmax=0.3)
                axes[1, j].set_title("|error| (mean over RGB)", fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[1, :].tolist(), shrink=0.8, label="absolute error (0-1 intensity)")
        run.save_figure(fig, "renders", f"Held-out view 0 ({config.image_size} px): each method decoded from its file and rendered; bottom row: absolute error against the ray-traced ground truth.")

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, m in methods.items():
            ax.scatter(m["bytes"] / 1e3, m["psnr"], s=40, label=LABEL[name])
            ax.annotate(f"{m['ratio']:.0f}x", (m["bytes"] / 1e3, m["psnr"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        orig = methods["original"]
        ax.axvline(orig["bytes"] / 1e3 / 45, color="gray", ls=":", lw=1, label="paper's 45x size for this .ply")
        ax.axhline(orig["psnr"] - MAX_PSNR_LOSS, color="gray", ls="--", lw=1, label=f"original - {MAX_PSNR_LOSS} dB")
        ax.set_xscale("log")
        ax.set(xlabel="file size (kB, log scale)", ylabel="held-out PSNR (dB)", title="Size vs quality of every method")
        ax.legend(fontsize=7)
        run.save_figure(fig, "size_vs_psnr", "File size against mean held-out PSNR for every method; labels give the size ratio to the original .ply. Dotted: 45x (the paper's average); dashed: the 0.5 dB loss bound.")

        fig, ax = plt.subplots(figsize=(7, 4))
        arms = list(ARMS)
        ours = [methods[a]["psnr"] for a in arms]
        ax.plot(range(4), ours, "o-", label="ours (procedural scene, held-out views)")
        ax2 = ax.twinx()
        ax2.plot(range(4), [PAPER_ABLATION[a] for a in arms], "s--", color="gray", label="paper (Deep Blending)")
        ax2.set_ylabel("paper's PSNR (dB)")
        ax.set_xticks(range(4), [LABEL[a] for a in arms], fontsize=8)
        ax.set(ylabel="our held-out PSNR (dB)", title="Ablation order")
        ax.legend(loc="upper left", fontsize=8)
        ax2.legend(loc="lower right", fontsize=8)
        run.save_figure(fig, "ablation", "Held-out PSNR of the ablation arms (ours, left axis) beside the paper's Deep Blending numbers (right axis); same pruning, MLP widths and step counts in every arm.")

        pairs = [("neuralgs", "original"), ("clustered", "single_mlp"), ("clustered_importance", "clustered"), ("neuralgs", "clustered_importance"), ("neuralgs", "fp16_zip"), ("neuralgs", "prune_vq")]
        fig, ax = plt.subplots(figsize=(8, 4))
        for k, (a, b) in enumerate(pairs):
            d = np.asarray(methods[a]["psnr_views"]) - np.asarray(methods[b]["psnr_views"])
            ax.scatter(k + np.linspace(-0.15, 0.15, len(d)), d, s=10, color="tab:blue")
            ax.plot([k - 0.25, k + 0.25], [d.mean()] * 2, color="black", lw=1.5)
        ax.axhline(0, color="gray", lw=0.8)
        ax.axhline(-MAX_PSNR_LOSS, color="gray", ls="--", lw=0.8, label=f"-{MAX_PSNR_LOSS} dB (non-inferiority margin)")
        ax.set_xticks(range(len(pairs)), [f"{LABEL[a]}\n- {LABEL[b]}" for a, b in pairs], fontsize=6)
        ax.set(ylabel="PSNR difference per held-out view (dB)", title="Per-view paired differences each claim is judged on")
        ax.legend(fontsize=7)
        run.save_figure(fig, "per_view_differences", "PSNR difference per held-out view (dots) and its mean (bar) for each claim's headline comparison; dashed: the 0.5 dB margin of the non-inferiority claims.")


def _mlp_params(width: int, layers: int, levels: int, out: int) -> int:
    dims = [3 + 6 * levels] + [width] * (layers - 1) + [out]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
