"""Whisper-LM on transformers' KV-cached beam search: the study's decoder (issue 21) and a fast path for users.

The offline Whisper weights are CTranslate2 files; :func:`~.ct2_to_hf.load_ct2_whisper` reads them into a
``WhisperForConditionalGeneration`` (equal to CTranslate2 to float16 rounding). :class:`HFWhisperLM` runs

- the encoder once per utterance, batched (its output is shared by every decoder arm of that utterance);
- transformers' beam search (width 5) from the encoder output with the prompt ``<|startoftranscript|>
  [<|lang|> <|transcribe|>] <|notimestamps|>``, CTranslate2's suppression (``suppress_ids`` always,
  ``suppress_ids_begin`` at the first token), ``length_penalty=1`` (finished hypotheses ranked by summed score /
  generated length, openai-whisper's MaximumLikelihoodRanker, which the official code inherits) and
  ``early_stopping=True`` (the search ends when ``beam_size`` hypotheses have finished, as openai-whisper's and
  the official decoder's);
- the LM through :class:`~.integrations.WhisperLMLogitsProcessor`: ``accumulate_lm=False`` adds the change of the
  LM term per step (so the running sum is ``sum log p + alpha LM(text) + beta words``, the paper's formula);
  ``accumulate_lm=True`` adds the whole prefix's LM term at every step, as the official ``update()`` does.

Speed: transformers' beam search re-orders every layer's cache each step, the cross-attention cache too; beams of
one utterance share one encoder output, so that re-ordering copies identical rows (for Whisper base at 8 utterances
x 5 beams, about 1.5 GB per step). :class:`_SelfOnlyReorderCache` re-orders only the self-attention cache, which
is exact (tested: the same outputs with and without it) and halves the decode time measured on base. For the same
reason the cross-attention keys/values are projected once per utterance and repeated per beam
(:meth:`HFWhisperLM._prefilled_cache`), not projected from the encoder output repeated per beam.

Length cap (a choice): at most ``ceil(tokens_per_second x seconds of audio) + 10`` new tokens per batch
(``tokens_per_second = 6``, about 3x what espeak's 120 words per minute need), so that one runaway hypothesis
cannot hold a batch for Whisper's 224-token window.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ...errors import ConfigError, MissingExtra, ShapeError
from .language_models import LanguageModel
from .whisper_lm import N_FRAMES, SAMPLE_RATE, FusionConfig, Hypothesis, lm_terms, resolve_model_dir, whisper_prompt

TOKENS_PER_SECOND = 6.0


class _TokenizerView:
    """What :class:`~.integrations.WhisperLMLogitsProcessor` needs of a tokenizer: text of the non-special ids."""

    def __init__(self, tokenizer: Any, eot: int, vocab: int):
        self._tok = tokenizer
        self.eot = eot
        self.all_special_ids = list(range(eot, vocab))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids if i < self.eot])


def _suppressor(vocab: int, always: Sequence[int], begin: Sequence[int], prompt_len: int) -> Any:
    """CTranslate2's suppression as one logits processor: ``always`` at every step, ``begin`` at the first
    generated token, then the log-probabilities renormalised over the tokens left. (transformers' own SuppressTokens processors call ``torch.isin`` over the vocabulary at every
    step: 36 ms per call on our CPU, more than the decoder step of Whisper tiny.)"""
    import torch
    from transformers import LogitsProcessor

    class _Suppress(LogitsProcessor):
        def __init__(self) -> None:
            self.always = torch.tensor(sorted(set(int(i) for i in always if 0 <= i < vocab)), dtype=torch.long)
            self.begin = torch.tensor(sorted(set(int(i) for i in begin if 0 <= i < vocab)), dtype=torch.long)

        def __call__(self, input_ids, scores):  # noqa: ANN001
            if len(self.always):
                scores[:, self.always.to(scores.device)] = float("-inf")
            if input_ids.shape[1] == prompt_len and len(self.begin):
                scores[:, self.begin.to(scores.device)] = float("-inf")
            return torch.log_softmax(scores, dim=-1)  # renormalised over what is left, as CTranslate2's decoding

    return _Suppress()


def _self_only_cache() -> Any:
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    class _SelfOnlyReorderCache(EncoderDecoderCache):
        """Beam search re-orders beams within an utterance; their cross-attention keys/values are the same rows
        (one encoder output per utterance, repeated per beam), so only the self-attention cache is re-ordered."""

        def reorder_cache(self, beam_idx):  # noqa: ANN001
            self.self_attention_cache.reorder_cache(beam_idx)

    return _SelfOnlyReorderCache(DynamicCache(), DynamicCache())


class HFWhisperLM:
    """A CTranslate2 Whisper folder (or asset name) decoded by transformers with optional LM fusion.

    >>> w = HFWhisperLM("whisper-base")
    >>> enc = w.encode(["a.wav", "b.wav"])
    >>> w.search(enc, "es")                                   # plain beam 5: a 5-best list per utterance
    >>> w.search(enc, "es", lm=lm, config=FusionConfig(alpha=0.5, beta=1.0, accumulate_lm=True))
    """

    def __init__(self, model: str | os.PathLike, threads: int | None = None, device: Any = None):
        try:
            import torch
            import transformers  # noqa: F401
            from faster_whisper.feature_extractor import FeatureExtractor
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingExtra("transformers/faster-whisper", "whisper_lm") from None
        from .ct2_to_hf import load_ct2_whisper

        self.name = str(model)
        folder = resolve_model_dir(model)
        self.model = load_ct2_whisper(folder)
        if device is not None:
            self.model.to(device)
        self.device = next(self.model.parameters()).device
        if threads:
            torch.set_num_threads(int(threads))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        cfg = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        self.suppress_ids = list(cfg.get("suppress_ids", []))
        self.suppress_begin = list(cfg.get("suppress_ids_begin", []))
        # suppression is ours (_suppressor); transformers v5 fills a None in the config passed to generate() from
        # the model's own generation config, so the model's lists are cleared here
        self.model.generation_config.suppress_tokens = None
        self.model.generation_config.begin_suppress_tokens = None
        self.vocab = self.model.config.vocab_size
        self.multilingual = self.vocab >= 51865
        self.eot = self.tokenizer.token_to_id("<|endoftext|>")
        self.features = FeatureExtractor(feature_size=self.model.config.num_mel_bins)
        self.view = _TokenizerView(self.tokenizer, self.eot, self.vocab)

    def prompt(self, language: str | None) -> list[int]:
        return whisper_prompt(self.tokenizer.token_to_id, self.multilingual, language)

    def text(self, tokens: Sequence[int]) -> str:
        return self.tokenizer.decode([int(t) for t in tokens if t < self.eot]).strip()

    def encode(self, audio: Sequence[str | os.PathLike | np.ndarray]) -> Any:
        """Encoder states of a batch of utterances (paths or 16 kHz arrays, each at most 30 s): (B, 1500, d)."""
        import torch
        from faster_whisper.audio import decode_audio

        feats = []
        self.last_seconds = []
        for a in audio:
            x = decode_audio(str(a), sampling_rate=SAMPLE_RATE) if isinstance(a, (str, os.PathLike)) else np.asarray(a, np.float32)
            if x.ndim != 1 or len(x) > 30 * SAMPLE_RATE:
                raise ShapeError("audio", tuple(x.shape), "1-D 16 kHz samples, at most 30 s")
            self.last_seconds.append(len(x) / SAMPLE_RATE)
            f = self.features(x)[:, :N_FRAMES]
            feats.append(np.pad(f, ((0, 0), (0, N_FRAMES - f.shape[1]))))
        with torch.inference_mode():
            x = torch.from_numpy(np.stack(feats).astype(np.float32)).to(self.device)
            return self.model.model.encoder(x).last_hidden_state

    def _prefilled_cache(self, encoded: Any, beams: int) -> Any:
        """A cache whose cross-attention keys/values are computed once per utterance and repeated per beam.
        transformers would project the encoder output already repeated per beam: 5x the work, which for Whisper
        base is most of a short utterance's decode (2 x 6 layers x 1500 frames x 512^2 per beam)."""
        cache = _self_only_cache()
        for i, layer in enumerate(self.model.model.decoder.layers):
            att = layer.encoder_attn
            shape = (encoded.shape[0], -1, att.num_heads, att.head_dim)
            k = att.k_proj(encoded).view(shape).transpose(1, 2).repeat_interleave(beams, dim=0).contiguous()
            v = att.v_proj(encoded).view(shape).transpose(1, 2).repeat_interleave(beams, dim=0).contiguous()
            cache.cross_attention_cache.update(k, v, i)
            cache.is_updated[i] = True
        return cache

    def search(self, encoded: Any, language: str | None, lm: LanguageModel | None = None, config: FusionConfig = FusionConfig(),
               n_best: int = 1, max_new_tokens: int | None = None, seconds: Sequence[float] | None = None) -> list[list[Hypothesis]]:
        """Beam search (``config.beam_size``) over a batch of encoder states; ``n_best`` hypotheses per utterance,
        best first. With ``lm`` and a non-zero ``alpha`` or ``beta`` the LM is fused in every step (module docstring).
        ``Hypothesis.logprob``: the summed score of the tokens and the end token as the search ran them (Whisper's
        log-probs without an LM; the fused scores with one). ``seconds``: each utterance's length, for the cap."""
        import torch
        from transformers import LogitsProcessorList
        from transformers.utils import logging as hf_logging
        from transformers.generation.utils import GenerationMixin
        from transformers.modeling_outputs import BaseModelOutput

        from .integrations import WhisperLMLogitsProcessor

        if not 1 <= n_best <= config.beam_size:
            raise ConfigError("n_best", n_best, f"an integer in [1, beam_size = {config.beam_size}]")
        b = encoded.shape[0]
        if max_new_tokens is None:
            longest = max(seconds) if seconds else 30.0
            max_new_tokens = min(config.max_new_tokens, int(math.ceil(TOKENS_PER_SECOND * longest)) + 10)
        prompt = self.prompt(language)
        procs = [_suppressor(self.vocab, self.suppress_ids, self.suppress_begin, len(prompt))]
        if lm is not None and (config.alpha or config.beta):
            procs.append(WhisperLMLogitsProcessor(self.view, lm, config))
        gc = copy.deepcopy(self.model.generation_config)
        gc.update(suppress_tokens=None, begin_suppress_tokens=None, forced_decoder_ids=None, num_beams=config.beam_size,
                  num_return_sequences=n_best, max_new_tokens=max_new_tokens, do_sample=False, length_penalty=1.0,
                  early_stopping=True, return_dict_in_generate=True, output_scores=True)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "attention mask is not set": every prompt has the same length, nothing is padded
        try:
            with torch.inference_mode():
                out = GenerationMixin.generate(
                    self.model, encoder_outputs=BaseModelOutput(last_hidden_state=encoded),
                    decoder_input_ids=torch.tensor([prompt] * b, device=self.device),
                    past_key_values=self._prefilled_cache(encoded, config.beam_size),
                    generation_config=gc, logits_processor=LogitsProcessorList(procs))
                steps = self.model.compute_transition_scores(out.sequences, out.scores, out.beam_indices, normalize_logits=False)
        finally:
            hf_logging.set_verbosity(verbosity)
        seqs = out.sequences[:, len(prompt):].tolist()
        steps = steps.float().cpu().numpy()
        hyps: list[list[Hypothesis]] = []
        for i in range(b):
            group = []
            for r in range(i * n_best, (i + 1) * n_best):
                toks = []
                for t in seqs[r]:
                    if t == self.eot:
                        break
                    toks.append(int(t))
                n = min(len(toks) + 1, steps.shape[1])  # the end token's step included (absent when the cap cut it)
                lp = float(np.sum(steps[r, :n][np.isfinite(steps[r, :n])]))
                group.append(Hypothesis(tuple(toks), self.text(toks), lp, lp / (len(toks) + 1)))
            hyps.append(group)
        return hyps


def prefix_terms(lm: LanguageModel, text_of: Any, tokens: Sequence[int], config: FusionConfig) -> list[tuple[float, int]]:
    """``(LM score, words)`` of ``text(tokens[:t])`` for t = 1..len(tokens), ``(0, 0)`` before ``token_threshold``:
    the terms the logits processor weighs at each step."""
    return [lm_terms(lm, text_of(tokens[:t]), t, config) or (0.0, 0) for t in range(1, len(tokens) + 1)]


def rescore_as_search(hyps: Sequence[Hypothesis], lm: LanguageModel | None, text_of: Any, config: FusionConfig,
                      cache: dict | None = None) -> list[Hypothesis]:
    """Re-rank a plain n-best list by the score the fused search gives each hypothesis, best first.

    ``accumulate_lm=False``: ``(sum log p + alpha LM(text) + beta words) / (tokens + 1)``, n-best rescoring.
    ``accumulate_lm=True``: ``(sum log p + sum_t bonus(prefix_t) + bonus(text)) / (tokens + 1)``: the official
    decoder adds the LM term of every prefix once per step, and again at the end token's step. The tuning
    objective of each fusion arm (a departure from tuning the fused decoder itself; study docstring).
    ``cache``: (tokens, alpha, beta, accumulate) -> score, to reuse LM queries across Optuna trials."""
    out = []
    for h in hyps:
        if lm is None or not (config.alpha or config.beta):
            bonus = 0.0
        elif config.accumulate_lm:
            key = ("acc", h.tokens)
            per = cache.get(key) if cache is not None else None
            if per is None:
                terms = prefix_terms(lm, text_of, h.tokens, config)
                last = terms[-1] if terms else (0.0, 0)
                per = (sum(t[0] for t in terms) + last[0], sum(t[1] for t in terms) + last[1])
                if cache is not None:
                    cache[key] = per
            bonus = config.alpha * per[0] + config.beta * per[1]
        else:
            key = ("once", h.tokens)
            per = cache.get(key) if cache is not None else None
            if per is None:
                terms = lm_terms(lm, text_of(h.tokens), len(h.tokens), config)
                per = terms or (0.0, 0)
                if cache is not None:
                    cache[key] = per
            bonus = config.alpha * per[0] + config.beta * per[1]
        total = h.logprob + bonus
        out.append(Hypothesis(h.tokens, h.text, h.logprob, total / (len(h.tokens) + 1)))
    return sorted(out, key=lambda x: x.score, reverse=True)
