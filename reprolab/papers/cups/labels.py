"""CUPS step 3: panoptic pseudo-labels from instances and semantics, their files, and the peers' labels.

- :func:`majority_merge` (official ``align_semantic_to_instance``): each instance takes the majority
  semantic class of its pixels.
- :func:`thing_stuff_split` (official ``ThingStuffSplitter`` + ``PseudoLabelDataset``): per pseudo class
  k, r_k = pixels of k inside instances / all pixels of k; sorted descending and normalised to sum 1;
  the leading classes with r_k > 0.08 are things, the rest stuff.
- :func:`self_training_labels` (paper Sec. 3.4, official ``pl_model_self``): teacher instances with
  confidence >= 0.7; per pixel the argmax class after zeroing scores below 0.5 x that class's maximum
  in the image; pixels where every score was zeroed are ignored (255).
- Files (official ``gen_pseudo_labels.py``): ``<name>_semantic.png`` and ``<name>_instance.png``
  (8-bit greyscale) and ``pseudo_classes_split_<subsplit>.pt`` with the three class distributions.
- Peers: :func:`maskcut_instances` (U2Seg-style object-centric instances: MaskCut, a normalised cut on
  feature affinities, up to 3 objects per image) and :func:`component_instances` (semantics only:
  connected components of thing-class regions).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ...errors import ConfigError, MalformedFile, ShapeError
from ...runtime import atomic_write_bytes, readable_file

IGNORE = 255


def majority_merge(semantic: np.ndarray, instance: np.ndarray) -> np.ndarray:
    """Semantic map with every instance's pixels set to the instance's majority class (ties: lowest id).

    The official code maps class 0 to an ignore value while voting (so class 0 never wins while any
    other class is present inside the instance); we keep that rule.
    """
    semantic, instance = np.asarray(semantic), np.asarray(instance)
    if semantic.shape != instance.shape:
        raise ShapeError("instance", instance.shape, f"the semantic map's shape {semantic.shape}")
    out = semantic.copy()
    for k in np.unique(instance):
        if k == 0:
            continue
        m = instance == k
        votes = semantic[m]
        nz = votes[votes != 0]
        out[m] = np.bincount(nz).argmax() if len(nz) else 0
    return out


@dataclass
class ThingStuffSplit:
    things: tuple[int, ...]  # pseudo classes that are things (sorted by r_k, descending)
    stuff: tuple[int, ...]
    inside_pixels: np.ndarray  # per class: pixels inside instances ("distribution inside object proposals")
    per_instance: np.ndarray  # per class: number of instances ("distribution per object proposal")
    all_pixels: np.ndarray  # per class: all pixels ("distribution all pixels")
    ratio: np.ndarray  # normalised r_k in class order


def split_statistics(semantic_maps, instance_maps, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The three distributions the official ThingStuffSplitter accumulates."""
    inside, per_inst, allpix = (np.zeros(num_classes, np.int64) for _ in range(3))
    for s, i in zip(semantic_maps, instance_maps):
        s, i = np.asarray(s).astype(np.int64), np.asarray(i)
        inside += np.bincount(s[i != 0], minlength=num_classes)[:num_classes]
        for k in np.unique(i):
            if k != 0:
                per_inst[s[i == k][0]] += 1
        allpix += np.bincount(s.ravel(), minlength=num_classes)[:num_classes]
    return inside, per_inst, allpix


def thing_stuff_split(semantic_maps=None, instance_maps=None, num_classes: int = 0, threshold: float = 0.08,
                      statistics: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> ThingStuffSplit:
    """Things = the leading pseudo classes whose normalised in-instance ratio exceeds ``threshold`` (0.08).

    Pass the maps (semantic already majority-merged) or precomputed ``statistics`` (as read from the
    ``.pt`` file). The official code's ``(distribution > thr).argmin()`` yields 0 things when every
    class exceeds the threshold; we count the leading run instead (all classes are then things).
    """
    if statistics is None:
        if num_classes < 1:
            raise ConfigError("num_classes", num_classes, "the number of pseudo classes (>= 1)")
        statistics = split_statistics(semantic_maps, instance_maps, num_classes)
    inside, per_inst, allpix = (np.asarray(x, np.float64) for x in statistics)
    r = inside / (allpix + 1e-6)
    order = np.argsort(-r, kind="stable")
    dist = r[order] / max(r.sum(), 1e-12)
    above = dist > threshold
    n_things = int(np.argmin(above)) if not above.all() else len(above)
    ratio = np.zeros_like(r)
    ratio[order] = dist
    return ThingStuffSplit(tuple(int(c) for c in order[:n_things]), tuple(int(c) for c in order[n_things:]),
                           np.asarray(statistics[0]), np.asarray(statistics[1]), np.asarray(statistics[2]), ratio)


def self_training_labels(instance_masks: np.ndarray, instance_scores: np.ndarray, semantic_scores: np.ndarray,
                         instance_threshold: float = 0.7, relative_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The self-training label rule on a teacher's outputs for one image.

    instance_masks: (Q, H, W) bool; instance_scores: (Q,) confidences; semantic_scores: (C, H, W)
    probabilities. Returns (semantic (H, W) int64 with 255 = ignore, instance (H, W) int64, 0 = none):
    instances with score >= ``instance_threshold`` painted in descending score; semantic = argmax over
    classes after zeroing each class's scores below ``relative_threshold`` x its maximum in the image,
    ignore where all were zeroed.
    """
    masks = np.asarray(instance_masks, bool)
    scores = np.asarray(instance_scores, np.float64)
    sem = np.asarray(semantic_scores, np.float64)
    if masks.ndim != 3 or len(masks) != len(scores):
        raise ShapeError("instance_masks/instance_scores", (masks.shape, scores.shape), "(Q, H, W) and (Q,)")
    if sem.ndim != 3 or (len(masks) and sem.shape[1:] != masks.shape[1:]):
        raise ShapeError("semantic_scores", sem.shape, "(C, H, W) matching the masks")
    kept = sem * (sem >= relative_threshold * sem.reshape(len(sem), -1).max(1)[:, None, None])
    semantic = np.where(kept.max(0) > 0, kept.argmax(0), IGNORE).astype(np.int64)
    instance = np.zeros(sem.shape[1:], np.int64)
    k = 0
    for q in np.argsort(-scores, kind="stable"):
        if scores[q] < instance_threshold:
            break
        free = masks[q] & (instance == 0)
        if free.any():
            k += 1
            instance[free] = k
    return semantic, instance


# ----------------------------------------------------------------------------- files
def _png_bytes(array: np.ndarray) -> bytes:
    import io

    from PIL import Image

    a = np.asarray(array)
    if a.ndim != 2:
        raise ShapeError("label map", a.shape, "(H, W)")
    if a.min(initial=0) < 0 or a.max(initial=0) > 255:
        raise ConfigError("label map values", (int(a.min()), int(a.max())), "ids in [0, 255] (8-bit PNG, as the official files)")
    buf = io.BytesIO()
    Image.fromarray(a.astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def write_pseudo_label(folder: str | os.PathLike, name: str, semantic: np.ndarray, instance: np.ndarray) -> tuple[Path, Path]:
    """``<folder>/<name>_semantic.png`` and ``<name>_instance.png`` (8-bit, as the official code), atomically."""
    if np.asarray(semantic).shape != np.asarray(instance).shape:
        raise ShapeError("instance", np.asarray(instance).shape, f"the semantic map's shape {np.asarray(semantic).shape}")
    sem, ins = _png_bytes(semantic), _png_bytes(instance)
    folder = Path(folder)
    return atomic_write_bytes(folder / f"{name}_semantic.png", sem), atomic_write_bytes(folder / f"{name}_instance.png", ins)


def read_pseudo_label(folder: str | os.PathLike, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The two maps back as int64 arrays; typed errors for a missing or corrupt file."""
    from PIL import Image, UnidentifiedImageError

    out = []
    for kind in ("semantic", "instance"):
        path = readable_file(Path(folder) / f"{name}_{kind}.png", f"pseudo-label {kind} map",
                             fix="write it with write_pseudo_label() or the official gen_pseudo_labels.py")
        try:
            with Image.open(path) as im:
                out.append(np.asarray(im.convert("L") if im.mode != "L" else im, dtype=np.int64))
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise MalformedFile(str(path), f"not a readable PNG ({e})") from None
    if out[0].shape != out[1].shape:
        raise MalformedFile(str(Path(folder) / f"{name}_instance.png"), f"shape {out[1].shape} differs from the semantic map's {out[0].shape}")
    return out[0], out[1]


def write_split_statistics(folder: str | os.PathLike, split: ThingStuffSplit, subsplit: int = 1) -> Path:
    """``pseudo_classes_split_<subsplit>.pt``: the official dict of int64 tensors, written atomically."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"distribution all pixels": torch.as_tensor(split.all_pixels, dtype=torch.int64),
                "distribution inside object proposals": torch.as_tensor(split.inside_pixels, dtype=torch.int64),
                "distribution per object proposal": torch.as_tensor(split.per_instance, dtype=torch.int64)}, buf)
    return atomic_write_bytes(Path(folder) / f"pseudo_classes_split_{subsplit}.pt", buf.getvalue())


def read_split_statistics(path: str | os.PathLike, threshold: float = 0.08) -> ThingStuffSplit:
    """Read a ``pseudo_classes_split_*.pt`` file (ours or the official code's) and redo the split."""
    import torch

    p = readable_file(path, "thing/stuff statistics file", fix="write it with write_split_statistics()")
    try:
        d = torch.load(p, map_location="cpu", weights_only=True)
        stats = tuple(np.asarray(d[k]) for k in ("distribution inside object proposals", "distribution per object proposal",
                                                "distribution all pixels"))
    except KeyError as e:
        raise MalformedFile(str(p), f"missing key {e}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise MalformedFile(str(p), f"not a torch file ({type(e).__name__})") from None
    return thing_stuff_split(threshold=threshold, statistics=stats)


# ----------------------------------------------------------------------------- peers
def maskcut_instances(code: np.ndarray, n_objects: int = 3, tau: float = 0.2, grid: tuple[int, int] = (8, 16),
                      min_pixels: int = 16) -> np.ndarray:
    """U2Seg-style object masks by MaskCut (CutLER, Wang et al. 2023) on a dense code (D, H, W).

    The code is average-pooled to ``grid`` (8 x 16 for 64 x 128 images: 8-px patches, as DINO ViT/8's); affinities are cosine similarities binarised at ``tau``
    (else 1e-5); the second-smallest generalised eigenvector of (D - W) y = l D y splits the patches at
    its mean; the foreground is the side holding the largest |eigenvector| entry, flipped when it
    holds two or more of the four corners; the foreground's connected component holding that seed
    patch is an object; its patches are removed and the cut repeats (``n_objects`` times, CutLER N = 3).
    Masks are upsampled to (H, W) (nearest) and returned as an instance map.
    """
    import torch
    import torch.nn.functional as F

    code = np.asarray(code, np.float32)
    if code.ndim != 3:
        raise ShapeError("code", code.shape, "(D, H, W)")
    D, H, W = code.shape
    gh, gw = grid
    f = F.adaptive_avg_pool2d(torch.from_numpy(code)[None], grid)[0].reshape(D, -1).T.numpy()
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    A = f @ f.T
    Wm = np.where(A > tau, 1.0, 1e-5)
    alive = np.ones(len(f), bool)
    out = np.zeros((gh, gw), np.int64)
    corners = [0, gw - 1, (gh - 1) * gw, gh * gw - 1]
    for k in range(n_objects):
        idx = np.flatnonzero(alive)
        if len(idx) < 4:
            break
        w = Wm[np.ix_(idx, idx)]
        d = w.sum(1)
        dis = 1.0 / np.sqrt(d)
        # (D - W) y = l D y  <=>  D^-1/2 (D - W) D^-1/2 z = l z, y = D^-1/2 z
        _, vecs = np.linalg.eigh(np.eye(len(d)) - dis[:, None] * w * dis[None, :])
        vec = (dis * vecs[:, 1])[:, None]
        y = vec[:, 0]
        fg = y > y.mean()
        seed = int(np.argmax(np.abs(y)))
        if not fg[seed]:
            fg = ~fg
        full = np.zeros(gh * gw, bool)
        full[idx[fg]] = True
        if sum(full[c] for c in corners) >= 2:
            full = np.zeros(gh * gw, bool)
            full[idx[~fg]] = True
            seed = int(idx[~fg][np.argmax(np.abs(y[~fg]))]) if (~fg).any() else int(idx[seed])
        else:
            seed = int(idx[seed])
        lab, _ = ndimage.label(full.reshape(gh, gw))
        obj = lab == lab.reshape(-1)[seed] if lab.reshape(-1)[seed] > 0 else full.reshape(gh, gw)
        if obj.sum() >= 1:
            out[obj & (out == 0)] = k + 1
        alive &= ~obj.reshape(-1)
        alive &= ~full  # MaskCut masks out the whole foreground of the cut
    big = np.kron(out, np.ones((H // gh, W // gw), np.int64)) if H % gh == 0 and W % gw == 0 else \
        out[(np.arange(H) * gh // H)[:, None], (np.arange(W) * gw // W)[None, :]]
    for k in np.unique(big)[1:]:
        if (big == k).sum() < min_pixels:
            big[big == k] = 0
    from .motion import relabel

    return relabel(big)


def cluster_instances(codes: list[np.ndarray], instance_maps: list[np.ndarray], k: int, seed: int = 0) -> list[dict[int, int]]:
    """U2Seg's thing classes: k-means (cosine) over the mean code of every instance mask in the dataset.
    Returns per image a dict instance id -> thing cluster (0..k-1)."""
    from sklearn.cluster import KMeans

    vecs, where = [], []
    for n, (c, inst) in enumerate(zip(codes, instance_maps)):
        for i in np.unique(inst):
            if i != 0:
                v = np.asarray(c)[:, inst == i].mean(1)
                vecs.append(v / max(np.linalg.norm(v), 1e-12))
                where.append((n, int(i)))
    out: list[dict[int, int]] = [dict() for _ in instance_maps]
    if not vecs:
        return out
    kk = min(k, len(vecs))
    labels = KMeans(kk, n_init=4, random_state=seed).fit_predict(np.stack(vecs))
    for (n, i), lab in zip(where, labels):
        out[n][i] = int(lab)
    return out


def component_instances(semantic: np.ndarray, thing_classes, min_pixels: int = 16) -> np.ndarray:
    """Semantics-only instances: connected components of each thing class's region (>= ``min_pixels``)."""
    semantic = np.asarray(semantic)
    out = np.zeros(semantic.shape, np.int64)
    for c in thing_classes:
        lab, n = ndimage.label(semantic == c)
        for j in range(1, n + 1):
            m = lab == j
            if m.sum() >= min_pixels:
                out[m] = out.max() + 1
    return out
