"""OpenCodeReasoning (arXiv 2504.01943): reasoning distillation for competitive coding, as the official recipe runs it.

A reasoning teacher (DeepSeek-R1 in the paper) answers each question with the recipe's prompt, sampled
at T = 0.6, top-p 0.95, several samples per question, with ``<think>`` injected at the start of the
answer; the samples are then *format*-filtered (never by execution: Sec. 4 finds that keeping only
test-passing samples hurts). This module follows NVIDIA/NeMo-Skills ``recipes/opencodereasoning``:
the prompt is ``prompts/generate_python_soln.yaml`` verbatim (user turn, empty system turn), the
filters are ``scripts/functional_helpers.py::filter_code_samples`` (think tags, with the
missing-``<think>`` repair) followed by ``scripts/output_processing.py::check_generation`` on the text
after ``</think>``, in that order:

1. ``missing_think_end``: no ``</think>``. A sample with ``</think>`` but no ``<think>`` is kept and
   repaired by prepending ``<think>`` (recipe: "Inject the think tag at the beginning of the output").
2. ``code_in_reasoning``: a ````` fence inside the reasoning (paper, Sec. 3: "no code block inside the
   reasoning trace"; the recipe's version of this check is commented out). Option, on by default.
3. ``truncated``: the generation hit its token cap. The recipe hands every sample to the checker with
   ``finish_reason='stop'``, so this never fires there; option, off by default (as the recipe).
4. On the answer (after ``</think>``): ``empty_answer``; ``too_short`` (<= 3 words); ``non_ascii_start``;
   ``placeholder`` ("your code here"); ``prompt_leak`` ("#instruction#" / "#output#").
5. The recipe then replaces every 4 spaces by a tab, cuts an "explain..." tail when a ``def`` comes
   before it, and takes the FIRST ````` block (a leading ``python`` dropped); without a block the whole
   answer stays the "code" (the recipe does not reject it; ``no_code_block`` with ``require_code_block=True``,
   the paper's "verify the presence of a code block", off by default as the recipe).
6. ``contains_pass``: the code contains the substring "pass" anywhere (also "passed", "bypass" ...): a
   recipe quirk, kept as the default and switchable off (``reject_pass_substring``).
7. ``syntax_error``: the recipe runs ``ast.parse`` only when "def" occurs in the code; the paper says
   Tree-sitter. ``syntax_checker`` picks ``"ast"`` (default, as the recipe), ``"tree-sitter"`` or
   ``"none"``; ``syntax_check_requires_def`` (default True, as the recipe) switches the "def" gate.

A kept sample's record keeps the whole output (reasoning + answer: the recipe's
``keep_explanations=True``). Execution filtering exists only as an opt-in step
(:func:`execution_filter`), for the peer arm.

Departure for small teachers (``think_budget``): a non-reasoning instruct model prefilled with
``<think>`` rarely writes ``</think>``, and the recipe would reject every sample. With
``think_budget=k`` the reasoning is generated for at most k tokens and stops at ``</think>`` or at the
first code fence (where the model starts its solution); ``</think>`` is then written for it and the
answer is generated after it (budget forcing in the manner of s1, Muennighoff et al. 2025). ``None``
(default) generates in one go, as the recipe. With a budget the reasoning cannot contain a fence, so
``code_in_reasoning`` never fires; with one go it can.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ...errors import ConfigError, MissingExtra

# recipes/opencodereasoning/prompts/generate_python_soln.yaml, user turn, verbatim ({question} is the slot)
PROMPT = (
    "You are a helpful and harmless assistant. You should think step-by-step before responding to the instruction below.\n"
    "\n"
    "Please use python programming language only. You must use `input()` to get user input and `print()` to output your response.\n"
    "\n"
    "You must use ```python for just the final solution code block with the following format:\n"
    "```python\n"
    "# Your code here\n"
    "```\n"
    "\n"
    "{question}"
)
SYSTEM = ""  # the recipe's system turn is empty
THINK_START = "<think>"
THINK_END = "</think>"

# every reason a sample can be rejected for, in the order the filters run
REJECTION_REASONS = ("missing_think_end", "code_in_reasoning", "truncated", "empty_answer", "too_short", "non_ascii_start",
                     "placeholder", "prompt_leak", "no_code_block", "contains_pass", "syntax_error")


def build_messages(question: str) -> list[dict[str, str]]:
    """The recipe's chat: an empty system turn and the prompt with the question (no other change)."""
    if not isinstance(question, str) or not question.strip():
        raise ConfigError("question", question, "a non-empty problem statement")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT.format(question=question)}]


@dataclass(frozen=True)
class FilterConfig:
    """The format filters; defaults are the recipe's (``filter_code_samples`` + ``check_generation``)."""

    reject_code_in_reasoning: bool = True  # paper Sec. 3 (the recipe's check is commented out)
    reject_truncated: bool = False  # recipe: finish_reason is forced to "stop", so never
    require_code_block: bool = False  # paper Sec. 3 ("verify the presence of a code block"); the recipe keeps block-less answers
    reject_pass_substring: bool = True  # recipe quirk: any "pass" substring in the code rejects the sample
    syntax_checker: Literal["ast", "tree-sitter", "none"] = "ast"  # recipe: ast.parse; paper: Tree-sitter
    syntax_check_requires_def: bool = True  # recipe: the syntax check runs only when "def" occurs in the code
    tabs_for_spaces: bool = True  # recipe: every 4 spaces become a tab before the block is taken and checked

    def __post_init__(self) -> None:
        if self.syntax_checker not in ("ast", "tree-sitter", "none"):
            raise ConfigError("syntax_checker", self.syntax_checker, "'ast', 'tree-sitter' or 'none'")


@dataclass
class FilterResult:
    """What the filters made of one response."""

    kept: bool
    reason: str | None  # the first filter that rejected it (one of REJECTION_REASONS), None when kept
    output: str  # the response (with ``<think>`` prepended when it was repaired)
    reasoning: str = ""  # text between <think> and </think>
    answer: str = ""  # text after </think>
    code: str | None = None  # the first code block of the answer, spaces as written (None: no block)
    repaired: bool = False  # ``<think>`` was missing and was prepended

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def first_code_block(text: str) -> str | None:
    """The recipe's extraction: the text between the first two ````` fences, without the header line
    (``python``) and stripped; a leading ``python`` left over is dropped. None without two fences."""
    first = text.find("```")
    second = text.find("```", first + 1) if first != -1 else -1
    if first == -1 or second == -1:
        return None
    newline = text.find("\n", first + 3)
    if newline != -1 and newline < second:
        code = text[newline + 1: second].strip()
    else:
        code = text[first + 3: second].strip()
    if code.startswith("python"):
        code = code[len("python"):].strip()
    return code


_TS_PARSER: Any = None


def tree_sitter_parser() -> Any:
    """A Tree-sitter parser for Python (``tree-sitter`` + ``tree-sitter-python``; imported lazily)."""
    global _TS_PARSER
    if _TS_PARSER is None:
        try:
            import tree_sitter
            import tree_sitter_python
        except ImportError:
            raise MissingExtra("tree-sitter", "opencodereasoning") from None
        _TS_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))
    return _TS_PARSER


def syntax_ok(code: str, checker: str = "ast") -> bool:
    """Does ``code`` parse? ``ast``: CPython's parser (``ast.parse``); ``tree-sitter``: no ERROR or
    MISSING node in the Tree-sitter tree (the paper's check); ``none``: always True."""
    if checker == "none":
        return True
    if checker == "ast":
        try:
            ast.parse(code)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return False
        return True
    if checker == "tree-sitter":
        return not tree_sitter_parser().parse(code.encode("utf-8")).root_node.has_error
    raise ConfigError("checker", checker, "'ast', 'tree-sitter' or 'none'")


def filter_response(output: str, finish_reason: str = "stop", config: FilterConfig | None = None) -> FilterResult:
    """Run one teacher response through the recipe's filters, in order (module docstring)."""
    c = config or FilterConfig()
    if not isinstance(output, str):
        raise ConfigError("output", type(output).__name__, "the response text (a str)")
    start, end = output.find(THINK_START), output.find(THINK_END)
    if end == -1:
        return FilterResult(False, "missing_think_end", output)
    repaired = start == -1
    answer = output[end + len(THINK_END):]
    reasoning = output[start + len(THINK_START): end] if start != -1 and start < end else output[:end]
    if repaired:
        output = THINK_START + output

    def reject(reason: str) -> FilterResult:
        return FilterResult(False, reason, output, reasoning, answer, first_code_block(answer), repaired)

    if c.reject_code_in_reasoning and "```" in reasoning:
        return reject("code_in_reasoning")
    if c.reject_truncated and finish_reason == "length":
        return reject("truncated")
    content = answer
    if not content:
        return reject("empty_answer")
    if len(content.split()) <= 3:
        return reject("too_short")
    if not content[0].isascii():
        return reject("non_ascii_start")
    low = content.lower()
    if "your code here" in low:
        return reject("placeholder")
    if "#instruction#" in low or "#output#" in low:
        return reject("prompt_leak")
    if c.tabs_for_spaces:
        content = content.replace("    ", "\t")
    if "explain" in content.lower():  # recipe: drop an explanation that follows a def
        d, e = content.find("def "), content.lower().find("explain")
        if d != -1 and e != -1 and d < e:
            content = content[:e]
    block = first_code_block(content)
    if c.require_code_block and block is None:
        return reject("no_code_block")
    checked = block if block is not None else content
    if c.reject_pass_substring and "pass" in checked:
        return reject("contains_pass")
    if c.syntax_checker != "none" and (not c.syntax_check_requires_def or "def" in checked) and not syntax_ok(checked, c.syntax_checker):
        return reject("syntax_error")
    return FilterResult(True, None, output, reasoning, answer, first_code_block(answer), repaired)


@dataclass(frozen=True)
class DistillConfig:
    """Teacher sampling; defaults are the paper's / recipe's."""

    temperature: float = 0.6  # paper Sec. 3 and recipe
    top_p: float = 0.95  # paper Sec. 3
    n_samples: int = 32  # recipe: num_random_seeds_to_generate = 32
    max_tokens: int = 28768  # recipe: tokens_to_generate (paper: 16k)
    think_budget: int | None = None  # None: one generation (recipe); k: forced </think> after <= k tokens (module doc)
    seed: int = 0  # sample i of a question uses seed + i (reprolab.llm's convention)

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ConfigError("n_samples", self.n_samples, "an integer >= 1")
        if self.max_tokens < 1:
            raise ConfigError("max_tokens", self.max_tokens, "an integer >= 1")
        if self.think_budget is not None and not 1 <= self.think_budget < self.max_tokens:
            raise ConfigError("think_budget", self.think_budget, f"None or an integer in [1, max_tokens={self.max_tokens})")


@dataclass
class TeacherSample:
    """One teacher response to one question."""

    question_id: str
    sample_index: int
    output: str  # starts with the injected "<think>\n"
    finish_reason: str
    completion_tokens: int
    seconds: float
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def generate_samples(llm: Any, questions: Sequence[tuple[str, str]], config: DistillConfig | None = None,
                     progress: Callable[[Sequence[Any], str], Any] | None = None) -> list[TeacherSample]:
    """``config.n_samples`` teacher responses per (question id, question text), through any
    :mod:`reprolab.llm` backend (wrap it in ``CachedLLM`` to resume). ``<think>\\n`` is injected as
    the start of the answer (the paper forces the reasoning trace that way)."""
    from ...llm import Sampling

    c = config or DistillConfig()
    prefill = THINK_START + "\n"
    out: list[TeacherSample] = []
    jobs = [(qid, q, i) for qid, q in questions for i in range(c.n_samples)]
    it = progress(jobs, "teacher samples") if progress is not None else jobs
    for qid, q, i in it:
        prompt = llm.format_chat(build_messages(q)) + prefill
        s = Sampling(max_tokens=c.max_tokens, temperature=c.temperature, top_p=c.top_p, seed=c.seed + i)
        if c.think_budget is None:
            (r,) = llm.complete(prompt, s)
            out.append(TeacherSample(qid, i, prefill + r.text, r.finish_reason, r.completion_tokens, r.seconds, r.cached))
            continue
        (think,) = llm.complete(prompt, Sampling(max_tokens=c.think_budget, temperature=c.temperature, top_p=c.top_p,
                                                 seed=c.seed + i, stop=(THINK_END, "```")))
        reasoning = think.text.rstrip() + "\n" + THINK_END + "\n\n"
        left = max(1, c.max_tokens - think.completion_tokens)
        (ans,) = llm.complete(prompt + reasoning, Sampling(max_tokens=left, temperature=c.temperature, top_p=c.top_p, seed=c.seed + i))
        out.append(TeacherSample(qid, i, prefill + reasoning + ans.text, ans.finish_reason,
                                 think.completion_tokens + ans.completion_tokens, think.seconds + ans.seconds,
                                 think.cached and ans.cached))
    return out


@dataclass
class FilterReport:
    """The filters' verdict on a set of samples: one result per sample, rejections counted by reason."""

    results: list[FilterResult]
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count, every reason listed
    repaired: int = 0

    @property
    def kept(self) -> int:
        return sum(r.kept for r in self.results)


def filter_samples(outputs: Sequence[str | tuple[str, str]], config: FilterConfig | None = None) -> FilterReport:
    """:func:`filter_response` on each output (a text, or (text, finish_reason)); every rejected sample
    is counted under its reason."""
    results = []
    for o in outputs:
        text, finish = (o, "stop") if isinstance(o, str) else o
        results.append(filter_response(text, finish, config))
    counts = Counter(r.reason for r in results if not r.kept)
    return FilterReport(results, {k: counts.get(k, 0) for k in REJECTION_REASONS}, sum(r.repaired for r in results))


def execution_filter(results: Sequence[FilterResult], passes: Callable[[FilterResult], bool]) -> list[bool]:
    """Opt-in execution filtering (the peer arm, NOT the recipe): which format-kept samples pass their
    tests according to ``passes`` (e.g. a sandbox run on hidden tests). Rejected samples are False."""
    return [bool(r.kept and passes(r)) for r in results]
