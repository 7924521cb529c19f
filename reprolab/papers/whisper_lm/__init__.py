"""Whisper-LM (arXiv 2503.23542): n-gram / large language models fused into Whisper's beam search.

    from reprolab.papers.whisper_lm import WhisperLM, FusionConfig, build_arpa
    build_arpa(sentences, "es.arpa", order=5)                        # modified Kneser-Ney, ARPA
    wlm = WhisperLM("whisper-base", lm="es.arpa", config=FusionConfig(alpha=0.5, beta=1.0))
    wlm.transcribe("audio.wav", language="es").text                   # per-step fusion (the paper)
    wlm.transcribe("audio.wav", language="es", method="rescore")      # n-best rescoring (cheap)
    w = HFWhisperLM("whisper-base")                                   # the same weights on transformers' KV-cached search
    w.search(w.encode(["audio.wav"]), "es", lm=load_lm("es.arpa"), config=FusionConfig(alpha=0.5, beta=1.0))
"""

from .language_models import (
    ArpaLM,
    KenLMScorer,
    KneserNeyModel,
    LLMScorer,
    LanguageModel,
    build_arpa,
    load_lm,
    normalise_text,
    train_kneser_ney,
    write_arpa,
)
from .tuning import TuneResult, tune
from .whisper_lm import (
    FusionConfig,
    Hypothesis,
    WhisperLM,
    lm_terms,
    relative_error_reduction,
    resolve_model_dir,
    wer,
    word_errors,
)

__all__ = [
    "ArpaLM",
    "FusionConfig",
    "HFWhisperLM",
    "Hypothesis",
    "KenLMScorer",
    "KneserNeyModel",
    "LLMScorer",
    "LanguageModel",
    "TuneResult",
    "WhisperLM",
    "WhisperLMLogitsProcessor",
    "build_arpa",
    "lm_terms",
    "load_lm",
    "normalise_text",
    "relative_error_reduction",
    "resolve_model_dir",
    "load_ct2_whisper",
    "train_kneser_ney",
    "tune",
    "wer",
    "word_errors",
    "write_arpa",
]


def __getattr__(name: str):  # the HF integration imports transformers only when asked for
    if name == "WhisperLMLogitsProcessor":
        from .integrations import WhisperLMLogitsProcessor

        return WhisperLMLogitsProcessor
    if name in ("HFWhisperLM", "load_ct2_whisper"):
        from .ct2_to_hf import load_ct2_whisper
        from .hf_decode import HFWhisperLM

        return {"HFWhisperLM": HFWhisperLM, "load_ct2_whisper": load_ct2_whisper}[name]
    raise AttributeError(name)
