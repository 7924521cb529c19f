"""Study ``skyreels_a2``: do SkyReels-A2's two reference paths together keep elements more consistent than either
alone, is it at least as good as references-as-frames (VACE-style), and is the background its weak spot?
(SkyReels-A2, arXiv 2504.02436, A2-Bench and the stated limitation.)

Data (:mod:`.elements`): 4-frame 32x32 clips of two shape elements (16 identities: 4 shapes x 4 colours) moving
over one of 6 textured backgrounds; references: each element alone on white in another size and a quarter turn, and
the bare background. Captions say only the motion ("the character moves left and the object moves up"), so what
the elements and the background look like can come only from the references (with named captions a model could
read identities from the text and every arm would tie).

Model: a tiny diffusers ``WanTransformer3DModel`` in pixel space (no VAE), patch 1x4x4, 4 heads x 32, 2 layers, trained
by rectified flow (:mod:`reprolab.nn.flow`, text dropped 10% for classifier-free guidance) on ``[3 reference slots,
4 frames]``; the loss counts the slots and the frames (:func:`slot_weights`; ``vace``: the frames only). Input channels: ``[x_t (3), mask (1), condition (3)]``: pixel space has no temporal
packing, so the official 4-channel mask is 1 channel and the repeat layout is not an ablation here (it is a format
property, tested with ``AutoencoderKLWan`` in ``test_skyreels_a2.py``). Text: a frozen random word-embedding table
(32-d) over the caption vocabulary. Semantic tokens: EfficientNet-Lite0 grid features of each reference (7x7x1280 =
49 tokens, ImageNet-supervised, not CLIP; the spec sheet's choice), through the transformer's image embedder and
:class:`~.attention.A2AttnProcessor`. Arms, each trained from the same initial weights for the same steps:

- ``a2``: both paths: the condition video ``[ref0, ref1, ref2, zeros...]`` with its mask, and the image tokens;
- ``spatial``: the condition video and mask only; ``semantic``: the image tokens only (condition and mask zero);
- ``vace``: references as frames (WanVACE's layout, simplified): the 3 slots of the noisy sequence are replaced by
  the clean references at every step, no channel condition, no image tokens;
- ``shuffled`` (control, no training): the ``a2`` model given the references of another test prompt.

Sampling: 20 Euler steps (``FlowMatchEulerDiscreteScheduler``), CFG 5 on the text only (the official scale; the
unconditional pass keeps the references), the same noise for every arm of a prompt and seed.

Metrics, on classifiers trained on true frames of the training clips and frozen before any generator:
- element consistency of a generated clip: the share of (frame, element) pairs whose identity is among the frame's
  top-2 by a 16-way presence detector (:class:`PresenceDetector`: per-location logits max-pooled over the frame, so
  location-free; chance 2/16);
- background consistency: the share of frames whose background a 6-way classifier names right (chance 1/6);
- reported beside: the excess background error (mean absolute error to the background reference, generated minus
  the true clip's), and prompt following (the direction of each element's colour-centroid track against the
  caption, for elements whose colour differs from the other's).

Rules (written before the first full run; 95% intervals from ``reprolab.stats``; unit = test prompts, each the mean
over seeds):
(a) joint: element consistency of ``a2`` minus that of the better single path (``spatial`` or ``semantic``, the one
    with the higher mean), paired over prompts, greater, margin 0.
(b) vs_vace: ``a2`` minus ``vace`` on element consistency, greater, margin -0.02 (comparable or better).
(c) background: for ``a2``, chance-corrected element consistency minus chance-corrected background consistency
    ((acc - chance) / (1 - chance)), paired over prompts, greater, margin 0 (the background is the weaker one).
Preconditions: each classifier reads true test frames right (presence top-2 recall >= 0.8; background accuracy >=
0.8); for (a) and (b), the ``a2`` model uses its references (``a2`` minus ``shuffled`` on element consistency holds,
greater, margin 0), else "not testable".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import stats
from ...data.shapes import COLOUR_RGB
from ...nn.flow import FlowBatch, FlowTrainConfig, euler_sample, train_flow
from ...runtime import track
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .attention import set_image_token_count
from .elements import BACKGROUNDS, DIRECTIONS, ElementClip, ElementsConfig, generate_element_clips
from .tiny import word_tokenizer

ARMS = ("a2", "spatial", "semantic", "vace")
TRACK_PROMPTS = 6  # test prompts whose seed-0 samples are kept for the figures
SLOTS = 3  # reference slots before the clip's frames
VACE_MARGIN = 0.02
MIN_CLASSIFIER = 0.8
PAPER = {"a2_composite": 0.818, "object_consistency": 0.809, "object_consistency_no_repeat": 0.756}


@dataclass(frozen=True)
class A2StudyConfig:
    n_train: int
    n_test: int
    steps: int  # per arm and seed
    seeds: int
    classifier_steps: int
    sample_steps: int = 20
    guidance: float = 5.0  # official CFG scale (text only)
    semantic: str = "efficientnet"  # or "pixels" (smoke: 8x8 patches of the reference, no model)
    dim_head: int = 32
    heads: int = 4
    layers: int = 2
    patch: int = 4
    text_dim: int = 32
    batch: int = 8
    lr: float = 2e-3
    frames: int = 4
    size: int = 32
    speed: float = 0.09  # element centre displacement per frame, fraction of the side


def _cfg(**kw: Any) -> A2StudyConfig:
    return A2StudyConfig(**kw)


def elements_config(c: A2StudyConfig) -> ElementsConfig:
    return ElementsConfig(frames=c.frames, image_size=c.size, caption="roles", speed=c.speed, layout="sides")


# ----------------------------------------------------------------------------- inputs
def to_model(x01: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x01), dtype=torch.float32) * 2 - 1


def clip_tensors(clips: list[ElementClip]) -> dict[str, torch.Tensor]:
    """slots (N, 3, 3, H, W) and video (N, 3, T, H, W) in [-1, 1]; cond (N, 4, 3 + T, H, W) = [mask, refs then zeros]."""
    refs = torch.stack([to_model(np.stack(x.references, axis=1)) for x in clips])  # (N, 3 ch, 3 slots, H, W)
    video = torch.stack([to_model(x.video.transpose(1, 0, 2, 3)) for x in clips])
    n, _, t, h, w = video.shape
    cond = torch.zeros(n, 4, SLOTS + t, h, w)
    cond[:, 0, :SLOTS] = 1.0
    cond[:, 1:, :SLOTS] = refs
    return {"slots": refs, "video": video, "cond": cond}


def text_states(captions: list[str], dim: int, seed: int = 0) -> torch.Tensor:
    """(N, L, dim) states from a frozen random word-embedding table (the tiny caption vocabulary), zero-padded."""
    tok = word_tokenizer()
    table = torch.randn(len(tok), dim, generator=torch.Generator().manual_seed(seed)) / math.sqrt(dim)
    ids = [tok(c).input_ids for c in captions]
    L = max(len(i) for i in ids)
    out = torch.zeros(len(captions), L, dim)
    for k, row in enumerate(ids):
        out[k, : len(row)] = table[torch.tensor(row)]
    return out


@torch.no_grad()
def semantic_tokens(clips: list[ElementClip], kind: str, batch: int = 48) -> torch.Tensor:
    """(N, 3 x tokens, dim) per clip: EfficientNet-Lite0 7x7x1280 grid features of each reference, or 8x8 pixel patches."""
    refs = torch.as_tensor(np.stack([np.stack(x.references) for x in clips]), dtype=torch.float32)  # (N, 3, 3, H, W) in [0, 1]
    n = refs.shape[0]
    flat = refs.flatten(0, 1)
    if kind == "pixels":
        p = flat.unfold(2, 8, 8).unfold(3, 8, 8)  # (M, 3, h, w, 8, 8)
        tok = p.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)  # (M, h*w, 192)
        return tok.reshape(n, -1, tok.shape[-1])
    from ...nn.encoders import imagenet_normalize, load_efficientnet_lite0

    model = load_efficientnet_lite0()
    feats = []
    for i in track(range(0, len(flat), batch), "EfficientNet-Lite0 reference tokens", total=-(-len(flat) // batch)):
        x = torch.nn.functional.interpolate(flat[i:i + batch], size=224, mode="bilinear", align_corners=False)
        f = model.extract_features(imagenet_normalize(x))  # (b, 1280, 7, 7)
        feats.append(f.flatten(2).transpose(1, 2).half())
    tok = torch.cat(feats)
    return tok.reshape(n, -1, tok.shape[-1])


# ----------------------------------------------------------------------------- the denoiser
class PixelA2Denoiser(nn.Module):
    """A diffusers ``WanTransformer3DModel`` as a flow denoiser over ``{"slots", "video"}``, for one arm's conditioning."""

    def __init__(self, arm: str, transformer: nn.Module, n_image_tokens: int):
        super().__init__()
        self.arm = arm
        self.wan = transformer
        set_image_token_count(self.wan, n_image_tokens if arm in ("a2", "semantic") else 0)

    def forward(self, x: dict[str, torch.Tensor], t: torch.Tensor, conditions: dict[str, torch.Tensor], dropped: dict[str, torch.Tensor]):
        slots = conditions["refs"] if self.arm == "vace" else x["slots"]
        seq = torch.cat([slots, x["video"]], dim=2)
        cond = conditions["cond"] if self.arm in ("a2", "spatial") else torch.zeros_like(conditions["cond"])
        text = conditions["text"]
        if "text" in dropped:
            text = torch.where(dropped["text"][:, None, None], torch.zeros_like(text), text)
        image = conditions["image"].float() if self.arm in ("a2", "semantic") else None
        out = self.wan(torch.cat([seq, cond], dim=1), timestep=1000 * t, encoder_hidden_states=text, encoder_hidden_states_image=image,
                       return_dict=False)[0]
        return {"slots": out[:, :, :SLOTS], "video": out[:, :, SLOTS:]}


def slot_weights(arm: str) -> dict[str, float]:
    """Loss weight of the reference slots (v2): the slots are part of the noisy sequence that sampling denoises (as the
    official pipeline denoises the reference latent frames before dropping them), so every arm but ``vace`` learns
    them too; v1 left them out of the loss, so at sampling the slots drifted on an untrained velocity and the frames
    attended to that noise. ``vace`` replaces the slots by the clean references, so its slot output is never used."""
    return {"slots": 0.0 if arm == "vace" else 1.0}


def make_transformer(c: A2StudyConfig, image_dim: int, seed: int) -> nn.Module:
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    inner = c.heads * c.dim_head
    return WanTransformer3DModel(patch_size=(1, c.patch, c.patch), num_attention_heads=c.heads, attention_head_dim=c.dim_head, in_channels=7,
                                 out_channels=3, text_dim=c.text_dim, freq_dim=32, ffn_dim=2 * inner, num_layers=c.layers, cross_attn_norm=True,
                                 image_dim=image_dim, added_kv_proj_dim=inner, rope_max_seq_len=64)


# ----------------------------------------------------------------------------- the judges' classifiers
def _conv(i: int, o: int) -> list[nn.Module]:
    return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]


class FrameClassifier(nn.Module):
    """The background judge: a small CNN over the whole frame (global average pool), ``n_out`` logits."""

    def __init__(self, n_out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                                 nn.MaxPool2d(2), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                                 nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, n_out))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.net(x01 * 2 - 1)


class PresenceDetector(nn.Module):
    """The element judge (v2): a fully convolutional detector whose per-location identity logits are max-pooled over
    the frame (multiple-instance learning), so an element scores the same wherever it is and however small a share of
    the frame it covers. Receptive field 10 px at 32x32, about the medium element's 12 px. v1's global-average-pooled
    CNN read only 61% of true test frames: averaging over the frame drowns a 12-px element in textured background."""

    def __init__(self, n_out: int, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(*_conv(3, width), *_conv(width, width), nn.MaxPool2d(2), *_conv(width, 2 * width), *_conv(2 * width, 2 * width),
                                 nn.Conv2d(2 * width, n_out, 1))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.net(x01 * 2 - 1).amax(dim=(2, 3))


def _frames(clips: list[ElementClip], n_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.concatenate([c.video for c in clips]), dtype=torch.float32)
    presence = torch.zeros(len(x), n_id)
    bg = torch.zeros(len(x), dtype=torch.long)
    names = list(BACKGROUNDS)
    k = 0
    for c in clips:
        for _ in range(len(c.video)):
            presence[k, c.identities] = 1.0
            bg[k] = names.index(c.background)
            k += 1
    return x, presence, bg


def train_classifiers(clips: list[ElementClip], steps: int, seed: int, n_identities: int) -> tuple[PresenceDetector, FrameClassifier]:
    x, presence, bg = _frames(clips, n_identities)
    torch.manual_seed(seed)
    pres, back = PresenceDetector(n_identities), FrameClassifier(len(BACKGROUNDS))
    opt = torch.optim.Adam(list(pres.parameters()) + list(back.parameters()), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=max(1, steps))
    g = torch.Generator().manual_seed(seed)
    for _ in track(range(steps), "judges' classifiers (presence, background)", total=steps):
        i = torch.randint(len(x), (64,), generator=g)
        xb = x[i]
        if torch.rand(1, generator=g).item() < 0.5:  # generated frames are blurrier than renders: learn on both
            xb = torch.nn.functional.avg_pool2d(xb, 3, 1, 1)
        for dim in (2, 3):  # mirror images keep every identity and background class
            if torch.rand(1, generator=g).item() < 0.5:
                xb = xb.flip(dim)
        loss = nn.functional.binary_cross_entropy_with_logits(pres(xb), presence[i]) + nn.functional.cross_entropy(back(xb), bg[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return pres.eval(), back.eval()


@torch.no_grad()
def consistency(video01: torch.Tensor, clips: list[ElementClip], pres: nn.Module, back: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Per clip: element consistency (identities in the frame's top-2, over frames x elements) and background accuracy."""
    n, t = video01.shape[:2]
    frames = video01.flatten(0, 1).clamp(0, 1)
    top2 = pres(frames).topk(2, dim=1).indices.reshape(n, t, 2)
    bg_pred = back(frames).argmax(1).reshape(n, t)
    names = list(BACKGROUNDS)
    elem, bgc = [], []
    for k, c in enumerate(clips):
        hits = [(top2[k, f] == i).any().item() for f in range(t) for i in c.identities]
        elem.append(float(np.mean(hits)))
        bgc.append(float((bg_pred[k] == names.index(c.background)).float().mean()))
    return np.asarray(elem), np.asarray(bgc)


def colour_track(video01: np.ndarray, colour: str, tol: float = 0.3) -> list[tuple[int, float, float]]:
    """(frame, x, y) in pixels: the centroid of the pixels within ``tol`` of ``colour`` in each frame that has at least 3."""
    rgb = np.asarray(COLOUR_RGB[colour], np.float32)[None, :, None, None]
    mask = np.abs(video01 - rgb).max(axis=1) < tol  # (T, H, W)
    pts = []
    for f, m in enumerate(mask):
        if m.sum() >= 3:
            yy, xx = np.nonzero(m)
            pts.append((f, float(xx.mean()), float(yy.mean())))
    return pts


def direction_hits(video01: np.ndarray, clip: ElementClip, tol: float = 0.3) -> list[float]:
    """Per element with a colour of its own: 1 if its colour-centroid track moves the caption's way, else 0."""
    out = []
    colours = [e.colour for e in clip.elements]
    for e, d in zip(clip.elements, clip.directions):
        if colours.count(e.colour) > 1:
            continue
        pts = colour_track(video01, e.colour, tol)
        if len(pts) < 2:
            out.append(0.0)
            continue
        move = np.asarray(pts[-1][1:]) - np.asarray(pts[0][1:])
        out.append(float(np.dot(move, DIRECTIONS[d]) > 0))
    return out


# ----------------------------------------------------------------------------- the rules
ELEM_CHANCE = 2 / 16
BG_CHANCE = 1 / len(BACKGROUNDS)


def _per_prompt(m: Metrics, arm: str, key: str = "element") -> np.ndarray:
    return np.asarray(m["arms"][arm][key], float).reshape(m["seeds"], m["n_test"]).mean(0)


def _pre_classifiers(m: Metrics) -> dict[str, bool]:
    p, b = m["classifier"]["presence_top2_recall"], m["classifier"]["background_accuracy"]
    return {f"the presence classifier reads true test frames (top-2 recall {p:.2f} >= {MIN_CLASSIFIER})": p >= MIN_CLASSIFIER,
            f"the background classifier reads true test frames (accuracy {b:.2f} >= {MIN_CLASSIFIER})": b >= MIN_CLASSIFIER}


def _pre_uses_references(m: Metrics) -> tuple[dict[str, bool], stats.Comparison]:
    ctrl = stats.compare_paired(_per_prompt(m, "a2"), _per_prompt(m, "shuffled"), unit="prompts", direction="greater", margin=0.0,
                                unit_range=1.0, label="element consistency, a2 - shuffled references")
    key = (f"the a2 model uses its references (a2 - shuffled references {ctrl.effect:+.3f} [{ctrl.low:+.3f}, {ctrl.high:+.3f}] "
           f"holds)")
    return {key: ctrl.outcome == stats.Outcome.HOLDS}, ctrl


def judge_joint(m: Metrics) -> Judgement:
    pre = _pre_classifiers(m)
    uses, _ = _pre_uses_references(m)
    pre.update(uses)
    a2, sp, se = _per_prompt(m, "a2"), _per_prompt(m, "spatial"), _per_prompt(m, "semantic")
    best_name, best = ("spatial", sp) if sp.mean() >= se.mean() else ("semantic", se)
    c = stats.compare_paired(a2, best, unit="prompts", direction="greater", margin=0.0, unit_range=1.0,
                             label=f"element consistency, both paths - {best_name}")
    ours = (f"element consistency both paths {a2.mean():.3f} vs spatial {sp.mean():.3f}, semantic {se.mean():.3f}; "
            f"a2 - {best_name} {c.effect:+.3f} [{c.low:+.3f}, {c.high:+.3f}] over {c.n} prompts")
    return Judgement.from_headline(ours, c, preconditions=pre)


def judge_vs_vace(m: Metrics) -> Judgement:
    pre = _pre_classifiers(m)
    uses, _ = _pre_uses_references(m)
    pre.update(uses)
    a2, va = _per_prompt(m, "a2"), _per_prompt(m, "vace")
    c = stats.compare_paired(a2, va, unit="prompts", direction="greater", margin=-VACE_MARGIN, unit_range=1.0,
                             label="element consistency, a2 - VACE-style")
    ours = f"element consistency a2 {a2.mean():.3f} vs VACE-style {va.mean():.3f} ({c.effect:+.3f} [{c.low:+.3f}, {c.high:+.3f}], margin {-VACE_MARGIN:+.2f})"
    return Judgement.from_headline(ours, c, preconditions=pre)


def judge_background(m: Metrics) -> Judgement:
    pre = _pre_classifiers(m)
    el = (_per_prompt(m, "a2") - ELEM_CHANCE) / (1 - ELEM_CHANCE)
    bg = (_per_prompt(m, "a2", "background") - BG_CHANCE) / (1 - BG_CHANCE)
    c = stats.compare_paired(el, bg, unit="prompts", direction="greater", margin=0.0, unit_range=2.0,
                             label="a2: chance-corrected element - background consistency")
    ours = (f"a2 chance-corrected consistency: elements {el.mean():+.3f}, background {bg.mean():+.3f} "
            f"({c.effect:+.3f} [{c.low:+.3f}, {c.high:+.3f}] over {c.n} prompts)")
    return Judgement.from_headline(ours, c, preconditions=pre)


# ----------------------------------------------------------------------------- the study
def _batch_indices(step: int, n: int, batch: int, seed: int) -> torch.Tensor:
    return torch.randint(n, (batch,), generator=torch.Generator().manual_seed(seed * 1_000_003 + step))


@register
class SkyReelsA2Study(Study):
    name = "skyreels_a2"
    paper = Paper("SkyReels-A2: Compose Anything in Video Diffusion Transformers", arxiv="2504.02436",
                  code="https://github.com/SkyworkAI/SkyReels-A2")
    claims = [
        Claim("joint", "Both reference paths together (spatial latents and semantic image tokens) keep elements more consistent than either alone",
              paper="the joint image-text embedding design; object consistency 0.809 vs 0.756 without the reference repeat (unverified)",
              rule="element consistency a2 - better single path, paired over prompts (seed mean) > 0; the a2 model must use its references "
                   "(beat shuffled references)", judge=judge_joint),
        Claim("vs_vace", "A2's conditioning is comparable to or better than references as frames (VACE-style)",
              paper="A2-Bench: comparable to closed-source models, ahead of open ones on element consistency",
              rule=f"element consistency a2 - VACE-style, paired over prompts, > -{VACE_MARGIN}", judge=judge_vs_vace),
        Claim("background", "Background consistency is A2's weak spot (the stated limitation)",
              paper="weaker background consistency than element consistency (limitations)",
              rule="a2: chance-corrected element consistency - chance-corrected background consistency, paired over prompts > 0",
              judge=judge_background),
    ]
    scales = {
        Scale.SMOKE: _cfg(n_train=8, n_test=3, steps=2, seeds=1, classifier_steps=2, sample_steps=2, semantic="pixels", dim_head=8, heads=2,
                          layers=1, patch=8, batch=4, frames=4),
        Scale.QUICK: _cfg(n_train=96, n_test=12, steps=80, seeds=1, classifier_steps=300, sample_steps=10),
        Scale.FULL: _cfg(n_train=384, n_test=32, steps=300, seeds=3, classifier_steps=400),
    }
    version = 2
    changelog = {1: "first version (rules fixed before any run). Before the first full run, one quick run (128 clips, 120 steps, "
                    "presence classifier trained 150 steps) took 252 s on shared cores and its presence classifier read only 46% of "
                    "true test frames (top 2), so the claims were not testable there: the classifiers now train 400 (quick) / 800 "
                    "(full) steps and quick is cut to 96 clips, 80 steps and 10 sampling steps for its 2-minute target; no rule changed",
                 2: "the instruments, after v1's full record failed both preconditions (no rule, claim or margin changed; chosen from "
                    "standalone probes of the classifier and of the a2 model against shuffled references, never from which arm wins): "
                    "(1) the presence classifier is a fully convolutional detector max-pooled over the frame (PresenceDetector; v1's "
                    "average-pooled CNN read 61-70% of true test frames, the detector 100% after 400 steps in a probe), with mirror "
                    "augmentation and a one-cycle learning rate; (2) the reference slots are in the loss (slot_weights; v1 left them "
                    "untrained although sampling denoises them, and its samples were noise); (3) the transformer is 4 heads x 32 (v1: "
                    "3 x 16, an inner width equal to the 48 pixels of a 4x4 patch; samples stayed noise) and learns at 2e-3; (4) clips "
                    "have 4 frames (speed 0.09) and the 'sides' layout (the character's track centred left, the object's right, "
                    "+-0.08), so a tiny model can place the elements; in a 400-step probe with random starts the a2 model drew the "
                    "background right but scattered the elements (a2 - shuffled +0.04); (5) full is 384 clips, 300 steps per arm "
                    "(time per step tripled with the width)"}

    def run(self, config: A2StudyConfig, run: RunDir) -> Metrics:
        c = config
        timings: dict[str, float] = {}
        ecfg = elements_config(c)
        t0 = time.perf_counter()
        train = generate_element_clips(c.n_train, ecfg, seed=run.seed * 7 + 1)
        test = generate_element_clips(c.n_test, ecfg, seed=run.seed * 7 + 2)
        data, tdata = clip_tensors(train), clip_tensors(test)
        text = text_states([x.caption for x in train + test], c.text_dim, seed=run.seed)
        text_train, text_test = text[: len(train)], text[len(train):]
        sem = semantic_tokens(train + test, c.semantic)
        sem_train, sem_test = sem[: len(train)], sem[len(train):]
        timings["data_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        n_id = len(ecfg.identities)
        pres, back = train_classifiers(train, c.classifier_steps, run.seed + 3, n_id)
        true_test = torch.as_tensor(np.stack([x.video for x in test]), dtype=torch.float32)
        true_elem, true_bg = consistency(true_test, test, pres, back)
        timings["classifiers_s"] = time.perf_counter() - t0

        def batches(step: int, seed: int) -> FlowBatch:
            i = _batch_indices(step, len(train), c.batch, seed)
            return FlowBatch({"slots": data["slots"][i], "video": data["video"][i]},
                             {"text": text_train[i], "cond": data["cond"][i], "image": sem_train[i], "refs": data["slots"][i]})

        arms: dict[str, dict[str, list[float]]] = {a: {"element": [], "background": [], "bg_error": [], "direction": []}
                                                   for a in (*ARMS, "shuffled")}
        losses: dict[str, list[float]] = {}
        samples: dict[str, np.ndarray] = {}
        perm = torch.roll(torch.arange(c.n_test), 1)
        t0 = time.perf_counter()
        for seed in range(c.seeds):
            for arm in ARMS:
                model = PixelA2Denoiser(arm, make_transformer(c, sem.shape[-1], seed=1000 + seed), sem.shape[1])
                cfg = FlowTrainConfig(steps=c.steps, lr=c.lr, warmup=min(50, max(1, c.steps // 5)), cfg_dropout={"text": 0.1},
                                      modality_weights=slot_weights(arm))
                out = train_flow(model, lambda s, seed=seed: batches(s, 2000 + seed), cfg,
                                 checkpoint=run.checkpoints / f"{arm}-{seed}-{run.key}.pt", seed=2000 + seed,
                                 description=f"{arm}, seed {seed}")
                losses[f"{arm}-{seed}"] = [float(np.mean(out.losses["mse"][:10])), float(np.mean(out.losses["mse"][-10:]))]
                timings.setdefault("seconds_per_step", out.seconds_per_step)
                conds = {"text": text_test, "cond": tdata["cond"], "image": sem_test, "refs": tdata["slots"]}
                runs = {arm: conds}
                if arm == "a2":
                    runs["shuffled"] = {**conds, "cond": tdata["cond"][perm], "image": sem_test[perm], "refs": tdata["slots"][perm]}
                for name, cc in runs.items():
                    video01 = self._sample(model, cc, c, seed)
                    self._score(arms[name], video01, test, pres, back)
                    if seed == 0:
                        samples[name] = video01[:TRACK_PROMPTS].numpy()
        timings["train_and_sample_s"] = time.perf_counter() - t0

        metrics: Metrics = {
            "n_test": c.n_test, "seeds": c.seeds, "arms": arms, "losses": losses,
            "classifier": {"presence_top2_recall": float(true_elem.mean()), "background_accuracy": float(true_bg.mean())},
            "true_direction": float(np.mean([h for x in test for h in direction_hits(x.video, x)] or [0.0])),
            "params": sum(p.numel() for p in make_transformer(c, sem.shape[-1], 0).parameters()),
            "semantic_tokens": list(sem.shape[1:]), "timings": timings, "test_captions": [x.caption for x in test], "paper": PAPER,
        }
        self._figures(run, metrics, samples, test)
        return metrics

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def _sample(model: PixelA2Denoiser, conds: dict[str, torch.Tensor], c: A2StudyConfig, seed: int) -> torch.Tensor:
        n = conds["text"].shape[0]
        shapes = {"slots": (n, 3, SLOTS, c.size, c.size), "video": (n, 3, c.frames, c.size, c.size)}
        x = euler_sample(model, shapes, conds, guidance=[("text", c.guidance)], num_inference_steps=c.sample_steps,
                         generator=torch.Generator().manual_seed(5000 + seed))
        return ((x["video"].clamp(-1, 1) + 1) / 2).permute(0, 2, 1, 3, 4).contiguous()  # (N, T, 3, H, W) in [0, 1]

    @staticmethod
    def _score(arm: dict[str, list[float]], video01: torch.Tensor, clips: list[ElementClip], pres: nn.Module, back: nn.Module) -> None:
        elem, bgc = consistency(video01, clips, pres, back)
        arm["element"] += elem.round(4).tolist()
        arm["background"] += bgc.round(4).tolist()
        v = video01.numpy()
        for k, x in enumerate(clips):
            gen_err = np.abs(v[k] - x.background_image[None]).mean()
            true_err = np.abs(x.video - x.background_image[None]).mean()
            arm["bg_error"].append(round(float(gen_err - true_err), 4))
            arm["direction"] += direction_hits(v[k], x)

    def _figures(self, run: RunDir, m: Metrics, samples: dict[str, np.ndarray], test: list[ElementClip]) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        names = [*ARMS, "shuffled"]
        k = min(2, len(test))
        fig, axes = plt.subplots(len(names) + 1, k, figsize=(5.0 * k, 0.9 * (len(names) + 1)), squeeze=False)
        for j in range(k):
            refs = np.concatenate([r.transpose(1, 2, 0) for r in test[j].references], axis=1)
            true = np.concatenate(list(test[j].video.transpose(0, 2, 3, 1)), axis=1)
            axes[0, j].imshow(np.concatenate([refs, true], axis=1))
            axes[0, j].set_title(f"references | true clip: {test[j].caption}", fontsize=7)
            for r, arm in enumerate(names, start=1):
                strip = np.concatenate(list(samples[arm][j].transpose(0, 2, 3, 1)), axis=1)
                axes[r, j].imshow(np.concatenate([refs, strip], axis=1))
                axes[r, j].set_title(arm, fontsize=7)
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
        run.save_figure(fig, "samples", "Per prompt: the three references (character, object, background) beside the true clip (top) and the "
                                        "clip each arm generated (seed 0); 'shuffled' is the a2 model given another prompt's references")
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
        err_ax = axes[3]
        vals = [np.asarray(m["arms"][a]["bg_error"], float) for a in names]
        err_ax.bar(names, [v.mean() if len(v) else 0.0 for v in vals], yerr=[1.96 * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0 for v in vals],
                   color=["C0", "C1", "C2", "C3", "C7"])
        err_ax.axhline(0.0, color="g", ls="--")
        err_ax.set_ylabel("excess background error (MAE)")
        err_ax.tick_params(axis="x", labelsize=7)
        for ax, key, lab, chance in ((axes[0], "element", "element consistency", ELEM_CHANCE), (axes[1], "background", "background consistency", BG_CHANCE),
                                     (axes[2], "direction", "prompt following (direction)", 0.5)):
            vals = [np.asarray(m["arms"][a][key], float) for a in names]
            means = [v.mean() if len(v) else 0.0 for v in vals]
            err = [1.96 * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else 0 for v in vals]
            ax.bar(names, means, yerr=err, color=["C0", "C1", "C2", "C3", "C7"])
            ax.axhline(chance, color="k", ls=":", label="chance")
            ax.set_ylim(0, 1)
            ax.set_ylabel(lab)
            ax.tick_params(axis="x", labelsize=7)
        axes[0].axhline(m["classifier"]["presence_top2_recall"], color="g", ls="--", label="true clips")
        axes[1].axhline(m["classifier"]["background_accuracy"], color="g", ls="--", label="true clips")
        axes[2].axhline(m["true_direction"], color="g", ls="--", label="true clips")
        axes[0].legend(fontsize=7)
        run.save_figure(fig, "consistency", "Element consistency (identity among a frame's top-2 of a presence detector), background "
                                            "consistency (background classifier right), prompt following (colour-centroid track moves the "
                                            "caption's way) and excess background error (mean absolute error to the background reference, "
                                            "generated minus true clip; 0 = as the true clip) per arm: mean with 95% normal interval over "
                                            "prompt x seed clips")
        k = min(TRACK_PROMPTS, len(test), len(samples["a2"]))
        fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.8), squeeze=False)
        for j in range(k):
            ax, clip = axes[0, j], test[j]
            c_size = clip.video.shape[-1]
            ax.imshow(clip.background_image.transpose(1, 2, 0), extent=(0, c_size, c_size, 0), alpha=0.5)
            for e, (spec, d) in enumerate(zip(clip.elements, clip.directions)):
                col = np.asarray(COLOUR_RGB[spec.colour])
                true = clip.tracks[e] * c_size
                ax.plot(true[:, 0], true[:, 1], "-", color=col, lw=1)
                ax.annotate("", xy=true[-1], xytext=true[0], arrowprops={"arrowstyle": "->", "color": col, "lw": 2})
                gen = colour_track(samples["a2"][j], spec.colour)
                if gen:
                    g = np.asarray([p[1:] for p in gen]) + 0.5
                    ax.plot(g[:, 0], g[:, 1], "o--", color=col, ms=3, lw=1, mec="k", mew=0.5)
            ax.set_xlim(0, c_size)
            ax.set_ylim(c_size, 0)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(clip.caption.replace(" and ", "\nand "), fontsize=6)
        run.save_figure(fig, "tracks", "Prompt following of the a2 model (seed 0): per test prompt, each element's true track (arrow, the "
                                       "caption's direction) and the colour-centroid track of the generated clip (dots, one per frame "
                                       "where at least 3 pixels have the element's colour), over the background reference")
