"""OpenCodeReasoning (arXiv 2504.01943): the official recipe's distillation pipeline (prompt, sampling,
format filters in order), the released data set's record format, decontamination, TRL export, and a
tiny-student study of execution filtering. See README.md."""

from .distill import (PROMPT, REJECTION_REASONS, DistillConfig, FilterConfig, FilterReport, FilterResult, TeacherSample,
                      build_messages, execution_filter, filter_response, filter_samples, first_code_block, generate_samples,
                      syntax_ok)
from .records import (Contamination, Decontaminator, OCRRecord, QuestionNotIncluded, export_sft, humaneval_benchmark,
                      load_benchmark_file, normalise, read_records, to_sft_conversation, word_ngrams, write_records)

__all__ = ["PROMPT", "REJECTION_REASONS", "Contamination", "Decontaminator", "DistillConfig", "FilterConfig", "FilterReport",
           "FilterResult", "OCRRecord", "QuestionNotIncluded", "TeacherSample", "build_messages", "execution_filter",
           "export_sft", "filter_response", "filter_samples", "first_code_block", "generate_samples", "humaneval_benchmark",
           "load_benchmark_file", "normalise", "read_records", "syntax_ok", "to_sft_conversation", "word_ngrams", "write_records"]
