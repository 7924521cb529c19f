"""Elements-to-video data with exact ground truth: SkyReels-A2's task at toy scale.

Each clip shows two *elements* (a "character" and an "object": shapes with a shape, colour and texture from
:mod:`reprolab.data.shapes`) moving over a textured *background*, as a templated caption says
("a red striped circle moves left and a blue square moves up on grass"; or, with ``caption="roles"``, motion only:
"the character moves left and the object moves up", so that only the references say what the elements are). With every clip come its three
references, as SkyReels-A2 takes them (report Sec. 3.1: references come from other frames than the target, on
white for elements):

* each element alone on white, in another pose: another size and a quarter-turn rotation, centred;
* the background alone, without the elements;

and the exact truth: each element's identity (a class index), its centre per frame (the track), its direction,
and the background image, so consistency, background error and prompt following can be scored exactly.

    clips = generate_element_clips(8, ElementsConfig(frames=8, image_size=32), seed=0)
    clips[0].video        # (T, 3, H, W) float32 in [0, 1]
    clips[0].references   # [character, object, background], each (3, H, W)
    clips[0].tracks       # (2, T, 2) centres (x, y) in [0, 1], x right, y down

Elements are composited with their exact anti-aliased coverage (rendered on black and on white, the
difference is the coverage), so pixels match :func:`reprolab.data.shapes.render_scene` exactly where the
background is uniform.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...data.shapes import COLOURS, SHAPES, SIZE_RADIUS, SIZES, TEXTURES, ShapeSpec, render_scene
from ...errors import ConfigError

__all__ = ["BACKGROUNDS", "CAPTION_STYLES", "DIRECTIONS", "LAYOUTS", "ROLES", "SIDE_ANCHORS", "ElementClip", "ElementsConfig", "element_layer", "generate_element_clips", "identity_names",
           "render_background"]

CAPTION_STYLES = ("named", "roles")
LAYOUTS = ("random", "sides")
SIDE_ANCHORS = ((0.25, 0.5), (0.75, 0.5))  # "sides" layout: where the character's and the object's tracks are centred (x, y)
ROLES = ("character", "object")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}

# name -> (pattern, colour a, colour b, period as a fraction of the side); muted tones under saturated elements
BACKGROUNDS = {
    "grass": ("diagonal", (0.16, 0.36, 0.14), (0.10, 0.26, 0.09), 0.19),
    "sand": ("vertical_gradient", (0.55, 0.48, 0.30), (0.40, 0.33, 0.18), 1.0),
    "water": ("waves", (0.12, 0.24, 0.45), (0.07, 0.15, 0.32), 0.22),
    "brick": ("bricks", (0.45, 0.20, 0.14), (0.28, 0.26, 0.25), 0.25),
    "floor": ("checker", (0.38, 0.38, 0.40), (0.26, 0.26, 0.28), 0.25),
    "sky": ("horizontal_gradient", (0.45, 0.58, 0.75), (0.30, 0.42, 0.62), 1.0),
}


@dataclass(frozen=True)
class ElementsConfig:
    """What the generator draws from. Identities are (shape, colour, texture) triples from the given subsets."""

    frames: int = 8
    image_size: int = 32
    shapes: tuple[str, ...] = ("circle", "square", "triangle", "cross")
    colours: tuple[str, ...] = ("red", "green", "blue", "yellow")
    textures: tuple[str, ...] = ("solid",)
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS)
    size: str = "medium"  # elements in the clip
    speed: float = 0.045  # centre displacement per frame, fraction of the side
    reference_sizes: tuple[str, ...] = ("small", "large")  # the references' pose: another size ...
    reference_turns: tuple[int, ...] = (1, 2, 3)  # ... and a quarter-turn rotation
    min_separation: float = 0.3  # centres at least this far apart in every frame (redrawn up to 100 times)
    caption: str = "named"  # "named": the caption names each element and the background; "roles": motion only
    layout: str = "random"  # "random": starts anywhere the track fits; "sides": the character's track centred left, the object's right
    jitter: float = 0.08  # "sides": each coordinate of a track's centre drawn uniformly within +- jitter of its side's anchor

    def __post_init__(self) -> None:
        for name, values, vocab in (("shapes", self.shapes, SHAPES), ("colours", self.colours, COLOURS),
                                    ("textures", self.textures, TEXTURES), ("backgrounds", self.backgrounds, tuple(BACKGROUNDS))):
            bad = [v for v in values if v not in vocab]
            if bad or not values:
                raise ConfigError(name, bad or values, f"a non-empty subset of {', '.join(vocab)}")
        if self.size not in SIZES or any(s not in SIZES for s in self.reference_sizes):
            raise ConfigError("size", (self.size, self.reference_sizes), f"sizes among {', '.join(SIZES)}")
        if self.frames < 2 or self.image_size < 16:
            raise ConfigError("frames / image_size", (self.frames, self.image_size), "frames >= 2 and image_size >= 16")
        travel = self.speed * (self.frames - 1)
        if not 0 < travel <= 1 - 2 * SIZE_RADIUS[self.size]:
            raise ConfigError("speed", self.speed, f"a positive speed whose travel over {self.frames} frames fits the frame")
        if self.caption not in CAPTION_STYLES:
            raise ConfigError("caption", self.caption, f"one of {', '.join(CAPTION_STYLES)}")
        if self.layout not in LAYOUTS:
            raise ConfigError("layout", self.layout, f"one of {', '.join(LAYOUTS)}")
        if not 0 <= self.jitter <= 0.5:
            raise ConfigError("jitter", self.jitter, "a fraction of the side in [0, 0.5]")
        if len(self.shapes) * len(self.colours) * len(self.textures) < 2:
            raise ConfigError("identities", 1, "at least two (shape, colour, texture) identities, so two elements can differ")

    @property
    def identities(self) -> list[tuple[str, str, str]]:
        return [(s, c, t) for s in self.shapes for c in self.colours for t in self.textures]


def identity_names(cfg: ElementsConfig) -> list[str]:
    return [f"{c} {t} {s}" if t != "solid" else f"{c} {s}" for s, c, t in cfg.identities]


@dataclass
class ElementClip:
    video: np.ndarray  # (T, 3, H, W) float32 in [0, 1]
    references: list[np.ndarray]  # [character on white, object on white, background], each (3, H, W)
    caption: str
    identities: list[int]  # index into cfg.identities, per element
    elements: list[ShapeSpec]  # each element at frame 0
    tracks: np.ndarray  # (n_elements, T, 2) exact centres (x, y) in [0, 1]
    directions: list[str]
    background: str
    background_image: np.ndarray  # (3, H, W)
    coverage: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # (n_elements, T, H, W) coverage in [0, 1]


def render_background(name: str, image_size: int) -> np.ndarray:
    """A textured background (3, H, W) in [0, 1] (patterns on a 2x supersampled grid, box-filtered)."""
    if name not in BACKGROUNDS:
        raise ConfigError("background", name, f"one of {', '.join(BACKGROUNDS)}")
    kind, a, b, period = BACKGROUNDS[name]
    n = 2 * image_size
    c = (np.arange(n, dtype=np.float32) + 0.5) / n
    xx, yy = np.meshgrid(c, c)
    if kind == "diagonal":
        w = (np.floor((xx - yy) / period) % 2).astype(np.float32)
    elif kind == "checker":
        w = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
    elif kind == "waves":
        w = (np.sin(2 * np.pi * (yy + 0.05 * np.sin(2 * np.pi * xx / 0.5)) / period) > 0).astype(np.float32)
    elif kind == "bricks":
        row = np.floor(yy / (period / 2))
        mortar = ((yy % (period / 2)) < 0.02) | (((xx + 0.5 * period * (row % 2)) % period) < 0.02)
        w = mortar.astype(np.float32)
    elif kind == "vertical_gradient":
        w = yy
    else:  # horizontal_gradient
        w = xx
    ca, cb = np.asarray(a, np.float32)[:, None, None], np.asarray(b, np.float32)[:, None, None]
    img = ca * (1 - w[None]) + cb * w[None]
    return img.reshape(3, image_size, 2, image_size, 2).mean(axis=(2, 4)).astype(np.float32)


def element_layer(spec: ShapeSpec, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The element's premultiplied colour (3, H, W) and exact coverage (H, W): rendered on black and on white."""
    on_black = render_scene([spec], image_size, background=0.0)
    on_white = render_scene([spec], image_size, background=1.0)
    coverage = np.clip(1.0 - (on_white - on_black).mean(axis=0), 0.0, 1.0)
    return on_black, coverage.astype(np.float32)


def _composite(background: np.ndarray, layers: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    img = background.copy()
    for premult, cov in layers:
        img = premult + img * (1 - cov[None])
    return np.clip(img, 0, 1).astype(np.float32)


def _reference(spec: ShapeSpec, size: str, turns: int, image_size: int) -> np.ndarray:
    posed = ShapeSpec(spec.shape, spec.colour, size, 0.5, 0.5, spec.texture)
    img = render_scene([posed], image_size, background=1.0)
    return np.ascontiguousarray(np.rot90(img, k=turns, axes=(1, 2)))


def _caption(cfg: ElementsConfig, ids: Sequence[int], dirs: Sequence[str], background: str) -> str:
    """"a red cross moves right and a blue triangle moves up on grass" ("named"), or, when only the references
    may tell what the elements and the background are, "the character moves right and the object moves up" ("roles")."""
    if cfg.caption == "roles":
        return " and ".join(f"the {role} moves {d}" for role, d in zip(ROLES, dirs))
    names = identity_names(cfg)
    parts = [f"a {names[i]} moves {d}" for i, d in zip(ids, dirs)]
    return " and ".join(parts) + f" on {background}"


def _start(rng: np.random.Generator, cfg: ElementsConfig, direction: str, role: int = 0) -> tuple[float, float]:
    r = SIZE_RADIUS[cfg.size]
    travel = cfg.speed * (cfg.frames - 1)
    dx, dy = DIRECTIONS[direction]
    lo_x, hi_x = r + max(0.0, -dx * travel), 1 - r - max(0.0, dx * travel)
    lo_y, hi_y = r + max(0.0, -dy * travel), 1 - r - max(0.0, dy * travel)
    if cfg.layout == "sides":  # the track's centre near its role's anchor; the start clipped so the whole track fits
        ax, ay = SIDE_ANCHORS[role]
        x = ax - dx * travel / 2 + rng.uniform(-cfg.jitter, cfg.jitter)
        y = ay - dy * travel / 2 + rng.uniform(-cfg.jitter, cfg.jitter)
        return float(np.clip(x, lo_x, hi_x)), float(np.clip(y, lo_y, hi_y))
    return float(rng.uniform(lo_x, hi_x)), float(rng.uniform(lo_y, hi_y))


def _min_distance(starts: Sequence[tuple[float, float]], dirs: Sequence[str], cfg: ElementsConfig) -> float:
    t = np.arange(cfg.frames)[:, None]
    pos = [np.asarray(s) + cfg.speed * t * np.asarray(DIRECTIONS[d]) for s, d in zip(starts, dirs)]
    return float(np.linalg.norm(pos[0] - pos[1], axis=1).min())


def generate_element_clips(n: int, cfg: ElementsConfig | None = None, *, seed: int = 0, n_elements: int = 2) -> list[ElementClip]:
    """``n`` clips with two distinct elements each (``n_elements`` 1 or 2), seeded; byte-identical for a seed."""
    cfg = cfg or ElementsConfig()
    if n_elements not in (1, 2):
        raise ConfigError("n_elements", n_elements, "1 or 2 (character, object; the background is the third reference)")
    rng = np.random.default_rng(seed)
    idents = cfg.identities
    out = []
    for _ in range(n):
        ids = [int(i) for i in rng.choice(len(idents), size=n_elements, replace=False)]
        dirs = [str(d) for d in rng.choice(list(DIRECTIONS), size=n_elements)]
        bg_name = str(cfg.backgrounds[rng.integers(len(cfg.backgrounds))])
        bg = render_background(bg_name, cfg.image_size)
        for _ in range(100):  # keep the two elements apart (little occlusion), else take the last draw
            starts = [_start(rng, cfg, d, role) for role, d in enumerate(dirs)]
            if n_elements == 1 or _min_distance(starts, dirs, cfg) >= cfg.min_separation:
                break
        tracks = np.zeros((n_elements, cfg.frames, 2), np.float32)
        coverage = np.zeros((n_elements, cfg.frames, cfg.image_size, cfg.image_size), np.float32)
        frames = []
        specs0 = []
        for t in range(cfg.frames):
            layers = []
            for e, (i, d, (x0, y0)) in enumerate(zip(ids, dirs, starts)):
                dx, dy = DIRECTIONS[d]
                x, y = x0 + dx * cfg.speed * t, y0 + dy * cfg.speed * t
                shape, colour, texture = idents[i]
                spec = ShapeSpec(shape, colour, cfg.size, float(np.clip(x, 0, 1)), float(np.clip(y, 0, 1)), texture)
                if t == 0:
                    specs0.append(spec)
                tracks[e, t] = (spec.cx, spec.cy)
                layer = element_layer(spec, cfg.image_size)
                coverage[e, t] = layer[1]
                layers.append(layer)
            frames.append(_composite(bg, layers))
        refs = []
        for spec in specs0:
            size = str(cfg.reference_sizes[rng.integers(len(cfg.reference_sizes))])
            turns = int(cfg.reference_turns[rng.integers(len(cfg.reference_turns))])
            refs.append(_reference(spec, size, turns, cfg.image_size))
        refs.append(bg.copy())
        out.append(ElementClip(video=np.stack(frames), references=refs, caption=_caption(cfg, ids, dirs, bg_name), identities=ids,
                               elements=specs0, tracks=tracks, directions=dirs, background=bg_name, background_image=bg, coverage=coverage))
    return out
