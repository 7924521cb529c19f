"""GPT-ImgEval (arXiv 2504.02782): a GenEval-compatible harness on any detector, WiScore, the architecture probe.

    from reprolab.papers.gpt_imgeval import read_metadata, evaluate_folder, summary_scores
    rows = evaluate_folder("images/", detector, outfile="results.jsonl")   # GenEval's folder and results formats
    print(summary_scores(rows)["overall"])
"""

from .geneval import (
    RELATIONS, RESULT_FIELDS, TAGS, GenEvalConfig, evaluate, evaluate_folder, evaluate_image, format_summary, iter_folder, keep_detections,
    load_image, read_metadata, read_results, relative_position, summary_scores, write_metadata, write_results,
)
from .prompts import OFFICIAL_COUNTS, exact_verdict, make_prompt, make_prompts, render_prompt, truth_detections
from .wise import CATEGORY_WEIGHTS, WEIGHTS, overall_wiscore, wiscore

__all__ = [
    "CATEGORY_WEIGHTS", "OFFICIAL_COUNTS", "RELATIONS", "RESULT_FIELDS", "TAGS", "WEIGHTS", "ArchitectureProbe", "GenEvalConfig", "PipelineGenerator",
    "evaluate", "evaluate_folder", "evaluate_image", "exact_verdict", "fill_folder", "format_summary", "iter_folder", "keep_detections",
    "load_image", "make_prompt", "make_prompts", "overall_wiscore", "read_metadata", "read_results", "relative_position", "render_prompt",
    "summary_scores", "truth_detections", "wiscore", "write_metadata", "write_results",
]


def __getattr__(name: str):  # torch-heavy parts load when asked for
    if name in ("fill_folder", "PipelineGenerator"):
        from . import generate

        return getattr(generate, name)
    if name == "ArchitectureProbe":
        from .probe import ArchitectureProbe

        return ArchitectureProbe
    raise AttributeError(name)
