"""``reprolab risebench ...``: RISEBench's judge protocol and official scoring on your model's outputs.

    reprolab risebench judge RISEBench/data/data_total.json outputs/MyModel --endpoint http://127.0.0.1:8000/v1 --model qwen2.5-vl
    reprolab risebench score RISEBench/data/data_total.json outputs/MyModel/MyModel_judgements.json

``judge`` asks an OpenAI-compatible VLM endpoint for every judgement the official ``gpt_eval.py`` asks for (resumable:
answers are cached in ``outputs/MyModel/judge.sqlite``), writes the judge texts as JSON and the official
``<model>_judge.csv``. ``score`` recomputes the CSV from saved judge texts (``{index: {judge1, judge2, judge3}}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="RISEBench (arXiv 2504.02826): the official judge protocol and scoring on any VLM endpoint.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False)


def _report(table: dict, csv: Path) -> None:
    for row in ("Overall", "Temporal", "Causal", "Spatial", "Logical"):
        s, pct, acc = table[row]
        _say(f"{row:9s} score {pct if pct is None else round(pct, 1)}  accuracy {acc if acc is None else round(100 * acc, 1)}%")
    _say(f"-> {csv}")


@app.command()
def judge(data: Path = typer.Argument(..., help="The official data_total.json."),
          outputs: Path = typer.Argument(..., help="outputs/MODEL: your images under images/{category}/{index}.{png|jpg|jpeg}."),
          endpoint: str = typer.Option(..., "--endpoint", help="OpenAI-compatible base URL of the VLM judge, e.g. http://127.0.0.1:8000/v1."),
          model: str = typer.Option("default", "--model", help="Model name the endpoint serves (official: gpt-4.1-2025-04-14)."),
          input_dir: Optional[Path] = typer.Option(None, "--input-dir", help="Folder of the benchmark's input images (default: data's folder)."),
          cache: Optional[Path] = typer.Option(None, "--cache", help="Judgement cache (default: OUTPUTS/judge.sqlite).")) -> None:
    """Judge every output with the official prompts and requests, then score as gpt_eval.py."""
    from ...llm import load_llm
    from ...runtime import atomic_write_json
    from .protocol import VLMJudge, evaluate_outputs, load_samples, run_judge

    samples = load_samples(data)
    name = outputs.resolve().name
    judgements = run_judge(samples, outputs, VLMJudge(load_llm(endpoint, model=model)), input_dir=input_dir or data.parent,
                           cache=cache or outputs / "judge.sqlite")
    atomic_write_json(outputs / f"{name}_judgements.json", judgements)
    csv = outputs / f"{name}_judge.csv"
    _, table = evaluate_outputs(samples, judgements, csv_path=csv)
    _report(table, csv)


@app.command()
def score(data: Path = typer.Argument(..., help="The official data_total.json."),
          judgements: Path = typer.Argument(..., help="JSON {index: {judge1, judge2, judge3}} of judge texts."),
          csv: Optional[Path] = typer.Option(None, "--csv", help="Where to write the result CSV (default: beside the judgements).")) -> None:
    """Score saved judge texts with the official weights, halving, 25 (s - 1) and accuracy."""
    from ...errors import MalformedFile
    from .protocol import evaluate_outputs, load_samples

    samples = load_samples(data)
    try:
        saved = json.loads(judgements.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MalformedFile(str(judgements), "no such file", fix="pass the judgements JSON that `reprolab risebench judge` wrote") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedFile(str(judgements), f"not JSON ({exc})", fix="pass a JSON object {index: {judge1, judge2, judge3}}") from None
    if not isinstance(saved, dict):
        raise MalformedFile(str(judgements), "not a JSON object", fix="pass a JSON object {index: {judge1, judge2, judge3}}")
    out = csv or judgements.with_name(judgements.stem.replace("_judgements", "") + "_judge.csv")
    _, table = evaluate_outputs(samples, saved, csv_path=out)
    _report(table, out)
