"""Whisper-LM for Hugging Face transformers' Whisper: a ``LogitsProcessor`` doing the same shallow fusion.

    from transformers import LogitsProcessorList
    proc = WhisperLMLogitsProcessor(processor.tokenizer, "es.arpa", FusionConfig(alpha=0.5, beta=1.0))
    ids = model.generate(features, num_beams=5, logits_processor=LogitsProcessorList([proc]))

At each step HF's beam search hands the processor the log-probabilities of the next token for every beam
(transformers >= 4.x applies ``log_softmax`` first; we apply it again, which changes nothing on log-probs,
so raw logits work too). For each beam the processor keeps Whisper's ``top_k`` tokens (default
``beam_size + 1``, as openai-whisper's beam search and the official code) and sets each to

    log p_whisper(y_t | ...) + alpha * LM(norm(text(y_1..t))) + beta * |words|      (once >= 4 tokens)

and every other token to -inf. HF adds these to the running beam scores. With ``accumulate_lm=True`` that is
exactly the official ``BeamSearchDecoderWithLM`` (and ``whisper-lm-transformers``): the LM term of the whole
prefix is added again at each step. With ``accumulate_lm=False`` (our default, the paper's formula) the
processor adds the *change* of the LM term, ``F(prefix + token) - F(prefix)``, so HF's running sum telescopes
to ``sum log p_whisper + F(text)``, the same ranking score as :meth:`WhisperLM.fusion_search`.
"""

from __future__ import annotations

import os
from typing import Any

from ...errors import ConfigError, MissingExtra
from .language_models import LanguageModel, load_lm
from .whisper_lm import FusionConfig, lm_terms

try:
    from transformers import LogitsProcessor as _Base
except ImportError:  # pragma: no cover - transformers is optional
    _Base = object


class WhisperLMLogitsProcessor(_Base):  # type: ignore[misc,valid-type]
    """Shallow fusion of ``lm`` into HF Whisper's beam search (see the module docstring).

    ``tokenizer``: anything with ``decode(ids, skip_special_tokens=True)`` and ``all_special_ids`` (HF
    tokenizers); ``lm``: a KenLM/ARPA path or an object with ``score(text, bos, eos)``."""

    def __init__(self, tokenizer: Any, lm: LanguageModel | str | os.PathLike, config: FusionConfig = FusionConfig(), top_k: int | None = None):
        if _Base is object:
            raise MissingExtra("transformers", "whisper_lm")
        self.tokenizer = tokenizer
        self.lm = load_lm(lm) if isinstance(lm, (str, os.PathLike)) else lm
        self.config = config
        self.top_k = top_k if top_k is not None else config.beam_size + 1
        if self.top_k < 1:
            raise ConfigError("top_k", self.top_k, "an integer >= 1")
        self.special = set(int(i) for i in getattr(tokenizer, "all_special_ids", []))
        self._memo: dict[tuple[int, ...], float] = {}

    def lm_bonus(self, ids: list[int]) -> float:
        """``alpha LM(norm(text)) + beta |words|`` of a token sequence (0 before the 4th token); memoised per
        sequence (a beam's prefix is scored once per candidate of every step otherwise)."""
        key = tuple(ids)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        if len(self._memo) > 200_000:
            self._memo.clear()
        self._memo[key] = value = self._lm_bonus(ids)
        return value

    def _lm_bonus(self, ids: list[int]) -> float:
        seq = [t for t in ids if t not in self.special]
        text = self.tokenizer.decode(seq, skip_special_tokens=True) if seq else ""
        terms = lm_terms(self.lm, text, len(seq), self.config)
        return 0.0 if terms is None else self.config.alpha * terms[0] + self.config.beta * terms[1]

    def fused_score(self, prefix: list[int], token: int, logprob: float) -> float:
        """The score the processor gives one candidate (prefix + token)."""
        bonus = self.lm_bonus(prefix + [token])
        if not self.config.accumulate_lm:
            bonus -= self.lm_bonus(prefix)
        return logprob + bonus

    def __call__(self, input_ids, scores):
        import torch

        logp = torch.log_softmax(scores.float(), dim=-1)
        out = torch.full_like(logp, float("-inf"))
        k = min(self.top_k, logp.shape[-1])
        vals, idx = torch.topk(logp, k, dim=-1)  # (beams, k)
        for j in range(logp.shape[0]):
            prefix = input_ids[j].tolist()
            for v, t in zip(vals[j].tolist(), idx[j].tolist()):
                if v == float("-inf"):
                    continue
                out[j, t] = self.fused_score(prefix, int(t), float(v))
        return out.to(scores.dtype)
