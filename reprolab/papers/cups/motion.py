"""CUPS step 1: object instances from motion in stereo video (paper Sec. 3.1; official ``sf2se3``).

From stereo frames at t and t+1 the scene flow is known wherever depth (from disparity) and optical
flow are: a pixel's 3-D point at t, ``P0``, and the same point at t+1, ``P1`` (depth at t+1 sampled
where the flow lands). Rigid bodies move their points by one SE(3) motion each; the camera's own
motion is the motion of the largest rigid set (the background). The official pipeline (SF2SE3)
clusters scene flow into rigid motions; it is run ``runs`` = 8 times and a mask is kept when the mean
over its pixels of the number of masks (of all runs) covering them is >= 0.8 * runs; then matrix NMS
(Gaussian kernel, sigma 2, score threshold 0.6, class-agnostic), hole filling, connected components,
objects under ``min_pixels`` px or ``min_area`` m^2 of 3-D surface (Delaunay triangulation of the
back-projected pixels) dropped, and a band of ``border`` px zeroed at the left and right edges.

Our SF2SE3-lite (a departure, written here because SF2SE3 is a large probabilistic EM pipeline):
sequential RANSAC over SE(3) hypotheses fitted by Kabsch to 3 points (the first hypothesis of a
motion drawn anywhere, the next ones from a neighbourhood of a random seed pixel, as SF2SE3's
proposals are local), residuals measured in the image (optical-flow end point and disparity at
t+1, in pixels, as SF2SE3's likelihoods are), a motion's inliers refined by Kabsch on all of them.
The first motion found (the largest consensus) is the background; each later one is an object
proposal. Scores for matrix NMS: the mask's consistency (mean run count / runs); the official code
passes SF2SE3's logits.
Validity as in the official code: depth in [depth_min, depth_max] at t and at the flow's target
at t+1, forward-backward consistent flow and disparity (occlusion checks), and no disparity edge.
The official depth range [5.5, 70] m is for Cityscapes' metric cameras; the study scales it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import Delaunay

from ...errors import ConfigError, NonFiniteError, ShapeError


@dataclass(frozen=True)
class MotionConfig:
    runs: int = 8  # SF2SE3 runs whose masks vote (official ``runs=8``)
    consistency: float = 0.8  # keep a mask when its mean run count >= consistency * runs
    depth_min: float = 5.5  # valid depth range (official sflow2se3_depth_min / max, metres)
    depth_max: float = 70.0
    min_pixels: int = 64  # objects under this many pixels are dropped (official)
    min_area: float = 0.65  # ... or under this 3-D surface area (official sflow2se3_min_object_size, m^2)
    border: int = 32  # zeroed band at the left and right image borders (official, px)
    nms_sigma: float = 2.0  # matrix NMS Gaussian kernel (official mask_matrix_nms defaults)
    nms_threshold: float = 0.6  # matrix NMS score threshold after decay
    inlier_px: float = 1.0  # a pixel fits a motion when its flow + disparity residual is under this (px)
    hypotheses: int = 64  # RANSAC hypotheses per motion
    max_motions: int = 8  # motions per run, background included
    min_inliers: int = 24  # a motion with fewer inliers ends the run
    neighbourhood: int = 6  # half-size (px) of the window the 2nd and 3rd RANSAC points come from
    fb_tolerance: tuple[float, float] = (0.01, 0.5)  # occlusion check |f + f_bw(x+f)|^2 < a(|f|^2+|f_bw|^2) + b
    edge_threshold: float = 0.2  # a disparity edge: |grad log disparity| above this
    edge_dilation: int = 5  # ... dilated by this square (official 5 x 5)
    split_components: bool = True  # split each kept mask into connected components (the official code keeps one id)
    noise_factor: float = 3.0  # the inlier threshold is max(inlier_px, noise_factor * estimated cue noise std)
    euclidean_px: float = 2.0  # densify a motion to pixels within this many pixel footprints in 3-D of its inliers
    min_gain: float = 3.0  # an object motion must move its pixels by > min_gain x the inlier threshold against the background

    def __post_init__(self) -> None:
        if self.runs < 1:
            raise ConfigError("runs", self.runs, "at least 1")
        if not 0.0 < self.consistency <= 1.0:
            raise ConfigError("consistency", self.consistency, "a share in (0, 1]")
        if not 0.0 <= self.depth_min < self.depth_max:
            raise ConfigError("depth_min/depth_max", (self.depth_min, self.depth_max), "0 <= depth_min < depth_max")
        if self.border < 0 or self.min_pixels < 0:
            raise ConfigError("border/min_pixels", (self.border, self.min_pixels), "non-negative integers")


def _check_map(name: str, x: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    x = np.asarray(x)
    if shape is not None and x.shape != shape:
        raise ShapeError(name, x.shape, f"shape {shape}")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise NonFiniteError(name, f"{int((~np.isfinite(x)).sum())} non-finite values", fix="mark invalid pixels with 0 disparity")
    return x


def disparity_to_depth(disparity: np.ndarray, focal: float, baseline: float) -> np.ndarray:
    """depth = f * B / d (pixels, metres); 0 where the disparity is not positive."""
    d = np.asarray(disparity, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(d > 0, focal * baseline / np.maximum(d, 1e-12), 0.0)


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray, order: int = 1) -> np.ndarray:
    """``image`` (..., H, W) sampled at pixel coordinates (x, y) (bilinear; nearest with order=0), 0 outside."""
    image = np.asarray(image, dtype=np.float64)
    coords = np.stack([y, x])
    if image.ndim == 2:
        return ndimage.map_coordinates(image, coords, order=order, mode="constant", cval=0.0)
    return np.stack([ndimage.map_coordinates(c, coords, order=order, mode="constant", cval=0.0) for c in image])


def _grid(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))


def consistent_flow(forward: np.ndarray, backward: np.ndarray, tolerance: tuple[float, float] = (0.01, 0.5)) -> np.ndarray:
    """Forward-backward check: pixels whose flow (2, H, W) comes back to them (not occluded, not out of view)."""
    H, W = forward.shape[-2:]
    u, v = _grid(H, W)
    x, y = u + forward[0], v + forward[1]
    bw = sample(backward, x, y)
    a, b = tolerance
    err = ((forward + bw) ** 2).sum(0)
    inside = (x >= 0) & (x <= W - 1) & (y >= 0) & (y <= H - 1)
    return inside & (err < a * ((forward**2).sum(0) + (bw**2).sum(0)) + b)


def consistent_disparity(left: np.ndarray, right: np.ndarray, tolerance: tuple[float, float] = (0.01, 0.5)) -> np.ndarray:
    """Left-right check: the left disparity d (left pixel x matches right pixel x - d) agrees with the right view's."""
    zero = np.zeros_like(left)
    return consistent_flow(np.stack([-left, zero]), np.stack([np.asarray(right), zero]), tolerance)


def disparity_edges(disparity: np.ndarray, threshold: float = 0.2, dilation: int = 5) -> np.ndarray:
    """Pixels near a disparity edge: |gradient of log disparity| > threshold, dilated by a square (official 5x5)."""
    logd = np.log(np.maximum(disparity, 0) + 1e-3)
    gy, gx = np.gradient(logd)
    return ndimage.binary_dilation(np.hypot(gx, gy) > threshold, structure=np.ones((dilation, dilation), bool))


def scene_flow_points(disparity0: np.ndarray, disparity1: np.ndarray, flow: np.ndarray, focal: float, baseline: float):
    """3-D points at t (left camera at t) and their positions at t+1 (left camera at t+1), (H, W, 3) each,
    plus the disparity at t+1 sampled where the flow lands (the observation a motion must explain)."""
    H, W = disparity0.shape
    u, v = _grid(H, W)
    cx, cy = W / 2 - 0.5, H / 2 - 0.5
    d1 = sample(disparity1, u + flow[0], v + flow[1])
    z0, z1 = disparity_to_depth(disparity0, focal, baseline), disparity_to_depth(d1, focal, baseline)
    p0 = np.stack([(u - cx) * z0 / focal, (cy - v) * z0 / focal, z0], -1)
    p1 = np.stack([(u + flow[0] - cx) * z1 / focal, (cy - v - flow[1]) * z1 / focal, z1], -1)
    return p0, p1, d1


def valid_scene_flow(disp0: np.ndarray, disp0_right: np.ndarray, disp1: np.ndarray, disp1_right: np.ndarray,
                     flow: np.ndarray, flow_back: np.ndarray, focal: float, baseline: float,
                     config: MotionConfig = MotionConfig()) -> np.ndarray:
    """The official validity mask: depth in range at t and at the flow's target at t+1, flow and both
    disparities forward-backward consistent, no disparity edge at t or at the target."""
    H, W = disp0.shape
    u, v = _grid(H, W)
    z0 = disparity_to_depth(disp0, focal, baseline)
    z1 = disparity_to_depth(disp1, focal, baseline)
    ok1 = (z1 >= config.depth_min) & (z1 <= config.depth_max) & consistent_disparity(disp1, disp1_right, config.fb_tolerance)
    ok1 &= ~disparity_edges(disp1, config.edge_threshold, config.edge_dilation)
    target_ok = sample(ok1.astype(np.float64), u + flow[0], v + flow[1], order=0) > 0.5
    return ((z0 >= config.depth_min) & (z0 <= config.depth_max) & ~disparity_edges(disp0, config.edge_threshold, config.edge_dilation)
            & consistent_flow(flow, flow_back, config.fb_tolerance) & consistent_disparity(disp0, disp0_right, config.fb_tolerance)
            & target_ok)


def kabsch(p: np.ndarray, q: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rigid motion(s) R, t with q ~ R p + t. p, q: (..., N, 3); returns R (..., 3, 3), t (..., 3)."""
    w = np.ones(p.shape[:-1]) if w is None else w
    w = w / w.sum(-1, keepdims=True)
    pc, qc = (w[..., None] * p).sum(-2), (w[..., None] * q).sum(-2)
    h = np.einsum("...n,...ni,...nj->...ij", w, p - pc[..., None, :], q - qc[..., None, :])
    U, _, Vt = np.linalg.svd(h)
    det = np.sign(np.linalg.det(np.swapaxes(Vt, -1, -2) @ np.swapaxes(U, -1, -2)))
    D = np.zeros(h.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = np.where(det == 0, 1.0, det)
    R = np.swapaxes(Vt, -1, -2) @ D @ np.swapaxes(U, -1, -2)
    t = qc - np.einsum("...ij,...j->...i", R, pc)
    return R, t


def _residual(R: np.ndarray, t: np.ndarray, p0: np.ndarray, obs: np.ndarray, focal: float, baseline: float, cx: float, cy: float):
    """Image-space residual (px) of points p0 (N, 3) under motions R (K, 3, 3), t (K, 3) against observed
    (u1, v1, d1) (N, 3): the projected position at t+1 and its disparity. Returns (K, N)."""
    q = np.matmul(p0[None], np.swapaxes(R, -1, -2)) + t[:, None, :]
    z = np.maximum(q[..., 2], 1e-6)
    u = focal * q[..., 0] / z + cx
    v = cy - focal * q[..., 1] / z
    d = focal * baseline / z
    res = np.sqrt((u - obs[:, 0]) ** 2 + (v - obs[:, 1]) ** 2 + (d - obs[:, 2]) ** 2)
    return np.where(q[..., 2] > 1e-6, res, np.inf)


def rigid_motion_masks(disparity0: np.ndarray, disparity1: np.ndarray, flow: np.ndarray, valid: np.ndarray, focal: float,
                       baseline: float, rng: np.random.Generator, config: MotionConfig = MotionConfig()) -> list[np.ndarray]:
    """One SF2SE3-lite run: boolean (H, W) masks of the non-background rigid motions (see the module docstring)."""
    H, W = disparity0.shape
    p0, _, d1 = scene_flow_points(disparity0, disparity1, flow, focal, baseline)
    u, v = _grid(H, W)
    idx = np.flatnonzero(valid.ravel())
    if len(idx) < max(3, config.min_inliers):
        return []
    pts = p0.reshape(-1, 3)[idx]
    obs = np.stack([(u + flow[0]).ravel()[idx], (v + flow[1]).ravel()[idx], d1.ravel()[idx]], -1)
    uu, vv = u.ravel()[idx], v.ravel()[idx]
    p1 = scene_flow_points(disparity0, disparity1, flow, focal, baseline)[1].reshape(-1, 3)[idx]
    cx, cy = W / 2 - 0.5, H / 2 - 0.5
    all_pts = p0.reshape(-1, 3)
    bg_pixels = np.zeros(0, np.int64)
    remaining = np.ones(len(idx), bool)
    slot = np.full(H * W, -1, np.int64)
    slot[idx] = np.arange(len(idx))
    slot = slot.reshape(H, W)
    masks = []
    for m in range(config.max_motions):
        live = np.flatnonzero(remaining)
        if len(live) < config.min_inliers:
            break
        K = config.hypotheses
        if m == 0:
            trip = live[np.argsort(rng.random((K, len(live))), axis=1)[:, :3]] if len(live) < 64 else \
                live[rng.integers(len(live), size=(K, 3))]
        else:  # a random seed pixel and two partners from its neighbourhood (8 tries each, else the seed)
            seeds = live[rng.integers(len(live), size=K)]
            r = config.neighbourhood
            du, dv = rng.integers(-r, r + 1, size=(2, K, 2, 8))
            cu = np.clip(uu[seeds][:, None, None] + du, 0, W - 1).astype(np.int64)
            cv = np.clip(vv[seeds][:, None, None] + dv, 0, H - 1).astype(np.int64)
            cand = slot[cv, cu]  # (K, 2, 8) position in pts, or -1
            ok = cand >= 0
            ok[ok] = remaining[cand[ok]]
            first = np.where(ok.any(-1), ok.argmax(-1), -1)
            pick = np.take_along_axis(cand, np.maximum(first, 0)[..., None], -1)[..., 0]
            trip = np.concatenate([seeds[:, None], np.where(first >= 0, pick, seeds[:, None])], 1)
        R, t = kabsch(pts[trip], p1[trip])
        res = _residual(R, t, pts[live], obs[live], focal, baseline, cx, cy)
        best = int(np.argmax((res < config.inlier_px).sum(1)))
        inl = live[res[best] < config.inlier_px]
        for _ in range(2):  # refine on all inliers
            if len(inl) < 3:
                break
            R1, t1 = kabsch(pts[inl][None], p1[inl][None])
            inl = live[_residual(R1, t1, pts[live], obs[live], focal, baseline, cx, cy)[0] < config.inlier_px]
        if m > 0 and len(inl):
            # spatial coherence (SF2SE3 pairs each SE(3) model with a Euclidean neighbourhood model): keep the
            # inliers connected (8-neighbourhood) to the hypothesis' seed pixel
            grid = np.zeros(H * W, bool)
            grid[idx[inl]] = True
            lab, _ = ndimage.label(grid.reshape(H, W), structure=np.ones((3, 3), bool))
            seed_lab = lab.ravel()[idx[trip[best]]]
            seed_lab = seed_lab[seed_lab > 0]
            inl = inl[np.isin(lab.ravel()[idx[inl]], seed_lab)] if len(seed_lab) else inl[:0]
        if len(inl) < config.min_inliers:
            if m == 0:
                break
            remaining[trip[best]] = False  # do not reseed here
            continue
        remaining[inl] = False
        if m == 0:
            R_bg, t_bg = kabsch(pts[inl][None], p1[inl][None])
            bg_pixels = idx[inl]
        elif np.median(_residual(R_bg, t_bg, pts[inl], obs[inl], focal, baseline, cx, cy)[0]) > config.min_gain * config.inlier_px:
            # SF2SE3 keeps an SE(3) model only when it explains its pixels much better than the background's
            # (``se3filter_prob_gain_min``); here: the background leaves them > min_gain thresholds off
            masks.append(_densify(idx[inl], bg_pixels, all_pts, H, W, focal, config.euclidean_px))
    return masks


def _densify(inlier_pixels: np.ndarray, background_pixels: np.ndarray, points: np.ndarray, H: int, W: int, focal: float,
              radius_px: float) -> np.ndarray:
    """A motion's mask over every pixel (SF2SE3 pairs each SE(3) model with a Euclidean model, so pixels without
    a valid flow or disparity still get a label): the inliers plus each pixel with a depth, not explained by
    the background, whose 3-D point lies within ``radius_px`` pixel footprints (radius_px * z / f) of an inlier."""
    from scipy.spatial import cKDTree

    mask = np.zeros(H * W, bool)
    mask[inlier_pixels] = True
    cand = np.ones(H * W, bool)
    cand[background_pixels] = False
    cand[inlier_pixels] = False
    cand &= points[:, 2] > 0
    ci = np.flatnonzero(cand)
    if len(ci) and len(inlier_pixels):
        dist, _ = cKDTree(points[inlier_pixels]).query(points[ci], k=1)
        mask[ci[dist < radius_px * points[ci, 2] / focal]] = True
    return mask.reshape(H, W)


def run_consistency(masks: list[np.ndarray], runs: int) -> np.ndarray:
    """Official vote: per mask, the mean over its pixels of how many masks (of all runs) cover the pixel,
    divided by ``runs`` (a mask is kept at >= consistency)."""
    if not masks:
        return np.zeros(0)
    stack = np.stack(masks).astype(np.float64)
    counts = stack.sum(0)
    return (stack * counts).sum((1, 2)) / np.maximum(stack.sum((1, 2)), 1) / runs


def matrix_nms(masks: np.ndarray, scores: np.ndarray, sigma: float = 2.0, threshold: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Class-agnostic matrix NMS with a Gaussian kernel (SOLOv2; the official ``mask_matrix_nms``).

    Sorted by score, each mask's score decays by min_i exp(-sigma iou_ij^2) / exp(-sigma comp_i^2) over
    higher-scored masks i, where comp_i is i's own largest IoU with a mask above it. Returns the kept
    indices (into ``masks``, by decayed score, descending) and their decayed scores.
    """
    masks = np.asarray(masks, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    if len(masks) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    order = np.argsort(-scores, kind="stable")
    flat = masks[order].reshape(len(order), -1).astype(np.float64)
    area = flat.sum(1)
    inter = flat @ flat.T
    iou = np.triu(inter / np.maximum(area[:, None] + area[None, :] - inter, 1e-12), 1)
    comp = iou.max(0)
    decay = (np.exp(-sigma * iou**2) / np.exp(-sigma * comp[:, None] ** 2)).min(0)
    new = scores[order] * decay
    keep = new >= threshold
    kept, kscores = order[keep], new[keep]
    o = np.argsort(-kscores, kind="stable")
    return kept[o], kscores[o]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask plus every region of its complement that is not the complement's largest connected
    component (the official rule; we take the largest component of the complement only, where the
    official code can pick the mask itself when the mask is larger than every background region)."""
    mask = np.asarray(mask, bool)
    lab, n = ndimage.label(~mask)
    if n <= 1:
        return mask.copy()
    sizes = np.bincount(lab.ravel())[1:]
    return mask | ((lab > 0) & (lab != 1 + int(np.argmax(sizes))))


def surface_area(mask: np.ndarray, points: np.ndarray) -> float:
    """3-D surface of a mask: Delaunay triangulation of its pixel grid, triangles lifted to ``points``
    (H, W, 3) and their areas summed (official ``omit_small_objects``)."""
    ys, xs = np.nonzero(mask)
    if len(ys) < 3:
        return 0.0
    try:
        tri = Delaunay(np.stack([ys, xs], -1).astype(np.float64)).simplices
    except Exception:  # collinear pixels: no surface
        return 0.0
    p = points[ys, xs][tri]
    return float(0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum())


def postprocess_proposals(masks: np.ndarray, points: np.ndarray, config: MotionConfig = MotionConfig()) -> np.ndarray:
    """Masks kept by NMS -> instance map (H, W) int64: holes filled, split into connected components,
    painted smallest first (so a larger mask wins an overlap, as in the official code), objects under
    ``min_pixels`` px or ``min_area`` of surface dropped, ids renumbered 1..k, border band zeroed."""
    masks = np.asarray(masks, bool)
    H, W = points.shape[:2]
    out = np.zeros((H, W), np.int64)
    for i in np.argsort(masks.reshape(len(masks), -1).sum(1), kind="stable"):
        filled = fill_holes(masks[i])
        if config.split_components:
            lab, n = ndimage.label(filled)
            for c in range(1, n + 1):
                out[lab == c] = out.max() + 1
        else:
            out[filled] = out.max() + 1
    for k in np.unique(out)[1:]:
        m = out == k
        if m.sum() < config.min_pixels or surface_area(m, points) < config.min_area:
            out[m] = 0
    out = relabel(out)
    if config.border:
        out[:, : config.border] = 0
        out[:, W - config.border:] = 0
        out = relabel(out)
    return out


def relabel(instance: np.ndarray) -> np.ndarray:
    """Instance ids renumbered 1..k in order of first appearance by value (0 stays 0)."""
    ids = np.unique(instance)
    ids = ids[ids != 0]
    lut = np.zeros(int(instance.max()) + 1 if instance.size else 1, np.int64)
    lut[ids] = np.arange(1, len(ids) + 1)
    return lut[instance]


def cue_noise(disparity0: np.ndarray, disparity0_right: np.ndarray, flow: np.ndarray, flow_back: np.ndarray,
              valid: np.ndarray) -> float:
    """Robust std (px) of the cues' noise, from their forward-backward disagreement on valid pixels
    (SF2SE3 estimates its flow and disparity likelihood stds the same way): 1.4826 * median / sqrt(2)
    of each disagreement, combined as sqrt(s_flow^2 + s_disp^2). 0 for exact cues."""
    H, W = disparity0.shape
    u, v = _grid(H, W)
    if not np.asarray(valid).any():
        return 0.0
    ef = np.linalg.norm(flow + sample(flow_back, u + flow[0], v + flow[1]), axis=0)[valid]
    ed = np.abs(disparity0 - sample(disparity0_right, u - disparity0, v))[valid]
    s = [1.4826 * float(np.median(e)) / np.sqrt(2) for e in (ef, ed)]
    return float(np.hypot(*s))


def motion_instances(disparity0: np.ndarray, disparity0_right: np.ndarray, disparity1: np.ndarray,
                     disparity1_right: np.ndarray, flow: np.ndarray, flow_back: np.ndarray, focal: float, baseline: float,
                     config: MotionConfig = MotionConfig(), seed: int = 0, valid: np.ndarray | None = None,
                     noise: float | None = None) -> np.ndarray:
    """Instance map (H, W) int64 of moving objects at t: 0 background, 1..k objects (module docstring).

    Disparities are of the left (and right) views at t and t+1, in pixels; ``flow``/``flow_back``
    (2, H, W) the left view's optical flow t -> t+1 and t+1 -> t. ``valid`` overrides the official
    validity mask (e.g. the exact visibility of synthetic data); it is intersected with the depth range.
    ``noise`` overrides the cue-noise estimate (:func:`cue_noise`; 0 for exact cues).
    """
    disparity0 = _check_map("disparity0", disparity0)
    if disparity0.ndim != 2:
        raise ShapeError("disparity0", disparity0.shape, "(H, W)")
    H, W = disparity0.shape
    for name, x in (("disparity0_right", disparity0_right), ("disparity1", disparity1), ("disparity1_right", disparity1_right)):
        _check_map(name, x, (H, W))
    _check_map("flow", flow, (2, H, W))
    _check_map("flow_back", flow_back, (2, H, W))
    if valid is None:
        valid = valid_scene_flow(disparity0, disparity0_right, disparity1, disparity1_right, flow, flow_back, focal, baseline, config)
    else:
        z0 = disparity_to_depth(disparity0, focal, baseline)
        valid = np.asarray(valid, bool) & (z0 >= config.depth_min) & (z0 <= config.depth_max)
    noise = cue_noise(disparity0, disparity0_right, flow, flow_back, valid) if noise is None else float(noise)
    config = dataclasses.replace(config, inlier_px=max(config.inlier_px, config.noise_factor * noise))
    rng = np.random.default_rng(seed)
    masks = []
    for _ in range(config.runs):
        masks += rigid_motion_masks(disparity0, disparity1, flow, valid, focal, baseline, rng, config)
    if not masks:
        return np.zeros((H, W), np.int64)
    score = run_consistency(masks, config.runs)
    keep = score >= config.consistency
    if not keep.any():
        return np.zeros((H, W), np.int64)
    kept = np.stack(masks)[keep]
    nms_idx, _ = matrix_nms(kept, score[keep], config.nms_sigma, config.nms_threshold)
    if len(nms_idx) == 0:
        return np.zeros((H, W), np.int64)
    points, _, _ = scene_flow_points(disparity0, disparity1, flow, focal, baseline)
    return postprocess_proposals(kept[nms_idx], points, config)
