"""Image evaluation: detections, detectors, colour classifiers, a scene reader, bootstrap helpers.

A shared room for papers that score generated or edited images by what is in them (GenEval-style
harnesses, RISEBench, ...). It imports nothing from ``reprolab.papers``.

    from reprolab.imageeval import ShapesDetector, MaskedCropColour, read_scene
    det = ShapesDetector.train(checkpoint="runs/cache/shapes_detector.pt")   # trains once, then loads
    objects = read_scene(image, det, MaskedCropColour())   # [SceneObject(label="circle", colour="red", ...)]

- :mod:`.detection`: :class:`Detection`, the :class:`Detector` protocol, :class:`CocoResultsDetector`
  (COCO detection-results JSON), :func:`as_hwc_uint8`, :func:`box_iou`;
- :mod:`.shapes_detector`: :class:`ShapesDetector`, trained on :mod:`reprolab.data.shapes` scenes;
- :mod:`.colour`: :class:`MaskedCropColour` and GenEval's zero-shot :class:`ClipZeroShotColour`;
- :mod:`.scene`: :func:`read_scene`; :mod:`.degrade`: noise / blur / JPEG;
- :mod:`.bootstrap`: :func:`bootstrap_ci`, :func:`paired_bootstrap`, :func:`resample_share`.
"""

from .bootstrap import bootstrap_ci, paired_bootstrap, resample_share
from .colour import GENEVAL_COLOURS, GENEVAL_TEMPLATES, ClipZeroShotColour, ColourClassifier, MaskedCropColour, geneval_crop
from .degrade import degrade
from .detection import CocoResultsDetector, Detection, Detector, as_hwc_uint8, box_iou, write_coco_results
from .scene import SceneObject, read_scene, scene_matches
from .shapes_detector import DetectorConfig, ShapesDetector, propose_regions

__all__ = [
    "ClipZeroShotColour", "CocoResultsDetector", "ColourClassifier", "Detection", "Detector", "DetectorConfig", "GENEVAL_COLOURS",
    "GENEVAL_TEMPLATES", "MaskedCropColour", "SceneObject", "ShapesDetector", "as_hwc_uint8", "bootstrap_ci", "box_iou", "degrade",
    "geneval_crop", "paired_bootstrap", "propose_regions", "read_scene", "resample_share", "scene_matches", "write_coco_results",
]
