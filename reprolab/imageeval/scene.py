"""A scene reader: image -> list of objects (class, colour, confidence, box, centre).

``read_scene`` runs a :class:`~.detection.Detector`, keeps the most confident class per region
(detections sharing a box are hypotheses for one region), drops those at or below
``threshold``, and names each object's colour with a colour classifier. Centres are in [0, 1]
image coordinates (x right, y down), like :class:`reprolab.data.shapes.ShapeSpec`, so a read scene can be
compared with the specs it was rendered from (:func:`scene_matches`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


from .colour import ColourClassifier, MaskedCropColour
from .detection import Detection, Detector, as_hwc_uint8


@dataclass(frozen=True)
class SceneObject:
    label: str
    colour: str | None
    score: float
    box: tuple[float, float, float, float]
    cx: float  # centre, fraction of the width
    cy: float  # centre, fraction of the height


def read_scene(image: Any, detector: Detector, colour: ColourClassifier | None = None, threshold: float = 0.3) -> list[SceneObject]:
    """Objects in ``image``, most confident first (see the module docstring)."""
    img = as_hwc_uint8(image)
    H, W = img.shape[:2]
    best: dict[tuple, Detection] = {}
    for d in detector.detect(img):
        key = tuple(d.box)
        if d.score > threshold and (key not in best or d.score > best[key].score):
            best[key] = d
    dets = sorted(best.values(), key=lambda d: -d.score)
    colour = colour if colour is not None else MaskedCropColour()
    names: list[str | None] = [None] * len(dets)
    for i, d in enumerate(dets):
        names[i] = colour.classify(img, [d], d.label)[0]
    out = []
    for d, c in zip(dets, names):
        cx, cy = d.centre
        out.append(SceneObject(d.label, c, d.score, d.box, (cx + 0.5) / W, (cy + 0.5) / H))
    return out


def scene_matches(read: Sequence[SceneObject], truth: Sequence[Any], attributes: Sequence[str] = ("shape", "colour")) -> bool:
    """Whether ``read`` holds the same multiset of (shape, colour) as ``truth`` (objects with ``shape``/``colour`` attributes)."""
    def key(o: Any, from_truth: bool) -> tuple:
        vals = []
        for a in attributes:
            vals.append(getattr(o, a) if from_truth or a != "shape" else o.label)
        return tuple(vals)

    return sorted(key(o, True) for o in truth) == sorted(key(o, False) for o in read)


def object_counts(read: Sequence[SceneObject]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in read:
        out[o.label] = out.get(o.label, 0) + 1
    return out


__all__ = ["SceneObject", "object_counts", "read_scene", "scene_matches"]
