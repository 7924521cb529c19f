"""Synthetic shapes images with known attributes: shape, colour, size, position, texture.

A seeded generator of small RGB images whose every pixel comes from a known list of
objects, so any claim about "what a neuron sees" can be checked against ground truth.

    from reprolab.data.shapes import ShapesDataset, render_scene, ShapeSpec
    ds = ShapesDataset.generate(1000, image_size=64, seed=0)          # one object per image
    ds.images            # (N, 3, H, W) float32 in [0, 1]   (ds.as_torch() for a tensor)
    ds.labels["colour"]  # (N,) int codes; ds.vocab["colour"][code] is the name ("red", ...)
    scenes = SceneDataset.generate(200, image_size=96, objects=(2, 4), seed=0)  # multi-object
    scenes.objects[i]    # list[ShapeSpec] of image i, in drawing order (later on top)

Attributes (vocabularies are module constants, so codes are stable across versions):

- ``shape``: circle, square, triangle, cross, diamond, ring
- ``colour``: red, green, blue, yellow, magenta, cyan, white, orange
- ``size``: small, medium, large (object radius 0.12 / 0.19 / 0.27 of the image side;
  an object's bounding radius, so a "large" square and a "large" circle have the same extent)
- ``position``: the centre (cx, cy) in [0, 1]^2 image coordinates (x right, y down),
  drawn uniformly where the object fits; its label is the quadrant
  (top-left, top-right, bottom-left, bottom-right) of the centre
- ``texture``: solid, stripes (diagonal), checker, dots

Rendering: each object's coverage mask is computed analytically on a 2x supersampled grid
and box-filtered (anti-aliased edges), the texture modulates the colour inside the mask
(stripes/checker/dots alternate between the colour and 0.35 x the colour), and objects are
composited over a uniform dark-grey background (0.1) in order. Everything is NumPy, seeded
by one ``numpy.random.Generator``; the same seed gives byte-identical images on any machine.
Any image size >= 16 works; attributes are resolution independent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError

SHAPES = ("circle", "square", "triangle", "cross", "diamond", "ring")
COLOURS = ("red", "green", "blue", "yellow", "magenta", "cyan", "white", "orange")
COLOUR_RGB = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.8, 0.2),
    "blue": (0.15, 0.3, 0.95),
    "yellow": (0.95, 0.9, 0.1),
    "magenta": (0.9, 0.15, 0.85),
    "cyan": (0.1, 0.85, 0.9),
    "white": (0.95, 0.95, 0.95),
    "orange": (1.0, 0.55, 0.05),
}
SIZES = ("small", "medium", "large")
SIZE_RADIUS = {"small": 0.12, "medium": 0.19, "large": 0.27}  # fraction of the image side
TEXTURES = ("solid", "stripes", "checker", "dots")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
ATTRIBUTES = ("shape", "colour", "size", "position", "texture")
VOCAB: dict[str, tuple[str, ...]] = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": QUADRANTS, "texture": TEXTURES}
BACKGROUND = 0.1
_SUPERSAMPLE = 2


@dataclass(frozen=True)
class ShapeSpec:
    """One object: categorical attributes by name, centre in [0, 1]^2 (x right, y down)."""

    shape: str
    colour: str
    size: str
    cx: float
    cy: float
    texture: str = "solid"

    def __post_init__(self) -> None:
        for attr, vocab in (("shape", SHAPES), ("colour", COLOURS), ("size", SIZES), ("texture", TEXTURES)):
            if getattr(self, attr) not in vocab:
                raise ConfigError(attr, getattr(self, attr), f"one of {', '.join(vocab)}")
        for name in ("cx", "cy"):
            v = getattr(self, name)
            if not (0.0 <= v <= 1.0):
                raise ConfigError(name, v, "a number in [0, 1] (fraction of the image side)")

    @property
    def quadrant(self) -> str:
        return QUADRANTS[(2 if self.cy >= 0.5 else 0) + (1 if self.cx >= 0.5 else 0)]

    def label(self, attribute: str) -> int:
        """Integer code of ``attribute`` (``position`` is the quadrant)."""
        value = self.quadrant if attribute == "position" else getattr(self, attribute)
        return VOCAB[attribute].index(value)


def _grid(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    n = image_size * _SUPERSAMPLE
    c = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.meshgrid(c, c)  # xx, yy: (n, n), x along columns


def _shape_mask(spec: ShapeSpec, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Boolean coverage on the supersampled grid; the shape fits inside radius r of its centre."""
    r = SIZE_RADIUS[spec.size]
    dx, dy = xx - spec.cx, yy - spec.cy
    if spec.shape == "circle":
        return dx * dx + dy * dy <= r * r
    if spec.shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if spec.shape == "square":
        h = r / np.sqrt(2.0)
        return (np.abs(dx) <= h) & (np.abs(dy) <= h)
    if spec.shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if spec.shape == "cross":
        w = 0.33 * r
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    if spec.shape == "triangle":  # equilateral, pointing up, inscribed in the circle of radius r
        # vertices at angles -90, 30, 150 degrees (y down): inside if on the inner side of all 3 edges
        inside = np.ones_like(dx, dtype=bool)
        for ang in (90.0, 210.0, 330.0):  # outward normals of the three edges (y down: 90 = down)
            nx, ny = np.cos(np.radians(ang)), np.sin(np.radians(ang))
            inside &= dx * nx + dy * ny <= 0.5 * r
        return inside
    raise ConfigError("shape", spec.shape, f"one of {', '.join(SHAPES)}")  # pragma: no cover


def _texture(spec: ShapeSpec, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    """Multiplier in {0.35, 1} on the supersampled grid (1 everywhere for solid)."""
    period = 0.08
    if spec.texture == "solid":
        return np.ones_like(xx)
    if spec.texture == "stripes":
        on = np.floor((xx + yy) / period) % 2 == 0
    elif spec.texture == "checker":
        on = (np.floor(xx / period) + np.floor(yy / period)) % 2 == 0
    else:  # dots
        fx = (xx / period) % 1.0 - 0.5
        fy = (yy / period) % 1.0 - 0.5
        on = fx * fx + fy * fy > 0.09
    return np.where(on, 1.0, 0.35).astype(np.float32)


def render_scene(objects: Sequence[ShapeSpec], image_size: int = 64, background: float = BACKGROUND) -> np.ndarray:
    """Render ``objects`` (drawn in order, later on top) into a (3, H, W) float32 image in [0, 1]."""
    if int(image_size) < 16:
        raise ConfigError("image_size", image_size, "an integer >= 16")
    xx, yy = _grid(image_size)
    n = image_size * _SUPERSAMPLE
    canvas = np.full((3, n, n), background, dtype=np.float32)
    for spec in objects:
        mask = _shape_mask(spec, xx, yy)
        tex = _texture(spec, xx, yy)
        rgb = np.asarray(COLOUR_RGB[spec.colour], dtype=np.float32)[:, None, None]
        canvas = np.where(mask[None], rgb * tex[None], canvas)
    # box filter the supersampled canvas down to (3, H, W): anti-aliased edges
    img = canvas.reshape(3, image_size, _SUPERSAMPLE, image_size, _SUPERSAMPLE).mean(axis=(2, 4))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def random_shape(rng: np.random.Generator, *, texture: bool = True, **fixed: str) -> ShapeSpec:
    """A uniformly random object (any attribute can be fixed by keyword), centred where it fits."""
    shape = fixed.get("shape") or SHAPES[rng.integers(len(SHAPES))]
    colour = fixed.get("colour") or COLOURS[rng.integers(len(COLOURS))]
    size = fixed.get("size") or SIZES[rng.integers(len(SIZES))]
    tex = fixed.get("texture") or (TEXTURES[rng.integers(len(TEXTURES))] if texture else "solid")
    r = SIZE_RADIUS[size]
    cx, cy = rng.uniform(r, 1.0 - r, size=2)
    return ShapeSpec(shape, colour, size, float(cx), float(cy), tex)


@dataclass
class ShapesDataset:
    """One object per image: ``images`` (N, 3, H, W) float32, ``labels[attr]`` (N,) int64 codes."""

    images: np.ndarray
    labels: dict[str, np.ndarray]
    specs: list[ShapeSpec]
    centres: np.ndarray  # (N, 2) float32: cx, cy in [0, 1]
    seed: int
    vocab: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(VOCAB))

    @classmethod
    def generate(cls, n: int, image_size: int = 64, seed: int = 0, texture: bool = True) -> ShapesDataset:
        """``n`` images, attributes drawn independently and uniformly (seeded)."""
        if int(n) < 1:
            raise ConfigError("n", n, "a positive number of images")
        rng = np.random.default_rng(seed)
        specs = [random_shape(rng, texture=texture) for _ in range(n)]
        images = np.stack([render_scene([s], image_size) for s in specs])
        labels = {a: np.array([s.label(a) for s in specs], dtype=np.int64) for a in ATTRIBUTES}
        centres = np.array([[s.cx, s.cy] for s in specs], dtype=np.float32)
        return cls(images, labels, specs, centres, seed)

    def __len__(self) -> int:
        return len(self.specs)

    def as_torch(self, device=None):
        """Images as a float32 torch tensor (N, 3, H, W)."""
        import torch

        return torch.from_numpy(self.images).to(device)

    def label_names(self, attribute: str) -> list[str]:
        return [self.vocab[attribute][c] for c in self.labels[attribute]]


@dataclass
class SceneDataset:
    """Several objects per image (for counting / relation / VQA sets): per-object specs kept."""

    images: np.ndarray  # (N, 3, H, W) float32
    objects: list[list[ShapeSpec]]
    seed: int

    @classmethod
    def generate(cls, n: int, image_size: int = 96, objects: tuple[int, int] = (2, 4), seed: int = 0, texture: bool = True, max_tries: int = 50) -> SceneDataset:
        """``n`` scenes with between ``objects[0]`` and ``objects[1]`` objects each.

        Objects are placed by rejection so their bounding circles do not overlap (up to
        ``max_tries`` draws per object; a scene that cannot fit another object keeps fewer,
        and the stored specs always list exactly what was drawn).
        """
        lo, hi = objects
        if not (1 <= lo <= hi):
            raise ConfigError("objects", objects, "(min, max) with 1 <= min <= max")
        rng = np.random.default_rng(seed)
        scenes: list[list[ShapeSpec]] = []
        for _ in range(n):
            want = int(rng.integers(lo, hi + 1))
            placed: list[ShapeSpec] = []
            for _ in range(want):
                for _ in range(max_tries):
                    cand = random_shape(rng, texture=texture)
                    rc = SIZE_RADIUS[cand.size]
                    if all((cand.cx - o.cx) ** 2 + (cand.cy - o.cy) ** 2 >= (rc + SIZE_RADIUS[o.size]) ** 2 for o in placed):
                        placed.append(cand)
                        break
            scenes.append(placed)
        images = np.stack([render_scene(s, image_size) for s in scenes])
        return cls(images, scenes, seed)

    def __len__(self) -> int:
        return len(self.objects)

    def count(self, i: int, **attrs: str) -> int:
        """How many objects of scene ``i`` match every given attribute (e.g. ``colour="red"``)."""
        def match(o: ShapeSpec) -> bool:
            return all((o.quadrant if k == "position" else getattr(o, k)) == v for k, v in attrs.items())

        return sum(match(o) for o in self.objects[i])
