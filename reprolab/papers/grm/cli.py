"""``reprolab grm ...``: build HumanEval preference pairs, label a preference set with the GRM, or build SPCT data.

    reprolab grm pairs pairs.jsonl --n 20                       # HumanEval correct-vs-mutant pairs (TRL fields + ground truth)
    reprolab grm judge pairs.jsonl labelled.jsonl --k 8         # JSONL in -> prompt/chosen/rejected out (TRL's reward/DPO trainers)
    reprolab grm rft pairs.jsonl sft.jsonl --samples 4          # SPCT rejective-sampling fine-tuning set (prompt/completion)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

app = typer.Typer(help="DeepSeek-GRM (arXiv 2504.02495): pointwise generative reward model with voting.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)

_MODEL = typer.Option("qwen2.5-coder-1.5b", "--model", help="Asset name, GGUF path, transformers folder or OpenAI-compatible URL.")
_CACHE = typer.Option(None, "--cache", help="SQLite response cache (an interrupted run resumes from it).")


def _grm(model: str, cache: Optional[Path], k: int, max_tokens: int, seed: int):
    from ...llm import load_llm
    from .grm import GenerativeRewardModel, GRMConfig

    return GenerativeRewardModel(load_llm(model, cache=cache), GRMConfig(k=k, max_tokens=max_tokens, seed=seed))


@app.command()
def pairs(out: Path = typer.Argument(..., help="Output JSONL."), n: int = typer.Option(20, "--n", help="Problems (pairs)."),
          seed: int = typer.Option(0, "--seed")) -> None:
    """HumanEval pairs: canonical solution vs a failing mutant, both checked in the sandbox; one JSON object a line
    with prompt/chosen/rejected (TRL) plus responses/correct_index (ground truth)."""
    import json
    import random

    from ...runtime import atomic_write_text, progress_display
    from ...data.humaneval import load_humaneval
    from .data import build_pairs

    probs = load_humaneval()
    random.Random(seed).shuffle(probs)
    with progress_display():
        ps, skipped = build_pairs(probs[:n], seed=seed)
    atomic_write_text(out, "".join(json.dumps({**p.to_trl(), **p.to_json()}) + "\n" for p in ps))
    console.print(f"{len(ps)} pairs -> {out} (skipped: {skipped})", markup=False, highlight=False)


@app.command()
def judge(src: Path = typer.Argument(..., help="JSONL with prompt + responses [a, b] (or response_a/_b, or chosen/rejected)."),
          out: Path = typer.Argument(..., help="Output JSONL with prompt/chosen/rejected."), model: str = _MODEL,
          k: int = typer.Option(8, "--k", help="Judgements per pair (paper: up to 32)."),
          max_tokens: int = typer.Option(300, "--max-tokens"), cache: Optional[Path] = _CACHE, seed: int = typer.Option(0, "--seed"),
          keep_ties: bool = typer.Option(False, "--keep-ties", help="Write undecided pairs too (first response as chosen, tie=true).")) -> None:
    """Label a preference set with the GRM (voting over k judgements)."""
    from ...runtime import progress_display
    from .data import read_lines
    from .grm import judge_preferences

    read_lines(src)  # a missing or unreadable input is a one-line error before the model loads
    with progress_display():
        counts = judge_preferences(_grm(model, cache, k, max_tokens, seed), src, out, k=k, skip_ties=not keep_ties)
    console.print(f"{src} -> {out}: {counts}", markup=False, highlight=False)


@app.command()
def rft(src: Path = typer.Argument(..., help="JSONL written by `reprolab grm pairs` (needs responses + correct_index)."),
        out: Path = typer.Argument(..., help="Output JSONL (prompt/completion, conversational)."), model: str = _MODEL,
        samples: int = typer.Option(4, "--samples", help="Judgements sampled per query."), max_tokens: int = typer.Option(300, "--max-tokens"),
        cache: Optional[Path] = _CACHE, seed: int = typer.Option(0, "--seed"), hint: bool = typer.Option(False, "--hint")) -> None:
    """SPCT rejective fine-tuning data: keep judgements that pick the known-correct response."""
    from ...runtime import progress_display
    from .data import load_pairs
    from .spct import build_rft_set

    pairs_in = load_pairs(src)  # a missing or malformed input is a one-line error before the model loads
    with progress_display():
        r = build_rft_set(_grm(model, cache, samples, max_tokens, seed), pairs_in, n_samples=samples, hint=hint)
    r.save(out)
    console.print(f"{src} -> {out}: {r.counts}", markup=False, highlight=False)
