"""RISEBench: reasoning-informed visual editing, judged with the official protocol (arXiv 2504.02826).

- :mod:`.scoring`: the official ``gpt_eval.py`` scoring (weights, halving, 25 (s - 1), accuracy, the CSV);
- :mod:`.protocol`: ``data_total.json``, the ``outputs/`` layout, the versioned judge prompts, the
  resumable cached judge runner and the VLM judge on any OpenAI-compatible endpoint.
"""

from .protocol import (DIMENSIONS, Judge, JudgeRequest, PROMPT_VERSION, Sample, VLMJudge, evaluate_outputs, find_output_image,
                       judge_requests, judgement_key, load_samples, prompt_text, run_judge)
from .scoring import (CATEGORIES, DimensionScores, ScoredSample, extract_final_score, parse_judgements, result_table, sample_complete,
                      sample_score, score_samples, table_csv, to_percent, write_table_csv)

__all__ = ["CATEGORIES", "DIMENSIONS", "DimensionScores", "Judge", "JudgeRequest", "PROMPT_VERSION", "Sample", "ScoredSample", "VLMJudge",
           "evaluate_outputs", "extract_final_score", "find_output_image", "judge_requests", "judgement_key", "load_samples",
           "parse_judgements", "prompt_text", "result_table", "run_judge", "sample_complete", "sample_score", "score_samples",
           "table_csv", "to_percent", "write_table_csv"]
