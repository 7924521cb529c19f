"""Detections, the detector protocol, image conversion, and the COCO-results adapter.

A :class:`Detection` is one object hypothesis: a class name, a confidence, a pixel box
``(x1, y1, x2, y2)`` (x right, y down, inclusive corners as mmdet writes them) and an optional
boolean mask of the image's size. A *detector* is anything with
``detect(image, image_id=None) -> list[Detection]`` (:class:`Detector`); the image is an
(H, W, 3) uint8 array (:func:`as_hwc_uint8` converts PIL images and (3, H, W) float tensors).

:class:`CocoResultsDetector` replays a COCO detection-results file (the list of
``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` that every COCO-evaluated
detector writes), so detections computed elsewhere (a GPU box, mmdet, ultralytics) plug into
the same harness. COCO ``bbox`` is ``[x, y, width, height]``; it is converted to corners.
Segmentations in the file are not decoded (no pycocotools): their detections carry no mask,
and a colour check then uses the box crop, as GenEval does when its detector gives no mask.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from ..runtime import readable_file


@dataclass(frozen=True)
class Detection:
    """One detected object: class name, confidence in [0, 1], pixel box (x1, y1, x2, y2), optional mask."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None  # (H, W) bool, or None

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ShapeError(f"the box of {self.label!r}", tuple(self.box), "(x1, y1, x2, y2)")
        if not np.isfinite(self.score) or not all(np.isfinite(b) for b in self.box):
            raise NonFiniteError(f"the detection of {self.label!r}", (self.score, self.box), fix="drop detections with NaN/inf scores or boxes")
        if self.box[2] < self.box[0] or self.box[3] < self.box[1]:
            raise ShapeError(f"the box of {self.label!r}", tuple(self.box), "(x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)

    def row(self) -> list[float]:
        """The official results' ``details`` row: ``[x1, y1, x2, y2, score]``."""
        return [float(v) for v in self.box] + [float(self.score)]


@runtime_checkable
class Detector(Protocol):
    """Anything that finds objects in an (H, W, 3) uint8 image."""

    def detect(self, image: np.ndarray, image_id: Any = None) -> list[Detection]: ...


def as_hwc_uint8(image: Any) -> np.ndarray:
    """An (H, W, 3) uint8 array from a PIL image, an (H, W, 3) array, or a (3, H, W) float array/tensor in [0, 1]."""
    if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[-1] != 3:
        a = a.transpose(1, 2, 0)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ShapeError("the image", tuple(np.shape(image)), "(H, W, 3) uint8, (3, H, W) float in [0, 1], or a PIL image")
    if a.dtype == np.uint8:
        return a
    if not np.all(np.isfinite(a)):
        raise NonFiniteError("the image", "NaN/inf pixels", fix="clamp or drop the image before evaluation")
    return (np.clip(a.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two inclusive pixel boxes, with GenEval's ``+1`` area convention."""
    def area(x1: float, y1: float, x2: float, y2: float) -> float:
        return max(x2 - x1 + 1, 0) * max(y2 - y1 + 1, 0)

    inter = area(max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    union = area(*a[:4]) + area(*b[:4]) - inter
    return inter / union if union else 0.0


class CocoResultsDetector:
    """Detections read from a COCO results JSON, looked up by image id.

    ``categories`` maps COCO ``category_id`` to a class name (e.g. from the annotation file's
    ``categories`` list); ``image_ids`` maps whatever the caller
    passes as ``image_id`` (a file name, say) to the file's integer ids, or None to use it as is.
    """

    def __init__(self, path: str | Path | list[dict], categories: Mapping[int, str], image_ids: Mapping[Any, int] | None = None):
        if isinstance(path, (str, Path)):
            p = readable_file(path, "the COCO results file", "pass the JSON your detector wrote (a list of {image_id, category_id, bbox, score})")
            try:
                rows = json.loads(p.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise MalformedFile(str(p), f"not JSON ({e})") from None
            where = str(p)
        else:
            rows, where = path, "the COCO results"
        if not isinstance(rows, list):
            raise MalformedFile(where, f"a {type(rows).__name__} at top level", fix="a COCO results file is a JSON list of detections")
        self.categories = {int(k): str(v) for k, v in categories.items()}
        self.image_ids = dict(image_ids) if image_ids is not None else None
        self._by_image: dict[int, list[Detection]] = {}
        for i, r in enumerate(rows):
            try:
                x, y, w, h = (float(v) for v in r["bbox"])
                cat, score, img = int(r["category_id"]), float(r["score"]), int(r["image_id"])
            except (KeyError, TypeError, ValueError) as e:
                raise MalformedFile(where, f"entry {i} lacks a valid {e} (needs image_id, category_id, bbox [x, y, w, h], score)") from None
            if cat not in self.categories:
                raise ConfigError("category_id", cat, f"one of the categories given ({sorted(self.categories)[:10]}...)")
            self._by_image.setdefault(img, []).append(Detection(self.categories[cat], score, (x, y, x + w, y + h)))

    def detect(self, image: np.ndarray, image_id: Any = None) -> list[Detection]:
        if image_id is None:
            raise ConfigError("image_id", None, "the image's id (or a key of image_ids) for a COCO results file")
        key = self.image_ids[image_id] if self.image_ids is not None and image_id in self.image_ids else image_id
        try:
            key = int(key)
        except (TypeError, ValueError):
            raise ConfigError("image_id", image_id, "an integer COCO image id, or a key of the image_ids mapping") from None
        return list(self._by_image.get(key, []))


def write_coco_results(path: str | Path, detections: Mapping[int, Sequence[Detection]], categories: Mapping[str, int]) -> Path:
    """Write detections per image id as a COCO results JSON (atomic)."""
    from ..runtime import atomic_write_text

    rows = []
    for img, dets in detections.items():
        for d in dets:
            x1, y1, x2, y2 = d.box
            rows.append({"image_id": int(img), "category_id": int(categories[d.label]), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(d.score)})
    return atomic_write_text(path, json.dumps(rows))
