"""Study ``fresca``: does frequency-scaled guidance beat plain CFG, and does it sharpen a depth diffuser?

No diffusion weights exist offline, so we train small ones with the lab's tiny diffusion room
(``reprolab.nn.diffusion``: diffusers ``UNet2DModel``, DDPM training, DDIM sampling), and run
FreSca through its diffusers integration (:class:`FreScaDenoiser` around the UNet), so the
sampler's own CFG line ``u + w * (c - u)`` becomes ``u + w * F(c - u)``.

(a) Generation. A class-conditional DDPM on Fashion-MNIST (28x28, CFG label dropout 0.1),
sampled with DDIM at guidance scales ``w`` with FreSca's ``h`` in {1.0 (= CFG), 1.25, 1.5}
(l = 1, box mask). The box half-width is the official 20 bins of a 64x64 SD latent scaled to
our 28x28 images: ``round(20 * 28 / 64) = 9`` (a choice: the paper tunes the cut-off for SDXL).
Every arm uses the same initial noise and the same labels (paired). Measured per arm:
- FID on the 64-d penultimate features of a Fashion-MNIST classifier that we train here
  (**not Inception-FID**; no Inception weights exist offline), against real test images;
- that classifier's accuracy on the generated samples w.r.t. the requested class;
- high-frequency energy: mean power per pixel outside the same box mask, of the samples.

(b) Depth. A tiny Marigold-style depth diffuser: ``UNet2DModel`` on ``[RGB, noisy depth]``,
v-prediction (as Marigold), trained on synthetic scenes with exact depth
(``reprolab.data.scenes``), depth normalised per image to [-1, 1] by its 2nd/98th percentiles
(Marigold's affine-invariant target). Inference: DDIM, one sample (no ensemble), FreSca as the
official Marigold demo applies it (F on the UNet's whole prediction at every step, l = 1), box
half-width ``round(20 * size / 96)`` (the official 20 on Marigold's 96x96 latents, scaled).
Evaluation as Marigold's: least-squares scale and shift of the prediction to the ground-truth
depth, then AbsRel = mean |d - d*| / d*, and delta1. Also on skimage's ``stereo_motorcycle``
(left image, ground-truth disparity -> depth = 1 / disparity on valid pixels), downsampled.

Rules (version 2, issue 14; written before any version-2 run; see ``claims``). Each claim has ONE
headline comparison on :mod:`reprolab.stats`, in the paper's direction, with margin 0:
(a) generation, unit = generated images (one initial noise and class per unit, the same in every
    arm): FID(CFG) - FID(FreSca, l = 1, h = 1.5), both the mean over the guidance scales w, with a
    paired bootstrap over the images (``stats.compare_statistic``, 999 resamples; the real
    reference statistics are fixed). Holds when the 95% interval lies above 0 (FreSca lower).
    Preconditions (else "not testable"): the FID classifier learned (test accuracy >= 70%); the
    generator is usable: at every w the CFG samples are recognised as their requested class
    above chance (10%) by more than 30 points (exact binomial, lower bound); FreSca changed the
    samples. Supporting (shown): FreSca's class accuracy >= CFG's - 2 points at every w.
    h = 1.25 is reported. "h > 1 raises high-frequency energy" holds by construction and is a
    unit test (tests/papers/test_fresca.py), not a claim check.
(b) depth, unit = held-out synthetic scenes: per-scene AbsRel without FreSca minus with FreSca
    (h = 1.5), paired (``stats.compare_paired``: t interval below 20 scenes, BCa bootstrap
    above). Preconditions: the depth model learned (its AbsRel is below half that of a flat
    prediction, paired interval over scenes wholly on that side: after the least-squares scale and
    shift any prediction, even an untrained network's, beats a flat one); FreSca changed the
    predictions. The
    motorcycle pair and h in {1.2, 2.0} are reported.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...data import fashion_mnist as fmnist
from ...data.scenes import SceneConfig, make_scenes
from ...errors import StudySkipped
from ... import stats
from ...runtime import load_checkpoint, save_checkpoint, track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .fresca import FreScaConfig, band_energy, frequency_scale, radial_power_spectrum

HEADLINE_H = 1.5  # the h of both headlines (official default; the paper's DIODE setting)
DEPTH_RULE_H = HEADLINE_H
ACC_TOLERANCE = 0.02  # supporting check: FreSca's class accuracy may be lower than CFG's by at most 2 points
CHANCE = 0.1  # ten Fashion-MNIST classes
USABLE_MARGIN = 0.3  # precondition: CFG samples recognised above chance by more than 30 points (exact lower bound)
CLASSIFIER_MIN_ACCURACY = 0.7  # precondition: the FID classifier learned Fashion-MNIST
LEARNED_FRACTION = 0.5  # precondition: the depth model's AbsRel is below half a flat prediction's (any prediction,
# even an untrained network's, beats a flat one after the least-squares scale and shift, so "below flat" means nothing)
FEATURE_DIM = 64  # width of the classifier's penultimate layer, the FID feature space
FEATURE_DIGITS = 4  # significant digits of the per-image features kept in result.json (the judge uses these)
PAPER_ABSREL = {"DIODE": (31.0, 30.2), "KITTI": (10.5, 9.8), "ETH3D": (7.1, 6.4)}  # Marigold -> + FreSca (x100)


@dataclass(frozen=True)
class FreScaStudyConfig:
    # (a) generation
    gen_channels: tuple[int, ...]  # UNet2DModel block_out_channels
    gen_train_images: int  # Fashion-MNIST training images used (class-balanced)
    gen_steps: int  # DDPM training steps
    gen_batch: int
    guidance_scales: tuple[float, ...]  # w
    high_scales: tuple[float, ...]  # h (1.0 = plain CFG)
    samples_per_arm: int  # generated images per (w, h)
    sample_steps: int  # DDIM steps
    clf_steps: int  # classifier training steps (batch 128)
    fid_reference: int  # real test images for the reference statistics
    # (b) depth
    depth_size: int  # synthetic scenes are depth_size x depth_size
    depth_channels: tuple[int, ...]
    depth_train_scenes: int
    depth_steps: int
    depth_batch: int
    depth_eval_scenes: int
    depth_sample_steps: int
    depth_high_scales: tuple[float, ...]  # h for the depth variant (must contain DEPTH_RULE_H)
    motorcycle_size: tuple[int, int]  # (H, W) the real pair is resized to
    image_size: int = 28  # Fashion-MNIST at its native size
    gen_lr: float = 2e-3
    depth_lr: float = 2e-3


def _gen_cutoff(size: int) -> int:
    return max(1, round(20 * size / 64))  # official 20 bins on a 64x64 SD latent, scaled to our size


def _depth_cutoff(size: int) -> int:
    return max(1, round(20 * size / 96))  # official 20 bins on Marigold's 96x96 latent (768 px / 8), scaled


# ----------------------------------------------------------------------------- the classifier behind our FID


class FashionClassifier(torch.nn.Module):
    """A small CNN; its FEATURE_DIM-d (64) penultimate layer is the feature space of our (non-Inception) FID."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(64 * 7 * 7, FEATURE_DIM), torch.nn.ReLU(),
        )  # fmt: skip
        self.head = torch.nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(x: torch.Tensor, y: torch.Tensor, steps: int, seed: int) -> FashionClassifier:
    torch.manual_seed(seed)
    clf = FashionClassifier()
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in track(range(steps), "classifier for FID"):
        idx = torch.randint(0, len(x), (128,), generator=g)
        xb = x[idx] + 0.05 * torch.randn(x[idx].shape, generator=g)  # a little noise: robust to generated pixels
        loss = torch.nn.functional.cross_entropy(clf(xb), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return clf.eval()


@torch.no_grad()
def _features_logits(clf: FashionClassifier, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    feats, logits = [], []
    for i in range(0, len(x), 500):
        f = clf.features(x[i : i + 500])
        feats.append(f)
        logits.append(clf.head(f))
    return torch.cat(feats).double().numpy(), torch.cat(logits).numpy()


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (rows are samples)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eps = np.eye(len(s1)) * 1e-6  # keeps sqrtm defined when there are fewer samples than dimensions (smoke scale)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def gaussian_reference(feats: np.ndarray) -> dict[str, Any]:
    """Mean and covariance of the real images' features: the fixed side of every FID."""
    return {"mean": feats.mean(0), "cov": np.cov(feats, rowvar=False)}


class FIDToReference:
    """FID of feature sets against one fixed Gaussian reference, fast enough to bootstrap.

    Uses tr sqrtm(S_g S_r) = sum sqrt(eig(R S_g R)) with R = S_r^(1/2) symmetric (the eigenvalues
    of S_g S_r and of R S_g R coincide), so each call is one covariance and one symmetric
    eigendecomposition; agrees with :func:`frechet_distance` (tested)."""

    def __init__(self, mean: np.ndarray, cov: np.ndarray):
        self.mean = np.asarray(mean, dtype=float)
        cov = np.asarray(cov, dtype=float)
        lam, vec = np.linalg.eigh((cov + cov.T) / 2)
        self.root = (vec * np.sqrt(np.clip(lam, 0, None))) @ vec.T
        self.trace = float(np.trace(cov))

    def __call__(self, feats: np.ndarray) -> float:
        feats = np.asarray(feats, dtype=float)
        mu = feats.mean(0)
        cov = np.cov(feats, rowvar=False)
        ev = np.linalg.eigvalsh(self.root @ cov @ self.root)
        return float(((mu - self.mean) ** 2).sum() + np.trace(cov) + self.trace - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def encode_rows(m: np.ndarray, digits: int = FEATURE_DIGITS) -> list[str]:
    """A matrix as one line of numbers per row (per unit): compact in result.json, still plain numbers."""
    return [" ".join(f"{v:.{digits}g}" for v in row) for row in np.asarray(m, dtype=float)]


def decode_rows(rows: list[str]) -> np.ndarray:
    return np.array([[float(v) for v in r.split()] for r in rows], dtype=float)


# ----------------------------------------------------------------------------- depth helpers


def normalise_depth(d: torch.Tensor) -> torch.Tensor:
    """Marigold's affine-invariant target: per image, 2nd/98th percentiles -> [-1, 1] (clipped)."""
    flat = d.flatten(1)
    lo = torch.quantile(flat, 0.02, dim=1)[:, None, None, None]
    hi = torch.quantile(flat, 0.98, dim=1)[:, None, None, None]
    return ((d - lo) / (hi - lo).clamp_min(1e-6) * 2 - 1).clamp(-1.5, 1.5)


def align_and_score(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> tuple[float, float]:
    """Least-squares scale/shift of ``pred`` to ``gt`` on valid pixels, then AbsRel and delta1 (per image, averaged)."""
    absrel, d1 = align_and_score_per_image(pred, gt, valid)
    return float(np.mean(absrel)), float(np.mean(d1))


def flat_absrel_per_image(gt: torch.Tensor, valid: torch.Tensor) -> list[float]:
    """AbsRel of a flat prediction after the same alignment: the least-squares constant is the mean depth.
    The "did the model learn anything" floor of the depth claim's precondition."""
    out = []
    for g, v in zip(gt, valid):
        g = g[v].double()
        out.append(float(((g.mean() - g).abs() / g).mean()))
    return out


def align_and_score_per_image(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor) -> tuple[list[float], list[float]]:
    """:func:`align_and_score` per image: two lists (AbsRel, delta1), one entry per image."""
    absrel, d1 = [], []
    for p, g, v in zip(pred, gt, valid):
        p, g = p[v].double(), g[v].double()
        A = torch.stack([p, torch.ones_like(p)], 1)
        sol = torch.linalg.lstsq(A, g[:, None]).solution
        a = (A @ sol)[:, 0].clamp_min(1e-3)
        absrel.append(float(((a - g).abs() / g).mean()))
        d1.append(float((torch.maximum(a / g, g / a) < 1.25).double().mean()))
    return absrel, d1


def motorcycle_pair(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """skimage's stereo_motorcycle left image in [-1, 1] and ground-truth depth (1 / disparity), resized."""
    try:
        from skimage import data
    except ImportError:
        return None
    try:
        left, _, disp = data.stereo_motorcycle()
    except Exception:  # noqa: BLE001 - an skimage without its bundled data files
        return None
    img = torch.from_numpy(left.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    disp = torch.from_numpy(np.where(np.isfinite(disp), disp, 0).astype(np.float32))[None, None]
    img = torch.nn.functional.interpolate(img, size=size, mode="area")
    valid = torch.nn.functional.interpolate((disp > 0).float(), size=size, mode="area") > 0.999
    disp = torch.nn.functional.interpolate(disp, size=size, mode="area")
    depth = torch.where(valid, 1.0 / disp.clamp_min(1e-3), torch.zeros_like(disp))
    return img, depth, valid


# ----------------------------------------------------------------------------- claims


def _arm(w: float, h: float) -> str:
    return f"w{w:g}_h{h:g}"


def generation_features(g: Metrics, which: str) -> np.ndarray:
    """(images, guidance scales, FEATURE_DIM) features of the CFG (``which="cfg"``) or FreSca h = 1.5
    (``"fresca"``) samples, from result.json: unit i is the same noise and class at every w and in both arms."""
    return np.stack([decode_rows(g["per_image"][f"w{w:g}"][which]) for w in g["guidance_scales"]], axis=1)


def mean_fid_over_w(reference: FIDToReference):
    """The headline statistic: FID against the real reference, averaged over the guidance scales."""

    def statistic(x: np.ndarray) -> float:
        return float(np.mean([reference(x[:, k]) for k in range(x.shape[1])]))

    return statistic


def _judge_generation(m: Metrics) -> Judgement:
    g = m["generation"]
    ws = g["guidance_scales"]
    arms = g["arms"]
    clf_acc = g["classifier_test_accuracy"]
    pre = {f"the FID classifier learned Fashion-MNIST (test accuracy {clf_acc:.1%} >= {CLASSIFIER_MIN_ACCURACY:.0%})": clf_acc >= CLASSIFIER_MIN_ACCURACY}
    support, acc_txt = {}, []
    for w in ws:
        u = g["per_image"][f"w{w:g}"]
        k, n = int(sum(u["cfg_correct"])), len(u["cfg_correct"])
        usable = stats.compare_proportion(k, n, CHANCE, unit="images", margin=USABLE_MARGIN, label=f"CFG class accuracy at w={w:g} vs chance")
        pre[f"generator usable at w={w:g}: CFG samples recognised as their class {k}/{n}, 95% lower bound {CHANCE + usable.low:.1%} > chance {CHANCE:.0%} + {USABLE_MARGIN * 100:g} points"] = usable.outcome == stats.Outcome.HOLDS
        a_cfg, a_fr = k / n, float(np.mean(u["fresca_correct"]))
        support[f"w={w:g}: FreSca class accuracy {a_fr:.1%} >= CFG's {a_cfg:.1%} - {ACC_TOLERANCE * 100:g} points"] = a_fr >= a_cfg - ACC_TOLERANCE
        acc_txt.append(f"{a_cfg:.1%} -> {a_fr:.1%}")
    pre[f"FreSca (h={HEADLINE_H:g}) changed the samples at every w"] = all(arms[_arm(w, HEADLINE_H)]["pixel_change_vs_cfg"] > 0 for w in ws)

    ref = FIDToReference(np.asarray(g["reference"]["mean"], dtype=float), decode_rows(g["reference"]["cov"]))
    fresca, cfg = generation_features(g, "fresca"), generation_features(g, "cfg")
    headline = stats.compare_statistic(
        fresca, cfg, mean_fid_over_w(ref), unit="generated images", direction="less", margin=0.0, paired=True,
        label=f"FID (classifier features) mean over w in {{{', '.join(f'{w:g}' for w in ws)}}}: CFG minus FreSca h={HEADLINE_H:g}",
    )
    per_w = [f"w={w:g}: {ref(cfg[:, i]):.2f} -> {ref(fresca[:, i]):.2f}" for i, w in enumerate(ws)]
    others = [f"h={h:g} " + " / ".join(f"{arms[_arm(w, h)]['fid']:.2f}" for w in ws) for h in g["high_scales"] if h not in (1.0, HEADLINE_H)]
    ours = (
        f"FID CFG -> FreSca h={HEADLINE_H:g} ({len(cfg)} paired images): " + "; ".join(per_w)
        + (f" (reported: {'; '.join(others)})" if others else "")
        + f"; class accuracy {', '.join(acc_txt)}. Classifier-feature FID, not Inception-FID"
    )
    return Judgement.from_headline(ours, headline, supporting=support, preconditions=pre)


def _judge_depth(m: Metrics) -> Judgement:
    d = m["depth"]
    syn = d["synthetic"]
    base, fr = syn["h1"]["absrel_per_scene"], syn[f"h{DEPTH_RULE_H:g}"]["absrel_per_scene"]
    flat = d["flat_absrel_per_scene"]
    floor = [LEARNED_FRACTION * f for f in flat]
    learned = stats.compare_paired(base, floor, unit="test scenes", direction="less", margin=0.0, label=f"AbsRel, model without FreSca vs {LEARNED_FRACTION:g} x a flat prediction's")
    pre = {
        f"the depth model learned: AbsRel below {LEARNED_FRACTION:g} x a flat prediction's ({np.mean(base) * 100:.2f} vs {np.mean(flat) * 100:.2f} x100; {learned.describe()})": learned.outcome == stats.Outcome.HOLDS,
        f"FreSca (h={DEPTH_RULE_H:g}) changed the predictions": d["prediction_change"][f"h{DEPTH_RULE_H:g}"] > 0,
    }
    headline = stats.compare_paired(fr, base, unit="test scenes", direction="less", margin=0.0, label=f"AbsRel without minus with FreSca (h={DEPTH_RULE_H:g})")
    ours = f"synthetic AbsRel x100: {np.mean(base) * 100:.2f} -> {np.mean(fr) * 100:.2f} (h={DEPTH_RULE_H:g}, {len(base)} scenes)"
    rest = [f"h={h:g} {syn[f'h{h:g}']['absrel'] * 100:.2f}" for h in d["high_scales"] if h not in (1.0, DEPTH_RULE_H)]
    if rest:
        ours += f" (reported: {', '.join(rest)})"
    if d.get("motorcycle"):
        mb, mf = d["motorcycle"]["h1"]["absrel"], d["motorcycle"][f"h{DEPTH_RULE_H:g}"]["absrel"]
        ours += f"; stereo_motorcycle {mb * 100:.2f} -> {mf * 100:.2f} (one image, reported, not judged)"
    return Judgement.from_headline(ours, headline, preconditions=pre)


# ----------------------------------------------------------------------------- the study


@register
class FreScaStudy(Study):
    name = "fresca"
    paper = Paper("FreSca: Unveiling the Scaling Space in Diffusion Models", arxiv="2504.02154", code="https://github.com/WikiChao/FreSca")
    version = 2
    changelog = {
        1: "first version: class-conditional Fashion-MNIST DDPM (classifier-feature FID) and a Marigold-style depth diffuser on synthetic scenes",
        2: (
            "issue 14: each claim judged by one headline comparison on reprolab.stats with margin 0 and a named unit. "
            "Generation: FID(CFG) - FID(FreSca h=1.5), mean over w, paired bootstrap over the generated images (was: "
            "FID within 2% of CFG's at every w, which passed at smoke with a generator at chance); preconditions: the "
            "FID classifier learned, the generator is usable (CFG samples recognised above chance by > 30 points, exact "
            "binomial), FreSca changed the samples; class accuracy is a supporting check; the check 'h > 1 raises "
            "high-frequency energy' holds by construction and is now only a unit test. Depth: per-scene AbsRel, paired "
            "over the held-out scenes (was: one mean against another); preconditions: the model's AbsRel is below half a "
            "flat prediction's, FreSca changed the predictions. result.json keeps the per-image classifier features "
            "(4 significant digits) and correctness of the headline arms, the reference statistics and the per-scene "
            "AbsRel. The classifier's feature layer is 64-d (was 128-d) so the per-image features fit the 2 MB record. "
            "Checkpoints keyed by RunDir.key."
        ),
    }
    claims = [
        Claim(
            "generation",
            f"At the same guidance scale w, FreSca (l = 1, h = {HEADLINE_H:g}) gives a lower FID than plain CFG",
            paper="FreSca sharpens detail while keeping structure (Sec. 4, Figs. 1 and 5); defaults l = 1, h = 1.5, box cut-off 20 (official code). The paper reports no FID for it",
            rule=(
                f"class-conditional Fashion-MNIST DDPM, DDIM; headline: FID(CFG) - FID(FreSca h={HEADLINE_H:g}), each the mean over the "
                "guidance scales w, > 0 (margin 0) by a paired bootstrap (999 resamples, 95% percentile interval); unit: generated images "
                "(one initial noise and class, shared by both arms and all w); FID on a Fashion-MNIST classifier's 64-d "
                f"features against fixed real-test statistics, not Inception. Not testable unless the classifier reaches "
                f"{CLASSIFIER_MIN_ACCURACY:.0%} test accuracy, the CFG samples at every w are recognised as their class above chance "
                f"({CHANCE:.0%}) by > {USABLE_MARGIN * 100:g} points (exact binomial lower bound) and FreSca changed the samples. "
                f"Supporting: FreSca's class accuracy >= CFG's - {ACC_TOLERANCE * 100:g} points at every w. h = 1.25 reported"
            ),
            judge=_judge_generation,
        ),
        Claim(
            "depth",
            "FreSca on a Marigold-style depth diffuser lowers AbsRel",
            paper="Marigold (no ensemble) -> + FreSca, AbsRel x100: DIODE 31.0 -> 30.2, KITTI 10.5 -> 9.8, ETH3D 7.1 -> 6.4 (official Marigold README table)",
            rule=(
                f"tiny Marigold-style diffuser (v-prediction, DDIM, one sample) on synthetic scenes with exact depth, scale-and-shift "
                f"aligned AbsRel per held-out scene; headline: AbsRel(no FreSca) - AbsRel(FreSca l = 1, h = {DEPTH_RULE_H:g}) > 0 "
                "(margin 0), paired; unit: held-out test scenes (mean difference, t interval below 20 scenes, BCa bootstrap "
                "above). Not testable unless the model's AbsRel is below half a flat prediction's (paired interval over scenes) "
                "and FreSca changed the predictions. skimage stereo_motorcycle and h in {1.2, 2.0} reported"
            ),
            judge=_judge_depth,
        ),
    ]
    scales = {
        Scale.SMOKE: FreScaStudyConfig(
            gen_channels=(8, 16), gen_train_images=256, gen_steps=6, gen_batch=16, guidance_scales=(2.0,), high_scales=(1.0, 1.5),
            samples_per_arm=20, sample_steps=3, clf_steps=10, fid_reference=100,
            depth_size=16, depth_channels=(8, 16), depth_train_scenes=16, depth_steps=4, depth_batch=8, depth_eval_scenes=4,
            depth_sample_steps=3, depth_high_scales=(1.5,), motorcycle_size=(24, 36),
        ),  # fmt: skip
        Scale.QUICK: FreScaStudyConfig(
            gen_channels=(16, 32, 32), gen_train_images=10_000, gen_steps=300, gen_batch=32, guidance_scales=(2.0, 4.0), high_scales=(1.0, 1.25, 1.5),
            samples_per_arm=120, sample_steps=8, clf_steps=200, fid_reference=500,
            depth_size=24, depth_channels=(16, 32, 32), depth_train_scenes=400, depth_steps=250, depth_batch=16, depth_eval_scenes=48,
            depth_sample_steps=8, depth_high_scales=(1.2, 1.5, 2.0), motorcycle_size=(48, 72),
        ),  # fmt: skip
        Scale.FULL: FreScaStudyConfig(
            gen_channels=(16, 32, 32), gen_train_images=60_000, gen_steps=1200, gen_batch=48, guidance_scales=(2.0, 4.0), high_scales=(1.0, 1.25, 1.5),
            samples_per_arm=400, sample_steps=15, clf_steps=800, fid_reference=4000,
            depth_size=32, depth_channels=(16, 32, 32), depth_train_scenes=3000, depth_steps=1000, depth_batch=24, depth_eval_scenes=150,
            depth_sample_steps=20, depth_high_scales=(1.2, 1.5, 2.0), motorcycle_size=(64, 96),
        ),  # fmt: skip
    }

    def run(self, config: FreScaStudyConfig, run: RunDir) -> Metrics:
        try:
            from ...nn import diffusion  # noqa: F401
            from .integrations import FreScaDenoiser  # noqa: F401
        except ImportError as e:
            raise StudySkipped(f"diffusers is not installed ({e}); pip install diffusers==0.42.0") from None
        key = run.key  # study, config, version and seed: checkpoints never outlive a change of any of them
        metrics: Metrics = {"run_key": key}
        if fmnist.is_available():
            metrics["generation"] = self._generation(config, run, key)
        else:
            raise StudySkipped(f"Fashion-MNIST is not installed ({fmnist.INSTALL_COMMAND}); the generation claim cannot run")
        metrics["depth"] = self._depth(config, run, key)
        return metrics

    # ------------------------------------------------------------------ (a) generation

    def _train_generator(self, cfg: FreScaStudyConfig, run: RunDir, key: str):
        """The class-conditional Fashion-MNIST UNet (trained once, then loaded from the run's checkpoints)."""
        from ...nn.diffusion import DiffusionBatch, TinyUNetConfig, TrainConfig, build_unet, load_model, save_model, train_diffusion

        size = cfg.image_size
        unet_cfg = TinyUNetConfig(sample_size=size, block_out_channels=cfg.gen_channels, num_classes=10, norm_num_groups=8 if min(cfg.gen_channels) >= 8 else 4)
        model_path = run.checkpoints / f"{key}-gen-unet.pt"
        loaded = load_model(model_path)
        if loaded is not None:
            unet, _, extra = loaded
            return unet, extra["losses"]
        train = fmnist.load_fashion_mnist("train").subset(cfg.gen_train_images, seed=run.seed)
        x_train, y_train = train.tensors(size), train.label_tensor()
        torch.manual_seed(run.seed)
        unet = build_unet(unet_cfg)

        def batch_at(step: int) -> DiffusionBatch:
            g = torch.Generator().manual_seed(run.seed * 100_003 + step)
            idx = torch.randint(0, len(x_train), (cfg.gen_batch,), generator=g)
            return DiffusionBatch(x0=x_train[idx], class_labels=y_train[idx])

        out = train_diffusion(unet, batch_at, TrainConfig(steps=cfg.gen_steps, lr=cfg.gen_lr, warmup=min(100, max(1, cfg.gen_steps // 10)), cfg_dropout=0.1), null_class=10, checkpoint=run.checkpoints / f"{key}-gen-train.pt", seed=run.seed, description="Fashion-MNIST DDPM")
        save_model(model_path, unet, unet_cfg, {"losses": out.losses["mse"]})
        return unet, out.losses["mse"]

    def _generation(self, cfg: FreScaStudyConfig, run: RunDir, key: str) -> dict[str, Any]:
        from ...nn.diffusion import ddim_sample
        from .integrations import FreScaDenoiser

        test = fmnist.load_fashion_mnist("test")
        size = cfg.image_size
        cut = _gen_cutoff(size)
        unet, losses = self._train_generator(cfg, run, key)

        clf_path = run.checkpoints / f"{key}-classifier.pt"
        state = load_checkpoint(clf_path)
        clf = FashionClassifier()
        if state is None:
            full_train = fmnist.load_fashion_mnist("train")
            clf = train_classifier(full_train.tensors(size), full_train.label_tensor(), cfg.clf_steps, seed=run.seed + 7)
            save_checkpoint(clf_path, {"model": clf.state_dict()})
        else:
            clf.load_state_dict(state["model"])
            clf.eval()
        ref = test.subset(cfg.fid_reference, seed=run.seed + 1)
        ref_feats, ref_logits = _features_logits(clf, ref.tensors(size))
        clf_test_acc = float((ref_logits.argmax(1) == ref.labels).mean())
        ref_hf = float(band_energy(ref.tensors(size), cut)[1].mean()) / size**2
        # a real-vs-real FID floor: two disjoint halves of the test set
        half = test.subset(2 * cfg.fid_reference, seed=run.seed + 2)
        fa, _ = _features_logits(clf, half.tensors(size)[: cfg.fid_reference])
        fb, _ = _features_logits(clf, half.tensors(size)[cfg.fid_reference :])
        fid_floor = frechet_distance(fa, fb) if len(fb) > 1 else None

        labels = torch.arange(cfg.samples_per_arm) % 10
        arms: dict[str, dict[str, float]] = {}
        grids: dict[str, torch.Tensor] = {}
        per_image: dict[str, dict[str, Any]] = {f"w{w:g}": {} for w in cfg.guidance_scales}
        for w in cfg.guidance_scales:
            cfg_samples = None
            for h in [1.0, *[h for h in cfg.high_scales if h != 1.0]]:
                name = _arm(w, h)
                cache = run.checkpoints / f"{key}-arm-{name}.pt"
                st = load_checkpoint(cache)
                if st is None:
                    model = FreScaDenoiser(unet, FreScaConfig(scale_low=1.0, scale_high=h, freq_cutoff=cut))
                    chunks = []
                    for i in track(range(0, cfg.samples_per_arm, 250), f"sampling w={w:g} h={h:g}"):
                        gen = torch.Generator().manual_seed(run.seed * 7919 + i)  # same noise in every arm
                        chunks.append(ddim_sample(model, (min(250, cfg.samples_per_arm - i), 1, size, size), class_labels=labels[i : i + 250], guidance_scale=w, null_class=10, num_inference_steps=cfg.sample_steps, generator=gen, clip=1.0))
                    samples = torch.cat(chunks)
                    feats, logits = _features_logits(clf, samples)
                    st = {"samples": samples, "features": feats, "correct": (logits.argmax(1) == labels.numpy()).astype(int)}
                    save_checkpoint(cache, st)
                samples, feats, correct = st["samples"], st["features"], st["correct"]
                if h == 1.0:
                    cfg_samples = samples
                grids[name] = samples[:20].clone()
                arms[name] = {
                    "fid": frechet_distance(feats, ref_feats),
                    "accuracy": float(correct.mean()),
                    "hf_energy": float(band_energy(samples, cut)[1].mean()) / size**2,
                    "pixel_change_vs_cfg": float((samples - cfg_samples).abs().mean()),
                }
                if h in (1.0, HEADLINE_H):  # the headline's raw per-image numbers
                    which = "cfg" if h == 1.0 else "fresca"
                    per_image[f"w{w:g}"][which] = encode_rows(feats)
                    per_image[f"w{w:g}"][f"{which}_correct"] = correct.tolist()

        self._generation_figures(cfg, run, unet, arms, grids, cut, ref_hf, fid_floor)
        return {
            "guidance_scales": list(cfg.guidance_scales),
            "high_scales": list(cfg.high_scales),
            "freq_cutoff": cut,
            "arms": arms,
            "classifier_test_accuracy": clf_test_acc,
            "reference": {"n": int(len(ref_feats)), "mean": ref_feats.mean(0).tolist(), "cov": encode_rows(np.cov(ref_feats, rowvar=False), 8)},
            "per_image": per_image,
            "real_hf_energy": ref_hf,
            "fid_real_vs_real": fid_floor,
            "final_train_loss": float(np.mean(losses[-50:])),
            "unet_parameters": sum(p.numel() for p in unet.parameters()),
            "feature_space": f"{FEATURE_DIM}-d penultimate layer of a Fashion-MNIST CNN trained here (not Inception)",
        }

    def _generation_figures(self, cfg, run, unet, arms, grids, cut, ref_hf, fid_floor) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        w = max(cfg.guidance_scales)
        hs = list(cfg.high_scales)
        fig, axes = plt.subplots(len(hs), 1, figsize=(10, 0.62 * len(hs) + 0.5), squeeze=False)
        for ax, h in zip(axes[:, 0], hs):
            g = grids[f"w{w:g}_h{h:g}"][:20]
            row = torch.cat(list(g[:, 0]), dim=1)
            ax.imshow(((row + 1) / 2).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel("CFG" if h == 1.0 else f"h={h:g}", rotation=0, ha="right", va="center")
        axes[0, 0].set_title(f"samples at w={w:g}, same noise and labels per column (box cut-off {cut} bins)")
        run.save_figure(fig, "samples", f"Fashion-MNIST samples at w={w:g}: plain CFG (top) and FreSca with h in {hs[1:]} (l=1); each column shares its initial noise and class")

        # spectra of the guidance difference at a mid timestep, on real test images noised
        from ...nn.diffusion import make_scheduler

        sched = make_scheduler("ddpm")
        test = fmnist.load_fashion_mnist("test").subset(min(200, cfg.samples_per_arm), seed=3)
        x0 = test.tensors(cfg.image_size)
        g = torch.Generator().manual_seed(5)
        fig, ax = plt.subplots(figsize=(6, 4))
        with torch.no_grad():
            for t_val, ls in ((800, "-"), (300, "--")):
                t = torch.full((len(x0),), t_val)
                xt = sched.add_noise(x0, torch.randn(x0.shape, generator=g), t)
                y = test.label_tensor()
                u = unet(xt, t, class_labels=torch.full_like(y, 10)).sample
                c = unet(xt, t, class_labels=y).sample
                delta = c - u
                for h in hs:
                    r, p = radial_power_spectrum(frequency_scale(delta, FreScaConfig(scale_high=h, freq_cutoff=cut)))
                    ax.semilogy(r.numpy(), p.numpy(), ls, label=f"t={t_val}, " + ("CFG delta" if h == 1.0 else f"F(delta), h={h:g}"))
        ax.axvline(cut, color="gray", lw=0.8)
        ax.text(cut + 0.2, ax.get_ylim()[0] * 2, "box cut-off", color="gray", fontsize=8)
        ax.set_xlabel("radial frequency (bins from DC)")
        ax.set_ylabel("mean power |FFT|^2")
        ax.legend(fontsize=7)
        run.save_figure(fig, "guidance_spectrum", "radial power spectrum of the guidance difference eps_c - eps_u (and its FreSca-scaled version) on noised test images at two timesteps")

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
        for h in hs:
            ws = list(cfg.guidance_scales)
            lab = "CFG" if h == 1.0 else f"FreSca h={h:g}"
            axes[0].plot(ws, [arms[f"w{x:g}_h{h:g}"]["fid"] for x in ws], "o-", label=lab)
            axes[1].plot(ws, [arms[f"w{x:g}_h{h:g}"]["hf_energy"] for x in ws], "o-", label=lab)
            axes[2].plot(ws, [arms[f"w{x:g}_h{h:g}"]["accuracy"] * 100 for x in ws], "o-", label=lab)
        if fid_floor is not None:
            axes[0].axhline(fid_floor, color="gray", ls=":", label="real vs real")
        axes[1].axhline(ref_hf, color="gray", ls=":", label="real images")
        axes[0].set_ylabel("classifier-feature FID (lower better)")
        axes[1].set_ylabel("high-freq. power per pixel")
        axes[2].set_ylabel("class accuracy of samples (%)")
        for ax in axes:
            ax.set_xlabel("guidance scale w")
            ax.legend(fontsize=7)
        run.save_figure(fig, "generation_metrics", "FID on our classifier's features (not Inception), high-frequency energy and class accuracy of samples, per guidance scale and h")

    # ------------------------------------------------------------------ (b) depth

    def _depth(self, cfg: FreScaStudyConfig, run: RunDir, key: str) -> dict[str, Any]:
        from ...nn.diffusion import DiffusionBatch, TinyUNetConfig, TrainConfig, build_unet, ddim_sample, load_model, save_model, train_diffusion
        from .integrations import FreScaDenoiser

        size = cfg.depth_size
        cut = _depth_cutoff(size)
        scfg = SceneConfig(height=size, width=size)
        unet_cfg = TinyUNetConfig(sample_size=size, in_channels=4, out_channels=1, block_out_channels=cfg.depth_channels, norm_num_groups=8 if min(cfg.depth_channels) >= 8 else 4)
        model_path = run.checkpoints / f"{key}-depth-unet.pt"
        loaded = load_model(model_path)
        if loaded is None:
            train = make_scenes(cfg.depth_train_scenes, scfg, seed=run.seed * 1000 + 1)
            rgb, target = train.images * 2 - 1, normalise_depth(train.depth)
            torch.manual_seed(run.seed + 11)
            unet = build_unet(unet_cfg)

            def batch_at(step: int) -> DiffusionBatch:
                g = torch.Generator().manual_seed(run.seed * 100_019 + step)
                idx = torch.randint(0, len(rgb), (cfg.depth_batch,), generator=g)
                flip = torch.rand(cfg.depth_batch, generator=g) < 0.5  # horizontal flips
                im, dp = rgb[idx].clone(), target[idx].clone()
                im[flip], dp[flip] = im[flip].flip(-1), dp[flip].flip(-1)
                return DiffusionBatch(x0=dp, image=im)

            out = train_diffusion(unet, batch_at, TrainConfig(steps=cfg.depth_steps, lr=cfg.depth_lr, warmup=min(100, max(1, cfg.depth_steps // 10)), cfg_dropout=0.0, prediction_type="v_prediction"), checkpoint=run.checkpoints / f"{key}-depth-train.pt", seed=run.seed + 3, description="depth diffuser")
            save_model(model_path, unet, unet_cfg, {"losses": out.losses["mse"]})
            losses = out.losses["mse"]
        else:
            unet, _, extra = loaded
            losses = extra["losses"]

        test = make_scenes(cfg.depth_eval_scenes, scfg, seed=run.seed * 1000 + 2)
        valid = torch.ones_like(test.depth, dtype=torch.bool)
        hs = [1.0, *[h for h in cfg.depth_high_scales if h != 1.0]]
        moto = motorcycle_pair(cfg.motorcycle_size)
        result: dict[str, Any] = {"freq_cutoff": cut, "high_scales": hs, "synthetic": {}, "motorcycle": {} if moto else None,
                                  "flat_absrel_per_scene": flat_absrel_per_image(test.depth, valid), "prediction_change": {},
                                  "final_train_loss": float(np.mean(losses[-50:])), "unet_parameters": sum(p.numel() for p in unet.parameters())}  # fmt: skip
        preds = {}
        for h in hs:
            model = FreScaDenoiser(unet, FreScaConfig(scale_low=1.0, scale_high=h, freq_cutoff=cut), target="prediction")
            p = ddim_sample(model, test.depth.shape, image=test.images * 2 - 1, num_inference_steps=cfg.depth_sample_steps, prediction_type="v_prediction", generator=torch.Generator().manual_seed(run.seed + 99))
            preds[h] = p
            absrel, d1 = align_and_score_per_image(p, test.depth, valid)
            result["synthetic"][f"h{h:g}"] = {"absrel": float(np.mean(absrel)), "delta1": float(np.mean(d1)), "absrel_per_scene": absrel}
            result["prediction_change"][f"h{h:g}"] = float((p - preds[1.0]).abs().mean())
            if moto is not None:
                img, depth, mvalid = moto
                mcut = _depth_cutoff(min(cfg.motorcycle_size))
                mmodel = FreScaDenoiser(unet, FreScaConfig(scale_low=1.0, scale_high=h, freq_cutoff=mcut), target="prediction")
                mp = ddim_sample(mmodel, depth.shape, image=img, num_inference_steps=cfg.depth_sample_steps, prediction_type="v_prediction", generator=torch.Generator().manual_seed(run.seed + 98))
                a, d = align_and_score(mp, depth, mvalid)
                result["motorcycle"][f"h{h:g}"] = {"absrel": a, "delta1": d}
                preds[("moto", h)] = mp
        self._depth_figures(cfg, run, test, preds, result, moto)
        return result

    def _depth_figures(self, cfg, run, test, preds, result, moto) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        hs = result["high_scales"]
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
        names = ["no FreSca" if h == 1.0 else f"h={h:g}" for h in hs]
        syn = [result["synthetic"][f"h{h:g}"]["absrel"] * 100 for h in hs]
        x = np.arange(len(hs))
        axes[0].bar(x - 0.2, syn, 0.4, label="synthetic test scenes")
        if result["motorcycle"]:
            axes[0].bar(x + 0.2, [result["motorcycle"][f"h{h:g}"]["absrel"] * 100 for h in hs], 0.4, label="stereo_motorcycle")
        axes[0].set_xticks(x, names)
        axes[0].set_ylabel("AbsRel x100 (lower better)")
        axes[0].legend(fontsize=8)
        axes[0].set_title("ours: tiny Marigold-style diffuser")
        rel_paper = {k: (v[1] - v[0]) / v[0] * 100 for k, v in PAPER_ABSREL.items()}
        base = syn[0]
        rel_ours = {f"ours {n}": (s - base) / base * 100 for n, s in zip(names[1:], syn[1:])}
        labels = list(rel_paper) + list(rel_ours)
        vals = list(rel_paper.values()) + list(rel_ours.values())
        axes[1].bar(range(len(vals)), vals, color=["tab:gray"] * len(rel_paper) + ["tab:blue"] * len(rel_ours))
        axes[1].axhline(0, color="k", lw=0.8)
        axes[1].set_xticks(range(len(vals)), labels, rotation=30, ha="right", fontsize=8)
        axes[1].set_ylabel("AbsRel change with FreSca (%)")
        axes[1].set_title("paper (Marigold, gray) vs ours (blue)")
        run.save_figure(fig, "depth_absrel", "AbsRel per arm (left) and its relative change with FreSca, the paper's Marigold numbers beside ours (right)")

        n = min(4, len(test))
        cols = 2 + len(hs)
        fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.6 * n), squeeze=False)
        for i in range(n):
            axes[i, 0].imshow(test.images[i].permute(1, 2, 0).numpy())
            axes[i, 1].imshow(normalise_depth(test.depth[i : i + 1])[0, 0].numpy(), cmap="viridis_r")
            for j, h in enumerate(hs):
                axes[i, 2 + j].imshow(preds[h][i, 0].numpy(), cmap="viridis_r")
        for j, t in enumerate(["RGB", "true depth", *["no FreSca" if h == 1.0 else f"h={h:g}" for h in hs]]):
            axes[0, j].set_title(t, fontsize=8)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        run.save_figure(fig, "depth_examples", "held-out synthetic scenes: image, normalised true depth, and predictions without and with FreSca (near = yellow)")
