"""Panoptic evaluation as the official code does it (paper Sec. 4; ``cups/metrics/panoptic_quality.py``).

Unsupervised predictions carry cluster ids, not classes. The official metric first matches clusters to
classes on the pixel confusion matrix accumulated over the whole evaluation set (Hungarian, maximising
overlap), things and stuff apart (thing clusters to thing classes, stuff clusters to stuff classes);
surplus clusters go to their argmax class (many-to-one). Then panoptic quality (Kirillov et al.):
per class, ``PQ_c = sum IoU(TP) / (TP + FP/2 + FN/2)`` with a match at IoU > 0.5; PQ is the mean over
classes with a non-zero denominator. Void handling follows ``torchmetrics.PanopticQuality`` exactly
(a segment's void overlap is removed from the union; a segment more than half void is neither FP nor FN),
so the two agree to float precision (tested).

Maps are (H, W) int arrays: ``category`` (-1 = void) and ``instance`` (ignored on stuff classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ...errors import ConfigError, ShapeError


def confusion(pred: np.ndarray, target: np.ndarray, num_pred: int, num_target: int) -> np.ndarray:
    """Pixel counts (num_pred, num_target) of pred id i on target id j; ids outside the ranges are skipped."""
    p, t = np.asarray(pred).ravel(), np.asarray(target).ravel()
    ok = (p >= 0) & (p < num_pred) & (t >= 0) & (t < num_target)
    return np.bincount(p[ok] * num_target + t[ok], minlength=num_pred * num_target).reshape(num_pred, num_target)


def _match_core(cost: np.ndarray) -> np.ndarray:
    """Many-to-one matching of rows (clusters) to columns (classes): Hungarian, surplus rows to argmax."""
    n_rows, n_cols = cost.shape
    out = np.full(n_rows, -1, np.int64)
    if n_rows == 0 or n_cols == 0:
        return out
    rows, cols = linear_sum_assignment(cost, maximize=True)
    out[rows] = cols
    rest = out < 0
    out[rest] = cost[rest].argmax(1)
    return out


def match_clusters(conf: np.ndarray, thing_clusters=None, stuff_clusters=None, thing_classes=None, stuff_classes=None) -> np.ndarray:
    """Cluster -> class assignment (num_clusters,) from a (num_clusters, num_classes) confusion matrix.

    With the four id sets, things and stuff are matched apart (official ``_matching_with_separation``);
    a cluster in neither set maps to -1 (void). Without them, one matching over all.
    """
    conf = np.asarray(conf, dtype=np.float64)
    if thing_clusters is None:
        return _match_core(conf)
    out = np.full(conf.shape[0], -1, np.int64)
    for cl, cs in ((thing_clusters, thing_classes), (stuff_clusters, stuff_classes)):
        cl, cs = np.asarray(sorted(cl), np.int64), np.asarray(sorted(cs), np.int64)
        if len(cl) and len(cs):
            out[cl] = cs[_match_core(conf[np.ix_(cl, cs)])]
    return out


@dataclass
class PQCounts:
    """Per-class sums of one or more images: IoU of matches, TP, FP, FN (length = number of classes)."""

    iou: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @classmethod
    def zeros(cls, n: int) -> PQCounts:
        return cls(np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n))

    def __add__(self, other: PQCounts) -> PQCounts:
        return PQCounts(self.iou + other.iou, self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    def as_row(self) -> np.ndarray:
        return np.concatenate([self.iou, self.tp, self.fp, self.fn])

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> PQCounts:
        """Sum of rows made by :meth:`as_row` (shape (..., 4C))."""
        r = np.asarray(rows, dtype=np.float64).reshape(-1, np.asarray(rows).shape[-1]).sum(0)
        c = len(r) // 4
        return cls(r[:c], r[c:2 * c], r[2 * c:3 * c], r[3 * c:])

    def pq_per_class(self) -> np.ndarray:
        den = self.tp + 0.5 * self.fp + 0.5 * self.fn
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, self.iou / np.maximum(den, 1e-12), np.nan)

    def pq(self, classes=None) -> float:
        """Mean PQ over the classes (all, or the given ids) with a non-zero denominator; 0 if none."""
        v = self.pq_per_class()
        if classes is not None:
            v = v[np.asarray(list(classes), np.int64)]
        v = v[np.isfinite(v)]
        return float(v.mean()) if len(v) else 0.0


def pq_counts(pred_cat: np.ndarray, pred_inst: np.ndarray, gt_cat: np.ndarray, gt_inst: np.ndarray,
              things, stuffs) -> PQCounts:
    """Per-class TP/FP/FN/IoU sums of one image (torchmetrics' semantics; categories outside
    things | stuffs, e.g. -1, are void)."""
    things, stuffs = set(int(t) for t in things), set(int(s) for s in stuffs)
    if things & stuffs:
        raise ConfigError("things/stuffs", (sorted(things), sorted(stuffs)), "disjoint sets of category ids")
    cats = sorted(things | stuffs)
    cid = {c: i for i, c in enumerate(cats)}
    arrays = [np.asarray(a) for a in (pred_cat, pred_inst, gt_cat, gt_inst)]
    if any(a.shape != arrays[0].shape for a in arrays):
        raise ShapeError("panoptic maps", [a.shape for a in arrays], "four arrays of the same (H, W) shape")
    known = np.asarray(cats, np.int64)

    def colors(cat: np.ndarray, inst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cat = cat.ravel().astype(np.int64)
        inst = inst.ravel().astype(np.int64)
        void = ~np.isin(cat, known)
        inst = np.where(np.isin(cat, list(stuffs)), 0, inst)
        key = np.where(void, -1, cat * (inst.max(initial=0) + 1 + 1) + inst)
        uniq, code = np.unique(key, return_inverse=True)
        return code, uniq, void

    pc, pu, pvoid = colors(arrays[0], arrays[1])
    tc, tu, tvoid = colors(arrays[2], arrays[3])
    n = len(cats)
    out = PQCounts.zeros(n)
    # segment -> category
    def seg_cat(cat: np.ndarray, code: np.ndarray, nseg: int) -> np.ndarray:
        c = np.full(nseg, -1, np.int64)
        c[code] = cat.ravel()
        return c

    pcat = np.where(pu < 0, -1, seg_cat(arrays[0], pc, len(pu)))
    tcat = np.where(tu < 0, -1, seg_cat(arrays[2], tc, len(tu)))
    parea = np.bincount(pc, minlength=len(pu)).astype(np.float64)
    tarea = np.bincount(tc, minlength=len(tu)).astype(np.float64)
    inter = np.bincount(pc * len(tu) + tc, minlength=len(pu) * len(tu)).reshape(len(pu), len(tu)).astype(np.float64)
    pv = np.flatnonzero(pu < 0)
    tv = np.flatnonzero(tu < 0)
    pred_on_void = inter[:, tv[0]] if len(tv) else np.zeros(len(pu))  # pred segment area on target void
    void_on_target = inter[pv[0], :] if len(pv) else np.zeros(len(tu))  # target segment area under pred void
    p_matched = np.zeros(len(pu), bool)
    t_matched = np.zeros(len(tu), bool)
    for i, j in zip(*np.nonzero(inter)):
        if pu[i] < 0 or tu[j] < 0 or pcat[i] != tcat[j]:
            continue
        union = parea[i] - pred_on_void[i] + tarea[j] - void_on_target[j] - inter[i, j]
        iou = inter[i, j] / union
        if iou > 0.5:
            k = cid[int(tcat[j])]
            out.iou[k] += iou
            out.tp[k] += 1
            p_matched[i] = t_matched[j] = True
    for j in range(len(tu)):
        if tu[j] >= 0 and not t_matched[j] and void_on_target[j] / tarea[j] <= 0.5:
            out.fn[cid[int(tcat[j])]] += 1
    for i in range(len(pu)):
        if pu[i] >= 0 and not p_matched[i] and pred_on_void[i] / parea[i] <= 0.5:
            out.fp[cid[int(pcat[i])]] += 1
    return out


def panoptic_quality(pred_cat, pred_inst, gt_cat, gt_inst, things, stuffs) -> float:
    """PQ of a batch: sequences (or (N, H, W) arrays) of maps; counts summed over images, then averaged
    over classes (as ``torchmetrics.PanopticQuality`` updated image by image)."""
    total = PQCounts.zeros(len(set(things) | set(stuffs)))
    for a, b, c, d in zip(pred_cat, pred_inst, gt_cat, gt_inst):
        total = total + pq_counts(a, b, c, d, things, stuffs)
    return total.pq()


@dataclass
class MatchedEvaluation:
    """Result of :func:`evaluate_clusters`: the assignment, per-image PQ counts (rows of ``PQCounts.as_row``),
    the mapped category maps and per-image semantic intersections/unions."""

    assignment: np.ndarray
    rows: np.ndarray  # (N, 4 * num_classes)
    categories: list[np.ndarray] = field(repr=False)
    inter_union: np.ndarray  # (N, 2, num_classes): pixel intersection and union per class

    @property
    def pq(self) -> float:
        return PQCounts.from_rows(self.rows).pq()


def miou_rows(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """(2, C) intersection and union pixel counts of class maps (void -1 in pred counts in the union)."""
    p, g = np.asarray(pred).ravel(), np.asarray(gt).ravel()
    inter = np.array([np.sum((p == c) & (g == c)) for c in range(num_classes)], np.float64)
    union = np.array([np.sum((p == c) | (g == c)) for c in range(num_classes)], np.float64)
    return np.stack([inter, union])


def miou(rows: np.ndarray) -> float:
    """Mean IoU over classes present (union > 0) from summed (…, 2, C) rows."""
    r = np.asarray(rows, np.float64).reshape(-1, 2, np.asarray(rows).shape[-1]).sum(0)
    ok = r[1] > 0
    return float((r[0][ok] / r[1][ok]).mean()) if ok.any() else 0.0


def evaluate_clusters(pred_clusters: list[np.ndarray], pred_instances: list[np.ndarray], gt_classes: list[np.ndarray],
                      gt_instances: list[np.ndarray], num_clusters: int, things, stuffs, thing_clusters=None,
                      stuff_clusters=None) -> MatchedEvaluation:
    """Official evaluation: match clusters to classes over the whole set (things and stuff apart when the
    cluster split is given), map, then PQ counts and mIoU rows per image. -1 in predictions is void."""
    num_classes = len(set(things) | set(stuffs))
    conf = sum(confusion(p, g, num_clusters, num_classes) for p, g in zip(pred_clusters, gt_classes))
    assign = match_clusters(conf, thing_clusters, stuff_clusters, things, stuffs)
    lut = np.concatenate([assign, [-1]])
    cats, rows, iu = [], [], []
    for p, pi, g, gi in zip(pred_clusters, pred_instances, gt_classes, gt_instances):
        c = lut[np.where((p >= 0) & (p < num_clusters), p, num_clusters)]
        cats.append(c)
        rows.append(pq_counts(c, pi, g, gi, things, stuffs).as_row())
        iu.append(miou_rows(c, g, num_classes))
    return MatchedEvaluation(assign, np.stack(rows), cats, np.stack(iu))
