"""GenPRM: a process reward model that verifies each step by generating (arXiv 2504.00891).

For step t of a solution the model writes, in the official format (RyanLiu112/GenPRM,
``genprm_inference.py``):

    <analyze>\nLet's analyze the Paragraph t step by step: ... </analyze>
    <verify>\nLet's use python code to find any potential error:\n```python\n ... \n```
    [Code Output]\n\n```\n<the code's real output>\n```\n</verify>
    <output>\n**Judgement**: $\\boxed{Yes}$ ... </output>

The code runs in :mod:`reprolab.sandbox` (never in our process; the official code ``exec``s it
in-process). The step reward is r_t = P(Yes) / (P(Yes) + P(No)) at the judgement token (paper
Eq. 2; official ``get_reward_score``). Test-time scaling (Maj@N): N verification paths per step,
rewards averaged (the official ``inference(majority_num=N)`` returns the mean).

Choices where the paper or code is vague or too costly for a CPU, each one stated:
- The judgement position is forced: we prefill up to ``$\\boxed{`` and read P(Yes), P(No) there
  (the official code samples ``{Yes}`` and reads the same distribution at that position; the
  reward is the same number). Local backends give exact probabilities; an HTTP endpoint gives
  its top-20, and a choice missing from them gets the smallest listed value (the official rule).
- If a backend has no log-probabilities at all, the reward of a path is its vote (1 for a
  generated Yes, 0 for No) and the result says ``reward_source="vote"``; an unparseable vote is
  a malformed path, counted and excluded from the mean, never scored.
- One code round per path (the official loop allows up to 3 rounds of code and output).
- Earlier steps appear as earlier user turns, each answered by a short assistant turn with its
  judgement only (``\\boxed{Yes}``), not the full earlier rationale: prompts stay short, and a
  step is judged only when every earlier step was judged correct (first-error protocol).
- Sampling: temperature 0.6, top-p 0.95, top-k 20 (official constants). The analysis stage also stops
  at ``<verify>`` / ``<output>`` (a prompted model tends to run on into them; the official stop is
  ``</analyze>`` only).
- Prompted models (``instruct_format=True``, the default) get the format described after the official
  system prompt and see each step as "Paragraph t: ..."; the paper's fine-tuned GenPRM needs neither.
- A step is judged wrong when its (mean) reward is below 0.5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import ConfigError
from ...llm import LLM, ChoicesNotInTopK, LogprobsUnavailable, Sampling
from ...sandbox import Sandbox, SandboxLimits
from ...runtime import thread_map

SYSTEM_PROMPT = "You are a math teacher. Your task is to review and critique the paragraphs in solution step by step."
ANALYZE_START = "<analyze>\nLet's analyze the Paragraph {t} step by step: "
VERIFY_START = "<verify>\nLet's use python code to find any potential error:\n```python\n"
OUTPUT_START = "<output>\n**Judgement**: $\\boxed{"
# Off-the-shelf instruct models (not fine-tuned as GenPRM) are told the format; a GenPRM checkpoint
# is not (set GenPRMConfig(instruct_format=False)). Our addition, not the paper's.
FORMAT_INSTRUCTIONS = (
    " Each user message gives one paragraph of the solution. Review only that paragraph: first analyze it inside "
    "<analyze>...</analyze>; then write Python code that checks its calculation inside <verify>...</verify> "
    "(a short, self-contained program that recomputes the paragraph's numbers from the question and prints them; "
    "it is run and its output shown to you); finally give your judgement inside <output>...</output> as "
    "**Judgement**: $\\boxed{Yes}$ if the paragraph is correct or $\\boxed{No}$ if it contains an error."
)
PRIOR_OK = "<analyze>\nParagraph {t} is correct.\n</analyze>\n<output>\n**Judgement**: $\\boxed{{Yes}}$\n</output>"
BOXED = re.compile(r"\\boxed\{\s*(Yes|No)\s*\}", re.IGNORECASE)


@dataclass(frozen=True)
class GenPRMConfig:
    n: int = 1  # Maj@N: verification paths per step
    analyze: bool = True  # write the natural-language analysis
    verify: bool = True  # write verification code
    execute: bool = True  # run it in the sandbox and feed the output back
    temperature: float = 0.6  # official TEMPERATURE
    top_p: float = 0.95  # official TOP_P
    top_k: int = 20  # official TOP_K
    max_tokens_analyze: int = 256
    max_tokens_code: int = 256
    code_timeout_s: float = 5.0  # official CodeExecutor timeout
    code_memory_mb: int = 512
    threshold: float = 0.5  # a step with reward < threshold is judged wrong
    instruct_format: bool = True  # describe the format in the system prompt and number the paragraphs (prompted models)
    seed: int = 0
    # concurrent requests for a step's n paths: for an HTTP server with parallel slots (llama.cpp's
    # `llama-server -np N`, vLLM), which decodes them as parallel sequences; 1 = one after another, the
    # right choice in process (one llama.cpp context serialises calls, and consecutive paths of one step
    # share the KV cache of their prompt)
    parallel: int = 1

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ConfigError("n", self.n, "an integer >= 1 (Maj@N)")
        if not isinstance(self.parallel, int) or self.parallel < 1:
            raise ConfigError("parallel", self.parallel, "an integer >= 1")
        if self.execute and not self.verify:
            raise ConfigError("execute", self.execute, "False when verify is False (no code to run)")
        if not 0 < self.threshold < 1:
            raise ConfigError("threshold", self.threshold, "a number in (0, 1)")


@dataclass
class VerificationPath:
    """One sampled verification of one step."""

    analysis: str = ""
    code: str = ""
    execution: str = ""  # what the sandbox printed (fed back to the model)
    execution_status: str = ""  # ok / error / timeout / memory / ... ; "" if not executed
    p_yes: float = math.nan  # P(Yes) / (P(Yes) + P(No)); NaN when malformed
    judgement: str = ""  # "Yes" | "No" | "" (malformed)
    malformed: str = ""  # why the path could not be scored ("" if fine)
    truncated: bool = False  # a stage hit its token limit (the stage was closed for it, as the official code does)
    reward_source: str = ""  # "logprobs" | "vote" (the backend had no log-probabilities)


@dataclass
class StepScores:
    """Per-step rewards of one solution (NaN for steps not judged: after the first judged error)."""

    rewards: list[float]
    paths: list[list[VerificationPath]]  # per step; empty for steps not judged
    n: int
    threshold: float = 0.5  # a step with reward < threshold is judged wrong

    @property
    def reward_source(self) -> str:
        """"vote" if any path fell back to votes (the backend had no log-probabilities), else "logprobs"."""
        return "vote" if any(p.reward_source == "vote" for ps in self.paths for p in ps) else "logprobs"

    @property
    def malformed(self) -> int:
        """Paths that could not be scored (excluded from the means, never scored as 0)."""
        return sum(bool(p.malformed) or math.isnan(p.p_yes) for ps in self.paths for p in ps)

    @property
    def judged_steps(self) -> int:
        return sum(bool(ps) for ps in self.paths)

    @property
    def first_error(self) -> int:
        """Index of the first judged step with reward < threshold, -1 if none."""
        for i, r in enumerate(self.rewards):
            if not math.isnan(r) and r < self.threshold:
                return i
        return -1

    def aggregate(self, how: str = "min") -> float:
        vals = [r for r in self.rewards if not math.isnan(r)]
        if not vals:
            return math.nan
        if how == "min":
            return min(vals)
        if how == "prod":
            return math.prod(vals)
        if how == "last":
            return vals[-1]
        raise ConfigError("how", how, "min, prod or last")

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return nan_to_none({"rewards": self.rewards, "n": self.n, "threshold": self.threshold, "reward_source": self.reward_source,
                            "malformed": self.malformed, "judged_steps": self.judged_steps,
                            "paths": [[asdict(p) for p in ps] for ps in self.paths]})


def p_yes(logp_yes: float, logp_no: float) -> float:
    """The step reward P(Yes) / (P(Yes) + P(No)) from the two log-probabilities (paper Eq. 2), computed stably."""
    m = max(logp_yes, logp_no)
    return math.exp(logp_yes - m) / (math.exp(logp_yes - m) + math.exp(logp_no - m))


def nan_to_none(x: Any) -> Any:
    """NaN -> None, recursively (JSON has no NaN; None reads as "undefined": a step not judged, F1 without a class)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    return x


def best_index(scores: Sequence[float]) -> int:
    """Index of the highest score; NaN (nothing could be scored) ranks last; ties go to the earliest."""
    return max(range(len(scores)), key=lambda i: -math.inf if math.isnan(scores[i]) else scores[i])


class GenerativePRM:
    """GenPRM on any :mod:`reprolab.llm` backend.

        prm = GenerativePRM(load_llm("qwen2.5-coder-1.5b"), GenPRMConfig(n=4))
        scores = prm.score_steps(question, steps)          # StepScores
        prm.first_error(question, steps)                   # -1 or the first wrong step's index
        prm.best_of_n(question, [steps_a, steps_b, ...])   # index of the best solution
    """

    def __init__(self, llm: LLM, config: GenPRMConfig | None = None, sandbox: Sandbox | None = None):
        self.llm = llm
        self.config = config or GenPRMConfig()
        c = self.config
        self.sandbox = sandbox or Sandbox(SandboxLimits(timeout_s=c.code_timeout_s, memory_mb=c.code_memory_mb))
        self._exec_cache: dict[str, tuple[str, str]] = {}  # code -> (status, output): the same snippet runs once

    # -- prompts --
    def messages(self, question: str, steps: Sequence[str], t: int) -> list[dict[str, str]]:
        """The conversation that asks for a verification of step ``t`` (0-based)."""
        c = self.config
        system = SYSTEM_PROMPT + (FORMAT_INSTRUCTIONS if c.instruct_format else "")
        if c.instruct_format and not c.verify:
            system = system[: system.index("; then write")] + system[system.index("; finally"):]
        msgs = [{"role": "system", "content": system}]
        for i in range(t + 1):
            para = f"Paragraph {i + 1}: {steps[i]}" if c.instruct_format else steps[i]
            content = f"Question: {question}\n\n{para}" if i == 0 else para
            msgs.append({"role": "user", "content": content})
            if i < t:
                msgs.append({"role": "assistant", "content": PRIOR_OK.format(t=i + 1)})
        return msgs

    def _sampling(self, max_tokens: int, stop: tuple[str, ...], seed: int) -> Sampling:
        c = self.config
        return Sampling(max_tokens=max_tokens, temperature=c.temperature, top_p=c.top_p, top_k=c.top_k, stop=stop, seed=seed)

    # -- one path --
    def verify_step(self, question: str, steps: Sequence[str], t: int, sample: int = 0) -> VerificationPath:
        c = self.config
        if not 0 <= t < len(steps):
            raise ConfigError("t", t, f"a step index in [0, {len(steps)})")
        seed = c.seed * 100_003 + t * 1_009 + sample
        prompt = self.llm.format_chat(self.messages(question, steps, t))
        path = VerificationPath()
        cur = ""
        if c.analyze:
            cur = ANALYZE_START.format(t=t + 1)
            (g,) = self.llm.complete(prompt + cur, self._sampling(c.max_tokens_analyze, ("</analyze>", "<verify>", "<output>"), seed))
            path.analysis = g.text.strip()
            path.truncated |= g.finish_reason == "length"
            cur += g.text.rstrip() + "\n</analyze>\n"
        if c.verify:
            cur += VERIFY_START
            (g,) = self.llm.complete(prompt + cur, self._sampling(c.max_tokens_code, ("\n```", "```"), seed + 7))
            path.code = g.text.strip("\n")
            path.truncated |= g.finish_reason == "length"
            cur += path.code + "\n```\n"
            if c.execute:
                if path.code.strip():
                    if path.code not in self._exec_cache:
                        res = self.sandbox.run(path.code)
                        self._exec_cache[path.code] = (str(res.status), res.summary(max_lines=15, max_chars=1200))
                    path.execution_status, path.execution = self._exec_cache[path.code]
                else:
                    path.execution_status = "empty"
                    path.execution = "Code format error: No code found."
                cur += f"[Code Output]\n\n```\n{path.execution}\n```\n"
            cur += "</verify>\n"
        cur += OUTPUT_START
        self._judge(prompt + cur, path, seed)
        return path

    def _judge(self, prompt: str, path: VerificationPath, seed: int) -> None:
        try:
            try:
                lp = self.llm.choice_logprobs(prompt, ["Yes", "No"])
            except ChoicesNotInTopK as exc:  # an endpoint's top-20 holds neither: malformed, never p = 0.5
                path.reward_source = "logprobs"
                path.malformed = f"neither Yes nor No among the endpoint's top next tokens ({exc.message[:80]})"
                return
            y, n = lp["Yes"], lp["No"]
            if math.isnan(y) or math.isnan(n):
                raise LogprobsUnavailable("the Yes/No token merged with the prompt's last token")
            path.p_yes = p_yes(y, n)
            path.judgement = "Yes" if path.p_yes >= 0.5 else "No"
            path.reward_source = "logprobs"
        except LogprobsUnavailable:
            (g,) = self.llm.complete(prompt, self._sampling(8, ("}",), seed + 13))
            word = g.text.strip().split("}")[0].strip().capitalize()
            path.reward_source = "vote"
            if word in ("Yes", "No"):
                path.judgement = word
                path.p_yes = 1.0 if word == "Yes" else 0.0
            else:
                path.malformed = f"no Yes/No after \\boxed{{: {g.text[:40]!r}"

    # -- public API --
    def score_steps(self, question: str, steps: Sequence[str], n: int | None = None,
                    stop_at_first_error: bool = True) -> StepScores:
        """Rewards of each step (Maj@N mean over ``n`` paths). With ``stop_at_first_error`` the
        steps after the first one judged wrong are not judged (reward NaN): ProcessBench's protocol."""
        if not steps or isinstance(steps, str):
            raise ConfigError("steps", steps if isinstance(steps, str) else "[]", "a non-empty list of step strings")
        n = n or self.config.n
        scores = StepScores([math.nan] * len(steps), [[] for _ in steps], n, self.config.threshold)
        for t in range(len(steps)):
            paths = self._paths(question, steps, t, n)
            scores.paths[t] = paths
            good = [p.p_yes for p in paths if not p.malformed and not math.isnan(p.p_yes)]
            scores.rewards[t] = sum(good) / len(good) if good else math.nan
            if stop_at_first_error and scores.first_error == t:
                break
        return scores

    def _paths(self, question: str, steps: Sequence[str], t: int, n: int) -> list[VerificationPath]:
        """The n verification paths of step t, in order (path i seeded by i whether sent one by one or concurrently)."""
        return thread_map(lambda i: self.verify_step(question, steps, t, i), range(n), self.config.parallel)

    def first_error(self, question: str, steps: Sequence[str], n: int | None = None) -> int:
        return self.score_steps(question, steps, n).first_error

    def best_of_n(self, question: str, solutions: Sequence[Sequence[str]], n: int | None = None,
                  how: str = "min") -> tuple[int, list[float]]:
        """Index of the solution with the highest aggregated step reward (``min`` by default, the
        paper's choice for best-of-N; ``prod`` and ``last`` also), and every solution's score."""
        if not solutions:
            raise ConfigError("solutions", "[]", "at least one candidate solution")
        scores = [self.score_steps(question, sol, n, stop_at_first_error=False).aggregate(how) for sol in solutions]
        return best_index(scores), [-math.inf if math.isnan(s) else s for s in scores]

    def critique_refine(self, policy: LLM, question: str, steps: Sequence[str], n: int | None = None,
                        max_tokens: int = 512) -> tuple[list[str], StepScores]:
        """Critique-refine (paper Sec. 4.4): find the first wrong step with the PRM, give its
        analysis and code output back to the policy, and let it rewrite from that step on.
        Returns the refined steps (the original ones if no error was found) and the PRM's scores."""
        scores = self.score_steps(question, steps, n)
        t = scores.first_error
        if t < 0:
            return list(steps), scores
        worst = min(scores.paths[t], key=lambda p: p.p_yes if not math.isnan(p.p_yes) else 1.0)
        feedback = worst.analysis + (f"\nVerification code output:\n{worst.execution}" if worst.execution else "")
        msgs = [
            {"role": "system", "content": "You solve math problems step by step, one step per line, and end with 'Answer: <number>'."},
            {"role": "user", "content": (f"Question: {question}\n\nA solution:\n" + "\n".join(f"Step {i + 1}: {s}" for i, s in enumerate(steps))
                                         + f"\n\nA reviewer found an error in step {t + 1}:\n{feedback}\n\n"
                                         f"Keep steps 1 to {t} and rewrite the solution from step {t + 1} on, one step per line.")},
        ]
        prefill = "".join(f"Step {i + 1}: {s}\n" for i, s in enumerate(steps[:t])) + f"Step {t + 1}:"
        (g,) = policy.chat(msgs, Sampling(max_tokens=max_tokens, temperature=0.0), prefill=prefill)
        new = [s for s in steps[:t]]
        body = f"Step {t + 1}:" + g.text
        for line in body.splitlines():
            m = re.match(r"\s*Step\s+\d+\s*:\s*(.*)", line)
            if m and m.group(1).strip():
                new.append(m.group(1).strip())
            elif line.strip().lower().startswith("answer") and new:
                new[-1] = new[-1] + " " + line.strip()
        return new, scores


def majority_vote(answers: Sequence[str]) -> int:
    """Index of the first candidate whose answer is the most frequent (ties: the earliest)."""
    if not answers:
        raise ConfigError("answers", "[]", "at least one answer")
    counts: dict[str, int] = {}
    for a in answers:
        counts[a] = counts.get(a, 0) + 1
    best = max(counts.values())
    return next(i for i, a in enumerate(answers) if counts[a] == best)


def rpe_labels(mc: Sequence[float], pass_at_1: float, epsilon: float = 0.8) -> list[bool]:
    """Relative Progress Estimation labels (paper Sec. 3.3, Eqs. 5 and 10).

    ``mc[t]`` is the Monte Carlo estimate MC(s_t, a_t): the fraction of rollouts continuing after
    step t (0-based) that reach the right answer. The relative progress of a step is
    P_t = MC(s_t, a_t) / MC(s_t), the value of the state after the step over the value of the state
    before it: MC(s_t) = MC(s_{t-1}, a_{t-1}) = ``mc[t-1]`` for t > 0, and for the first step the
    value of the bare problem, which Eq. 10 defines as the Pass@1 estimated in the solution-generation
    phase (``pass_at_1``: the share of the policy's sampled solutions to this problem that are right).
    A step is labelled correct iff P_t >= epsilon (0.8). A state worth 0 (MC(s_t) = 0) gives no
    progress: the step is labelled wrong."""
    if not 0 < epsilon <= 1:
        raise ConfigError("epsilon", epsilon, "a number in (0, 1]")
    if isinstance(pass_at_1, bool) or not isinstance(pass_at_1, (int, float)) or not 0 <= pass_at_1 <= 1:
        raise ConfigError("pass_at_1", pass_at_1, "the generation phase's Pass@1 of this problem, a fraction in [0, 1]")
    labels = []
    before = float(pass_at_1)
    for t, v in enumerate(mc):
        if not 0 <= v <= 1 or math.isnan(v):
            raise ConfigError(f"mc[{t}]", v, "a fraction in [0, 1]")
        p = v / before if before > 0 else 0.0
        labels.append(p >= epsilon)
        before = v
    return labels


def hard_labels(mc: Sequence[float]) -> list[bool]:
    """Math-Shepherd's hard estimation (the paper's baseline for RPE): correct iff MC > 0."""
    return [v > 0 for v in mc]


def processbench_f1(pred: Sequence[int], gold: Sequence[int]) -> tuple[float, float, float]:
    """ProcessBench's F1: harmonic mean of the accuracy on erroneous solutions (exact first-error
    index) and on correct ones (prediction -1). Returns (f1, acc_error, acc_correct) in [0, 1]."""
    if len(pred) != len(gold) or not gold:
        raise ConfigError("pred", f"{len(pred)} predictions for {len(gold)} labels", "one prediction per labelled solution")
    err = [p == g for p, g in zip(pred, gold) if g >= 0]
    cor = [p == g for p, g in zip(pred, gold) if g < 0]
    a_err = sum(err) / len(err) if err else math.nan
    a_cor = sum(cor) / len(cor) if cor else math.nan
    if math.isnan(a_err) or math.isnan(a_cor) or a_err + a_cor == 0:
        return (0.0 if (a_err == 0 or a_cor == 0) else math.nan), a_err, a_cor
    return 2 * a_err * a_cor / (a_err + a_cor), a_err, a_cor
