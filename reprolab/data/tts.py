"""Synthetic speech: espeak-ng voices, then sox perturbations (speed, reverberation, noise), cached on disk.

This is synthetic speech, not recordings: espeak-ng's formant voices are far from human speech, which is
why Whisper's error rates on it are high and why the perturbations exist (they move WER into the range
where a language model can help). Voices: ``es``, ``ca``, ``eu`` (espeak-ng has no Galician voice).

Needs Debian ``espeak-ng`` and ``sox`` (``apt-get install -y espeak-ng sox``; ``make assets``).
Files are cached under ``~/.cache/reprolab/tts/`` keyed by a hash of (voice, text, perturbation, seed).

:func:`speak_with_word_times` synthesises in-process through libespeak-ng (ctypes) and returns the audio
with the exact start of every word, read from espeak-ng's own word events (the sample where the word's
sound begins), not from a forced aligner.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import threading
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AssetMissing, ConfigError, ReprolabError

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


def synthesize(text: str, language: str, perturbation: Perturbation = Perturbation(), seed: int = 0, rate_wpm: int = 120,
               variant: str = "") -> Path:
    """A 16 kHz mono WAV of ``text`` spoken by espeak-ng's ``language`` voice at ``rate_wpm`` words per minute
    (120: Whisper base transcribes clean Spanish espeak at ~30% WER, at espeak's default 175 far worse), perturbed; cached.
    ``variant``: an espeak-ng voice variant (``"m3"``, ``"f2"``, ...; ``espeak-ng --voices=variant``), "" = the default voice."""
    if language not in VOICES:
        raise ConfigError("language", language, f"one of {sorted(VOICES)} (espeak-ng has no Galician voice)")
    if not text.strip():
        raise ConfigError("text", text, "a non-empty sentence")
    if variant and not variant.replace("-", "").isalnum():
        raise ConfigError("variant", variant, "an espeak-ng variant name such as 'm3' or 'f2'")
    voice = VOICES[language] + (f"+{variant}" if variant else "")
    key_parts = (VOICES[language], text, perturbation, seed, rate_wpm) + ((variant,) if variant else ())  # "" keeps earlier cache keys
    key = hashlib.sha1(repr(key_parts).encode()).hexdigest()[:20]
    out = cache_dir() / language / f"{key}.wav"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    raw = out.with_suffix(".raw.wav")
    tmp = out.with_name(f".{out.stem}.{os.getpid()}.tmp.wav")
    subprocess.run([espeak, "-v", voice, "-s", str(rate_wpm), "-w", str(raw), text], check=True, capture_output=True)
    effects = _sox_effects(perturbation)
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


def _sox_effects(perturbation: Perturbation) -> list[str]:
    effects: list[str] = []
    if perturbation.speed != 1.0:
        effects += ["speed", f"{perturbation.speed:.4f}"]
    if perturbation.pitch_cents:
        effects += ["pitch", f"{perturbation.pitch_cents:.1f}"]
    if perturbation.reverb > 0:
        effects += ["reverb", f"{perturbation.reverb:.1f}"]
    return effects + ["rate", "16000", "channels", "1"]


def random_perturbation(rng: random.Random, strength: float = 1.0) -> Perturbation:
    """A random moderate perturbation: speed 0.9-1.15, reverberance 0-50, noise -38..-26 dBFS (x strength)."""
    return Perturbation(
        speed=1.0 + strength * rng.uniform(-0.1, 0.15),
        reverb=min(100.0, strength * rng.uniform(0, 50)),
        noise_db=-38 + strength * rng.uniform(0, 12) if strength > 0 else -99.0,
        pitch_cents=strength * rng.uniform(-200, 200),
    )


# ----------------------------------------------------------------------------- word times from libespeak-ng


@dataclass(frozen=True)
class SpokenWord:
    """One word of a spoken text: its text (with the space before it, except the first word, so that
    ``"".join`` gives the text back) and its start and end in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Utterance:
    """Audio (float32 in [-1, 1], mono) and the words with their times."""

    audio: np.ndarray
    sample_rate: int
    words: tuple[SpokenWord, ...]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate

    def save_wav(self, path: str | Path) -> Path:
        """16-bit PCM WAV, written atomically."""
        return write_wav(path, self.audio, self.sample_rate)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> Path:
    """Write mono float audio in [-1, 1] as a 16-bit PCM WAV, atomically (temp file, then rename)."""
    import wave

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0) * 32767).astype("<i2")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV as float32 mono in [-1, 1] and its sample rate; MalformedFile if it is not one."""
    import wave

    from ..errors import MalformedFile

    path = Path(path)
    if not path.exists():
        raise AssetMissing(str(path), fix="check the path (the file does not exist)")
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate, n = w.getsampwidth(), w.getnchannels(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as e:
        raise MalformedFile(str(path), f"not a PCM WAV file ({e})", fix="re-encode it: sox in.wav -b 16 out.wav") from None
    if width != 2 or len(raw) < 2:
        raise MalformedFile(str(path), f"{8 * width}-bit or empty audio", fix="re-encode it as 16-bit PCM: sox in.wav -b 16 out.wav")
    x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, channels).mean(axis=1), rate


class _EspeakId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _EspeakEvent(ctypes.Structure):  # espeak_EVENT of speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EspeakId)]


_EVENT_WORD, _EVENT_END, _EVENT_PHONEME = 1, 5, 7
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent))
_ESPEAK: dict[str, object] = {}
_ESPEAK_LOCK = threading.Lock()


def _espeak() -> tuple[ctypes.CDLL, int]:
    """libespeak-ng, initialised once per process in synchronous mode; (library, its sample rate)."""
    if "lib" not in _ESPEAK:
        try:
            lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError:
            raise AssetMissing("debian:libespeak-ng1", fix="sudo apt-get install -y espeak-ng  (or: make assets)") from None
        # AUDIO_OUTPUT_SYNCHRONOUS, default buffer, default data; DONT_EXIT | PHONEME_EVENTS (phoneme events are extra
        # events in the callback: speak_with_word_times ignores them, speak_with_phoneme_times reads them)
        rate = lib.espeak_Initialize(2, 0, None, 0x8000 | 0x0001)
        if rate <= 0:
            raise AssetMissing("debian:espeak-ng-data", fix="sudo apt-get install -y espeak-ng  (or: make assets)")
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        _ESPEAK.update(lib=lib, rate=rate)
    return _ESPEAK["lib"], int(_ESPEAK["rate"])  # type: ignore[return-value]


def espeak_available() -> bool:
    """Whether libespeak-ng and its voice data load here (tests skip without them)."""
    try:
        _espeak()
        return True
    except AssetMissing:
        return False


def _synthesize(text: str, voice: str, rate_wpm: int) -> tuple[np.ndarray, int, list[tuple[int, int, int, str]]]:
    """libespeak-ng in callback mode: (audio at the native rate, native rate, events as (type, text position (1-based),
    sample, phoneme name or ""))."""
    lib, native = _espeak()
    chunks: list[np.ndarray] = []
    events: list[tuple[int, int, int, str]] = []

    def collect(wav, n, ev):  # noqa: ANN001 - ctypes callback
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while ev[i].type != 0:
            name = bytes(ev[i].id.string).split(b"\0", 1)[0].decode("ascii", "replace") if ev[i].type == _EVENT_PHONEME else ""
            events.append((ev[i].type, ev[i].text_position, ev[i].sample, name))
            i += 1
        return 0

    callback = _CALLBACK(collect)
    data = text.encode("utf-8")
    with _ESPEAK_LOCK:
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError("variant", voice, "an espeak-ng voice variant that exists (espeak-ng --voices=variant)")
        lib.espeak_SetParameter(1, int(rate_wpm), 0)  # espeakRATE, absolute
        if lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None) != 0:  # POS_CHARACTER, espeakCHARS_UTF8
            raise ReprolabError(f"libespeak-ng refused to synthesise {text[:40]!r}", fix="check the text's encoding")
        lib.espeak_Synchronize()
    audio = (np.concatenate(chunks) if chunks else np.zeros(1, np.int16)).astype(np.float32) / 32768.0
    return audio, native, events


def _resample(audio: np.ndarray, native: int, sample_rate: int) -> np.ndarray:
    if sample_rate == native:
        return audio
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(sample_rate, native)
    return resample_poly(audio, sample_rate // g, native // g).astype(np.float32)


def _load_cached(base: Path) -> tuple[np.ndarray, dict] | None:
    """(audio, metadata) saved by :func:`_save_cached` under ``base``, or None when either file is missing."""
    if base.with_suffix(".json").exists() and base.with_suffix(".npy").exists():
        return np.load(base.with_suffix(".npy")), json.loads(base.with_suffix(".json").read_text())
    return None


def _save_cached(base: Path, audio: np.ndarray, meta: dict) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = base.with_name(f".{base.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, audio)
    os.replace(tmp, base.with_suffix(".npy"))
    from ..runtime import atomic_write_json

    atomic_write_json(base.with_suffix(".json"), meta)


def speak_with_word_times(text: str, language: str = "es", rate_wpm: int = 160, variant: str = "", sample_rate: int = 16_000,
                          cache: bool = True) -> Utterance:
    """Synthesise ``text`` with libespeak-ng and return the audio (resampled to ``sample_rate``) and each
    whitespace-separated word with its exact start: the sample of espeak-ng's first word event inside
    that word. A word ends where the next word starts (the pause after it included); the last word at
    the end of the audio. A word espeak-ng does not voice (a lone dash) gets zero length at the next
    word's start. ``variant``: an espeak-ng voice variant (``"f2"``, ``"m3"``, ... ; ``"es+f2"``).
    Cached under ``cache_dir()/words/`` when ``cache``."""
    if language not in VOICES:
        raise ConfigError("language", language, f"one of {sorted(VOICES)} (espeak-ng has no Galician voice)")
    tokens = text.split()
    if not tokens:
        raise ConfigError("text", text, "a non-empty sentence")
    voice = VOICES[language] + (f"+{variant}" if variant else "")
    key = hashlib.sha1(repr(("words-v1", voice, text, rate_wpm, sample_rate)).encode()).hexdigest()[:20]
    base = cache_dir() / "words" / language / key
    hit = _load_cached(base) if cache else None
    if hit is not None:
        return Utterance(hit[0], hit[1]["sample_rate"], tuple(SpokenWord(*w) for w in hit[1]["words"]))
    audio, native, raw_events = _synthesize(text, voice, rate_wpm)
    events = [(kind, char, sample) for kind, char, sample, _ in raw_events]
    total = len(audio) / native
    # character span of every whitespace token (espeak's text_position counts characters from 1)
    spans, pos = [], 0
    for tok in tokens:
        pos = text.index(tok, pos)
        spans.append((pos, pos + len(tok)))
        pos += len(tok)
    starts: list[float | None] = [None] * len(tokens)
    j = 0
    for kind, char, sample in events:
        if kind != _EVENT_WORD:
            continue
        c = char - 1
        while j < len(spans) and spans[j][1] <= c:
            j += 1
        if j < len(spans) and spans[j][0] <= c and starts[j] is None:
            starts[j] = sample / native
    nxt = total
    for i in range(len(tokens) - 1, -1, -1):  # unvoiced tokens: the next word's start
        starts[i] = nxt if starts[i] is None else starts[i]
        nxt = starts[i]
    for i in range(1, len(starts)):  # monotone (numbers read out may emit events out of order)
        starts[i] = max(starts[i], starts[i - 1])
    ends = list(starts[1:]) + [total]
    words = tuple(SpokenWord(("" if i == 0 else " ") + tok, round(float(s), 6), round(float(e), 6))
                  for i, (tok, s, e) in enumerate(zip(tokens, starts, ends)))
    audio = _resample(audio, native, sample_rate)
    utt = Utterance(audio, sample_rate, words)
    if cache:
        _save_cached(base, audio, {"sample_rate": sample_rate, "words": [[w.text, w.start, w.end] for w in words]})
    return utt


@dataclass(frozen=True)
class SpokenPhoneme:
    """One phoneme as espeak-ng voices it: its mnemonic (espeak's ASCII phoneme name, e.g. ``"a"``, ``"p"``, ``"_:"``
    for a pause) and its start and end in seconds (a phoneme ends where the next starts)."""

    phoneme: str
    start: float
    end: float


def speak_with_phoneme_times(text: str, language: str = "en", rate_wpm: int = 160, variant: str = "",
                             sample_rate: int = 16_000, cache: bool = True) -> tuple[np.ndarray, int, tuple[SpokenPhoneme, ...]]:
    """Synthesise ``text`` with libespeak-ng and return (audio, sample_rate, phonemes), each phoneme at the exact sample
    of espeak-ng's phoneme event (``espeakEVENT_PHONEME``, callback mode), in espeak's mnemonics.

    espeak-ng's noise sources make two syntheses of the same text differ slightly (a few samples of length, the noise
    of bursts and fricatives; phoneme times agree to 0.2 ms), so the first one is cached under
    ``cache_dir()/phonemes/`` (``cache=True``) and reused: the same text gives the same audio on one machine."""
    if language not in VOICES:
        raise ConfigError("language", language, f"one of {sorted(VOICES)}")
    if not text.strip():
        raise ConfigError("text", text, "a non-empty sentence")
    voice = VOICES[language] + (f"+{variant}" if variant else "")
    key = hashlib.sha1(repr(("phonemes-v1", voice, text, rate_wpm, sample_rate)).encode()).hexdigest()[:20]
    base = cache_dir() / "phonemes" / language / key
    hit = _load_cached(base) if cache else None
    if hit is not None:
        return hit[0], hit[1]["sample_rate"], tuple(SpokenPhoneme(*p) for p in hit[1]["phonemes"])
    audio, native, raw_events = _synthesize(text, voice, rate_wpm)
    events = [(name, sample) for kind, _, sample, name in raw_events if kind == _EVENT_PHONEME]
    total = len(audio) / native
    starts = [sample / native for _, sample in events]
    ends = starts[1:] + [total]
    phonemes = tuple(SpokenPhoneme(name, round(s, 6), round(max(s, e), 6)) for (name, _), s, e in zip(events, starts, ends))
    audio = _resample(audio, native, sample_rate)
    if cache:
        _save_cached(base, audio, {"sample_rate": sample_rate, "phonemes": [[p.phoneme, p.start, p.end] for p in phonemes]})
    return audio, sample_rate, phonemes


def perturb(utterance: Utterance, perturbation: Perturbation, seed: int = 0) -> Utterance:
    """The utterance through sox's effects (speed, pitch, reverberation; not noise), word times scaled by
    1 / speed (sox ``speed`` changes tempo and pitch together). For held-out "speakers"."""
    import tempfile

    sox = _tool("sox")
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.wav", Path(d) / "out.wav"
        write_wav(src, utterance.audio, utterance.sample_rate)
        effects = _sox_effects(perturbation)
        subprocess.run([sox, str(src), "-b", "16", str(dst), *effects[:-4], "rate", str(utterance.sample_rate), "channels", "1"],
                       check=True, capture_output=True, env={**os.environ, "SOX_OPTS": "-R"})
        audio, rate = read_wav(dst)
    k = 1.0 / perturbation.speed
    words = tuple(SpokenWord(w.text, round(w.start * k, 6), round(w.end * k, 6)) for w in utterance.words)
    return Utterance(audio, rate, words)
