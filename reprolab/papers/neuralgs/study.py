"""Study ``neuralgs`` (version 4): rate-distortion curves of NeuralGS and its peers on procedural
scenes, the compression ratio at which NeuralGS stays within 0.5 dB, and the paper's ablation at an
equal byte budget.

The paper compresses 3DGS scenes trained on Mip-NeRF 360, Tanks & Temples and Deep Blending (millions
of Gaussians, GPU hours). None exist offline, so we make them honestly (``reprolab.gaussians``):

1. two procedural scenes (``three_spheres``, ``five_spheres``: textured ground and spheres, Lambert +
   Blinn-Phong shading, so colour is view-dependent) are ray traced analytically from ``train_views``
   cameras on rings and ``test_views`` held-out cameras at other angles and heights;
2. for each scene and each of ``seeds`` seeds an original 3DGS (SH degree 3) is fitted to the
   training images by our PyTorch rasterizer from points sampled on the surfaces (the seed draws the
   points and every later random choice), and saved as a real ``.ply`` (cached);
3. each method compresses that ``.ply`` at several operating points; every point is decoded from its
   bytes and rendered at the held-out views (PSNR and SSIM against the ray-traced ground truth; no
   LPIPS: its weights are not offline).

Operating points (a rate-distortion curve per method and unit, sizes from a few kB up to about half
the .ply):

- NeuralGS: targets of 1/40, 1/20, 1/10 and 1/4 of the .ply; clusters and width from
  ``choose_operating_point`` (at most ``num_clusters`` clusters, width <= 128), the same steps at
  every point; a target below one MLP of width 8 is raised to it (small scenes: the smoke and
  quick curves may have 3 points);
- fp16 + zip: SH degree 3, 2, 1, 0 kept (the higher bands dropped), every attribute in fp16, zlib;
- pruning + SH VQ (LightGaussian-style, no distillation: that peer did not fit in the time): prune
  ratio / codebook (0.4, 256), (0.6, 128), (0.75, 64), (0.9, 32).

Rules (version 4, issue 18; written before any run of this version). The unit of sampling is the
(scene, seed) pair: 2 scenes x 3 seeds = 6 units at full (2 x 2 at quick, 2 x 1 at smoke). Per unit:

- ``BD-PSNR(A, B)``: the mean over the common log10-size range of PSNR_A(size) - PSNR_B(size), each
  curve interpolated piecewise linearly in log10(bytes) between its operating points (Bjontegaard's
  delta with linear instead of cubic interpolation: 4 points do not support a stable cubic fit);
  undefined when the ranges do not overlap.
- ``r_0.5``: the largest compression ratio (.ply bytes / file bytes) at which NeuralGS's curve,
  interpolated in log10(ratio), is still within 0.5 dB of the original's held-out PSNR; the ratio of
  the smallest point when all points are (then a lower bound), 1 when none is.
- ablation difference: at one byte budget (a tenth of the .ply) the mean over held-out views of the
  PSNR difference of two arms; the single-MLP arm gets one MLP as wide as that budget allows.

Claims, each one headline over the units (``reprolab.stats.compare_to_value``, t interval):

- ``ratio_within_half_db``: log10(r_0.5) > log10(10) (the geometric-mean ratio exceeds 10x; the
  paper: 45x at +0.02 dB);
- ``beats_fp16_zip``, ``beats_prune_vq``: BD-PSNR(NeuralGS, peer) > 0 dB;
- ``clustering``, ``importance``, ``frequency_loss``: ablation difference > 0.1 dB (a quarter of the
  paper's smallest ablation step, as in version 3).

Preconditions: every unit's original 3DGS learned its scene (held-out PSNR >= 20 dB); for the
BD-PSNR claims, the two curves overlap in size in every unit.

What the interval covers: variation over scenes and seeds (6 units at full), not over real scenes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ...gaussians import GaussianScene, psnr, read_ply, render, scene_to_ply_bytes, ssim, write_ply
from ...gaussians.fit import FitConfig, fit_gaussians, initial_scene
from ...gaussians.procedural import SCENES, ProceduralViews, procedural_views, surface_points
from ...runtime import atomic_write_json, torch_threads, track
from ... import stats
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .baselines import fp16_unzip, fp16_zip, prune_sh_vq, prune_sh_vq_decode
from .neuralgs import NeuralGSConfig, choose_operating_point, compress, decompress, importance_scores, predicted_bytes

MAX_PSNR_LOSS = 0.5  # "stays within 0.5 dB of the uncompressed scene" (issue 18)
MIN_RATIO = 10.0  # ratio_within_half_db: the geometric-mean r_0.5 over units must exceed this
MIN_ORIGINAL_PSNR = 20.0  # precondition: the original 3DGS reproduces the held-out views at all
ABLATION_MIN_GAIN = 0.1  # a quarter of the paper's smallest ablation step (+0.42 dB), as in v3
PAPER_POINT = (45.0, 0.02)  # the paper's average: 45x smaller at +0.02 dB (Mip-NeRF 360: 27.51 -> 27.53 dB)
NGS_RATIOS = (40.0, 20.0, 10.0, 4.0)  # NeuralGS size targets, as fractions 1/r of the .ply
FP16_SH_DEGREES = (3, 2, 1, 0)
VQ_POINTS = ((0.4, 256), (0.6, 128), (0.75, 64), (0.9, 32))  # (prune ratio, SH codebook size)
ABLATION_RATIO = 10.0  # the ablation's equal byte budget: a tenth of the .ply
UNIT = "scene x seed"
UNIT_RULE = "per (scene, seed) unit, t interval over the units (unit: scene x seed)"

ARMS = {  # ablation arms (paper Table 4, Deep Blending), all at the same byte budget
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
    "neuralgs": "NeuralGS",
}
CURVES = ("neuralgs", "fp16_zip", "prune_vq")


@dataclass(frozen=True)
class NeuralGSStudyConfig:
    n_gaussians: int  # initial points on the surfaces = Gaussians of each original 3DGS
    image_size: int  # square images, pixels
    train_views: int
    test_views: int
    gs_iterations: int  # original 3DGS fitting steps (official: 30k)
    num_clusters: int  # at most this many NeuralGS clusters (paper: 6-10 for small object scenes)
    fit_iterations: int  # paper: 60k
    finetune_iterations: int  # paper: 25k
    scenes: tuple[str, ...] = ("three_spheres", "five_spheres")
    seeds: int = 3
    supersampling: int = 3  # rays per pixel side for the ground truth


def _views(config: NeuralGSStudyConfig, scene_name: str) -> tuple[ProceduralViews, ProceduralViews]:
    sph = SCENES[scene_name]
    train = procedural_views(config.train_views, config.image_size, heights=(1.0, 1.7, 0.6), ss=config.supersampling, spheres=sph)
    test = procedural_views(config.test_views, config.image_size, heights=(1.3, 0.8), phase=0.5 / config.test_views + 0.11, ss=config.supersampling, spheres=sph)
    return train, test


def original_scene(config: NeuralGSStudyConfig, scene_name: str, train: ProceduralViews, run: RunDir, seed: int) -> tuple[GaussianScene, str, float]:
    """The fitted original 3DGS as a .ply (cached per scale/scene/seed); (scene, path, fit seconds or 0 if cached)."""
    path = run.checkpoints / f"original-3dgs-{scene_name}-{run.key_with('original 3dgs', scene_name, seed)}.ply"
    if path.exists():
        return read_ply(path), str(path), 0.0
    t0 = time.perf_counter()
    pts, cols = surface_points(config.n_gaussians, torch.Generator().manual_seed(seed), spheres=SCENES[scene_name])
    init = initial_scene(pts, cols, sh_degree=3)
    scene = fit_gaussians(init, train.cameras, train.images, FitConfig(iterations=config.gs_iterations, sh_degree=3), seed=seed, description=f"fit original 3DGS ({scene_name}, seed {seed})")
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


def truncate_sh(scene: GaussianScene, degree: int) -> GaussianScene:
    """The scene with SH bands above ``degree`` dropped (the fp16 + zip peer's rate knob)."""
    k = (degree + 1) ** 2 - 1
    return GaussianScene(scene.means, scene.sh_dc, scene.sh_rest[:, :k], scene.opacity_logit, scene.log_scales, scene.quats)


# -- the rules' arithmetic (version 4) --------------------------------------------------------


def _curve(points: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(log10 bytes, PSNR) sorted by size; at equal sizes the better PSNR."""
    pts = sorted((math.log10(p["bytes"]), p["psnr"]) for p in points)
    x, y = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    return x, y


def bd_psnr(a: list[dict], b: list[dict], grid: int = 200) -> float | None:
    """Mean of PSNR_a - PSNR_b over the common log10-size range, each curve interpolated piecewise
    linearly between its points; None when the size ranges do not overlap (or touch at one size)."""
    xa, ya = _curve(a)
    xb, yb = _curve(b)
    lo, hi = max(xa[0], xb[0]), min(xa[-1], xb[-1])
    if not hi > lo:
        return None
    x = np.linspace(lo, hi, grid)
    return float(np.mean(np.interp(x, xa, ya) - np.interp(x, xb, yb)))


def ratio_within(points: list[dict], original_bytes: int, original_psnr: float, max_loss: float = MAX_PSNR_LOSS) -> float:
    """The largest ratio original_bytes / bytes at which the curve (interpolated in log10 ratio) is
    within ``max_loss`` dB of ``original_psnr``: the smallest point's ratio if every point is (a lower
    bound), 1.0 if none is."""
    pts = sorted((math.log10(original_bytes / p["bytes"]), original_psnr - p["psnr"]) for p in points)  # by ratio, ascending
    lr = np.array([p[0] for p in pts])
    loss = np.array([p[1] for p in pts])
    ok = loss <= max_loss
    if not ok.any():
        return 1.0
    best = float(lr[ok].max())
    i = int(np.flatnonzero(lr == best)[0])
    if i + 1 < len(lr) and loss[i + 1] > max_loss:  # cross between point i and the next, larger ratio
        t = (max_loss - loss[i]) / (loss[i + 1] - loss[i])
        best = float(lr[i] + t * (lr[i + 1] - lr[i]))
    return 10 ** best


def _units(m: Metrics) -> list[dict]:
    return m["units"]


def _preconditions(m: Metrics) -> dict[str, bool]:
    worst = min(u["original"]["psnr"] for u in _units(m))
    return {f"every unit's original 3DGS learned its scene (lowest held-out PSNR {worst:.2f} >= {MIN_ORIGINAL_PSNR:g} dB)": worst >= MIN_ORIGINAL_PSNR}


def _judge_ratio(m: Metrics) -> Judgement:
    units = _units(m)
    r = [ratio_within(u["curves"]["neuralgs"], u["original"]["bytes"], u["original"]["psnr"]) for u in units]
    c = stats.compare_to_value(np.log10(r), math.log10(MIN_RATIO), unit=UNIT, direction="greater", margin=0.0, label=f"log10 of the ratio at which NeuralGS stays within {MAX_PSNR_LOSS} dB, against log10({MIN_RATIO:g})")
    gm = 10 ** float(np.mean(np.log10(r)))
    low_bounds = sum(1 for u, x in zip(units, r) if abs(x - max(u["original"]["bytes"] / p["bytes"] for p in u["curves"]["neuralgs"])) < 1e-9)
    return Judgement.from_headline(
        f"NeuralGS stays within {MAX_PSNR_LOSS} dB of the original up to {gm:.1f}x (geometric mean over {len(r)} units; per unit {', '.join(f'{x:.1f}x' for x in r)}"
        + (f"; {low_bounds} at the smallest point, so lower bounds" if low_bounds else "") + f"); log10 ratio - log10({MIN_RATIO:g}) {c.effect:+.2f} [{c.low:+.2f}, {c.high:+.2f}]",
        c, preconditions=_preconditions(m),
    )


def _peer_judge(peer: str):
    def judge(m: Metrics) -> Judgement:
        units = _units(m)
        bd = [bd_psnr(u["curves"]["neuralgs"], u["curves"][peer]) for u in units]
        pre = {**_preconditions(m), f"NeuralGS's and {LABEL[peer]}'s sizes overlap in every unit ({sum(b is not None for b in bd)} of {len(bd)})": all(b is not None for b in bd)}
        vals = [0.0 if b is None else b for b in bd]
        c = stats.compare_to_value(vals, 0.0, unit=UNIT, direction="greater", margin=0.0, label=f"BD-PSNR NeuralGS - {LABEL[peer]} (dB)")
        return Judgement.from_headline(
            f"BD-PSNR NeuralGS - {LABEL[peer]} {c.effect:+.2f} [{c.low:+.2f}, {c.high:+.2f}] dB over {len(vals)} units (per unit {', '.join('n/a' if b is None else f'{b:+.2f}' for b in bd)})",
            c, preconditions=pre,
        )
    return judge


def _ablation_judge(with_part: str, without: str):
    def judge(m: Metrics) -> Judgement:
        units = _units(m)
        d = [float(np.mean(np.asarray(u["ablation"][with_part]["psnr_views"]) - np.asarray(u["ablation"][without]["psnr_views"]))) for u in units]
        c = stats.compare_to_value(d, 0.0, unit=UNIT, direction="greater", margin=ABLATION_MIN_GAIN, label=f"PSNR {LABEL[with_part]} - {LABEL[without]} at equal bytes (dB)")
        a = np.mean([u["ablation"][without]["psnr"] for u in units])
        b = np.mean([u["ablation"][with_part]["psnr"] for u in units])
        kb = np.mean([u["ablation"][with_part]["bytes"] for u in units]) / 1e3, np.mean([u["ablation"][without]["bytes"] for u in units]) / 1e3
        return Judgement.from_headline(
            f"held-out PSNR {LABEL[without]} {a:.2f} -> {LABEL[with_part]} {b:.2f} dB at {kb[1]:.1f} vs {kb[0]:.1f} kB; difference {c.effect:+.2f} [{c.low:+.2f}, {c.high:+.2f}] dB over {len(d)} units",
            c, preconditions=_preconditions(m),
        )
    return judge


@register
class NeuralGSStudy(Study):
    name = "neuralgs"
    paper = Paper("NeuralGS: Bridging Neural Fields and 3D Gaussian Splatting for Compact 3D Representations", arxiv="2503.23162", code="https://github.com/PKU-YuanGroup/NeuralGS")
    version = 4
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
        4: "issue 18, written before any run of this version: compression judged as its field judges it, quality at equal "
           "size across sizes. Two procedural scenes x 3 seeds (unit: scene x seed, 6 units at full, 4 at quick); a "
           "rate-distortion curve of 4 operating points per method (NeuralGS at 1/40, 1/20, 1/10, 1/4 of the .ply with "
           "clusters and width chosen to fit; fp16 + zip at SH degree 3-0; pruning + SH VQ at 4 prune/codebook settings); "
           "claims: ratio_within_half_db (the ratio where NeuralGS's curve leaves 0.5 dB of the original; geometric mean over "
           "units > 10x; replaces size_quality, whose 12.6x was the width chosen to reach 10x), beats_fp16_zip and "
           "beats_prune_vq as BD-PSNR > 0 (linear interpolation in log size; replaces one-point non-inferiority at -0.5 dB, "
           "which a 2.4% size margin decided), and the three ablation claims at an equal byte budget (a tenth of the .ply; "
           "the one-MLP arm is as wide as that budget allows; v3's had a third of the clustered arm's bytes), margin 0.1 dB "
           "as in v3. The v3 record (one scene, one seed, held-out views as the unit) is not comparable claim by claim. "
           "After the first quick run (not testable: one original at 19.91 dB, under the 20 dB precondition) the quick "
           "3DGS fit went from 300 to 450 steps; no rule changed, and that quick run is reported, not hidden",
    }
    claims = [
        Claim(
            "ratio_within_half_db",
            f"NeuralGS stays within {MAX_PSNR_LOSS} dB of the uncompressed scene at a compression ratio above {MIN_RATIO:g}x",
            paper="45x smaller on average at equal visual quality; Mip-NeRF 360: 754.6 MB -> 8.69 MB, PSNR 27.51 -> 27.53 dB (Table 1)",
            rule=f"r_0.5 = the largest .ply/file size ratio at which NeuralGS's rate-distortion curve (4 points, linear in log ratio) "
                 f"is within {MAX_PSNR_LOSS} dB of the original's held-out PSNR; headline log10(r_0.5) - log10({MIN_RATIO:g}) > 0 "
                 f"{UNIT_RULE}, margin 0; precondition: every original >= {MIN_ORIGINAL_PSNR:g} dB",
            judge=_judge_ratio,
        ),
        Claim(
            "beats_fp16_zip",
            "NeuralGS reaches a higher held-out PSNR than fp16 + zip at equal size",
            paper="NeuralGS 45x smaller than the original at equal quality; fp16 storage halves it at most (paper's comparison table)",
            rule=f"BD-PSNR(NeuralGS, fp16 + zip) (mean PSNR difference over the common log-size range, linear interpolation) > 0 dB "
                 f"{UNIT_RULE}, margin 0; preconditions: the curves overlap in size in every unit, every original >= {MIN_ORIGINAL_PSNR:g} dB",
            judge=_peer_judge("fp16_zip"),
        ),
        Claim(
            "beats_prune_vq",
            "NeuralGS reaches a higher held-out PSNR than pruning + SH vector quantisation at equal size",
            paper="NeuralGS compresses original 3DGS 45x; LightGaussian-style pruning + VQ reaches ~15x (paper's comparison table)",
            rule=f"BD-PSNR(NeuralGS, pruning + SH VQ) > 0 dB {UNIT_RULE}, margin 0; preconditions as beats_fp16_zip",
            judge=_peer_judge("prune_vq"),
        ),
        Claim(
            "clustering",
            "At equal bytes, clustered MLPs reach a higher held-out PSNR than one MLP for the whole scene",
            paper="Deep Blending PSNR: one MLP 23.71 -> clustered 28.98 dB (ablation table)",
            rule=f"mean over held-out views of PSNR(clustered) - PSNR(one MLP), both at a tenth of the .ply, > {ABLATION_MIN_GAIN:g} dB {UNIT_RULE} (margin: a quarter of the paper's smallest ablation step)",
            judge=_ablation_judge("clustered", "single_mlp"),
        ),
        Claim(
            "importance",
            "At equal bytes, importance-weighted clustering and fitting raise held-out PSNR over plain clustering",
            paper="Deep Blending PSNR: clustered 28.98 -> + importance 29.67 dB (ablation table)",
            rule=f"mean over held-out views of PSNR(clustered + importance) - PSNR(clustered) at equal bytes > {ABLATION_MIN_GAIN:g} dB {UNIT_RULE} (margin: a quarter of the paper's smallest ablation step)",
            judge=_ablation_judge("clustered_importance", "clustered"),
        ),
        Claim(
            "frequency_loss",
            "At equal bytes, the frequency loss in fine-tuning raises held-out PSNR further",
            paper="Deep Blending PSNR: + importance 29.67 -> + frequency loss 30.09 dB (ablation table)",
            rule=f"mean over held-out views of PSNR(NeuralGS) - PSNR(clustered + importance) at equal bytes > {ABLATION_MIN_GAIN:g} dB {UNIT_RULE} (margin: a quarter of the paper's smallest ablation step)",
            judge=_ablation_judge("neuralgs", "clustered_importance"),
        ),
    ]
    scales = {
        Scale.SMOKE: NeuralGSStudyConfig(n_gaussians=300, image_size=16, train_views=6, test_views=3, gs_iterations=30, num_clusters=2, fit_iterations=30, finetune_iterations=3, seeds=1, supersampling=1),
        Scale.QUICK: NeuralGSStudyConfig(n_gaussians=1000, image_size=32, train_views=10, test_views=6, gs_iterations=450, num_clusters=3, fit_iterations=150, finetune_iterations=15, seeds=2, supersampling=2),
        Scale.FULL: NeuralGSStudyConfig(n_gaussians=2500, image_size=48, train_views=24, test_views=12, gs_iterations=800, num_clusters=4, fit_iterations=1200, finetune_iterations=250),
    }

    def run(self, config: NeuralGSStudyConfig, run: RunDir) -> Metrics:
        # The rasterizer is many small tensor ops: on 2 shared cores, 2 intra-op threads ran it up to
        # 40x slower than 1 (measured), so the study runs single-threaded and restores the setting.
        with torch_threads(1):
            return self._run(config, run)

    def _ngs(self, arm: str, cfg: NeuralGSConfig, ply_path: str, train: ProceduralViews, test: ProceduralViews, run: RunDir, seed: int, tag: str) -> dict:
        key = run.key_with(arm, tag, cfg, seed)
        path, meta_path = run.checkpoints / f"{arm}-{key}.ngs", run.checkpoints / f"{arm}-{key}.json"
        if path.exists() and meta_path.exists():
            meta = json.loads(meta_path.read_text())
        else:
            f = compress(ply_path, train.cameras, train.images, cfg, seed=seed, description=f"{arm} {tag}")
            meta = f.stats
            f.save(path)
            atomic_write_json(meta_path, meta)
        dec = decompress(path)
        return {"bytes": path.stat().st_size, **evaluate(dec, test), "clusters": meta["clusters"], "width": cfg.mlp_width, "mlp_parameters": meta["mlp_parameters"], "compress_s": meta["times"]["total_s"]}

    def _run(self, config: NeuralGSStudyConfig, run: RunDir) -> Metrics:
        units = []
        t_start = time.perf_counter()
        for scene_name in config.scenes:
            train, test = _views(config, scene_name)
            for s in range(config.seeds):
                seed = run.seed + s
                scene, ply_path, fit_s = original_scene(config, scene_name, train, run, seed)
                ply_bytes = len(scene_to_ply_bytes(scene))
                orig = {"bytes": ply_bytes, **evaluate(scene, test), "fit_s": fit_s}
                kept = scene.num_gaussians - int(round(0.4 * scene.num_gaussians))
                curves: dict[str, list[dict]] = {k: [] for k in CURVES}
                for d in FP16_SH_DEGREES:
                    raw = fp16_zip(truncate_sh(scene, d))
                    curves["fp16_zip"].append({"bytes": len(raw), "sh_degree": d, **evaluate(fp16_unzip(raw), test)})
                scores = importance_scores(scene, train.cameras)
                for prune, book in VQ_POINTS:
                    raw = prune_sh_vq(scene, scores, prune, min(book, max(2, scene.num_gaussians - int(round(prune * scene.num_gaussians)))), seed=seed)
                    curves["prune_vq"].append({"bytes": len(raw), "prune_ratio": prune, "codebook": book, **evaluate(prune_sh_vq_decode(raw), test)})
                tag = f"{scene_name}-s{seed}"
                floor = predicted_bytes(kept, 1, 8, sh_degree=scene.sh_degree)  # one MLP of width 8: the smallest point we try
                seen = set()
                for ratio in track(NGS_RATIOS, f"NeuralGS curve ({tag})"):
                    op = choose_operating_point(scene.num_gaussians, scene.sh_degree, max(int(ply_bytes / ratio), floor), max_clusters=config.num_clusters)
                    if (op.num_clusters, op.mlp_width) in seen:  # a target below the floor repeats the floor's point
                        continue
                    seen.add((op.num_clusters, op.mlp_width))
                    cfg = NeuralGSConfig(num_clusters=op.num_clusters, mlp_width=op.mlp_width, fit_iterations=config.fit_iterations, finetune_iterations=config.finetune_iterations)
                    curves["neuralgs"].append({"target_ratio": ratio, **self._ngs("neuralgs", cfg, ply_path, train, test, run, seed, tag)})
                ablation = {"neuralgs": next(p for p in curves["neuralgs"] if p["target_ratio"] == ABLATION_RATIO)}
                budget = int(ply_bytes / ABLATION_RATIO)
                op = choose_operating_point(scene.num_gaussians, scene.sh_degree, budget, max_clusters=config.num_clusters)
                op1 = choose_operating_point(scene.num_gaussians, scene.sh_degree, budget, max_clusters=1, min_per_cluster=1)
                for arm in ("single_mlp", "clustered", "clustered_importance"):
                    spec = ARMS[arm]
                    c, w = (1, op1.mlp_width) if spec["single"] else (op.num_clusters, op.mlp_width)
                    cfg = NeuralGSConfig(num_clusters=c, mlp_width=w, importance_weighting=spec["importance_weighting"], lambda_freq=0.01 if spec["freq"] else 0.0,
                                         fit_iterations=config.fit_iterations, finetune_iterations=config.finetune_iterations)
                    ablation[arm] = self._ngs(arm, cfg, ply_path, train, test, run, seed, tag)
                units.append({"scene": scene_name, "seed": seed, "gaussians": scene.num_gaussians, "kept_gaussians": kept, "original": orig, "curves": curves, "ablation": ablation})
        metrics: Metrics = {"units": units, "seconds": time.perf_counter() - t_start, "paper_point": {"ratio": PAPER_POINT[0], "psnr_gain_db": PAPER_POINT[1]}}
        self._figures(config, units, run)
        return metrics

    # -- figures --------------------------------------------------------------------------
    def _figures(self, config: NeuralGSStudyConfig, units: list[dict], run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        colours = {"neuralgs": "tab:blue", "fp16_zip": "tab:orange", "prune_vq": "tab:green"}
        fig, axes = plt.subplots(1, len(config.scenes), figsize=(6 * len(config.scenes), 4.5), squeeze=False)
        for ax, scene_name in zip(axes[0], config.scenes):
            su = [u for u in units if u["scene"] == scene_name]
            for k in CURVES:
                for j, u in enumerate(su):
                    pts = sorted(u["curves"][k], key=lambda p: p["bytes"])
                    ax.plot([p["bytes"] / 1e3 for p in pts], [p["psnr"] for p in pts], "o-", color=colours[k], alpha=0.7, ms=3, label=LABEL[k] if j == 0 else None)
            for j, u in enumerate(su):
                o = u["original"]
                ax.scatter([o["bytes"] / 1e3], [o["psnr"]], marker="*", s=80, color="black", label="original .ply" if j == 0 else None)
                ax.scatter([o["bytes"] / 1e3 / PAPER_POINT[0]], [o["psnr"] + PAPER_POINT[1]], marker="x", s=60, color="red", label="paper's point (45x at +0.02 dB)" if j == 0 else None)
                ax.hlines(o["psnr"] - MAX_PSNR_LOSS, o["bytes"] / 1e3 / 60, o["bytes"] / 1e3, color="gray", ls=":", lw=0.8, label=f"original - {MAX_PSNR_LOSS} dB" if j == 0 else None)
            ax.set_xscale("log")
            ax.set(xlabel="file size (kB, log scale)", ylabel="held-out PSNR (dB)", title=f"{scene_name} ({len(su)} seeds)")
            ax.legend(fontsize=7)
        run.save_figure(fig, "rate_distortion", "Rate-distortion curves: held-out PSNR against file size for each method, one line per seed; star: the uncompressed .ply; red x: the paper's average operating point (45x smaller at +0.02 dB) placed on our .ply; dotted: 0.5 dB below the original.")

        fig, ax = plt.subplots(figsize=(7, 4))
        arms = list(ARMS)
        for u in units:
            ax.plot(range(4), [u["ablation"][a]["psnr"] - u["original"]["psnr"] for a in arms], "o-", alpha=0.6, label=f"{u['scene']} s{u['seed']}")
        ax.set_xticks(range(4), [LABEL[a] for a in arms], fontsize=8)
        ax.set(ylabel="held-out PSNR - original (dB)", title=f"Ablation at equal bytes (1/{ABLATION_RATIO:g} of the .ply)")
        ax.legend(fontsize=6)
        run.save_figure(fig, "ablation", "Held-out PSNR of the ablation arms relative to each unit's original, all at the same byte budget (a tenth of the .ply); paper (Deep Blending): 23.71, 28.98, 29.67, 30.09 dB.")


def _mlp_params(width: int, layers: int, levels: int, out: int) -> int:
    dims = [3 + 6 * levels] + [width] * (layers - 1) + [out]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))
