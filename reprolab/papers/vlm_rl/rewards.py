"""MAYE's rewards and judge (``maye/rlhf/rewards.py``, ``maye/datasets/math.py`` of GAIR-NLP/MAYE).

The score of one response is ``accuracy + format + language`` (paper Sec. 3.4), then replaced by
``reward_penalty`` (-0.1) when the response has no stop token or is too short:

- accuracy (+1): the judge accepts the *last sentence that contains* ``boxed`` (sentences split on
  ``.``, ``!``, ``?`` not between digits, as the official ``extract_last_boxed_sentence``), against
  the solution preprocessed the same way. The official judge is ``math_verify OR a rule scorer OR
  equal leading integers inside \\boxed{}``; ours is ``math_verify (when installed) OR our rule
  judge (the normalised contents of the last \\boxed{} are equal, or numerically equal) OR equal
  leading integers`` -- the official ``AutoScoringJudge`` (a long LaTeX rule table) is not reproduced;
- language: ``-0.1 x`` the fraction of CJK characters (U+4E00..U+9FFF) of the response text;
- format (+1 for exactly one ``<think>...</think>``): implemented, OFF by default as in the paper;
- penalty: the official code tests ``last_valid_index >= min_response_length`` where the last valid
  index is 0-based and counts the stop token, so "shorter than 18" means fewer than 19 tokens with
  the EOS; we keep that arithmetic (documented in :func:`penalty_mask`).
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence

import torch

from ...errors import ShapeError

CJK = re.compile(r"[\u4e00-\u9fff]")
THINK = re.compile(r"<think>.*?</think>", re.DOTALL)
_SENTENCE_SPLIT = re.compile(r"(?<!\d)[.!?](?!\d)")
_LEADING_INT = re.compile(r"\\boxed\{\s*(\d*?)\s*(?:\^|\}|$)")


def last_boxed_sentence(text: str) -> str:
    """The last sentence of ``text`` that contains ``boxed`` (``""`` if none); official split rule."""
    found = [s.strip() for s in _SENTENCE_SPLIT.split(text) if "boxed" in s]
    return found[-1] if found else ""


def boxed_content(text: str) -> str | None:
    """The contents of the last ``\\boxed{...}`` of ``text`` (nested braces balanced), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i, depth, out = start + len("\\boxed{"), 1, []
    while i < len(text):
        ch = text[i]
        depth += ch == "{"
        depth -= ch == "}"
        if depth == 0:
            return "".join(out).strip()
        out.append(ch)
        i += 1
    return None  # unbalanced: no answer


def _normalise(ans: str) -> str:
    ans = ans.replace("\\left", "").replace("\\right", "").replace("\\!", "").replace("$", "")
    ans = re.sub(r"\\text\{(.*?)\}", r"\1", ans)
    ans = re.sub(r"\^\{?\\circ\}?|°", "", ans)
    return re.sub(r"\s+", "", ans).lower().rstrip(".")


def _as_number(ans: str) -> float | None:
    m = re.fullmatch(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", ans)
    try:
        if m:
            return float(m.group(1)) / float(m.group(2))
        return float(ans.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def rule_judge(prediction: str, solution: str) -> bool:
    """Our rule scorer: the last ``\\boxed{}`` answers of the last boxed sentences are equal after
    normalisation (spaces, ``\\left``/``\\right``, ``\\text{}``, degrees, case) or numerically equal."""
    p, s = boxed_content(last_boxed_sentence(prediction)), boxed_content(last_boxed_sentence(solution))
    if p is None or s is None or not p:
        return False
    p, s = _normalise(p), _normalise(s)
    if p == s:
        return True
    pn, sn = _as_number(p), _as_number(s)
    return pn is not None and sn is not None and abs(pn - sn) <= 1e-6 * max(1.0, abs(sn))


def leading_integer_judge(prediction: str, solution: str) -> bool:
    """The official third judge: equal leading integers in ``\\boxed{`` (up to ``^``)."""
    p, s = _LEADING_INT.search(last_boxed_sentence(prediction)), _LEADING_INT.search(last_boxed_sentence(solution))
    return bool(p and s and p.group(1) and p.group(1) == s.group(1))


def math_verify_available() -> bool:
    return importlib.util.find_spec("math_verify") is not None


def judge(prediction: str, solution: str, use_math_verify: bool | None = None) -> bool:
    """MAYE's judge: math_verify (if installed and not turned off) OR the rule judge OR equal leading integers.

    ``solution`` may be a bare answer (``"3"``) or a text with ``\\boxed{}``; a bare answer is boxed first."""
    if "boxed" not in solution:
        solution = f"\\boxed{{{solution}}}"
    if use_math_verify is None:
        use_math_verify = math_verify_available()
    if use_math_verify:
        try:
            import math_verify

            if math_verify.verify(math_verify.parse(last_boxed_sentence(solution)), math_verify.parse(last_boxed_sentence(prediction))):
                return True
        except Exception:  # noqa: BLE001 - the official code treats any parser failure as "not accepted"
            pass
    return rule_judge(prediction, solution) or leading_integer_judge(prediction, solution)


def accuracy_rewards(predictions: Sequence[str], solutions: Sequence[str], judge_fn: Callable[[str, str], bool] = judge) -> torch.Tensor:
    """+1 per response the judge accepts, else 0 (``accuracy_reward_fn``)."""
    if len(predictions) != len(solutions):
        raise ShapeError("solutions", len(solutions), f"one solution per prediction ({len(predictions)})")
    return torch.tensor([1.0 if judge_fn(p, s) else 0.0 for p, s in zip(predictions, solutions)])


def language_rewards(texts: Sequence[str], weight: float = 0.1) -> torch.Tensor:
    """``-weight x`` the fraction of CJK characters of each text (0 for an empty text)."""
    return torch.tensor([-weight * len(CJK.findall(t)) / len(t) if t else 0.0 for t in texts])


def format_rewards(texts: Sequence[str]) -> torch.Tensor:
    """+1 for exactly one ``<think>...</think>`` block (OFF in the paper's runs)."""
    return torch.tensor([1.0 if len(THINK.findall(t)) == 1 else 0.0 for t in texts])


def penalty_mask(has_stop: torch.Tensor, last_index: torch.Tensor, penalise_no_eos: bool = True, min_response_length: int | None = 18) -> torch.Tensor:
    """Which responses get the penalty score: no stop token (when ``penalise_no_eos``), or
    ``last_index < min_response_length`` where ``last_index`` is the 0-based index of the last valid
    token (the stop token included) -- the official ``get_reward_penalty_mask`` arithmetic."""
    mask = ~has_stop.bool() if penalise_no_eos else torch.zeros_like(has_stop, dtype=torch.bool)
    if min_response_length is not None:
        mask = mask | (last_index < int(min_response_length))
    return mask


def scores(texts: Sequence[str], solutions: Sequence[str], has_stop: torch.Tensor, last_index: torch.Tensor, *, judge_fn: Callable[[str, str], bool] = judge,
           use_format: bool = False, language_weight: float = 0.1, penalise_no_eos: bool = True, min_response_length: int | None = 18,
           reward_penalty: float = -0.1) -> dict[str, torch.Tensor]:
    """Per response: ``score`` (what the policy is trained on) and its parts ``accuracy``, ``format``,
    ``language``, ``penalised`` (bool)."""
    acc = accuracy_rewards(texts, solutions, judge_fn)
    fmt = format_rewards(texts) if use_format else torch.zeros(len(texts))
    lang = language_rewards(texts, language_weight)
    score = acc + fmt + lang
    pen = penalty_mask(has_stop, last_index, penalise_no_eos, min_response_length)
    score = torch.where(pen, torch.full_like(score, float(reward_penalty)), score)
    return {"score": score, "accuracy": acc, "format": fmt, "language": lang, "penalised": pen}
