"""The experiment grid of the scaling analysis: TextLMs, then SLMs per regime, size and compute budget.

Regimes (paper Sec. 5): ``interleaved`` (TWIST init from the TextLM, Poisson-span interleaving, the three
sources mixed with the official ratios), ``textless`` (TWIST init, vocabulary resized to K + 2, speech-only
data) and ``scratch`` (interleaved data, random init). Each run trains ``D = C / (6 N)`` tokens (N: non-
embedding parameters), then is scored on the held-out utterances (speech-only mean NLL per utterance,
softmax over the unit tokens) and, where asked, on the cloze folders. Used by the study and the benchmark.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...data import tts
from ...errors import ConfigError
from ...nn.gpt import GPT, GPTConfig
from ...runtime import atomic_write_json
from .cloze import evaluate_cloze
from .corpus import SpeechTextCorpus
from .interleaving import SPEECH_TOKEN, TEXT_TOKEN, InterleavingConfig, speech_only, unit_token
from .training import MIX, TrainConfig, sequence_nll, train_lm
from .vocabulary import ByteTokenizer, UnitTokenizer, extend_vocabulary

REGIMES = ("interleaved", "textless", "scratch")


@dataclass(frozen=True)
class ModelSize:
    n_layer: int
    n_head: int
    n_embd: int

    def gpt(self, vocab_size: int, block_size: int) -> GPT:
        return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=self.n_layer, n_head=self.n_head, n_embd=self.n_embd))

    @property
    def label(self) -> str:
        return f"L{self.n_layer}-d{self.n_embd}"


def non_embedding_params(size: ModelSize) -> int:
    return size.gpt(8, 8).num_parameters(exclude_embeddings=True)


@dataclass
class Streams:
    """Packed token streams (1-D LongTensors) of the byte+unit vocabulary and of the textless one."""

    text: torch.Tensor  # <text> documents (byte+unit vocabulary)
    interleaved: torch.Tensor
    speech: torch.Tensor  # <speech> documents
    textless: torch.Tensor  # <S> + units (textless vocabulary)
    text_bytes: torch.Tensor  # plain bytes for TextLM pretraining
    text_val: torch.Tensor  # held-out plain bytes (TextLM check)


def slm_tokenizer(num_units: int) -> ByteTokenizer:
    tok = ByteTokenizer()
    tok.add_tokens([unit_token(k) for k in range(num_units)] + [SPEECH_TOKEN, TEXT_TOKEN])
    return tok


def build_streams(corpus: SpeechTextCorpus, interleaving: InterleavingConfig, passes: int, seed: int) -> Streams:
    K = corpus.tokenizer.num_units
    tok, units = slm_tokenizer(K), UnitTokenizer(K)

    def pack(docs: Sequence[str], enc) -> torch.Tensor:  # noqa: ANN001
        return torch.tensor([i for d in docs for i in enc(d)], dtype=torch.long)

    speech_docs = corpus.speech_documents()
    raw = "\n".join(corpus.text_docs).encode("utf-8")
    cut = int(len(raw) * 0.97)
    return Streams(
        text=pack(corpus.text_documents(), tok.encode),
        interleaved=pack(corpus.interleaved_documents(interleaving, seed, passes), tok.encode),
        speech=pack(speech_docs, tok.encode),
        textless=pack(speech_docs, units.encode),
        text_bytes=torch.frombuffer(bytearray(raw[:cut]), dtype=torch.uint8).long(),
        text_val=torch.frombuffer(bytearray(raw[cut:]), dtype=torch.uint8).long(),
    )


@dataclass(frozen=True)
class Run:
    regime: str  # interleaved | textless | scratch | interleaved-random (benchmark)
    size: ModelSize
    budget: float  # C, FLOPs

    @property
    def key(self) -> str:
        return f"{self.regime}|{self.size.label}|{self.budget:.3g}"

    def tokens(self) -> int:
        return int(self.budget / (6 * non_embedding_params(self.size)))


@dataclass
class RunResult:
    run: Run
    n_params: int
    tokens: int
    seconds: float
    train_losses: list[float]
    val_nll: list[float]  # per held-out utterance
    cloze: dict[str, list[float]] = field(default_factory=dict)  # set -> per-item outcome

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["run"] = {"regime": self.run.regime, "size": asdict(self.run.size), "budget": self.run.budget, "key": self.run.key}
        return d


def pretrain_textlm(size: ModelSize, streams: Streams, tokens: int, cfg: TrainConfig, seed: int, cache: Path) -> tuple[GPT, dict[str, Any]]:
    """A byte-level TextLM of this size trained on the text-only data (cached by size, tokens, data, seed)."""
    h = hashlib.sha256(json.dumps([asdict(size), tokens, asdict(cfg), seed, len(streams.text_bytes),
                                   int(streams.text_bytes[:4096].sum())]).encode()).hexdigest()[:12]
    path = cache / f"textlm-{size.label}-{h}.pt"
    model = size.gpt(256, cfg.block_size)
    if path.exists():
        blob = torch.load(path, weights_only=False)
        model.load_state_dict(blob["state"])
        model.eval()
        return model, blob["info"]
    torch.manual_seed(seed)
    model = size.gpt(256, cfg.block_size)
    log = train_lm(model, [streams.text_bytes], [1.0], tokens, cfg, seed=seed)
    T = cfg.block_size + 1
    n = (len(streams.text_val) // T) * T
    chunks = streams.text_val[:n].view(-1, T)[:64].tolist()
    val = float(np.mean(sequence_nll(model, chunks)))
    info = {"tokens": log.tokens, "seconds": log.seconds, "flops": 6 * non_embedding_params(size) * log.tokens, "text_val_nll": val,
            "train_losses": log.losses}
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"state": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    return model, info


class Scorer:
    """Speech-only scoring of a model: units -> ids of its vocabulary; NLL over unit targets, softmax over units."""

    def __init__(self, num_units: int, textless: bool):
        self.K = num_units
        self.textless = textless
        if textless:
            self.tok = UnitTokenizer(num_units)
            self.unit_ids = list(range(2, num_units + 2))
        else:
            self.tok = slm_tokenizer(num_units)
            self.unit_ids = list(range(256, 256 + num_units))

    def ids(self, units: Sequence[int]) -> list[int]:
        return self.tok.encode(speech_only(units))

    def nll(self, model: GPT, unit_lists: Sequence[Sequence[int]], batch_size: int = 32) -> list[float]:
        return sequence_nll(model, [self.ids(u) for u in unit_lists], scored=self.unit_ids, allowed=self.unit_ids, batch_size=batch_size)


class WavUnits:
    """WAV path -> deduplicated units with the corpus codebook, memoised (every model reads the same files)."""

    def __init__(self, corpus: SpeechTextCorpus):
        self.tok = corpus.tokenizer
        self.memo: dict[Path, list[int]] = {}

    def __call__(self, path: Path) -> list[int]:
        if path not in self.memo:
            audio, rate = tts.read_wav(path)
            if rate != self.tok.cfg.front_end.sample_rate:
                raise ConfigError("sample rate", rate, f"{self.tok.cfg.front_end.sample_rate} Hz WAV files")
            self.memo[path] = self.tok.encode(audio)[0]
        return self.memo[path]


def train_run(run: Run, corpus: SpeechTextCorpus, streams: Streams, textlm: GPT | None, cfg: TrainConfig, seed: int,
              cloze_sets: Sequence[str], wav_units: WavUnits, cache: Path) -> RunResult:
    """Train and score one run (cached as JSON by run key, data and seed, so an interrupted study resumes)."""
    K = corpus.tokenizer.num_units
    h = hashlib.sha256(json.dumps([run.key, asdict(cfg), seed, len(streams.interleaved), len(streams.speech), K,
                                   sorted(cloze_sets), int(streams.interleaved[:4096].sum())]).encode()).hexdigest()[:12]
    path = cache / f"run-{run.regime}-{run.size.label}-{run.budget:.3g}-{h}.json"
    if path.exists():
        d = json.loads(path.read_text())
        return RunResult(run, d["n_params"], d["tokens"], d["seconds"], d["train_losses"], d["val_nll"], d["cloze"])
    torch.manual_seed(seed)
    textless = run.regime == "textless"
    if run.regime == "scratch":
        model = run.size.gpt(256 + K + 2, cfg.block_size)
    else:
        if textlm is None:
            raise ConfigError("textlm", None, f"a pretrained TextLM for the {run.regime} regime (TWIST init)")
        model, _ = extend_vocabulary(copy.deepcopy(textlm), ByteTokenizer(), K, init="textless" if textless else "twist")
    if textless:
        data, weights = [streams.textless], [1.0]
    else:
        data = [streams.text, streams.interleaved, streams.speech]
        weights = [MIX["text"], MIX["interleaved"], MIX["speech"]]
    log = train_lm(model, data, weights, run.tokens(), cfg, seed=seed)
    scorer = Scorer(K, textless)
    val = scorer.nll(model, corpus.validation_units())
    cloze = {}
    for name in cloze_sets:
        out = evaluate_cloze(corpus.cloze_root / name, lambda paths: scorer.nll(model, [wav_units(p) for p in paths]))
        cloze[name] = out.tolist()
    res = RunResult(run, non_embedding_params(run.size), log.tokens, log.seconds, log.losses, val, cloze)
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {k: v for k, v in res.to_json().items() if k != "run"})
    return res
