"""The speech-text corpus of our reproduction: Spanish help pages, spoken by espeak-ng, as units.

Paper Sec. 4 trains on real speech (LibriLight, ...), synthetic speech (sTinyStories) and text. Ours
(spec sheet, "Our reproduction"): the documents of LibreOffice's Spanish help
(:func:`reprolab.data.speech_text.documents`, sentence order kept), shuffled with a seed; the first
``speech_docs`` are spoken by one espeak-ng voice (``es``, 160 words per minute) with exact word times
(:func:`reprolab.data.tts.speak_with_word_times`) and turned into deduplicated MFCC k-means units; of
those, ``eval_docs`` are held out for validation utterances and cloze items, the rest give the
interleaved and speech-only training documents. The remaining documents are the text-only data.

Cloze sets built from the held-out documents (sentence k of a page as context):
- ``tsc`` (Topic-StoryCloze-like): true next sentence k + 1 vs a sentence from another held-out page;
- ``ssc`` (StoryCloze-like, harder): sentence k + 1 vs a later sentence of the same page (k + 2 or beyond);
- ``sblimp`` (sBLIMP-like): sentence k + 1 vs the same sentence with two adjacent words swapped;
- ``tsc_voices``: the tSC items spoken by held-out voices: espeak-ng variants (f2, m3, f4, m1) with
  sox pitch and speed changes, one per item in rotation (the paper's multi-speaker sets use real voices).
Each item is synthesised as one utterance (context + ending) and written as WAV in slamkit's layout.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...data import speech_text, tts
from ...errors import ConfigError
from ...runtime import atomic_write_json, track
from .cloze import cloze_file_names
from .interleaving import AlignedWord, InterleavingConfig, assign_modalities, serialise, speech_only, text_only
from .units import UnitConfig, UnitTokenizer, audio_features, fit_unit_tokenizer

HELD_OUT_VOICES = (("f2", tts.Perturbation(pitch_cents=200.0)), ("m3", tts.Perturbation(speed=1.12)),
                   ("f4", tts.Perturbation(pitch_cents=-150.0, speed=0.92)), ("m1", tts.Perturbation(pitch_cents=350.0, speed=1.05)))
CLOZE_SETS = ("tsc", "ssc", "sblimp", "tsc_voices")


@dataclass(frozen=True)
class CorpusConfig:
    speech_docs: int = 220  # documents spoken (training + held out)
    eval_docs: int = 60  # of those, held out for validation and cloze
    max_sentences: int = 12  # first sentences of each spoken document
    max_words: int = 20  # longest sentence kept (words)
    rate_wpm: int = 160  # espeak-ng speed of the training voice
    units: UnitConfig = field(default_factory=UnitConfig)
    cloze_items: int = 160  # items per cloze set (at most; limited by the held-out pages)
    val_utterances: int = 200  # held-out sentences scored for the validation loss
    text_docs: int | None = None  # text-only documents (None: all the rest)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.eval_docs < self.speech_docs:
            raise ConfigError("eval_docs", self.eval_docs, f"between 1 and speech_docs - 1 = {self.speech_docs - 1}")


@dataclass
class SpokenSentence:
    text: str
    words: list[AlignedWord]
    units: list[int]
    durations: list[int]


@dataclass
class SpeechTextCorpus:
    config: CorpusConfig
    train_docs: list[list[SpokenSentence]]  # spoken training documents
    val: list[SpokenSentence]  # held-out utterances (speech-only validation)
    text_docs: list[str]  # text-only documents
    cloze_root: Path  # folder with one sub-folder per cloze set (slamkit layout)
    cloze_texts: dict[str, list[tuple[str, str]]]  # set -> (true text, false text) per item
    tokenizer: UnitTokenizer

    def interleaved_documents(self, cfg: InterleavingConfig, seed: int, passes: int = 1) -> list[str]:
        """Every training document serialised ``passes`` times with fresh spans (paper: one interleaving
        per sample; more passes give more variety at our small data size)."""
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(passes):
            for doc in self.train_docs:
                words, units, durs = _concatenate(doc, self.config.units.unit_seconds)
                out.append(serialise(words, units, durs, assign_modalities(len(words), cfg, rng), cfg.unit_seconds))
        return out

    def speech_documents(self) -> list[str]:
        return [speech_only([u for s in doc for u in s.units]) for doc in self.train_docs]

    def text_documents(self) -> list[str]:
        return [text_only(t) for t in self.text_docs]

    def validation_units(self) -> list[list[int]]:
        return [s.units for s in self.val]


def _concatenate(doc: list[SpokenSentence], unit_seconds: float) -> tuple[list[AlignedWord], list[int], list[int]]:
    """One document's words (times shifted by the units' running time) and units, sentence after sentence."""
    words, units, durs, offset = [], [], [], 0.0
    for k, s in enumerate(doc):
        for i, w in enumerate(s.words):
            text = w.text if (i or not k) else " " + w.text.lstrip()
            words.append(AlignedWord(text, w.start + offset, w.end + offset))
        units += s.units
        durs += s.durations
        offset += sum(s.durations) * unit_seconds
    return words, units, durs


def _spoken(text: str, cfg: CorpusConfig, tok: UnitTokenizer | None) -> tuple[tts.Utterance, np.ndarray]:
    utt = tts.speak_with_word_times(text, "es", rate_wpm=cfg.rate_wpm, sample_rate=cfg.units.front_end.sample_rate, cache=False)
    return utt, audio_features(utt.audio, cfg.units)


def build_corpus(cfg: CorpusConfig, cache_dir: str | Path, progress: bool = True) -> SpeechTextCorpus:
    """Synthesise, tokenise and split (cached in ``cache_dir`` by a hash of the config: a second call
    reads the units, word times and WAV files back)."""
    cache_dir = Path(cache_dir)
    key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True, default=str).encode()).hexdigest()[:12]
    folder = cache_dir / f"corpus-{key}"
    index = folder / "corpus.json"
    texts = folder / "text_docs.json"
    if index.exists() and texts.exists():  # the text-only documents too: no need to parse the help pages again
        data = json.loads(index.read_text())
        tok = UnitTokenizer.load(folder / data["codebook"], cfg.units)
        train = [[_sentence(s) for s in d] for d in data["train"]]
        val = [_sentence(s) for s in data["val"]]
        return SpeechTextCorpus(cfg, train, val, json.loads(texts.read_text()), folder / "cloze",
                                {k: [tuple(p) for p in v] for k, v in data["cloze"].items()}, tok)
    docs = speech_text.documents("es", "libreoffice", max_words=cfg.max_words, min_sentences=3)
    order = list(range(len(docs)))
    random.Random(cfg.seed).shuffle(order)
    if cfg.speech_docs >= len(order):
        raise ConfigError("speech_docs", cfg.speech_docs, f"fewer than the {len(order)} documents")
    spoken_ids, text_ids = order[: cfg.speech_docs], order[cfg.speech_docs:]
    if cfg.text_docs is not None:
        text_ids = text_ids[: cfg.text_docs]
    eval_ids, train_ids = spoken_ids[: cfg.eval_docs], spoken_ids[cfg.eval_docs:]
    text_docs = [" ".join(docs[i]) for i in text_ids]
    if index.exists():
        atomic_write_json(texts, text_docs)
        data = json.loads(index.read_text())
        tok = UnitTokenizer.load(folder / data["codebook"], cfg.units)
        train = [[_sentence(s) for s in d] for d in data["train"]]
        val = [_sentence(s) for s in data["val"]]
        return SpeechTextCorpus(cfg, train, val, text_docs, folder / "cloze", {k: [tuple(p) for p in v] for k, v in data["cloze"].items()}, tok)

    # 1. speak the training pages, fit the codebook on their frames, tokenise
    train_text = [docs[i][: cfg.max_sentences] for i in train_ids]
    feats: list[list[np.ndarray]] = []
    words: list[list[list[AlignedWord]]] = []
    for doc in track(train_text, "slm_scaling: speaking the training pages") if progress else train_text:
        fd, wd = [], []
        for s in doc:
            utt, f = _spoken(s, cfg, None)
            fd.append(f)
            wd.append([AlignedWord(w.text, w.start, w.end) for w in utt.words])
        feats.append(fd)
        words.append(wd)
    tok = fit_unit_tokenizer([f for fd in feats for f in fd], cfg.units, cache_dir=folder)
    train = [[SpokenSentence(s, w, *_units(tok, f)) for s, w, f in zip(doc, wd, fd)] for doc, wd, fd in zip(train_text, words, feats)]
    # 2. held-out pages: validation utterances and cloze items
    eval_docs = [docs[i][: cfg.max_sentences] for i in eval_ids]
    val_text = [s for d in eval_docs for s in d][: cfg.val_utterances]
    val = []
    for s in track(val_text, "slm_scaling: validation utterances") if progress else val_text:
        utt, f = _spoken(s, cfg, tok)
        val.append(SpokenSentence(s, [AlignedWord(w.text, w.start, w.end) for w in utt.words], *_units(tok, f)))
    cloze = cloze_items(eval_docs, cfg.cloze_items, cfg.seed)
    root = folder / "cloze"
    spoken: dict[tuple[str, str], tts.Utterance] = {}  # the true ending is the same text in tsc, ssc and sblimp
    for name, items in cloze.items():
        jobs = list(enumerate(items))
        for i, (good, bad) in track(jobs, f"slm_scaling: cloze set {name}") if progress else jobs:
            variant, pert = HELD_OUT_VOICES[i % len(HELD_OUT_VOICES)] if name == "tsc_voices" else ("", None)
            for text, fname in zip((good, bad), cloze_file_names(i)):
                if (variant, text) not in spoken:
                    spoken[(variant, text)] = tts.speak_with_word_times(text, "es", rate_wpm=cfg.rate_wpm, variant=variant,
                                                                        sample_rate=cfg.units.front_end.sample_rate, cache=False)
                utt = spoken[(variant, text)]
                if pert is not None:
                    utt = tts.perturb(utt, pert)
                utt.save_wav(root / name / fname)
    codebook = next(folder.glob("codebook-*.npz")).name
    atomic_write_json(texts, text_docs)
    atomic_write_json(index, {"codebook": codebook, "train": [[_plain(s) for s in d] for d in train], "val": [_plain(s) for s in val],
                              "cloze": cloze})
    return SpeechTextCorpus(cfg, train, val, text_docs, root, {k: list(v) for k, v in cloze.items()}, tok)


def cloze_items(eval_docs: list[list[str]], n: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """(true, false) texts per set; context = sentence k, ending = sentence k + 1 (see the module docstring)."""
    rng = random.Random(seed)
    slots = [(d, k) for d, doc in enumerate(eval_docs) for k in range(len(doc) - 2)]  # k + 2 exists (for ssc)
    rng.shuffle(slots)
    slots = slots[:n]
    out: dict[str, list[tuple[str, str]]] = {s: [] for s in CLOZE_SETS}
    for d, k in slots:
        doc = eval_docs[d]
        ctx, true = doc[k], doc[k + 1]
        other = rng.choice([j for j in range(len(eval_docs)) if j != d])
        topic = rng.choice(eval_docs[other])
        later = doc[rng.randrange(k + 2, len(doc))]
        w = true.split()
        i = rng.randrange(len(w) - 1)
        swapped = " ".join(w[:i] + [w[i + 1], w[i]] + w[i + 2:])
        out["tsc"].append((f"{ctx} {true}", f"{ctx} {topic}"))
        out["ssc"].append((f"{ctx} {true}", f"{ctx} {later}"))
        out["sblimp"].append((f"{ctx} {true}", f"{ctx} {swapped}"))
    out["tsc_voices"] = list(out["tsc"])
    return out


def _units(tok: UnitTokenizer, feats: np.ndarray) -> tuple[list[int], list[int]]:
    from .interleaving import dedup

    return dedup(tok.units_of_features(feats))


def _plain(s: SpokenSentence) -> dict[str, Any]:
    return {"text": s.text, "words": [[w.text, w.start, w.end] for w in s.words], "units": s.units, "durations": s.durations}


def _sentence(d: dict[str, Any]) -> SpokenSentence:
    return SpokenSentence(d["text"], [AlignedWord(*w) for w in d["words"]], d["units"], d["durations"])
