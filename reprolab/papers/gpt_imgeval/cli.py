"""``reprolab gpt-imgeval ...``: GenEval-compatible evaluation on CPU with any detector.

    reprolab gpt-imgeval prompts prompts.jsonl --per-tag 20          # GenEval-style prompt lines on the shapes vocabulary
    reprolab gpt-imgeval evaluate images/ results.jsonl --detector det.pt            # a ShapesDetector checkpoint
    reprolab gpt-imgeval evaluate images/ results.jsonl --coco dets.json --categories cats.json   # detections made elsewhere
    reprolab gpt-imgeval summary results.jsonl                      # summary_scores.py's report
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="GPT-ImgEval (arXiv 2504.02782): GenEval's decision logic and formats on any detector.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


@app.command()
def prompts(out: Path = typer.Argument(..., help="Output evaluation_metadata.jsonl."),
            per_tag: Optional[int] = typer.Option(None, "--per-tag", help="Prompts per tag (default: GenEval's counts, 553 in all)."),
            seed: int = typer.Option(43, "--seed", help="GenEval's default seed is 43.")) -> None:
    """Write GenEval-style prompt lines (6 tags) on the shapes vocabulary."""
    from .geneval import write_metadata
    from .prompts import make_prompts

    ps = make_prompts(per_tag=per_tag, seed=seed)
    write_metadata(out, ps)
    _say(f"{len(ps)} prompts -> {out}")


@app.command()
def evaluate(imagedir: Path = typer.Argument(..., help="GenEval image folder: NNNNN/metadata.jsonl + NNNNN/samples/NNNN.png."),
             outfile: Path = typer.Argument(..., help="Results JSONL (the official fields)."),
             detector: Optional[Path] = typer.Option(None, "--detector", help="A ShapesDetector checkpoint (ShapesDetector.train(checkpoint=...))."),
             coco: Optional[Path] = typer.Option(None, "--coco", help="COCO detection results JSON; image_id = the image's path as listed (see --ids)."),
             categories: Optional[Path] = typer.Option(None, "--categories", help="JSON {category_id: class name} for --coco."),
             ids: Optional[Path] = typer.Option(None, "--ids", help="JSON {image path: COCO image_id} for --coco."),
             threshold: float = typer.Option(0.3, "--threshold"), counting_threshold: float = typer.Option(0.9, "--counting-threshold"),
             max_objects: int = typer.Option(16, "--max-objects"), max_overlap: float = typer.Option(1.0, "--max-overlap"),
             position_threshold: float = typer.Option(0.1, "--position-threshold")) -> None:
    """Score every image with GenEval's decision logic; colours by the masked-crop classifier."""
    from ...errors import ConfigError
    from ...imageeval import CocoResultsDetector, MaskedCropColour, ShapesDetector
    from ...runtime import progress_display, readable_file
    from .geneval import GenEvalConfig, evaluate_folder, format_summary, summary_scores

    if (detector is None) == (coco is None):
        raise ConfigError("detector", "both or neither of --detector/--coco", "exactly one of --detector CKPT or --coco JSON (with --categories)")
    if detector is not None:
        det = ShapesDetector.load(detector)
    else:
        if categories is None:
            raise ConfigError("categories", None, "a JSON {category_id: class name} file with --coco")
        cats = json.loads(readable_file(categories, "categories JSON", "write {\"1\": \"person\", ...}").read_text())
        idmap = json.loads(readable_file(ids, "image ids JSON", "write {\"images/00000/samples/0000.png\": 0, ...}").read_text()) if ids else None
        det = CocoResultsDetector(coco, {int(k): v for k, v in cats.items()}, image_ids=idmap)
    cfg = GenEvalConfig(threshold, counting_threshold, max_objects, max_overlap, position_threshold)
    with progress_display():
        rows = evaluate_folder(imagedir, det, MaskedCropColour(), outfile=outfile, config=cfg)
    _say(format_summary(summary_scores(rows)))
    _say(f"{len(rows)} rows -> {outfile}")


@app.command()
def summary(results: Path = typer.Argument(..., help="Results JSONL from `evaluate` or GenEval's evaluate_images.py.")) -> None:
    """Print summary_scores.py's report: images, prompts, % correct, per-tag accuracy, overall."""
    from .geneval import format_summary, read_results, summary_scores

    _say(format_summary(summary_scores(read_results(results))))
