"""Colour classifiers for detected objects: a masked-crop palette one, and GenEval's zero-shot CLIP path.

Both implement ``classify(image, detections, classname) -> list[str]`` (one colour name per
detection, in order), which is what the GenEval harness calls for a prompt's ``color`` clause.

- :class:`MaskedCropColour`: the median RGB of the detection's mask (or, without a mask, of the
  box pixels that differ from the image border's colour), nearest colour of a palette
  (default: :data:`reprolab.data.shapes.COLOUR_RGB`). Exact on flat-coloured renders, cheap.
  ``core`` keeps only the mask's pixels that differ from the background by at least that share of
  the mask's largest difference: a mask that holds an object's anti-aliased rim (a small object's
  rim can outnumber its solid pixels) otherwise has a dimmed median, nearer another palette colour.
- :class:`ClipZeroShotColour`: GenEval's path (``evaluation/evaluate_images.py``) on any
  ``transformers.CLIPModel``: per class, a zero-shot classifier over the colour names from
  the three templates ``"a photo of a {c} {cls}"``, ``"a photo of a {c}-colored {cls}"``,
  ``"a photo of a {c} object"`` (each text embedding L2-normalised, averaged over templates,
  normalised again, as clip_benchmark's ``zero_shot_classifier`` does); each object is pasted
  through its mask onto a ``#999`` background (``Image.composite``), cropped to its box,
  resized (bicubic, shorter side) and centre-cropped to the model's input size, normalised
  with CLIP's mean/std, and assigned the colour of highest cosine similarity.
  GenEval's colours are :data:`GENEVAL_COLOURS`; its model is CLIP ViT-L/14 (OpenAI), which is
  not offline here, so any ``CLIPModel`` is accepted (the tests use a tiny random one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import ConfigError, NonFiniteError, ShapeError
from .detection import Detection, as_hwc_uint8

GENEVAL_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
GENEVAL_TEMPLATES = ("a photo of a {c} {cls}", "a photo of a {c}-colored {cls}", "a photo of a {c} object")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ColourClassifier(Protocol):
    def classify(self, image: np.ndarray, detections: Sequence[Detection], classname: str) -> list[str]: ...


def _palette() -> dict[str, tuple[float, float, float]]:
    from ..data.shapes import COLOUR_RGB

    return dict(COLOUR_RGB)


class MaskedCropColour:
    """Nearest palette colour to the median RGB of each object's pixels."""

    def __init__(self, palette: Mapping[str, Sequence[float]] | None = None, background_threshold: float = 0.12, core: float = 0.0):
        pal = dict(palette) if palette is not None else _palette()
        if not pal:
            raise ConfigError("palette", pal, "a non-empty mapping colour name -> (r, g, b) in [0, 1]")
        self.names = tuple(pal)
        self.rgb = np.asarray([pal[n] for n in self.names], dtype=np.float64)
        if self.rgb.shape[1:] != (3,):
            raise ShapeError("the palette", self.rgb.shape, "(n_colours, 3) RGB triples")
        self.background_threshold = background_threshold
        if not 0.0 <= core < 1.0:
            raise ConfigError("core", core, "a share in [0, 1): 0 keeps every pixel of the mask")
        self.core = float(core)

    def pixels(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """(n, 3) RGB in [0, 1] of the object's pixels."""
        from .shapes_detector import background_colour

        a = as_hwc_uint8(image).astype(np.float64) / 255.0
        if det.mask is not None:
            if det.mask.shape != a.shape[:2]:
                raise ShapeError(f"the mask of {det.label!r}", det.mask.shape, f"the image's (H, W) = {a.shape[:2]}")
            px = a[det.mask]
            if self.core > 0 and len(px):
                diff = np.abs(px - background_colour(a)).max(axis=1)
                px = px[diff >= self.core * diff.max()]
        else:
            x1, y1, x2, y2 = (int(round(v)) for v in det.box)
            box = a[max(y1, 0):y2 + 1, max(x1, 0):x2 + 1].reshape(-1, 3)
            bg = background_colour(a)
            keep = np.abs(box - bg).max(axis=1) > self.background_threshold
            px = box[keep] if keep.any() else box
        return px

    def scores(self, image: np.ndarray, det: Detection) -> np.ndarray:
        """Negative distance of the median colour to each palette colour (higher = closer)."""
        px = self.pixels(image, det)
        if len(px) == 0:
            return np.full(len(self.names), -np.inf)
        med = np.median(px, axis=0)
        return -np.linalg.norm(self.rgb - med, axis=1)

    def classify(self, image: np.ndarray, detections: Sequence[Detection], classname: str = "") -> list[str]:
        return [self.names[int(np.argmax(self.scores(image, d)))] for d in detections]


def geneval_crop(image: np.ndarray, det: Detection, bgcolor: str = "#999", crop: bool = True):
    """GenEval's crop: the object through its mask onto a flat ``bgcolor`` image, cut to its box (a PIL image)."""
    from PIL import Image

    img = Image.fromarray(as_hwc_uint8(image))
    if det.mask is not None:
        if tuple(det.mask.shape) != (img.size[1], img.size[0]):
            raise ShapeError(f"the mask of {det.label!r}", det.mask.shape, f"the image's (H, W) = {(img.size[1], img.size[0])}")
        blank = img.copy() if bgcolor == "original" else Image.new("RGB", img.size, color=bgcolor)
        img = Image.composite(img, blank, Image.fromarray(det.mask.astype(np.uint8) * 255))
    if crop:
        img = img.crop(tuple(det.box[:4]))
    return img


def clip_preprocess(images: Sequence[Any], size: int) -> torch.Tensor:
    """CLIP's transform: bicubic resize of the shorter side to ``size``, centre crop, mean/std normalise."""
    out = []
    for im in images:
        x = torch.from_numpy(as_hwc_uint8(im).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        h, w = x.shape[-2:]
        s = size / min(h, w)
        nh, nw = max(size, round(h * s)), max(size, round(w * s))
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (nh - size) // 2, (nw - size) // 2
        x = x[..., top:top + size, left:left + size]
        out.append((x[0] - torch.tensor(CLIP_MEAN)[:, None, None]) / torch.tensor(CLIP_STD)[:, None, None])
    return torch.stack(out)


class ClipZeroShotColour:
    """GenEval's zero-shot colour classifier on a ``transformers.CLIPModel`` (see the module docstring).

    ``tokenizer``: a callable ``tokenizer(texts, padding=True, return_tensors="pt")`` returning
    ``input_ids`` (and ``attention_mask``), e.g. a ``CLIPTokenizer``.
    """

    def __init__(self, model: Any, tokenizer: Callable[..., Mapping[str, torch.Tensor]], colours: Sequence[str] = GENEVAL_COLOURS,
                 templates: Sequence[str] = GENEVAL_TEMPLATES, bgcolor: str = "#999", crop: bool = True, batch_size: int = 16):
        if not colours:
            raise ConfigError("colours", colours, "at least one colour name")
        for t in templates:
            if "{c}" not in t:
                raise ConfigError("templates", t, "templates with a {c} slot (and optionally {cls})")
        self.model, self.tokenizer = model, tokenizer
        self.colours, self.templates = tuple(colours), tuple(templates)
        self.bgcolor, self.crop, self.batch_size = bgcolor, crop, batch_size
        self._classifiers: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _features(self, out: Any) -> torch.Tensor:
        return out.pooler_output if hasattr(out, "pooler_output") and not isinstance(out, torch.Tensor) else out

    @torch.no_grad()
    def classifier(self, classname: str) -> torch.Tensor:
        """(D, n_colours): normalised mean template embedding per colour (cached per class)."""
        if classname not in self._classifiers:
            weights = []
            for c in self.colours:
                texts = [t.format(c=c, cls=classname) for t in self.templates]
                tok = self.tokenizer(texts, padding=True, return_tensors="pt")
                tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
                emb = self._features(self.model.get_text_features(**tok))
                emb = emb / emb.norm(dim=-1, keepdim=True)
                mean = emb.mean(0)
                weights.append(mean / mean.norm())
            self._classifiers[classname] = torch.stack(weights, dim=1)
        return self._classifiers[classname]

    @torch.no_grad()
    def logits(self, image: np.ndarray, detections: Sequence[Detection], classname: str) -> torch.Tensor:
        """(n_detections, n_colours) cosine similarities x 100."""
        if not detections:
            return torch.zeros(0, len(self.colours))
        size = int(self.model.config.vision_config.image_size)
        crops = [geneval_crop(image, d, self.bgcolor, self.crop) for d in detections]
        w = self.classifier(classname)
        rows = []
        for i in range(0, len(crops), self.batch_size):
            x = clip_preprocess(crops[i:i + self.batch_size], size).to(self.device)
            f = self._features(self.model.get_image_features(pixel_values=x))
            f = f / f.norm(dim=-1, keepdim=True)
            rows.append(100.0 * f @ w)
        logits = torch.cat(rows).cpu()
        if not torch.isfinite(logits).all():
            raise NonFiniteError("the CLIP colour logits", "NaN/inf", fix="check the CLIP model's weights")
        return logits

    def classify(self, image: np.ndarray, detections: Sequence[Detection], classname: str) -> list[str]:
        return [self.colours[int(i)] for i in self.logits(image, detections, classname).argmax(1)]
