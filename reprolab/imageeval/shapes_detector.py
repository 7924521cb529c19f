"""``ShapesDetector``: a small learned detector for :mod:`reprolab.data.shapes` scenes.

No pretrained detector runs offline on a CPU, so the harness's default detector is trained
here, on the shapes generator's own scenes. Two stages, like a classic proposal + classifier
detector (R-CNN style), sized for 32-96 px images:

1. *Proposals* (:func:`propose_regions`): the background colour is the median of the image
   border; a pixel is foreground when its largest channel difference from the background,
   after a 3x3 median filter (which tames pixel noise but keeps 2-pixel gaps), exceeds ``threshold``; 8-connected
   components larger than ``min_area`` (a fraction of the image) are the proposals, each
   with its box and mask. The median filter also fills the concave corners of thin shapes and cuts their tips
   (a small cross in a 32 px cell, arms 2.5 px wide, becomes an octagon the CNN calls a diamond);
   ``DetectorConfig.refine_mask`` keeps each component but takes as its mask the unfiltered foreground pixels
   within one pixel of it, so a thin shape keeps its outline (off by default: detectors trained before keep
   their masks). A component larger than ``max_area`` is not an object but a
   cluttered background (a generator's noisy canvas reads as one component covering the whole
   image, which the CNN would otherwise name a shape); it is dropped at detection time. Training scenes keep ``gap`` between objects' bounding circles, so
   on clean renders a component is one object (touching objects merge into one proposal).
2. *Classification*: each proposal, masked onto the background and cropped to a square around
   its box, is resized to ``crop`` px and classified by a tiny CNN into the 6 shapes or
   ``"none"`` (a fragment, a blob). Every shape class whose probability is at least
   ``min_score`` becomes a :class:`Detection` with that probability as its score (a real
   detector likewise emits several class hypotheses per region; the harness's thresholds
   then decide).

Training (:meth:`ShapesDetector.train`) draws scenes of ``objects`` random shapes of the given ``sizes``
(:func:`reprolab.data.shapes.random_shape`, placed by rejection, rendered by
:func:`~reprolab.data.shapes.render_scene`), degrades a share of
them (noise, blur, JPEG; :mod:`.degrade`) so the detector also works on imperfect images,
matches each proposal to the object whose mask it covers most (none: class ``"none"``) and fits
the CNN with AdamW. The held-out accuracy (:meth:`ShapesDetector.evaluate`) is measured on
fresh scenes: the share of true objects whose proposal's top class is their shape, and the share of
scenes whose detected shape counts are exactly right. The trained detector is cached as one
checkpoint file (atomic); a second ``train`` with the same path loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.shapes import SHAPES, SIZE_RADIUS, SIZES, ShapeSpec, _grid, _shape_mask, random_shape, render_scene
from ..errors import ConfigError, MalformedFile, NonFiniteError
from ..runtime import load_checkpoint, save_checkpoint, track
from .degrade import degrade
from .detection import Detection, as_hwc_uint8

NONE = "none"


@dataclass(frozen=True)
class Region:
    """One proposal: pixel box (x1, y1, x2, y2) inclusive, and its (H, W) bool mask."""

    box: tuple[int, int, int, int]
    mask: np.ndarray


def background_colour(image: np.ndarray) -> np.ndarray:
    """Median RGB of the one-pixel border, in [0, 1]."""
    a = as_hwc_uint8(image).astype(np.float32) / 255.0
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return np.median(border, axis=0)


def propose_regions(image: np.ndarray, threshold: float = 0.12, min_area: float = 0.006, max_area: float = 1.0,
                    refine: bool = False) -> list[Region]:
    """Connected foreground components of ``image`` (see the module docstring), largest first; components covering more than
    ``max_area`` of the image are left out (1.0: none is). ``refine``: each component's mask becomes the unfiltered
    foreground pixels within one pixel of it (the component itself is still found on the median-filtered image)."""
    from scipy.ndimage import binary_dilation, label, median_filter

    a = as_hwc_uint8(image).astype(np.float32) / 255.0
    H, W = a.shape[:2]
    diff = np.abs(a - background_colour(a)).max(axis=-1)
    fg = median_filter(diff, size=3, mode="nearest") > threshold
    labels, n = label(fg, structure=np.ones((3, 3), dtype=int))
    raw = diff > threshold if refine else None
    regions = []
    for k in range(1, n + 1):
        m = labels == k
        if m.sum() < max(2.0, min_area * H * W) or m.sum() > max_area * H * W:
            continue
        if raw is not None:
            r = raw & binary_dilation(m, structure=np.ones((3, 3), dtype=bool))
            m = r if r.any() else m
        ys, xs = np.nonzero(m)
        regions.append(Region((int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), m))
    regions.sort(key=lambda r: -int(r.mask.sum()))
    return regions


def region_crop(image: np.ndarray, region: Region, size: int) -> torch.Tensor:
    """(4, size, size): the region masked onto the background, square-cropped, resized; minus background; plus the mask."""
    a = as_hwc_uint8(image).astype(np.float32) / 255.0
    bg = background_colour(a)
    H, W = a.shape[:2]
    x1, y1, x2, y2 = region.box
    side = max(x2 - x1, y2 - y1) + 3
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    lo_x, lo_y = int(round(cx - side / 2)), int(round(cy - side / 2))
    canvas = np.broadcast_to(bg, (side, side, 3)).copy()
    mcanvas = np.zeros((side, side), dtype=np.float32)
    sx0, sy0 = max(lo_x, 0), max(lo_y, 0)
    sx1, sy1 = min(lo_x + side, W), min(lo_y + side, H)
    sub = np.where(region.mask[sy0:sy1, sx0:sx1, None], a[sy0:sy1, sx0:sx1], bg)
    canvas[sy0 - lo_y:sy1 - lo_y, sx0 - lo_x:sx1 - lo_x] = sub
    mcanvas[sy0 - lo_y:sy1 - lo_y, sx0 - lo_x:sx1 - lo_x] = region.mask[sy0:sy1, sx0:sx1]
    x = torch.from_numpy(np.concatenate([(canvas - bg).transpose(2, 0, 1), mcanvas[None]], 0)).float()
    return torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]


class _CropNet(nn.Module):
    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(4, w, 3, padding=1), nn.GELU(), nn.Conv2d(w, w, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.GELU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.head = nn.Linear(8 * w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class DetectorConfig:
    image_size: int = 32  # side of the training scenes (the detector works on other sizes too)
    objects: tuple[int, int] = (1, 4)  # objects per training scene
    scenes: int = 1500  # training scenes
    steps: int = 600  # AdamW steps
    batch: int = 128
    lr: float = 3e-3
    crop: int = 20  # classifier input side
    width: int = 32  # CNN channels (first level)
    degraded_share: float = 0.5  # share of training scenes degraded (noise / blur / JPEG)
    texture: bool = False  # draw textured objects too
    sizes: tuple[str, ...] = SIZES  # object sizes drawn
    gap: float = 0.06  # least distance between objects' bounding circles (fraction of the side)
    threshold: float = 0.12  # proposal threshold on the background difference
    min_area: float = 0.006  # smallest proposal, as a fraction of the image area
    max_area: float = 1.0  # largest proposal at detection time (e.g. 0.5: a component over half the image is background clutter)
    min_score: float = 0.05  # class hypotheses below this probability are not emitted
    refine_mask: bool = False  # proposals' masks: the unfiltered foreground within 1 px of each component (thin shapes keep their outline)
    classes: tuple[str, ...] = field(default=SHAPES)

    def __post_init__(self) -> None:
        if self.image_size < 16:
            raise ConfigError("image_size", self.image_size, "an integer >= 16")
        if self.scenes < 1 or self.steps < 0:
            raise ConfigError("scenes/steps", (self.scenes, self.steps), "scenes >= 1 and steps >= 0")
        if not self.min_area < self.max_area <= 1.0:
            raise ConfigError("max_area", self.max_area, f"a fraction of the image area in ({self.min_area}, 1]")


def _scene_masks(objects: list[ShapeSpec], image_size: int) -> list[np.ndarray]:
    xx, yy = _grid(image_size)
    s = xx.shape[0] // image_size
    return [_shape_mask(o, xx, yy).reshape(image_size, s, image_size, s).mean(axis=(1, 3)) > 0.25 for o in objects]


def labelled_regions(image: np.ndarray, objects: list[ShapeSpec], image_size: int, threshold: float, min_area: float,
                     refine: bool = False) -> list[tuple[Region, int | None]]:
    """Proposals of ``image`` with the index of the true object each covers most (None: no object)."""
    masks = _scene_masks(objects, image_size)
    out = []
    for r in propose_regions(image, threshold, min_area, refine=refine):
        overlaps = [int((r.mask & m).sum()) for m in masks]
        best = int(np.argmax(overlaps)) if overlaps else -1
        out.append((r, best if best >= 0 and overlaps[best] >= 0.5 * min(r.mask.sum(), masks[best].sum()) else None))
    return out


_DEGRADATIONS = ("noise:0.05", "blur:0.7", "jpeg:50", "noise:0.03", "blur:0.5", "jpeg:70")


def random_scene(rng: np.random.Generator, k: int, sizes: Sequence[str] = SIZES, gap: float = 0.06, texture: bool = False,
                 max_tries: int = 100) -> list[ShapeSpec]:
    """Up to ``k`` random non-overlapping shapes (bounding circles ``gap`` apart), placed by rejection."""
    placed: list[ShapeSpec] = []
    for _ in range(k):
        for _ in range(max_tries):
            cand = random_shape(rng, texture=texture, size=sizes[int(rng.integers(len(sizes)))])
            rc = SIZE_RADIUS[cand.size]
            if all((cand.cx - o.cx) ** 2 + (cand.cy - o.cy) ** 2 >= (rc + SIZE_RADIUS[o.size] + gap) ** 2 for o in placed):
                placed.append(cand)
                break
    return placed


def _scenes(config: DetectorConfig, n: int, seed: int) -> tuple[list[np.ndarray], list[list[ShapeSpec]]]:
    rng = np.random.default_rng(seed)
    images, objects = [], []
    for i in range(n):
        objs = random_scene(rng, int(rng.integers(config.objects[0], config.objects[1] + 1)), config.sizes, config.gap, config.texture)
        u = as_hwc_uint8(render_scene(objs, config.image_size))
        if rng.random() < config.degraded_share:
            u = degrade(u, _DEGRADATIONS[int(rng.integers(len(_DEGRADATIONS)))], seed=seed * 100003 + i)
        images.append(u)
        objects.append(objs)
    return images, objects


class ShapesDetector:
    """Proposals + a tiny CNN over the 6 shapes (see the module docstring). Implements :class:`Detector`."""

    def __init__(self, config: DetectorConfig = DetectorConfig(), net: nn.Module | None = None, held_out: dict[str, float] | None = None):
        self.config = config
        self.classes = tuple(config.classes) + (NONE,)
        self.net = net if net is not None else _CropNet(len(self.classes), config.width)
        self.net.eval()
        self.held_out = held_out or {}

    # -------------------------------------------------------------- inference
    def propose(self, image: Any) -> list[Region]:
        """:func:`propose_regions` with this detector's settings (threshold, areas, mask refinement)."""
        c = self.config
        return propose_regions(image, c.threshold, c.min_area, c.max_area, refine=c.refine_mask)

    @torch.no_grad()
    def detect(self, image: Any, image_id: Any = None) -> list[Detection]:
        img = as_hwc_uint8(image)
        regions = self.propose(img)
        if not regions:
            return []
        device = next(self.net.parameters()).device
        x = torch.stack([region_crop(img, r, self.config.crop) for r in regions]).to(device)
        probs = torch.softmax(self.net(x), dim=-1).cpu().numpy()
        if not np.all(np.isfinite(probs)):
            raise NonFiniteError("the shapes detector's class probabilities", "NaN", fix="retrain the detector (its checkpoint is corrupt)")
        dets = []
        for r, p in zip(regions, probs):
            for k, name in enumerate(self.config.classes):
                if p[k] >= self.config.min_score:
                    dets.append(Detection(name, float(p[k]), tuple(float(v) for v in r.box), r.mask))
        dets.sort(key=lambda d: -d.score)
        return dets

    # -------------------------------------------------------------- training
    def _examples(self, images: list[np.ndarray], objects: list[list[ShapeSpec]]) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        none = len(self.classes) - 1
        for img, objs in zip(images, objects):
            for r, idx in labelled_regions(img, objs, self.config.image_size, self.config.threshold, self.config.min_area,
                                             refine=self.config.refine_mask):
                xs.append(region_crop(img, r, self.config.crop))
                ys.append(none if idx is None else self.config.classes.index(objs[idx].shape))
        return torch.stack(xs), torch.tensor(ys, dtype=torch.long)

    @classmethod
    def train(cls, config: DetectorConfig = DetectorConfig(), *, checkpoint: str | Path | None = None, seed: int = 0,
              eval_scenes: int = 300, device: torch.device | str | None = None) -> ShapesDetector:
        """Train on generated scenes (or load ``checkpoint`` if it holds a detector of this config)."""
        if checkpoint is not None:
            found = cls.load(checkpoint, device=device, missing_ok=True)
            if found is not None and found.config == config:
                return found
        torch.manual_seed(seed)
        det = cls(config)
        if device is not None:
            det.net.to(device)
        dev = next(det.net.parameters()).device
        x, y = det._examples(*_scenes(config, config.scenes, seed))
        opt = torch.optim.AdamW(det.net.parameters(), lr=config.lr, weight_decay=1e-4)
        gen = torch.Generator().manual_seed(seed)
        det.net.train()
        for step in track(range(config.steps), "training the shapes detector", total=config.steps):
            idx = torch.randint(0, len(x), (config.batch,), generator=gen)
            xb = x[idx]
            if torch.rand((), generator=gen) < 0.5:  # every shape is symmetric under a left-right flip
                xb = xb.flip(-1)
            for g in opt.param_groups:
                g["lr"] = config.lr * 0.5 * (1 + np.cos(np.pi * step / max(1, config.steps)))
            loss = torch.nn.functional.cross_entropy(det.net(xb.to(dev)), y[idx].to(dev))
            if not torch.isfinite(loss):
                raise NonFiniteError(f"the detector loss at step {step}", float(loss), fix="lower DetectorConfig.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        det.net.eval()
        det.held_out = det.evaluate(eval_scenes, seed=seed + 7919) if eval_scenes else {}
        if checkpoint is not None:
            det.save(checkpoint)
        return det

    def evaluate(self, n_scenes: int = 300, seed: int = 1) -> dict[str, float]:
        """Held-out accuracy on fresh scenes (clean and degraded as in training)."""
        images, objects = _scenes(self.config, n_scenes, seed)
        hit = total = exact = 0
        for img, objs in zip(images, objects):
            dets = self.detect(img)
            top: dict[tuple, Detection] = {}
            for d in dets:  # top class per region (regions are identified by their box)
                if d.box not in top or d.score > top[d.box].score:
                    top[d.box] = d
            masks = _scene_masks(objs, self.config.image_size)
            for o, m in zip(objs, masks):
                total += 1
                hit += any(d.label == o.shape and d.mask is not None and (d.mask & m).sum() >= 0.5 * m.sum() for d in top.values())
            want = sorted(o.shape for o in objs)
            got = sorted(d.label for d in top.values() if d.score > 0.3)
            exact += want == got
        return {"object_accuracy": hit / max(1, total), "scene_count_exact": exact / max(1, n_scenes), "objects": float(total), "scenes": float(n_scenes)}

    # -------------------------------------------------------------- checkpoint
    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, {"kind": "ShapesDetector", "config": asdict(self.config), "model": self.net.state_dict(), "held_out": self.held_out})

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str | None = None, missing_ok: bool = False) -> ShapesDetector | None:
        try:
            state = load_checkpoint(path)
        except Exception as e:  # a truncated or foreign file
            raise MalformedFile(str(path), f"not a readable detector checkpoint ({type(e).__name__})", fix="delete it and train again") from None
        if state is None:
            if missing_ok:
                return None
            raise MalformedFile(str(path), "no such detector checkpoint", fix="train one with ShapesDetector.train(checkpoint=...)")
        if not isinstance(state, dict) or state.get("kind") != "ShapesDetector":
            raise MalformedFile(str(path), "not a ShapesDetector checkpoint", fix="delete it and train again")
        cfg = dict(state["config"])
        for k in ("objects", "classes", "sizes"):
            cfg[k] = tuple(cfg[k])
        det = cls(DetectorConfig(**cfg), held_out=state.get("held_out"))
        det.net.load_state_dict(state["model"])
        if device is not None:
            det.net.to(device)
        det.net.eval()
        return det
