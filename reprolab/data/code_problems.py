"""Seeded stdin/stdout programming problems with exact hidden tests and a difficulty 1-4.

Competitive-programming data sets (TACO, APPS, CodeContests, CodeForces) cannot be downloaded
here, so this room writes small problems of the same shape: a statement with an input/output
section and an example, a reference solution that reads ``input()`` and ``print()``-s, hidden
tests (stdin, expected stdout), and a difficulty. A problem reads a list of integers, applies
``difficulty`` list operations in order (keep the even numbers, add k, sort, ...), then prints a
reduction (sum, count, largest, the list). The expected outputs are computed here, in Python, by
the same operations the statement names, so they are exact; each reference solution is also
checked in the sandbox (tests do it). Everything is seeded: ``make_problems(n, seed)`` returns
the same problems on every machine.

Running candidate code: :func:`run_tests` executes a program on all of a problem's tests in ONE
sandboxed process (a small harness feeds each test's stdin to the code with ``exec`` inside the
box and reports each output), so a sample costs one sandbox start, not one per test. Model-written
code never runs in our process.

Used by OpenCodeReasoning (teacher questions, execution labels, the student's held-out set);
reusable by the agent papers.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError

# (key, statement phrase, code line, python function): a list operation
_Op = tuple[str, str, str, Callable[[list[int], int], list[int]]]


def _ops() -> dict[str, _Op]:
    ops: list[_Op] = [
        ("keep_even", "Keep only the even numbers.", "a = [x for x in a if x % 2 == 0]", lambda a, k: [x for x in a if x % 2 == 0]),
        ("keep_odd", "Keep only the odd numbers.", "a = [x for x in a if x % 2 != 0]", lambda a, k: [x for x in a if x % 2 != 0]),
        ("keep_positive", "Keep only the numbers greater than zero.", "a = [x for x in a if x > 0]", lambda a, k: [x for x in a if x > 0]),
        ("add_k", "Add {k} to every number.", "a = [x + {k} for x in a]", lambda a, k: [x + k for x in a]),
        ("mul_k", "Multiply every number by {k}.", "a = [x * {k} for x in a]", lambda a, k: [x * k for x in a]),
        ("square", "Replace every number by its square.", "a = [x * x for x in a]", lambda a, k: [x * x for x in a]),
        ("abs", "Replace every number by its absolute value.", "a = [abs(x) for x in a]", lambda a, k: [abs(x) for x in a]),
        ("sort", "Sort the numbers in increasing order.", "a = sorted(a)", lambda a, k: sorted(a)),
        ("reverse", "Reverse the order of the numbers.", "a = a[::-1]", lambda a, k: a[::-1]),
        ("drop_first", "Remove the first number (if there is one).", "a = a[1:]", lambda a, k: a[1:]),
        ("dedupe", "Remove repeated numbers, keeping the first occurrence of each.", "a = list(dict.fromkeys(a))",
         lambda a, k: list(dict.fromkeys(a))),
    ]
    return {o[0]: o for o in ops}


OPS = _ops()
# (key, statement phrase, code line, python function): the final reduction printed
FINALS: dict[str, tuple[str, str, Callable[[list[int]], str]]] = {
    "sum": ("print the sum of the remaining numbers (0 if none remain)", "print(sum(a))", lambda a: str(sum(a))),
    "count": ("print how many numbers remain", "print(len(a))", lambda a: str(len(a))),
    "max": ("print the largest remaining number (0 if none remain)", "print(max(a) if a else 0)", lambda a: str(max(a) if a else 0)),
    "list": ("print the remaining numbers on one line, separated by spaces (an empty line if none remain)",
             "print(' '.join(map(str, a)))", lambda a: " ".join(map(str, a))),
}
DIFFICULTIES = (1, 2, 3, 4)  # number of composed list operations


@dataclass(frozen=True)
class CodeTest:
    stdin: str
    stdout: str


@dataclass(frozen=True)
class CodeProblem:
    """One stdin/stdout problem. ``steps`` are (op key, constant) in order; ``final`` the reduction."""

    problem_id: str
    statement: str
    solution: str  # reference solution (reads input(), prints)
    tests: tuple[CodeTest, ...]  # hidden tests
    difficulty: int  # 1-4: the number of composed operations
    steps: tuple[tuple[str, int], ...] = ()
    final: str = "sum"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CodeProblem:
        return cls(d["problem_id"], d["statement"], d["solution"], tuple(CodeTest(**t) for t in d["tests"]), int(d["difficulty"]),
                   tuple((s, int(k)) for s, k in d.get("steps", ())), d.get("final", "sum"))


def expected_output(steps: Sequence[tuple[str, int]], final: str, values: Sequence[int]) -> str:
    """What a correct program prints for ``values`` (computed here, not by running code)."""
    a = list(values)
    for key, k in steps:
        a = OPS[key][3](a, k)
    return FINALS[final][2](a)


def _statement(steps: Sequence[tuple[str, int]], final: str, example: CodeTest, max_n: int) -> str:
    lines = ["You are given a list of n integers. Apply the following steps in order:", ""]
    for i, (key, k) in enumerate(steps, 1):
        lines.append(f"{i}. {OPS[key][1].format(k=k)}")
    lines += ["", f"Then {FINALS[final][0]}.", "",
              "Input", f"The first line contains n (1 <= n <= {max_n}). The second line contains n integers separated by spaces.", "",
              "Output", "Print the answer on one line.", "",
              "Example", "Input", example.stdin.rstrip("\n"), "Output", example.stdout]
    return "\n".join(lines)


def _solution(steps: Sequence[tuple[str, int]], final: str) -> str:
    body = ["n = int(input())", "a = list(map(int, input().split()))"]
    body += [OPS[key][2].format(k=k) for key, k in steps]
    body.append(FINALS[final][1])
    return "\n".join(body) + "\n"


def make_problem(problem_id: str, difficulty: int, rng: random.Random, n_tests: int = 6, max_n: int = 8,
                 value_range: int = 9) -> CodeProblem:
    """One problem of ``difficulty`` composed operations, drawn with ``rng``."""
    if difficulty not in DIFFICULTIES:
        raise ConfigError("difficulty", difficulty, f"one of {DIFFICULTIES}")
    keys = sorted(OPS)
    steps: list[tuple[str, int]] = []
    while len(steps) < difficulty:
        key = rng.choice(keys)
        if steps and steps[-1][0] == key:  # no op twice in a row (e.g. sort, sort)
            continue
        steps.append((key, rng.randint(2, 5) if "{k}" in OPS[key][1] else 0))
    final = rng.choice(sorted(FINALS))
    tests = []
    for t in range(n_tests + 1):
        n = rng.randint(1, max_n) if t else max(3, max_n // 2)
        vals = [rng.randint(-value_range, value_range) for _ in range(n)]
        tests.append(CodeTest(f"{n}\n{' '.join(map(str, vals))}\n", expected_output(steps, final, vals)))
    example, hidden = tests[0], tuple(tests[1:])
    return CodeProblem(problem_id, _statement(steps, final, example, max_n), _solution(steps, final), hidden, difficulty,
                       tuple(steps), final)


def make_problems(n: int, seed: int = 0, difficulties: Sequence[int] = DIFFICULTIES, n_tests: int = 6,
                  prefix: str = "cp") -> list[CodeProblem]:
    """``n`` seeded problems, difficulties cycling through ``difficulties`` (equal shares).
    Problem ids are ``{prefix}-{seed}-{i}``; statements are unique within the set."""
    if n < 0:
        raise ConfigError("n", n, "an integer >= 0")
    for d in difficulties:
        if d not in DIFFICULTIES:
            raise ConfigError("difficulties", tuple(difficulties), f"values in {DIFFICULTIES}")
    rng = random.Random(f"code_problems:{seed}")
    out: list[CodeProblem] = []
    seen: set[str] = set()
    while len(out) < n:
        p = make_problem(f"{prefix}-{seed}-{len(out)}", difficulties[len(out) % len(difficulties)], rng, n_tests=n_tests)
        if p.statement in seen:  # exact duplicates are dropped (the paper's exact-match dedup)
            continue
        seen.add(p.statement)
        out.append(p)
    return out


# ----------------------------------------------------------------------------- running code on the tests

_HARNESS = r'''
import contextlib, io, json, sys
marker = open("marker.txt").read()
tests = json.load(open("tests.json"))
src = open("solution.py", encoding="utf-8").read()
results = []
try:
    code = compile(src, "solution.py", "exec")
except BaseException as e:
    code = None
    results = [["", "SyntaxError"] for _ in tests]
if code is not None:
    for stdin in tests:
        out = io.StringIO()
        sys.stdin = io.StringIO(stdin)
        err = None
        try:
            with contextlib.redirect_stdout(out):
                exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
        except SystemExit as e:
            err = None if e.code in (None, 0) else "SystemExit"
        except BaseException as e:
            err = type(e).__name__
        results.append([out.getvalue()[:100000], err])
sys.__stdout__.write("\n" + marker + json.dumps(results) + "\n")
'''


@dataclass
class TestReport:
    """How a program did on a problem's tests (all run in one sandboxed process)."""

    passed: int
    total: int
    status: str  # the sandbox's status ("ok", "timeout", ...) or "no_code"
    errors: list[str | None] = field(default_factory=list)  # per test: exception name or None

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total


def outputs_match(got: str, expected: str) -> bool:
    """Token-wise comparison, as competitive judges do: whitespace and line breaks are not significant."""
    return got.split() == expected.split()


def run_tests(code: str | None, tests: Sequence[CodeTest], sandbox: Any = None, timeout_s: float = 6.0) -> TestReport:
    """Run ``code`` on every test of ``tests`` in one :mod:`reprolab.sandbox` process."""
    if code is None or not code.strip():
        return TestReport(0, len(tests), "no_code", [None] * len(tests))
    from ..sandbox import Sandbox, SandboxLimits

    box = sandbox or Sandbox(SandboxLimits(timeout_s=timeout_s, memory_mb=512))
    marker = "@@RESULT-" + secrets.token_hex(8) + "@@"
    r = box.run(_HARNESS, files={"solution.py": code, "tests.json": json.dumps([t.stdin for t in tests]), "marker.txt": marker})
    line = next((ln for ln in reversed(r.stdout.splitlines()) if ln.startswith(marker)), None)
    if line is None:
        return TestReport(0, len(tests), str(r.status) if str(r.status) != "ok" else "no_report", [None] * len(tests))
    try:
        results = json.loads(line[len(marker):])
    except json.JSONDecodeError:
        return TestReport(0, len(tests), "no_report", [None] * len(tests))
    passed = sum(1 for (out, err), t in zip(results, tests) if err is None and outputs_match(out, t.stdout))
    return TestReport(passed, len(tests), str(r.status), [err for _, err in results])


def run_tests_many(jobs: Sequence[tuple[str | None, Sequence[CodeTest]]], sandbox: Any = None, workers: int = 2,
                   timeout_s: float = 6.0) -> list[TestReport]:
    """:func:`run_tests` for many (code, tests) pairs, ``workers`` sandboxes at a time; results in order."""
    import concurrent.futures

    from ..sandbox import Sandbox, SandboxLimits

    box = sandbox or Sandbox(SandboxLimits(timeout_s=timeout_s, memory_mb=512))
    if workers <= 1 or len(jobs) <= 1:
        return [run_tests(c, t, box) for c, t in jobs]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda j: run_tests(j[0], j[1], box), jobs))
