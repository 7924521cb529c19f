"""Cartoon talking faces with exact targets: ACTalker's task at toy scale.

A clip is a 32x32 cartoon face (identity: skin, hair, background, face shape, eye spacing, mouth width and
height) over ``frames`` frames at 12.5 fps (ACTalker's rate), driven by two signals that ACTalker takes:

* **audio**: a sentence spoken by espeak-ng; the mouth opening per frame comes from espeak-ng's own phoneme events
  (exact sample times through libespeak-ng's callback, :func:`reprolab.data.tts.speak_with_phoneme_times`): each
  phoneme has an opening (bilabials and pauses closed, open vowels wide; :func:`phoneme_opening`) and a frame's
  opening is the duration-weighted mean over its 80 ms;
* **motion**: blinks, brow raises and gaze (the upper face) plus a *conflicting* mouth component, the mouth track of
  another sentence: a motion signal that also tries to move the mouth (ACTalker's control conflict).

The target video takes the mouth from the audio and the upper face from the motion, exactly. With every clip come
the face and mouth region masks (the mouth mask holds every pixel the mouth can reach; eyes and brows never enter
it), the neutral reference frame, and the per-frame signals.

    clips = generate_talking_clips(4, FacesConfig(), seed=0)
    clips[0].video       # (25, 3, 32, 32) in [0, 1]
    clips[0].mouth       # (25,) the audio's mouth opening, the target's
    clips[0].motion      # (25, 5): blink, brow, gaze x, gaze y, conflicting mouth
"""

from __future__ import annotations

import math

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import ConfigError

__all__ = ["FaceIdentity", "FacesConfig", "TalkingClip", "generate_talking_clips", "mouth_track", "phoneme_opening", "random_identity",
           "region_masks", "render_face"]

WORDS = ("ma pa ba bee mew fa la ta oh ah who see me boo pop mob map bomb palm beam may pay bay my pie buy wow "
         "mop pub mum pup bob top dog cat").split()
SKINS = ((0.96, 0.80, 0.69), (0.87, 0.68, 0.53), (0.72, 0.52, 0.38), (0.55, 0.38, 0.26), (0.98, 0.87, 0.78))
HAIRS = ((0.10, 0.08, 0.06), (0.45, 0.28, 0.12), (0.85, 0.70, 0.35), (0.60, 0.15, 0.10), (0.50, 0.50, 0.52))
BACKS = ((0.55, 0.70, 0.85), (0.70, 0.85, 0.65), (0.90, 0.85, 0.60), (0.80, 0.70, 0.85), (0.60, 0.60, 0.62))
MOUTH_RGB = (0.55, 0.10, 0.12)
# the mouth ellipse's half-height (fraction of the frame): closed + gain x opening; with half-widths 0.11-0.15 an
# open mouth covers about 60 pixels of a 32x32 frame (a 2 x 4 pixel mouth before 2026-12-02 left the audio's region
# about 5% of the face, too little signal for a denoiser to learn lip sync in the study's CPU budget)
MOUTH_RY = (0.012, 0.085)
MOUTH_HALF_WIDTH = (0.11, 0.15)  # drawn per identity


def mouth_box(size: int) -> tuple[int, int]:
    """(h, w) pixels that hold every mouth mask :func:`region_masks` draws at this frame size (a fixed crop size)."""
    pad = 1.5 / size
    return math.ceil(2 * (sum(MOUTH_RY) + pad) * size), math.ceil(2 * (MOUTH_HALF_WIDTH[1] + pad) * size)
DARK = (0.12, 0.08, 0.06)


@dataclass(frozen=True)
class FaceIdentity:
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    back: tuple[float, float, float]
    rx: float  # face half-width (fraction of the side)
    ry: float  # face half-height
    eye_dx: float  # half the distance between the eyes
    eye_y: float
    mouth_y: float
    mouth_w: float  # mouth half-width


@dataclass(frozen=True)
class FacesConfig:
    frames: int = 25  # 2 s at 12.5 fps (ACTalker's window)
    fps: float = 12.5
    image_size: int = 32
    sample_rate: int = 16_000
    words: tuple[int, int] = (4, 6)  # words per sentence (about 1.5-2 s at 150 wpm)
    rate_wpm: int = 150
    blink_rate: float = 0.6  # blinks per second
    language: str = "en"

    def __post_init__(self) -> None:
        if self.frames < 2 or self.fps <= 0 or self.image_size < 16:
            raise ConfigError("frames / fps / image_size", (self.frames, self.fps, self.image_size), "frames >= 2, fps > 0, image_size >= 16")

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


@dataclass
class TalkingClip:
    video: np.ndarray  # (F, 3, H, W) target: mouth from the audio, upper face from the motion
    audio: np.ndarray  # (samples,) float32 at cfg.sample_rate, cfg.seconds long
    mouth: np.ndarray  # (F,) the audio's mouth opening in [0, 1]
    motion: np.ndarray  # (F, 5): blink, brow, gaze x, gaze y, conflicting mouth
    reference: np.ndarray  # (3, H, W): the neutral face of this identity
    face_mask: np.ndarray  # (H, W) bool
    mouth_mask: np.ndarray  # (H, W) bool
    identity: FaceIdentity
    sentence: str
    conflict_sentence: str
    phonemes: tuple = field(default=(), repr=False)


def phoneme_opening(phoneme: str) -> float:
    """How open the mouth is for an espeak-ng phoneme mnemonic: closed for bilabials (p b m) and pauses, nearly closed
    for labiodentals (f v), wide for open vowels, half for mid vowels, narrow for close vowels, 0.25 for consonants."""
    p = phoneme.strip()
    if not p or p.startswith("_"):
        return 0.0
    if p[0] in "pbm":
        return 0.0
    if p[0] in "fv":
        return 0.15
    if p[0] in "aA0OV":
        return 1.0
    if p[0] in "eE@3oUu":
        return 0.6
    if p[0] in "iI":
        return 0.35
    return 0.25


def mouth_track(phonemes: Sequence, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) mouth opening: per frame, the duration-weighted mean opening of the phonemes inside its interval
    [f / fps, (f + 1) / fps); silence (before the first phoneme, after the last) is closed."""
    out = np.zeros(n_frames)
    for f in range(n_frames):
        a, b = f / fps, (f + 1) / fps
        acc = 0.0
        for ph in phonemes:
            lo, hi = max(a, ph.start), min(b, ph.end)
            if hi > lo:
                acc += (hi - lo) * phoneme_opening(ph.phoneme)
        out[f] = acc / (b - a)
    return np.clip(out, 0.0, 1.0)


def random_identity(rng: np.random.Generator) -> FaceIdentity:
    def pick(palette):
        return tuple(float(v) for v in palette[rng.integers(len(palette))])

    return FaceIdentity(skin=pick(SKINS), hair=pick(HAIRS), back=pick(BACKS), rx=float(rng.uniform(0.30, 0.37)),
                        ry=float(rng.uniform(0.37, 0.43)), eye_dx=float(rng.uniform(0.11, 0.15)), eye_y=float(rng.uniform(0.40, 0.45)),
                        mouth_y=float(rng.uniform(0.69, 0.72)), mouth_w=float(rng.uniform(*MOUTH_HALF_WIDTH)))


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    n = 2 * size
    c = (np.arange(n, dtype=np.float32) + 0.5) / n
    return np.meshgrid(c, c)


def render_face(ident: FaceIdentity, *, mouth: float = 0.2, blink: float = 0.0, brow: float = 0.0, gaze: tuple[float, float] = (0.0, 0.0),
                size: int = 32) -> np.ndarray:
    """(3, size, size) in [0, 1], anti-aliased (2x supersampling, box filter)."""
    xx, yy = _grid(size)
    img = np.empty((3, *xx.shape), np.float32)
    img[:] = np.asarray(ident.back, np.float32)[:, None, None]

    def paint(mask, rgb):
        img[:, mask] = np.asarray(rgb, np.float32)[:, None]

    cx, cy = 0.5, 0.52
    paint(((xx - cx) / (ident.rx + 0.03)) ** 2 + ((yy - cy + 0.06) / (ident.ry * 0.9)) ** 2 <= 1, ident.hair)  # hair behind the face
    face = ((xx - cx) / ident.rx) ** 2 + ((yy - cy) / ident.ry) ** 2 <= 1
    paint(face, ident.skin)
    for side in (-1, 1):
        ex = cx + side * ident.eye_dx
        open_ry = 0.045 * (1 - float(np.clip(blink, 0, 1))) + 1e-4
        eye = ((xx - ex) / 0.055) ** 2 + ((yy - ident.eye_y) / open_ry) ** 2 <= 1
        paint(eye, (1.0, 1.0, 1.0))
        px, py = ex + 0.03 * float(gaze[0]), ident.eye_y + 0.02 * float(gaze[1])
        paint(eye & (((xx - px) ** 2 + (yy - py) ** 2) <= 0.026 ** 2), DARK)
        by = ident.eye_y - 0.075 - 0.025 * float(np.clip(brow, -1, 1))
        paint((np.abs(xx - ex) <= 0.06) & (np.abs(yy - by) <= 0.012), DARK)
    m_ry = MOUTH_RY[0] + MOUTH_RY[1] * float(np.clip(mouth, 0, 1))
    paint(((xx - cx) / ident.mouth_w) ** 2 + ((yy - ident.mouth_y) / m_ry) ** 2 <= 1, MOUTH_RGB)
    out = img.reshape(3, size, 2, size, 2).mean(axis=(2, 4))
    return np.clip(out, 0, 1).astype(np.float32)


def region_masks(ident: FaceIdentity, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(face, mouth) bool masks (size, size): the face ellipse, and a box holding every pixel the mouth can reach."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    xx, yy = np.meshgrid(c, c)
    face = ((xx - 0.5) / (ident.rx + 0.5 / size)) ** 2 + ((yy - 0.52) / (ident.ry + 0.5 / size)) ** 2 <= 1
    pad = 1.5 / size
    mouth = (np.abs(xx - 0.5) <= ident.mouth_w + pad) & (np.abs(yy - ident.mouth_y) <= sum(MOUTH_RY) + pad)
    return face, mouth


def _smooth_walk(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    x = np.cumsum(rng.normal(0, scale, n))
    x = np.convolve(np.pad(x, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    return np.clip(x - x.mean(), -1, 1)


def _sentence(rng: np.random.Generator, cfg: FacesConfig) -> str:
    k = int(rng.integers(cfg.words[0], cfg.words[1] + 1))
    return " ".join(WORDS[i] for i in rng.integers(len(WORDS), size=k))


def _speak(sentence: str, cfg: FacesConfig) -> tuple[np.ndarray, tuple]:
    from ...data.tts import speak_with_phoneme_times

    audio, _, phonemes = speak_with_phoneme_times(sentence, cfg.language, rate_wpm=cfg.rate_wpm, sample_rate=cfg.sample_rate)
    n = int(round(cfg.seconds * cfg.sample_rate))
    out = np.zeros(n, np.float32)
    out[: min(n, len(audio))] = audio[:n]
    return out, phonemes


def generate_talking_clips(n: int, cfg: FacesConfig | None = None, *, seed: int = 0) -> list[TalkingClip]:
    """``n`` clips, seeded (identities, sentences, motion); the audio is espeak-ng's, deterministic for a sentence."""
    cfg = cfg or FacesConfig()
    rng = np.random.default_rng(seed)
    clips = []
    for _ in range(n):
        ident = random_identity(rng)
        sentence, other = _sentence(rng, cfg), _sentence(rng, cfg)
        audio, phonemes = _speak(sentence, cfg)
        _, other_ph = _speak(other, cfg)
        mouth = mouth_track(phonemes, cfg.frames, cfg.fps)
        conflict = mouth_track(other_ph, cfg.frames, cfg.fps)
        blink = np.zeros(cfg.frames)
        for start in np.nonzero(rng.random(cfg.frames) < cfg.blink_rate / cfg.fps)[0]:
            blink[start:start + 2] = 1.0
        brow = _smooth_walk(rng, cfg.frames, 0.25)
        gx, gy = _smooth_walk(rng, cfg.frames, 0.3), _smooth_walk(rng, cfg.frames, 0.2)
        motion = np.stack([blink, brow, gx, gy, conflict], axis=1).astype(np.float32)
        video = np.stack([render_face(ident, mouth=float(mouth[f]), blink=float(blink[f]), brow=float(brow[f]), gaze=(float(gx[f]), float(gy[f])),
                                      size=cfg.image_size) for f in range(cfg.frames)])
        face, mouth_mask = region_masks(ident, cfg.image_size)
        clips.append(TalkingClip(video=video, audio=audio, mouth=mouth.astype(np.float32), motion=motion,
                                 reference=render_face(ident, size=cfg.image_size), face_mask=face, mouth_mask=mouth_mask, identity=ident,
                                 sentence=sentence, conflict_sentence=other, phonemes=tuple(phonemes)))
    return clips
