"""CUPS steps 4-5: a panoptic network trained on the pseudo-labels, DropLoss, copy-paste, self-training.

Official: Panoptic Cascade Mask R-CNN (detectron2, DINO ResNet-50) trained 8000 steps, batch 16, AdamW
lr 1e-4, weight decay 1e-5, gradient clipping 1.0; copy-paste of 1-8 objects (pseudo-label objects for
the first 1000 steps, then the network's own predictions with confidence >= 0.75); DropLoss on the
box classifier: each RoI's classification loss x 1[max IoU(RoI, any pseudo box) > 0.4], so regions
that overlap no pseudo-label are not pushed to background and unlabelled (static) objects survive.
Self-training: an EMA teacher (0.999) with test-time augmentation (scales 0.5/0.75/1.0 + flips) makes
labels online (:func:`.labels.self_training_labels`), no DropLoss, lr 1e-5, 3 x 500 steps.

Ours (CPU, no torchvision, so no detectron2; departures stated): a small query-based panoptic net
(:class:`TinyPanopticNet`: a CNN to 1/4 resolution, 16 learned queries decoded by two transformer
layers, Hungarian matching of queries to pseudo-instances as in DETR/Mask2Former, a semantic head over
the stuff classes + one "thing" class as Panoptic FPN's). DropLoss acts on the queries the matching
leaves unassigned: their no-object classification loss is kept only when their mask's max IoU with a
pseudo-instance exceeds tau (matched queries always keep theirs). TTA averages each query's mask logits
and class probabilities over the six views, and the semantic probabilities per pixel. The network is
trained from scratch, so its learning rate is 1e-3 (self-training: a tenth, the paper's ratio); copy-paste
pastes objects at their place (no rescaling) from the next image of the batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from ...errors import ConfigError, NonFiniteError, ShapeError
from .labels import IGNORE, self_training_labels


# ----------------------------------------------------------------------------- DropLoss
def drop_loss(per_proposal_losses: torch.Tensor, iou_matrix: torch.Tensor, tau: float = 0.4,
              always_keep: torch.Tensor | None = None) -> torch.Tensor:
    """DropLoss (CutLER, Wang et al. 2023; CUPS ``TRAINING.DROP_LOSS_IOU_THRESHOLD`` = 0.4).

    per_proposal_losses: (P,) classification losses; iou_matrix: (P, M) IoU of each proposal with each
    pseudo-label object (M may be 0). Returns (P,) losses where a proposal whose max IoU is <= tau is
    zeroed (no gradient flows from it), unless ``always_keep`` (P,) bool says otherwise.
    """
    if per_proposal_losses.dim() != 1:
        raise ShapeError("per_proposal_losses", tuple(per_proposal_losses.shape), "(P,)")
    if iou_matrix.dim() != 2 or iou_matrix.shape[0] != per_proposal_losses.shape[0]:
        raise ShapeError("iou_matrix", tuple(iou_matrix.shape), f"({per_proposal_losses.shape[0]}, M)")
    if not 0.0 <= tau < 1.0:
        raise ConfigError("tau", tau, "an IoU threshold in [0, 1)")
    best = iou_matrix.max(1).values if iou_matrix.shape[1] else torch.zeros_like(per_proposal_losses)
    keep = best > tau
    if always_keep is not None:
        keep = keep | always_keep
    return torch.where(keep, per_proposal_losses, torch.zeros_like(per_proposal_losses))


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU matrix (P, M) of binary masks (P, ...) and (M, ...)."""
    p = pred.flatten(1).float()
    t = target.flatten(1).float()
    inter = p @ t.T
    union = p.sum(1, keepdim=True) + t.sum(1)[None] - inter
    return inter / union.clamp_min(1e-6)


# ----------------------------------------------------------------------------- the network
class _Res(nn.Module):
    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.b = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn2(self.b(F.relu(self.bn1(self.a(x))))))


class TinyPanopticNet(nn.Module):
    """Query-based panoptic segmenter (see the module docstring). Outputs at 1/4 resolution:
    ``sem`` (B, S+1, h, w) stuff classes + "thing", ``cls`` (B, Q, T+1) thing classes + no-object,
    ``mask`` (B, Q, h, w) mask logits."""

    def __init__(self, num_stuff: int, num_thing: int, queries: int = 16, width: int = 32, layers: int = 2):
        super().__init__()
        if num_stuff < 1 or num_thing < 0 or queries < 1:
            raise ConfigError("num_stuff/num_thing/queries", (num_stuff, num_thing, queries), "num_stuff >= 1, num_thing >= 0, queries >= 1")
        self.num_stuff, self.num_thing = num_stuff, num_thing
        self.stem = nn.Sequential(nn.Conv2d(5, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.Conv2d(32, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.body = nn.Sequential(_Res(width, 1), _Res(width, 2), _Res(width, 4))
        self.pixel = nn.Conv2d(width, width, 1)
        self.sem = nn.Conv2d(width, num_stuff + 1, 1)
        self.query = nn.Embedding(queries, width)
        self.pos = nn.Conv2d(2, width, 1)
        layer = nn.TransformerDecoderLayer(width, 4, 2 * width, dropout=0.0, batch_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.cls = nn.Linear(width, num_thing + 1)
        self.mask_embed = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    @staticmethod
    def _coords(x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        ys = torch.linspace(-1, 1, H, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, W, device=x.device, dtype=x.dtype)
        return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))[None].expand(B, 2, H, W)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ShapeError("images", tuple(images.shape), "(B, 3, H, W) in [0, 1]")
        x = torch.cat([images * 2 - 1, self._coords(images)], 1)
        f = self.body(self.stem(x))
        pix = self.pixel(f)
        mem = (f + self.pos(self._coords(f))).flatten(2).transpose(1, 2)
        q = self.decoder(self.query.weight[None].expand(len(images), -1, -1), mem)
        masks = torch.einsum("bqd,bdhw->bqhw", self.mask_embed(q), pix)
        return {"sem": self.sem(f), "cls": self.cls(q), "mask": masks}


# ----------------------------------------------------------------------------- targets and losses
@dataclass(frozen=True)
class TrainConfig:
    steps: int = 8000  # official 8000 (the study scales it)
    batch: int = 16  # official 16
    lr: float = 1e-3  # ours (from scratch); official 1e-4 with a pretrained backbone
    weight_decay: float = 1e-5  # official
    clip: float = 1.0  # official gradient clipping
    drop_loss: bool = True
    drop_loss_tau: float = 0.4  # official TRAINING.DROP_LOSS_IOU_THRESHOLD
    copy_paste: bool = True
    copy_paste_objects: tuple[int, int] = (1, 8)  # official: 1-8 objects
    copy_paste_switch: int = 1000  # steps of pseudo-label objects, then the network's own (official 1000)
    copy_paste_confidence: float = 0.75  # own predictions pasted at this confidence or more
    no_object_weight: float = 0.1  # DETR's eos_coef
    queries: int = 16
    width: int = 32
    # self-training (paper Sec. 3.4)
    self_steps: int = 1500  # official 3 x 500
    self_lr_factor: float = 0.1  # official 1e-5 / 1e-4
    ema: float = 0.999  # official EMA teacher momentum
    tta_scales: tuple[float, ...] = (0.5, 0.75, 1.0)  # official TTA scales (+ flips)
    instance_confidence: float = 0.7  # official self-training instance threshold
    semantic_relative: float = 0.5  # official: zero scores below 0.5 x the class's image max

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch < 1:
            raise ConfigError("steps/batch", (self.steps, self.batch), "steps >= 0 and batch >= 1")
        if not 0.0 < self.ema < 1.0:
            raise ConfigError("ema", self.ema, "a momentum in (0, 1)")


def _targets(semantic: torch.Tensor, instance: torch.Tensor, things: tuple[int, ...], stuff: tuple[int, ...], size):
    """Per image: stuff-head labels at 1/4 res (stuff index, S = thing, 255 ignore) and the thing masks/classes."""
    S = len(stuff)
    lut = torch.full((256,), IGNORE, dtype=torch.long)
    for i, c in enumerate(stuff):
        lut[c] = i
    for c in things:
        lut[c] = S
    sem_full = lut[semantic.clamp(0, 255)]
    # thing-class pixels outside any instance are ignored (official ignore_unknown_thing_regions)
    is_thing = torch.zeros(256, dtype=torch.bool)
    is_thing[list(things)] = True
    sem_full = torch.where(is_thing[semantic.clamp(0, 255)] & (instance == 0), torch.full_like(sem_full, IGNORE), sem_full)
    sem_full = torch.where(instance > 0, torch.full_like(sem_full, S), sem_full)
    sem_small = sem_full[:, 1::4, 1::4][:, : size[0], : size[1]]
    tidx = {c: i for i, c in enumerate(things)}
    out = []
    for b in range(len(semantic)):
        ids = [int(k) for k in torch.unique(instance[b]) if k != 0]
        if ids:
            m = torch.stack([instance[b] == k for k in ids]).float()
            small = F.adaptive_avg_pool2d(m[None], size)[0] > 0.5
            cls = [tidx.get(int(torch.mode(semantic[b][instance[b] == k]).values), -1) for k in ids]
            keep = [i for i, c in enumerate(cls) if c >= 0 and small[i].any()]
            out.append((small[keep], torch.tensor([cls[i] for i in keep], dtype=torch.long)))
        else:
            out.append((torch.zeros(0, *size, dtype=torch.bool), torch.zeros(0, dtype=torch.long)))
    return sem_small, out


def _dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = logits.sigmoid().flatten(1)
    t = target.flatten(1).float()
    return 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)


def panoptic_loss(out: dict[str, torch.Tensor], sem_target: torch.Tensor, things_target: list, config: TrainConfig,
                  use_drop_loss: bool) -> tuple[torch.Tensor, dict[str, float]]:
    """Semantic CE + per-image Hungarian-matched query losses (class CE, mask BCE + dice), with DropLoss
    on the unmatched queries' no-object loss when ``use_drop_loss``."""
    sem_loss = F.cross_entropy(out["sem"], sem_target, ignore_index=IGNORE) if (sem_target != IGNORE).any() \
        else out["sem"].sum() * 0
    T = out["cls"].shape[-1] - 1
    cls_losses, mask_losses, dropped, unmatched = [], [], 0, 0
    for b, (gm, gc) in enumerate(things_target):
        logits, masks = out["cls"][b], out["mask"][b]
        Q = len(logits)
        target_cls = torch.full((Q,), T, dtype=torch.long)
        matched = torch.zeros(Q, dtype=torch.bool)
        if len(gc):
            with torch.no_grad():
                prob = logits.softmax(-1)[:, gc]
                pm = masks.flatten(1).sigmoid()
                tm = gm.flatten(1).float()
                dice = 1 - (2 * pm @ tm.T + 1) / (pm.sum(1, keepdim=True) + tm.sum(1)[None] + 1)
                bce = (F.binary_cross_entropy_with_logits(masks.flatten(1)[:, None].expand(-1, len(gc), -1),
                                                          tm[None].expand(Q, -1, -1), reduction="none").mean(-1))
                rows, cols = linear_sum_assignment((-prob + dice + bce).numpy())
            rows_t, cols_t = torch.as_tensor(rows), torch.as_tensor(cols)
            target_cls[rows_t] = gc[cols_t]
            matched[rows_t] = True
            mask_losses.append((F.binary_cross_entropy_with_logits(masks[rows_t], gm[cols_t].float(), reduction="none")
                                .flatten(1).mean(1) + _dice(masks[rows_t], gm[cols_t])).mean())
        weight = torch.where(matched, torch.ones(Q), torch.full((Q,), config.no_object_weight))
        ce = F.cross_entropy(logits, target_cls, reduction="none") * weight
        if use_drop_loss:
            with torch.no_grad():
                iou = mask_iou(masks.sigmoid() > 0.5, gm) if len(gc) else torch.zeros(Q, 0)
            kept = drop_loss(ce, iou, config.drop_loss_tau, always_keep=matched)
            dropped += int(((kept == 0) & ~matched).sum())
            ce = kept
        unmatched += int((~matched).sum())
        cls_losses.append(ce.sum() / weight.sum())
    cls_loss = torch.stack(cls_losses).mean()
    mask_loss = torch.stack(mask_losses).mean() if mask_losses else cls_loss * 0
    total = sem_loss + cls_loss + 2.0 * mask_loss
    return total, {"sem": float(sem_loss.detach()), "cls": float(cls_loss.detach()), "mask": float(mask_loss.detach()),
                   "dropped": dropped / max(unmatched, 1)}


# ----------------------------------------------------------------------------- inference
@torch.no_grad()
def _outputs_full(model: TinyPanopticNet, images: torch.Tensor, scales=(1.0,), flips: bool = False):
    """Semantic probabilities (B, S+1, H, W), class probabilities (B, Q, T+1) and mask probabilities
    (B, Q, H, W) at full resolution, averaged over scales and (optionally) horizontal flips."""
    H, W = images.shape[-2:]
    sem = cls = mask = 0
    n = 0
    for s in scales:
        x = images if s == 1.0 else F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False)
        for flip in ((False, True) if flips else (False,)):
            xi = x.flip(-1) if flip else x
            o = model(xi)
            sm = F.interpolate(o["sem"], size=(H, W), mode="bilinear", align_corners=False).softmax(1)
            mk = F.interpolate(o["mask"], size=(H, W), mode="bilinear", align_corners=False).sigmoid()
            if flip:
                sm, mk = sm.flip(-1), mk.flip(-1)
            sem, cls, mask = sem + sm, cls + o["cls"].softmax(-1), mask + mk
            n += 1
    return sem / n, cls / n, mask / n


@torch.no_grad()
def predict_panoptic(model: TinyPanopticNet, images: torch.Tensor, things: tuple[int, ...], stuff: tuple[int, ...],
                     score_threshold: float = 0.5, overlap: float = 0.5, tta: bool = False,
                     scales: tuple[float, ...] = (0.5, 0.75, 1.0)) -> tuple[np.ndarray, np.ndarray, list]:
    """Panoptic maps (B, H, W) of pseudo-class ids (-1 void) and instance ids, plus per image the kept
    (mask, score, class) triples. Queries with thing confidence >= ``score_threshold`` are painted in
    descending score when at least ``overlap`` of their mask is still free (detectron2's panoptic
    combination); remaining pixels take the stuff head's argmax (void where it says "thing")."""
    model.eval()
    sem, cls, mask = _outputs_full(model, images, scales if tta else (1.0,), flips=tta)
    B, _, H, W = sem.shape
    cat = np.full((B, H, W), -1, np.int64)
    inst = np.zeros((B, H, W), np.int64)
    kept = []
    stuff_ids = np.asarray(list(stuff) + [-1], np.int64)
    for b in range(B):
        probs = cls[b, :, :-1]
        score, label = probs.max(-1) if probs.shape[1] else (torch.zeros(len(probs)), torch.zeros(len(probs), dtype=torch.long))
        taken = np.zeros((H, W), bool)
        k = 0
        items = []
        for q in torch.argsort(score, descending=True).tolist():
            if float(score[q]) < score_threshold:
                break
            m = (mask[b, q] > 0.5).numpy()
            if m.sum() == 0:
                continue
            free = m & ~taken
            if free.sum() < overlap * m.sum():
                continue
            k += 1
            cat[b][free] = things[int(label[q])]
            inst[b][free] = k
            taken |= free
            items.append((m, float(score[q]), things[int(label[q])]))
        st = stuff_ids[sem[b].argmax(0).numpy()]
        cat[b][~taken] = st[~taken]
        kept.append(items)
    return cat, inst, kept


# ----------------------------------------------------------------------------- training
def copy_paste(images: torch.Tensor, semantic: torch.Tensor, instance: torch.Tensor, rng: np.random.Generator,
               objects: tuple[int, int] = (1, 8), sources: list | None = None):
    """Paste 1-8 objects of the next image in the batch onto each image (in place on copies).

    ``sources``: per image a list of (mask (H, W) bool, class id) to paste from (e.g. the network's own
    confident predictions); default: the pseudo-label instances of the next image.
    """
    images, semantic, instance = images.clone(), semantic.clone(), instance.clone()
    B = len(images)
    for b in range(B):
        s = (b + 1) % B
        if s == b:
            continue
        if sources is None:
            ids = [int(k) for k in torch.unique(instance[s]) if k != 0]
            cands = [(instance[s] == k, int(torch.mode(semantic[s][instance[s] == k]).values)) for k in ids]
        else:
            cands = [(torch.as_tensor(m), c) for m, c in sources[s]]
        if not cands:
            continue
        n = int(min(len(cands), rng.integers(objects[0], objects[1] + 1)))
        for j in rng.choice(len(cands), n, replace=False):
            m, c = cands[int(j)]
            images[b][:, m] = images[s][:, m]
            semantic[b][m] = c
            instance[b][m] = int(instance[b].max()) + 1
    return images, semantic, instance


def _check_training_data(images, semantic, instance):
    images = torch.as_tensor(np.asarray(images)) if isinstance(images, np.ndarray) else images
    semantic = torch.as_tensor(np.asarray(semantic)).long()
    instance = torch.as_tensor(np.asarray(instance)).long()
    if images.dim() != 4 or images.shape[1] != 3 or semantic.shape != (images.shape[0], *images.shape[2:]) or \
            instance.shape != semantic.shape:
        raise ShapeError("images/semantic/instance", (tuple(images.shape), tuple(semantic.shape), tuple(instance.shape)),
                         "(N, 3, H, W), (N, H, W), (N, H, W)")
    if not torch.isfinite(images).all():
        raise NonFiniteError("images", "non-finite pixels")
    return images.float(), semantic, instance


def _step(model, opt, x, sem, inst, things, stuff, config, use_drop_loss):
    model.train()
    out = model(x)
    sem_t, thing_t = _targets(sem, inst, things, stuff, out["sem"].shape[-2:])
    loss, parts = panoptic_loss(out, sem_t, thing_t, config, use_drop_loss)
    if not torch.isfinite(loss):
        raise NonFiniteError("training loss", float(loss), fix="lower the learning rate")
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
    opt.step()
    return float(loss.detach()), parts


def train_panoptic(images, semantic, instance, things: tuple[int, ...], stuff: tuple[int, ...],
                   config: TrainConfig = TrainConfig(), seed: int = 0, progress=None) -> tuple[TinyPanopticNet, dict]:
    """Train a :class:`TinyPanopticNet` on pseudo-labels (images (N, 3, H, W) in [0, 1], semantic and
    instance maps (N, H, W) of pseudo-class ids). Returns the model and a log (losses, share of
    unmatched queries DropLoss silenced)."""
    images, semantic, instance = _check_training_data(images, semantic, instance)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TinyPanopticNet(len(stuff), len(things), config.queries, config.width).to(images.device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    log = {"loss": [], "dropped": []}
    for step in range(config.steps):
        idx = torch.as_tensor(rng.choice(len(images), min(config.batch, len(images)), replace=False))
        x, sem, inst = images[idx], semantic[idx], instance[idx]
        if config.copy_paste:
            sources = None
            if step >= config.copy_paste_switch:
                _, _, kept = predict_panoptic(model, x, things, stuff, score_threshold=config.copy_paste_confidence)
                sources = [[(torch.as_tensor(m), c) for m, _, c in items] for items in kept]
            x, sem, inst = copy_paste(x, sem, inst, rng, config.copy_paste_objects, sources)
        loss, parts = _step(model, opt, x, sem, inst, things, stuff, config, config.drop_loss)
        log["loss"].append(loss)
        log["dropped"].append(parts["dropped"])
        if progress is not None:
            progress(step)
    model.eval()
    return model, log


def self_train(model: TinyPanopticNet, images, things: tuple[int, ...], stuff: tuple[int, ...],
               config: TrainConfig = TrainConfig(), seed: int = 0) -> tuple[TinyPanopticNet, dict]:
    """Self-training (paper Sec. 3.4): an EMA teacher (``config.ema``) labels each batch with TTA and the
    label rule; the student trains on them without DropLoss at lr x ``self_lr_factor``. Returns the
    teacher (the official code evaluates the EMA model) and a log."""
    images = _check_training_data(images, torch.zeros(images.shape[0], *images.shape[2:]),
                                  torch.zeros(images.shape[0], *images.shape[2:]))[0]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    student = copy.deepcopy(model)
    teacher = copy.deepcopy(model).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr * config.self_lr_factor, weight_decay=config.weight_decay)
    log = {"loss": [], "instances": []}
    for _ in range(config.self_steps):
        idx = torch.as_tensor(rng.choice(len(images), min(config.batch, len(images)), replace=False))
        x = images[idx]
        teacher.eval()
        sem_p, cls_p, mask_p = _outputs_full(teacher, x, config.tta_scales, flips=True)
        sems, insts = [], []
        stuff_ids = list(stuff) + [IGNORE]
        for b in range(len(x)):
            probs = cls_p[b, :, :-1]
            score, label = probs.max(-1)
            s, i = self_training_labels((mask_p[b] > 0.5).numpy(), score.numpy(), sem_p[b].numpy(),
                                        config.instance_confidence, config.semantic_relative)
            sem_ids = np.where(s == IGNORE, IGNORE, np.asarray(stuff_ids)[np.minimum(s, len(stuff_ids) - 1)])
            # each painted instance takes the thing class of the confident query whose mask overlaps it most
            conf = [q for q in range(len(score)) if float(score[q]) >= config.instance_confidence]
            for k in range(1, int(i.max()) + 1):
                region = torch.as_tensor(i == k)
                q = max(conf, key=lambda q: int(((mask_p[b, q] > 0.5) & region).sum()))
                sem_ids[i == k] = things[int(label[q])]
            sems.append(torch.as_tensor(sem_ids))
            insts.append(torch.as_tensor(i))
        loss, _ = _step(student, opt, x, torch.stack(sems), torch.stack(insts), things, stuff, config, False)
        log["loss"].append(loss)
        log["instances"].append(float(np.mean([int(t.max()) for t in insts])))
        with torch.no_grad():
            for pt, ps in zip(teacher.parameters(), student.parameters()):
                pt.mul_(config.ema).add_(ps.detach(), alpha=1 - config.ema)
            for bt, bs in zip(teacher.buffers(), student.buffers()):
                bt.copy_(bs)
    teacher.eval()
    return teacher, log
