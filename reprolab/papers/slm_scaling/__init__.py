"""Scaling Analysis of Interleaved Speech-Text Language Models (arXiv 2504.02398): interleaving, vocabulary
extension (TWIST), spoken cloze evaluation and scaling fits. See README.md."""

from .cloze import ClozePair, cloze_file_names, evaluate_cloze, pair_outcomes, read_cloze_folder
from .interleaving import (SPEECH_TOKEN, TEXT_TOKEN, AlignedWord, InterleavingConfig, assign_modalities, dedup, poisson_spans,
                           select_spans_poisson, serialise, span_lengths, speech_only, text_only, unit_token, unit_tokens)
from .scaling import IsoFlopOptimum, ScalingFit, fit_power_law, grid_statistic, isoflop_optimum, scaling_fit
from .training import MIX, TrainConfig, sequence_nll, train_lm
from .units import UnitConfig, UnitTokenizer, audio_features, fit_unit_tokenizer
from .vocabulary import ByteTokenizer, UnitTokenizer as TextlessTokenizer, extend_vocabulary, token_ids

__all__ = [
    "SPEECH_TOKEN", "TEXT_TOKEN", "AlignedWord", "ByteTokenizer", "ClozePair", "InterleavingConfig", "IsoFlopOptimum", "MIX",
    "ScalingFit", "TextlessTokenizer", "TrainConfig", "UnitConfig", "UnitTokenizer", "assign_modalities", "audio_features",
    "cloze_file_names", "dedup", "evaluate_cloze", "extend_vocabulary", "fit_power_law", "fit_unit_tokenizer", "grid_statistic",
    "isoflop_optimum", "pair_outcomes", "poisson_spans", "read_cloze_folder", "scaling_fit", "select_spans_poisson",
    "sequence_nll", "serialise", "span_lengths", "speech_only", "text_only", "token_ids", "train_lm", "unit_token", "unit_tokens",
]
