"""Evaluating generated leads: the official article JSON, ROUGE, and an AlignScore-like claim-support judge.

- Article files: the format of the official release (github alexmartin1722/wikivideo,
  ``data/model_outputs/articles/*/*.json``): ``{event: {"query": id, "article": "<lead>...</lead>"}}``.
- ROUGE-1/2/L F-measures from Google's ``rouge-score`` 0.1.2 (Porter stemming on), the paper's overlap metric.
- :class:`ClaimSupportJudge`: an LLM asked, per sentence of the article, whether the sources support it;
  the score is p(Yes) / (p(Yes) + p(No)) from next-token log-probabilities, averaged over sentences. It is
  *AlignScore-like* (the paper's factual-consistency metric is AlignScore, Zha et al. 2023, a trained
  RoBERTa alignment model whose weights are not offline): not AlignScore, and its numbers are not comparable
  with the paper's.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, MalformedFile, MissingExtra, NonFiniteError
from ...llm import LLM
from ...runtime import atomic_write_json
from .cag import Article, load_prompt
from .events import sentences

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class ArticleRecord:
    query: str
    article: str  # "<lead>...</lead>"


def write_articles(path: str | os.PathLike, articles: Mapping[str, Article | ArticleRecord | tuple[str, str]]) -> Path:
    """Write ``{event: {"query": ..., "article": "<lead>...</lead>"}}`` atomically (the official format)."""
    out: dict[str, dict[str, str]] = {}
    for event, a in articles.items():
        if isinstance(a, Article):
            query, lead = a.query, a.lead
        elif isinstance(a, ArticleRecord):
            query, lead = a.query, a.article
        elif isinstance(a, tuple) and len(a) == 2:
            query, lead = a
        else:
            raise ConfigError(f"articles[{event!r}]", type(a).__name__, "an Article, an ArticleRecord or (query, lead)")
        if not isinstance(lead, str) or not isinstance(query, str):
            raise ConfigError(f"articles[{event!r}]", (query, lead), "string query and article")
        out[str(event)] = {"query": query, "article": lead}
    return atomic_write_json(path, out)


def read_articles(path: str | os.PathLike) -> dict[str, ArticleRecord]:
    """Read an article file of the official format (the leads keep their ``<lead>`` tags, as released)."""
    p = Path(path)
    if not p.is_file():
        raise MalformedFile(str(p), "no such article file", fix="pass a JSON file written by write_articles() or the official release")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedFile(str(p), f"not JSON ({exc})", fix="pass an article JSON file {event: {query, article}}") from None
    if not isinstance(data, dict):
        raise MalformedFile(str(p), f"top level is a {type(data).__name__}, not an object", fix="pass {event: {query, article}}")
    out = {}
    for event, rec in data.items():
        if not isinstance(rec, dict) or not isinstance(rec.get("article"), str):
            raise MalformedFile(str(p), f"event {event!r} has no string 'article'", fix="each event maps to {\"query\": ..., \"article\": \"<lead>...</lead>\"}")
        out[event] = ArticleRecord(str(rec.get("query", "")), rec["article"])
    return out


def lead_text(article: str) -> str:
    """The article without its ``<lead>`` tags."""
    return article.replace("<lead>", " ").replace("</lead>", " ").strip()


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures of ``prediction`` against ``reference`` (``<lead>`` tags dropped), rouge-score 0.1.2."""
    try:
        from rouge_score import rouge_scorer
    except ImportError as exc:
        raise MissingExtra("rouge-score", "wikivideo") from exc
    scorer = _scorer(rouge_scorer)
    s = scorer.score(lead_text(reference), lead_text(prediction))
    return {k: float(s[k].fmeasure) for k in ROUGE_TYPES}


_SCORER: Any = None


def _scorer(rouge_scorer: Any) -> Any:
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    return _SCORER


class ClaimSupportJudge:
    """AlignScore-like factual consistency (see the module doc): mean over the article's sentences of
    p(Yes | sources, sentence) from the judge LLM's next-token log-probabilities of "Yes" and "No".

    The sources come first in the prompt (``prompts/judge_v1.txt``), so a local backend reuses their KV cache
    across the sentences of one article."""

    def __init__(self, llm: LLM, prompt: str = "judge_v1"):
        if not isinstance(llm, LLM):
            raise ConfigError("llm", type(llm).__name__, "a reprolab.llm.LLM with log-probabilities")
        self.llm = llm
        self.system, self.user = load_prompt(prompt)

    def support(self, claim: str, sources: Sequence[str]) -> float:
        """p(Yes) / (p(Yes) + p(No)) for one claim."""
        msgs = [{"role": "system", "content": self.system},
                {"role": "user", "content": self.user.format(sources="\n\n".join(s.strip() for s in sources), claim=claim.strip())}]
        lp = self.llm.choice_logprobs(self.llm.format_chat(msgs), ["Yes", "No"])
        y, n = lp["Yes"], lp["No"]
        if any(math.isnan(v) or v == math.inf for v in (y, n)):
            raise NonFiniteError("the judge's log-probabilities of Yes/No", (y, n), fix="use a judge model whose Yes/No are single tokens")
        if y == -math.inf and n == -math.inf:
            return 0.5
        m = max(y, n)
        return math.exp(y - m) / (math.exp(y - m) + math.exp(n - m))

    def score(self, article: str, sources: Sequence[str]) -> dict[str, Any]:
        """``{"score": mean support, "per_sentence": [...]}`` (score NaN-free: an empty article scores 0)."""
        if not sources:
            raise ConfigError("sources", "[]", "at least one source text (the describer's summaries and answers)")
        per = [self.support(s, sources) for s in sentences(article)]
        return {"score": sum(per) / len(per) if per else 0.0, "per_sentence": per}


__all__ = ["ArticleRecord", "ClaimSupportJudge", "ROUGE_TYPES", "lead_text", "read_articles", "rouge_scores", "write_articles"]
