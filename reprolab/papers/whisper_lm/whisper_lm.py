"""Whisper-LM: shallow fusion of an n-gram (or large) language model into Whisper's beam search
(Zuazo et al., "Whisper-LM: Improving ASR Models with Language Models for Low-Resource Languages",
arXiv 2503.23542, Sec. 3.2; official code: github.com/hitz-zentroa/whisper-lm).

At every step of a beam search of width 5, each candidate continuation ``y_1..t`` of each beam gets

    score(y_1..t) = score(y_1..t-1) + log p_whisper(y_t | y_<t, x) + alpha * LM(norm(text(y_1..t))) + beta * |words|

where ``LM`` is the language model's log10 score of the whole normalised text so far (KenLM's ``score``)
and ``|words|`` its word count; the LM and word terms are added only once the hypothesis has at least
4 non-special tokens (``lm_token_threshold = 4`` in the official code).

Which score accumulates (a departure, switchable): the paper's formula read literally ranks each
hypothesis by ``sum log p_whisper + alpha LM(text) + beta |words|``, the LM term of its current text counted
once (``accumulate_lm=False``, our default). The official ``BeamSearchDecoderWithLM.update`` instead writes
the LM-adjusted score back into ``sum_logprobs``, so the LM term of the whole prefix is added again at every
later step (``accumulate_lm=True`` reproduces it). We default to the formula because (i) it is the standard
shallow fusion the paper describes, (ii) with it the n-best rescoring objective is the same function of
(alpha, beta) as fusion, so weights tuned on one transfer to the other, while the accumulated version weighs
the LM ~length/2 times more in fusion than in rescoring. Finished hypotheses are ranked by ``score / length`` (openai-whisper's MaximumLikelihoodRanker
with no length penalty, which the official code inherits; CTranslate2's ``length_penalty=1`` is the same).

Whisper runs as a CTranslate2 model (faster-whisper's files): CTranslate2 has no logits hook, so the
search is ours, built on the call that returns the next-token logits after any forced prefix
(``generate(..., return_logits_vocab=True)``; row ``k`` of the returned logits is the distribution after
``k`` forced tokens). The encoder runs once per utterance; each step sends all live beams in one batched
call; LM states are cached per word prefix (:mod:`.language_models`). With ``alpha = beta = 0`` the search
returns CTranslate2's own beam-search output (tested).

n-best rescoring (the cheap variant): CTranslate2's own beam search returns its ``n`` best hypotheses
with their length-normalised scores; each is re-ranked by ``logp_sum + alpha LM(text) + beta |words|``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import AssetMissing, ConfigError, MalformedFile, MissingExtra, NonFiniteError, ReprolabError, ShapeError, UnknownName
from .language_models import LanguageModel, load_lm, normalise_text, readable_file

SAMPLE_RATE = 16_000
N_FRAMES = 3000  # Whisper's 30-s window in mel frames
LANG_EOS = "!?."  # official ``lm_eos``: an LM query gets </s> when the text ends with one of these


@dataclass(frozen=True)
class FusionConfig:
    """Shallow-fusion settings (defaults: the paper / official code)."""

    alpha: float = 0.0  # LM weight; tuned per language and model with Optuna (paper Sec. 3.3), e.g. eu tiny 0.3358
    beta: float = 0.0  # word-count weight; e.g. eu tiny 0.6883
    beam_size: int = 5  # the paper's beam width
    token_threshold: int = 4  # official lm_token_threshold: no LM term before the 4th token
    accumulate_lm: bool = False  # True: the official code's running score, LM term re-added each step (module docstring)
    normalize: bool = True  # official lm_normalize: BasicTextNormalizer before the LM query
    max_new_tokens: int = 200  # stop a runaway hypothesis (Whisper's own limit is 224 for 30 s)

    def __post_init__(self) -> None:
        for f in ("alpha", "beta"):
            v = getattr(self, f)
            if not math.isfinite(v):
                raise ConfigError(f, v, "a finite float (the paper tunes both in [0, 5])")
        if self.beam_size < 1:
            raise ConfigError("beam_size", self.beam_size, "an integer >= 1 (the paper uses 5)")
        if self.token_threshold < 0:
            raise ConfigError("token_threshold", self.token_threshold, "an integer >= 0 (official: 4)")
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens", self.max_new_tokens, "an integer >= 1")


@dataclass(frozen=True)
class Hypothesis:
    """One decoded hypothesis: tokens (without prompt or end token), text, and its scores."""

    tokens: tuple[int, ...]
    text: str
    logprob: float  # sum of Whisper log-probs of the tokens and the end token
    score: float  # the ranking score (length-normalised as the search ranks finished hypotheses)
    lm_score: float = 0.0  # LM log10 score of the normalised text (0 when no LM term applies)
    words: int = 0


def lm_terms(lm: LanguageModel | None, text: str, n_tokens: int, config: FusionConfig, language: str | None = None) -> tuple[float, int] | None:
    """The official ``lm_score_and_word_count``: ``(LM score, word count)`` of ``text``, or ``None``
    when no LM term applies (no LM, fewer than ``token_threshold`` tokens, or empty text)."""
    if lm is None or n_tokens < config.token_threshold or not text:
        return None
    norm = normalise_text(text, None) if config.normalize else text
    eos = text[-1] in LANG_EOS
    return lm.score(norm, bos=True, eos=eos), len(norm.split())


def whisper_prompt(token_to_id: Any, multilingual: bool, language: str | None) -> list[int]:
    """Whisper's decoder prompt without timestamps: ``<|startoftranscript|> [<|lang|> <|transcribe|>] <|notimestamps|>``."""
    if not multilingual:
        if language not in (None, "en"):
            raise ConfigError("language", language, "'en' (this Whisper model is English-only)")
        return [token_to_id("<|startoftranscript|>"), token_to_id("<|notimestamps|>")]
    if language is None:
        raise ConfigError("language", None, "a Whisper language code such as 'es' (language detection is not part of Whisper-LM)")
    lang = token_to_id(f"<|{language}|>")
    if lang is None:
        raise ConfigError("language", language, "a language Whisper knows (es, ca, eu, gl, en, ...)")
    return [token_to_id("<|startoftranscript|>"), lang, token_to_id("<|transcribe|>"), token_to_id("<|notimestamps|>")]


def resolve_model_dir(model: str | os.PathLike) -> Path:
    """A CTranslate2 Whisper folder: a path with ``model.bin``, or an asset name (``whisper-base``)."""
    p = Path(model)
    if (p / "model.bin").exists():
        return p
    if p.exists():
        raise MalformedFile(str(p), "no model.bin in this folder (not a CTranslate2 Whisper model)",
                            fix="pass a faster-whisper/CTranslate2 model folder or an asset name such as whisper-base")
    from ... import assets

    try:
        return Path(assets.path(str(model)))
    except (AssetMissing, ReprolabError) as exc:
        if isinstance(exc, UnknownName):
            raise ConfigError("model", str(model), "a CTranslate2 Whisper folder or one of whisper-tiny.en, whisper-base") from None
        raise  # missing (with the install command) or unusable (with the reason)
    except Exception:
        raise ConfigError("model", str(model), "a CTranslate2 Whisper folder or one of whisper-tiny.en, whisper-base, whisper-small") from None


class WhisperLM:
    """Whisper (CTranslate2 / faster-whisper files) with a fused language model.

    >>> wlm = WhisperLM("whisper-base", lm="es.arpa", config=FusionConfig(alpha=0.5, beta=1.0))
    >>> wlm.transcribe("audio.wav", language="es").text

    ``method``: ``"fusion"`` (per-step, the paper), ``"rescore"`` (n-best re-ranking), ``"plain"`` (CTranslate2's
    beam search, no LM).
    """

    def __init__(self, model: Any, lm: LanguageModel | str | os.PathLike | None = None, config: FusionConfig = FusionConfig(), cpu_threads: int | None = None):
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError:
            raise MissingExtra("faster-whisper", "whisper_lm") from None
        self._ct2 = ctranslate2
        if isinstance(model, WhisperModel):
            self.fw = model
        else:
            folder = resolve_model_dir(model)
            threads = cpu_threads or int(os.environ.get("REPROLAB_THREADS", "0")) or 0
            self.fw = WhisperModel(str(folder), device="cpu", compute_type="float32", cpu_threads=threads)
        self.model = self.fw.model
        self.tokenizer = self.fw.hf_tokenizer
        self.lm = load_lm(lm) if isinstance(lm, (str, os.PathLike)) else lm
        self.config = config
        cfg_path = Path(self.fw.model_path if hasattr(self.fw, "model_path") else "") / "config.json"
        cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
        self.suppress_ids = list(cfg.get("suppress_ids", []))
        self.suppress_begin = list(cfg.get("suppress_ids_begin", []))
        if not self.suppress_ids:  # faster-whisper keeps the same lists on the model object
            self.suppress_ids = list(getattr(self.fw, "suppress_tokens", []) or [])
        tid = self.tokenizer.token_to_id
        self.eot = tid("<|endoftext|>")
        self.sot = tid("<|startoftranscript|>")
        self.special_from = self.eot  # every id >= <|endoftext|> is special
        self._lang_ids = {}
        self.last_audio_samples = 0

    # ------------------------------------------------------------------ audio and prompt

    def prompt(self, language: str | None) -> list[int]:
        return whisper_prompt(self.tokenizer.token_to_id, self.model.is_multilingual, language)

    def encode(self, audio: str | os.PathLike | np.ndarray) -> Any:
        """Run the encoder once on an utterance of at most 30 s (a path or 16 kHz mono float array)."""
        from faster_whisper.audio import decode_audio

        if isinstance(audio, (str, os.PathLike)):
            import av

            fix = "pass a readable audio file (any format ffmpeg/PyAV decodes: wav, flac, mp3, ...)"
            path = readable_file(audio, "audio", fix)
            try:
                audio = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
            except (av.error.FFmpegError, OSError, ValueError) as e:  # a truncated or non-audio file
                raise MalformedFile(str(path), f"cannot decode it as audio ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})", fix=fix) from None
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ShapeError("audio", tuple(audio.shape), "a 1-D array of 16 kHz samples")
        if not np.isfinite(audio).all():
            raise NonFiniteError("audio", "NaN/inf samples", fix="check the decoder or synthesiser that produced it")
        if len(audio) > 30 * SAMPLE_RATE:
            raise ShapeError("audio", f"{len(audio) / SAMPLE_RATE:.1f} s", "an utterance of at most 30 s (split long audio first)")
        self.last_audio_samples = len(audio)  # the utterance's length, for callers that report it (the CLI's SRT and JSONL)
        feats = self.fw.feature_extractor(audio)[:, :N_FRAMES]
        feats = np.pad(feats, ((0, 0), (0, N_FRAMES - feats.shape[1])))
        x = self._ct2.StorageView.from_array(np.ascontiguousarray(feats[None].astype(np.float32)))
        return self.model.encode(x, to_cpu=True)

    # ------------------------------------------------------------------ next-token log-probs

    def next_logprobs(self, encoded: Any, prompt: list[int], prefixes: Sequence[Sequence[int]], _batched: dict | None = None) -> np.ndarray:
        """log p(. | prompt + prefix, audio) for each prefix, in one batched call: (len(prefixes), vocab).

        Suppression as CTranslate2's own Whisper decoding applies it: ``suppress_ids`` always, and
        ``suppress_ids_begin`` (blank, end of text) at the first generated token."""
        b = len(prefixes)
        batch = (_batched or {}).get(b)
        if batch is None:  # the encoder output repeated once per prefix (kept per batch size during a search)
            batch = self._ct2.StorageView.from_array(np.ascontiguousarray(np.repeat(np.asarray(encoded), b, axis=0))) if b > 1 else encoded
            if _batched is not None:
                _batched[b] = batch
        longest = max(len(p) for p in prefixes)
        # the smallest max_length that returns row `longest` (CTranslate2 4.8, measured: rows = max_length // 2
        # once the prefix is longer than the start tokens, max_length - len(prompt) + 1 before)
        max_length = max(len(prompt) + longest, 2 * (longest + 1))
        res = self.model.generate(batch, [prompt + list(p) for p in prefixes], beam_size=1, max_length=max_length,
                                  return_logits_vocab=True, suppress_blank=False, suppress_tokens=[])
        rows = []
        for r, p in zip(res, prefixes):
            if not r.logits or len(r.logits[0]) <= len(p):
                raise ShapeError("CTranslate2 logits", len(r.logits[0]) if r.logits else 0, f"at least {len(p) + 1} rows (ctranslate2 4.8 behaviour)")
            logits = np.asarray(r.logits[0], dtype=np.float64)[len(p)]  # (steps, vocab): row k follows k forced tokens
            rows.append(logits)
        logits = np.stack(rows)
        if self.suppress_ids:
            logits[:, self.suppress_ids] = -np.inf
        for i, p in enumerate(prefixes):
            if len(p) == 0 and self.suppress_begin:
                logits[i, self.suppress_begin] = -np.inf
        m = logits.max(axis=1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        if np.isnan(logp).any():
            raise NonFiniteError("Whisper next-token log-probabilities", "NaN", fix="check the model files")
        return logp

    def _text(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode([t for t in tokens if t < self.special_from])

    # ------------------------------------------------------------------ the three decoders

    def fusion_search(self, encoded: Any, language: str | None, config: FusionConfig | None = None) -> list[Hypothesis]:
        """Beam search with the LM fused at every step (module docstring); best first."""
        cfg = config or self.config
        prompt = self.prompt(language)
        k = cfg.beam_size
        beams: list[tuple[tuple[int, ...], float, float]] = [((), 0.0, 0.0)]  # (tokens, running score, whisper sum)
        finished: dict[tuple[int, ...], tuple[float, float]] = {}
        batched: dict = {}
        for _ in range(cfg.max_new_tokens):
            logp = self.next_logprobs(encoded, prompt, [b[0] for b in beams], batched)
            scores: dict[tuple[int, ...], tuple[float, float, float]] = {}
            for (toks, run, wsum), row in zip(beams, logp):
                top = np.argpartition(-row, k)[: k + 1]
                top = top[np.argsort(-row[top], kind="stable")]
                for tok in top:
                    lp = float(row[tok])
                    if lp == -np.inf:
                        continue
                    seq = toks + (int(tok),)
                    new_sum, new_w = run + lp, wsum + lp
                    terms = None
                    if cfg.alpha or cfg.beta:  # the LM term of the candidate's whole text (official update())
                        n_tok = sum(1 for t in seq if t < self.special_from)
                        terms = lm_terms(self.lm, self._text(seq), n_tok, cfg)
                    rank = new_sum if cfg.accumulate_lm else new_w
                    if terms is not None:
                        rank = rank + cfg.alpha * terms[0] + cfg.beta * terms[1]
                    if seq not in scores:
                        scores[seq] = (rank, rank if cfg.accumulate_lm else new_w, new_w)
            new_beams = []
            for seq in sorted(scores, key=lambda s: scores[s][0], reverse=True):
                rank, run, wsum = scores[seq]
                if seq[-1] == self.eot:
                    if len(finished) < k:
                        finished[seq] = (rank, wsum)
                else:
                    new_beams.append((seq, run, wsum))
                    if len(new_beams) == k:
                        break
            beams = new_beams
            if len(finished) >= k or not beams:
                break
        if not finished:  # ran out of length: keep the live beams as they are
            finished = {b[0]: (b[1], b[2]) for b in beams}
        out = []
        for seq, (rank, wsum) in finished.items():
            toks = tuple(t for t in seq if t != self.eot)
            text = self._text(toks).strip()
            terms = lm_terms(self.lm, self._text(seq), len(toks), cfg) if self.lm is not None else None
            out.append(Hypothesis(toks, text, wsum, rank / max(len(seq), 1), *(terms or (0.0, 0))))
        return sorted(out, key=lambda h: h.score, reverse=True)

    def nbest(self, encoded: Any, language: str | None, n: int | None = None) -> list[Hypothesis]:
        """CTranslate2's own beam search (width ``beam_size``), its ``n`` best hypotheses, best first.

        ``Hypothesis.logprob`` is CTranslate2's length-normalised score times (tokens + 1), i.e. its summed
        log-probability under the same length convention as our search. (CTranslate2's scores differ from our
        recomputation through the logits call by about 1%, so the two searches' scores are not interchangeable;
        their best outputs agree - tested.)"""
        n = n or self.config.beam_size
        prompt = self.prompt(language)
        res = self.model.generate(encoded, [prompt], beam_size=self.config.beam_size, num_hypotheses=n, return_scores=True,
                                  max_length=448)[0]
        out = []
        for ids, sc in zip(res.sequences_ids, res.scores):
            toks = tuple(int(t) for t in ids)
            out.append(Hypothesis(toks, self._text(toks).strip(), float(sc) * (len(toks) + 1), float(sc)))
        return out

    def rescore(self, hyps: Sequence[Hypothesis], config: FusionConfig | None = None) -> list[Hypothesis]:
        """n-best rescoring: ``logp_sum + alpha LM(text) + beta |words|`` (LM term as in fusion), best first.

        Choice: the Whisper term is the summed log-prob (what fusion adds the LM to), and the fused total
        is divided by the length as the fused beam search ranks finished hypotheses."""
        cfg = config or self.config
        out = []
        for h in hyps:
            terms = lm_terms(self.lm, h.text, len(h.tokens), cfg) if (cfg.alpha or cfg.beta) else None
            lm, words = terms or (0.0, 0)
            total = h.logprob + cfg.alpha * lm + cfg.beta * words
            out.append(dataclasses.replace(h, score=total / (len(h.tokens) + 1), lm_score=lm, words=words))
        return sorted(out, key=lambda h: h.score, reverse=True)

    def transcribe(self, audio: Any, language: str | None = None, method: str = "fusion", encoded: Any = None) -> Hypothesis:
        """Transcribe one utterance (<= 30 s): the best hypothesis of ``method``."""
        if method not in ("fusion", "rescore", "plain"):
            raise ConfigError("method", method, "'fusion', 'rescore' or 'plain'")
        enc = encoded if encoded is not None else self.encode(audio)
        if method == "fusion":
            return self.fusion_search(enc, language)[0]
        hyps = self.nbest(enc, language)
        return self.rescore(hyps)[0] if method == "rescore" else hyps[0]


# ----------------------------------------------------------------------------- metrics


def word_errors(reference: str, hypothesis: str, language: str | None = None) -> tuple[int, int]:
    """(word edits, reference words) after :func:`normalise_text` on both sides (Levenshtein on words)."""
    r = normalise_text(reference, language).split()
    h = normalise_text(hypothesis, language).split()
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1], len(r)


def wer(references: Sequence[str], hypotheses: Sequence[str], language: str | None = None) -> float:
    """Corpus WER: total word edits / total reference words."""
    if len(references) != len(hypotheses):
        raise ShapeError("hypotheses", len(hypotheses), f"one per reference ({len(references)})")
    e = n = 0
    for r, h in zip(references, hypotheses):
        de, dn = word_errors(r, h, language)
        e, n = e + de, n + dn
    if n == 0:
        raise ConfigError("references", "(no words)", "at least one reference word")
    return e / n


def relative_error_reduction(wer_lm: float, wer_base: float) -> float:
    """RER = (1 - WER_lm / WER_base) x 100 (paper Sec. 4); NaN-free: 0 when both are 0."""
    if wer_base == 0:
        return 0.0 if wer_lm == 0 else -100.0 * wer_lm
    return (1.0 - wer_lm / wer_base) * 100.0
