"""Reading a RISE-shapes image back into a :class:`~.rise_shapes.GridScene`, with the image-evaluation room's
scene reader (:func:`reprolab.imageeval.read_scene` on a :class:`reprolab.imageeval.ShapesDetector` and
:class:`reprolab.imageeval.MaskedCropColour`), one cell at a time.

Each cell crop is read on its own; its most confident object above ``threshold`` is the cell's content
(none: empty). The object's size is the one of small / medium / large whose rendered area, for that shape
at the cell's pixel size, is nearest (in log) to the object's mask area. A cell holding more than one
confident object, or a proposal the detector calls ``none``, is *unreadable* (reported, used by the
exact judge's plausibility). The detector is trained on single objects of every size in cells of the
grid's pixel size (``reader_config``), cached as one checkpoint. Its proposals' masks are refined
(``DetectorConfig.refine_mask``): the proposal stage's 3x3 median filter turned a small cross (arms 2.5 px wide in a
32 px cell) into an octagon that the CNN read as a diamond, on every colour (study v1's oracle misses). Colours come
from each mask's solid pixels (``MaskedCropColour(core=0.5)``): a refined mask also holds the anti-aliased rim, which
outnumbers a small square's solid pixels and dims the median colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ...data.shapes import SHAPES, SIZES, ShapeSpec, render_scene
from ...errors import ShapeError
from ...imageeval import DetectorConfig, MaskedCropColour, ShapesDetector, as_hwc_uint8, propose_regions, read_scene
from .rise_shapes import CELL_PX, Cell, GridScene


def reader_config(cell_px: int = CELL_PX, scenes: int = 1200, steps: int = 500) -> DetectorConfig:
    """The detector a grid reader needs: one object per training image of the cell's size, every size drawn."""
    return DetectorConfig(image_size=cell_px, objects=(1, 1), scenes=scenes, steps=steps, sizes=SIZES, refine_mask=True)


@lru_cache(maxsize=8)
def _areas(cell_px: int, refine: bool = True) -> dict[tuple[str, str], float]:
    out = {}
    for shape in SHAPES:
        for size in SIZES:
            img = render_scene([ShapeSpec(shape, "white", size, 0.5, 0.5)], cell_px)
            regions = propose_regions(as_hwc_uint8(img), refine=refine)
            out[(shape, size)] = float(regions[0].mask.sum()) if regions else 1.0
    return out


@dataclass
class GridReading:
    scene: GridScene
    unreadable: int  # cells with several objects or an object the detector could not name


class GridReader:
    def __init__(self, detector: ShapesDetector, cell_px: int = CELL_PX, threshold: float = 0.3):
        self.detector = detector
        self.cell_px = cell_px
        self.threshold = threshold
        self.colour = MaskedCropColour(core=0.5)  # the solid pixels: the refined masks hold the anti-aliased rim too

    @classmethod
    def train(cls, checkpoint: str | Path | None = None, cell_px: int = CELL_PX, scenes: int = 1200, steps: int = 500,
              seed: int = 0) -> GridReader:
        det = ShapesDetector.train(reader_config(cell_px, scenes, steps), checkpoint=checkpoint, seed=seed,
                                   eval_scenes=max(10, min(100, scenes // 10)))
        return cls(det, cell_px)

    def read(self, image: Any, rows: int, cols: int) -> GridReading:
        img = as_hwc_uint8(image)
        if img.shape[:2] != (rows * self.cell_px, cols * self.cell_px):
            raise ShapeError("the edited image", img.shape, f"({rows * self.cell_px}, {cols * self.cell_px}, 3): a {rows}x{cols} grid "
                                                            f"of {self.cell_px} px cells")
        areas = _areas(self.cell_px, self.detector.config.refine_mask)
        cells, bad = [], 0
        for r in range(rows):
            row = []
            for c in range(cols):
                crop = img[r * self.cell_px:(r + 1) * self.cell_px, c * self.cell_px:(c + 1) * self.cell_px]
                objs = read_scene(crop, self.detector, self.colour, threshold=self.threshold)
                regions = self.detector.propose(crop)
                if len(objs) != 1 or len(regions) > 1:
                    bad += int(len(objs) > 1 or len(regions) > len(objs))
                    if not objs:
                        row.append(None)
                        continue
                o = objs[0]
                region = max(regions, key=lambda g: int((g.mask[int(o.cy * self.cell_px), int(o.cx * self.cell_px)]))) if regions else None
                area = float(region.mask.sum()) if region is not None else 1.0
                size = min(SIZES, key=lambda s: abs(np.log(max(area, 1.0) / areas[(o.label, s)])))
                row.append(Cell(o.label, o.colour or "white", size))
            cells.append(tuple(row))
        return GridReading(GridScene(tuple(cells)), bad)


__all__ = ["GridReader", "GridReading", "reader_config"]
