"""Synthetic speech: espeak-ng voices, then sox perturbations (speed, reverberation, noise), cached on disk.

This is synthetic speech, not recordings: espeak-ng's formant voices are far from human speech, which is
why Whisper's error rates on it are high and why the perturbations exist (they move WER into the range
where a language model can help). Voices: ``es``, ``ca``, ``eu`` (espeak-ng has no Galician voice).

Needs Debian ``espeak-ng`` and ``sox`` (``apt-get install -y espeak-ng sox``; ``make assets``).
Files are cached under ``~/.cache/reprolab/tts/`` keyed by a hash of (voice, text, perturbation, seed).
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import AssetMissing, ConfigError

VOICES = {"es": "es", "ca": "ca", "eu": "eu", "en": "en"}


@dataclass(frozen=True)
class Perturbation:
    """sox effects applied after synthesis (0 = off for each)."""

    speed: float = 1.0  # tempo factor (sox ``speed``), e.g. 1.1
    reverb: float = 0.0  # sox ``reverb`` reverberance 0..100
    noise_db: float = -99.0  # white-noise level in dB relative to full scale (e.g. -30); <= -99 = none
    pitch_cents: float = 0.0  # sox ``pitch`` shift in cents

    def __post_init__(self) -> None:
        if not 0.5 <= self.speed <= 2.0:
            raise ConfigError("speed", self.speed, "a factor in [0.5, 2]")
        if not 0.0 <= self.reverb <= 100.0:
            raise ConfigError("reverb", self.reverb, "a reverberance in [0, 100]")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssetMissing(f"debian:{name}", fix=f"sudo apt-get install -y {name}  (or: make assets)")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("REPROLAB_CACHE", Path.home() / ".cache" / "reprolab")) / "tts"


def synthesize(text: str, language: str, perturbation: Perturbation = Perturbation(), seed: int = 0, rate_wpm: int = 120) -> Path:
    """A 16 kHz mono WAV of ``text`` spoken by espeak-ng's ``language`` voice at ``rate_wpm`` words per minute
    (120: Whisper base transcribes clean Spanish espeak at ~30% WER, at espeak's default 175 far worse), perturbed; cached."""
    if language not in VOICES:
        raise ConfigError("language", language, f"one of {sorted(VOICES)} (espeak-ng has no Galician voice)")
    if not text.strip():
        raise ConfigError("text", text, "a non-empty sentence")
    key = hashlib.sha1(repr((VOICES[language], text, perturbation, seed, rate_wpm)).encode()).hexdigest()[:20]
    out = cache_dir() / language / f"{key}.wav"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    raw = out.with_suffix(".raw.wav")
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.wav")
    subprocess.run([espeak, "-v", VOICES[language], "-s", str(rate_wpm), "-w", str(raw), text], check=True, capture_output=True)
    effects: list[str] = []
    if perturbation.speed != 1.0:
        effects += ["speed", f"{perturbation.speed:.4f}"]
    if perturbation.pitch_cents:
        effects += ["pitch", f"{perturbation.pitch_cents:.1f}"]
    if perturbation.reverb > 0:
        effects += ["reverb", f"{perturbation.reverb:.1f}"]
    effects += ["rate", "16000", "channels", "1"]
    try:
        if perturbation.noise_db > -99:
            clean = out.with_name(f".{out.stem}.{os.getpid()}.clean.wav")
            noise = out.with_name(f".{out.stem}.{os.getpid()}.noise.wav")
            subprocess.run([sox, str(raw), "-r", "16000", "-c", "1", "-b", "16", str(clean), *effects], check=True, capture_output=True)
            dur = subprocess.run([sox, "--i", "-D", str(clean)], check=True, capture_output=True, text=True).stdout.strip()
            amp = 10 ** (perturbation.noise_db / 20)
            subprocess.run([sox, "-n", "-r", "16000", "-c", "1", "-b", "16", str(noise), "synth", dur, "whitenoise", "vol", f"{amp:.6f}"],
                           check=True, capture_output=True, env={**os.environ, "SOX_OPTS": "-R"})  # repeatable noise
            subprocess.run([sox, "-m", str(clean), str(noise), str(tmp)], check=True, capture_output=True)
            clean.unlink(missing_ok=True)
            noise.unlink(missing_ok=True)
        else:
            subprocess.run([sox, str(raw), "-r", "16000", "-c", "1", "-b", "16", str(tmp), *effects], check=True, capture_output=True)
        os.replace(tmp, out)
    finally:
        raw.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return out


def random_perturbation(rng: random.Random, strength: float = 1.0) -> Perturbation:
    """A random moderate perturbation: speed 0.9-1.15, reverberance 0-50, noise -38..-26 dBFS (x strength)."""
    return Perturbation(
        speed=1.0 + strength * rng.uniform(-0.1, 0.15),
        reverb=min(100.0, strength * rng.uniform(0, 50)),
        noise_db=-38 + strength * rng.uniform(0, 12) if strength > 0 else -99.0,
        pitch_cents=strength * rng.uniform(-200, 200),
    )
