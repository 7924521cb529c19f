"""Sounding videos with events at exact times: moving shapes that flash, each flash a tone burst in the shape's pitch band.

Synthetic stand-in for JavisBench-style sounding videos (JavisDiT, arXiv 2503.23377; also the data of the
next AV papers of this room). Every clip is ``duration`` seconds of ``frames`` RGB frames (``size`` x ``size``,
drawn by :func:`reprolab.data.shapes.render_scene`) and a mono waveform at ``sample_rate``:

- 1-3 shapes (kinds ``circle``, ``square``, ``triangle``), each in its own colour, drifting on a straight line;
- each shape has 1-2 *events*; at an event frame ``f`` the shape is drawn white (a flash) and a decaying
  tone burst starts at exactly sample ``round(f * sample_rate / fps)``: ``a sin(2 pi f0 t) exp(-t / tau)``
  with a 2 ms attack, ``f0`` drawn in the shape kind's pitch band (circle 300-500 Hz, square 1-1.5 kHz,
  triangle 3-4 kHz), so on a mel spectrogram the audio "space" (mel axis) says which shape sounded;
- a templated caption names each shape and the coarse time of its events (``early`` / ``in the middle`` /
  ``late``: frame windows of the clip), e.g. "a red circle flashes early and late; a blue square flashes in
  the middle". The exact frame inside the window is random, so the text fixes timing only coarsely.

The official negatives of JavisDiT's prior estimator (Sec. 3.3, made there on latents; here on the raw
signals, each changing only what its name says):

- video spatial: ``grid_mask`` (a grid cell over a sounding shape blanked in every frame), ``add_masklet``
  (a silent extra shape that flashes); video temporal: ``video_shift`` (frames rolled circularly by >= 2, events move),
  ``stall`` (the video freezes over an event);
- audio spatial: ``add_source`` (a burst in a pitch band no shape uses), ``delete_source`` (one shape's band
  removed by an FFT band-stop), ``volume_envelope`` (a slow random gain); audio temporal: ``audio_shift``
  (the waveform rolled circularly by >= 2 frames), ``silence`` (a span around an event zeroed), ``repeat`` (an event's segment copied
  to another time), ``speed`` (resampled by 0.7 or 1.4 and cut/padded to the clip length).

::

    from reprolab.data.av_events import AVEventsConfig, generate_clips, NEGATIVES, make_negative
    clips = generate_clips(64, AVEventsConfig(), seed=0)
    clip = clips[0]; clip.video  # (T, 3, H, W) float32 in [0, 1];  clip.audio (samples,) float32
    clip.events[0].frame, clip.events[0].sample, clip.caption
    neg = make_negative(clip, "audio_shift", np.random.default_rng(0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import ConfigError, ShapeError
from .shapes import ShapeSpec, render_scene

KINDS = ("circle", "square", "triangle")
BANDS_HZ = {"circle": (300.0, 500.0), "square": (1000.0, 1500.0), "triangle": (3000.0, 4000.0)}
SPARE_BAND_HZ = (6000.0, 7000.0)  # used by no shape: where ``add_source`` puts its burst
EVENT_COLOURS = ("red", "green", "blue", "yellow")
TIME_WORDS = ("early", "in the middle", "late")
VIDEO_NEGATIVES = ("grid_mask", "add_masklet", "video_shift", "stall")
AUDIO_NEGATIVES = ("add_source", "delete_source", "volume_envelope", "audio_shift", "silence", "repeat", "speed")
NEGATIVES = VIDEO_NEGATIVES + AUDIO_NEGATIVES
SPATIAL_NEGATIVES = ("grid_mask", "add_masklet", "add_source", "delete_source", "volume_envelope")
TEMPORAL_NEGATIVES = ("video_shift", "stall", "audio_shift", "silence", "repeat", "speed")


@dataclass(frozen=True)
class AVEventsConfig:
    frames: int = 16  # video frames per clip
    fps: float = 8.0  # frames per second (duration = frames / fps)
    size: int = 16  # frame side in pixels (>= 16)
    sample_rate: int = 16_000  # Hz
    shapes: tuple[int, int] = (1, 3)  # min, max shapes per clip
    events: tuple[int, int] = (1, 2)  # min, max events per shape (in distinct time windows)
    tau: float = 0.06  # seconds: decay of a tone burst
    burst: float = 0.25  # seconds: length of a tone burst
    amplitude: float = 0.3  # peak amplitude of one burst
    noise: float = 0.002  # white-noise floor of the audio

    def __post_init__(self) -> None:
        if self.frames < 6 or self.fps <= 0 or self.size < 16 or self.sample_rate < 8000:
            raise ConfigError("AVEventsConfig", (self.frames, self.fps, self.size, self.sample_rate), "frames >= 6, fps > 0, size >= 16, sample_rate >= 8000")
        if not (1 <= self.shapes[0] <= self.shapes[1] <= len(KINDS)) or not (1 <= self.events[0] <= self.events[1] <= len(TIME_WORDS)):
            raise ConfigError("shapes/events", (self.shapes, self.events), f"1 <= min <= max <= {len(KINDS)} shapes and <= {len(TIME_WORDS)} events")

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def samples(self) -> int:
        return int(round(self.duration * self.sample_rate))

    def sample_of(self, frame: int) -> int:
        """The audio sample at which an event of ``frame`` starts (exact: frame / fps seconds)."""
        return int(round(frame * self.sample_rate / self.fps))

    def window(self, word: int) -> tuple[int, int]:
        """Frames [lo, hi] of time window ``word`` (0 early, 1 middle, 2 late), 1 frame from the clip ends."""
        inner = self.frames - 2
        lo = 1 + word * inner // 3
        hi = 1 + (word + 1) * inner // 3 - 1
        return lo, max(lo, hi - 1)  # leave a frame of room so a burst fits before the next window


@dataclass(frozen=True)
class Event:
    shape: int  # index into AVClip.shapes
    frame: int  # the video frame of the flash
    sample: int  # the audio sample where its tone burst starts
    f0: float  # Hz, the burst's pitch
    word: int  # time window of the caption (0 early, 1 middle, 2 late)


@dataclass
class AVClip:
    video: np.ndarray  # (T, 3, H, W) float32 in [0, 1]
    audio: np.ndarray  # (samples,) float32
    events: list[Event]
    caption: str
    shapes: list[tuple[str, str]]  # (kind, colour) per shape
    config: AVEventsConfig
    tracks: np.ndarray | None = field(default=None, repr=False)  # (n_shapes, samples): each shape's bursts alone
    negative: str | None = None  # the negative that made this clip from a true pair (None: a true pair)


def tone_burst(n: int, f0: float, cfg: AVEventsConfig) -> np.ndarray:
    """``a sin(2 pi f0 t) exp(-t / tau)`` over ``burst`` seconds with a 2 ms linear attack (n samples at most)."""
    L = min(n, int(cfg.burst * cfg.sample_rate))
    t = np.arange(L) / cfg.sample_rate
    env = np.exp(-t / cfg.tau) * np.minimum(1.0, t / 0.002)
    return (cfg.amplitude * env * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def _caption(shapes: list[tuple[str, str]], events: list[Event]) -> str:
    parts = []
    for i, (kind, colour) in enumerate(shapes):
        words = sorted({e.word for e in events if e.shape == i})
        when = " and ".join(TIME_WORDS[w] for w in words)
        parts.append(f"a {colour} {kind} flashes {when}")
    return "; ".join(parts)


def _render(cfg: AVEventsConfig, specs: list[tuple[str, str, np.ndarray, np.ndarray]], flashes: set[tuple[int, int]]) -> np.ndarray:
    """Frames of shapes (kind, colour, start xy, velocity xy per frame); (shape, frame) in ``flashes`` drawn white."""
    video = np.empty((cfg.frames, 3, cfg.size, cfg.size), dtype=np.float32)
    for f in range(cfg.frames):
        objs = []
        for i, (kind, colour, p0, vel) in enumerate(specs):
            x, y = p0 + f * vel
            objs.append(ShapeSpec(kind, "white" if (i, f) in flashes else colour, "medium", float(x), float(y)))
        video[f] = render_scene(objs, cfg.size)
    return video


def _motion(rng: np.random.Generator, cfg: AVEventsConfig) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = 0.22, 0.78  # a medium shape (radius 0.19) stays inside the frame
    p0 = rng.uniform(lo, hi, 2)
    p1 = rng.uniform(lo, hi, 2)
    return p0, (p1 - p0) / max(1, cfg.frames - 1)


def generate_clip(rng: np.random.Generator, cfg: AVEventsConfig = AVEventsConfig(), *, kinds: Sequence[str] | None = None) -> AVClip:
    """One clip (see the module docstring); ``kinds`` fixes the shapes (else 1-3 distinct kinds at random)."""
    if kinds is None:
        n = int(rng.integers(cfg.shapes[0], cfg.shapes[1] + 1))
        kinds = [KINDS[i] for i in sorted(rng.choice(len(KINDS), n, replace=False))]
    colours = [EVENT_COLOURS[i] for i in rng.choice(len(EVENT_COLOURS), len(kinds), replace=False)]
    specs, events = [], []
    tracks = np.zeros((len(kinds), cfg.samples), dtype=np.float32)
    for i, kind in enumerate(kinds):
        if kind not in KINDS:
            raise ConfigError("kinds", kind, f"one of {KINDS}")
        specs.append((kind, colours[i], *_motion(rng, cfg)))
        k = int(rng.integers(cfg.events[0], cfg.events[1] + 1))
        for word in sorted(rng.choice(len(TIME_WORDS), k, replace=False)):
            lo, hi = cfg.window(int(word))
            frame = int(rng.integers(lo, hi + 1))
            f0 = float(rng.uniform(*BANDS_HZ[kind]))
            s = cfg.sample_of(frame)
            b = tone_burst(cfg.samples - s, f0, cfg)
            tracks[i, s: s + len(b)] += b
            events.append(Event(i, frame, s, f0, int(word)))
    events.sort(key=lambda e: (e.frame, e.shape))
    video = _render(cfg, specs, {(e.shape, e.frame) for e in events})
    audio = tracks.sum(0) + cfg.noise * rng.standard_normal(cfg.samples).astype(np.float32)
    shapes = [(k, c) for k, c, _, _ in specs]
    return AVClip(video, audio.astype(np.float32), events, _caption(shapes, events), shapes, cfg, tracks)


def generate_clips(n: int, cfg: AVEventsConfig = AVEventsConfig(), seed: int = 0) -> list[AVClip]:
    """``n`` clips from one seeded generator (the same seed gives the same clips on any machine)."""
    rng = np.random.default_rng(seed)
    return [generate_clip(rng, cfg) for _ in range(n)]


def stack(clips: Sequence[AVClip]) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, 3, H, W) videos and (N, samples) waveforms of ``clips``."""
    return np.stack([c.video for c in clips]), np.stack([c.audio for c in clips])


# ----------------------------------------------------------------------------- negatives
def band_stop(x: np.ndarray, sample_rate: int, band: tuple[float, float], margin: float = 50.0) -> np.ndarray:
    """Zero the FFT bins of ``band`` (+- margin Hz) of a waveform."""
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    spec[(freqs >= band[0] - margin) & (freqs <= band[1] + margin)] = 0
    return np.fft.irfft(spec, n=len(x)).astype(np.float32)


def make_negative(clip: AVClip, kind: str, rng: np.random.Generator) -> AVClip:
    """An asynchronous copy of ``clip`` made by the named negative (see the module docstring); the other
    modality is untouched. Temporal shifts move events by at least 2 frames."""
    cfg = clip.config
    video, audio = clip.video.copy(), clip.audio.copy()
    spf = cfg.sample_rate / cfg.fps  # samples per frame
    ev = clip.events[int(rng.integers(len(clip.events)))]
    if kind == "grid_mask":  # blank the 2x2-grid cell holding the chosen sounding shape at its event frame
        h = cfg.size // 2
        m = video[ev.frame].max(0)
        ys, xs = np.nonzero(m > 0.9)  # the white flash
        cy, cx = (int(ys.mean()) // h, int(xs.mean()) // h) if len(ys) else (0, 0)
        video[:, :, cy * h:(cy + 1) * h, cx * h:(cx + 1) * h] = 0.1
    elif kind == "add_masklet":  # a silent extra shape that flashes at a time with no sound
        free = [k for k in KINDS if k not in {s[0] for s in clip.shapes}] or list(KINDS)
        kind_x = free[int(rng.integers(len(free)))]
        busy = {e.frame for e in clip.events}
        frames = [f for f in range(1, cfg.frames - 1) if all(abs(f - b) >= 2 for b in busy)] or [0]
        f = frames[int(rng.integers(len(frames)))]
        spec = ShapeSpec(kind_x, "white", "medium", float(rng.uniform(0.22, 0.78)), float(rng.uniform(0.22, 0.78)))
        for g in range(cfg.frames):
            layer = render_scene([spec if g == f else replace(spec, colour="cyan")], cfg.size)
            mask = np.abs(layer - render_scene([], cfg.size)).max(0) > 0.05
            video[g][:, mask] = layer[:, mask]
    elif kind == "video_shift":  # circular: every frame is kept, only the time axis moves
        k = int(rng.choice([-1, 1])) * int(rng.integers(2, max(3, cfg.frames // 4) + 1))
        video = np.roll(video, k, axis=0)
    elif kind == "stall":  # freeze on the last flash-free frame before the event until a frame after it: the flash never shows
        flashes = {e.frame for e in clip.events}
        start = max(0, ev.frame - 1)
        while start in flashes and start > 0:
            start -= 1
        video[start + 1: ev.frame + 2] = video[start]
    elif kind == "add_source":
        f = int(rng.integers(1, cfg.frames - 1))
        s = cfg.sample_of(f)
        b = tone_burst(cfg.samples - s, float(rng.uniform(*SPARE_BAND_HZ)), cfg)
        audio[s: s + len(b)] += b
    elif kind == "delete_source":
        audio = band_stop(audio, cfg.sample_rate, BANDS_HZ[clip.shapes[ev.shape][0]])
    elif kind == "volume_envelope":  # a slow gain between 0.1 and 1 (two random control points per clip)
        ctrl = rng.uniform(0.1, 1.0, 4)
        audio = audio * np.interp(np.arange(len(audio)), np.linspace(0, len(audio) - 1, 4), ctrl).astype(np.float32)
    elif kind == "audio_shift":  # circular: the magnitude spectrum is exactly kept, only the timing moves
        k = int(rng.choice([-1, 1])) * int(rng.integers(2, max(3, cfg.frames // 4) + 1))
        audio = np.roll(audio, int(round(k * spf)))
    elif kind == "silence":
        s = ev.sample
        audio[max(0, s - int(spf)): s + int(cfg.burst * cfg.sample_rate)] = 0.0
    elif kind == "repeat":  # the event's burst copied 3-5 frames later (or earlier when it would not fit)
        L = int(cfg.burst * cfg.sample_rate)
        seg = clip.audio[ev.sample: ev.sample + L].copy()
        d = int(round(int(rng.integers(3, 6)) * spf))
        t = ev.sample + d if ev.sample + d + len(seg) <= len(audio) else max(0, ev.sample - d)
        audio[t: t + len(seg)] += seg[: len(audio) - t]
    elif kind == "speed":
        r = float(rng.choice([0.7, 1.4]))
        pos = np.arange(len(audio)) * r
        audio = np.interp(pos, np.arange(len(clip.audio)), clip.audio, right=0.0).astype(np.float32)
    else:
        raise ConfigError("negative", kind, f"one of {', '.join(NEGATIVES)}")
    return AVClip(video.astype(np.float32), audio.astype(np.float32), clip.events, clip.caption, clip.shapes, cfg, None, kind)


# ----------------------------------------------------------------------------- detection (for planted checks and generated clips)
def flash_frames(video: np.ndarray, threshold: float = 0.6) -> np.ndarray:
    """Frames where a flash appears: the whiteness (min over RGB) of the frame's brightest pixels jumps up.

    ``video`` (T, 3, H, W) in [0, 1]. Whiteness per frame = mean of the top 8 pixels of min(R, G, B)
    (a coloured shape has one low channel; only a white flash is high in all three).
    """
    if video.ndim != 4 or video.shape[1] != 3:
        raise ShapeError("video", video.shape, "(T, 3, H, W)")
    w = np.sort(video.min(axis=1).reshape(len(video), -1), axis=1)[:, -8:].mean(1)
    return np.nonzero(w > threshold)[0]
