"""Collaborative Article Generation (CAG), WikiVideo (Martin et al., arXiv 2504.00939), Sec. 4.

A VideoLLM (the *describer*) summarises each video with a default prompt; a reasoning model reads the event
query and the current summary and returns ``{new_query_needed, new_query}``; each new query goes back to the
describer, up to ``max_iterations`` times per video; a text LLM (the *writer*) composes a ``<lead>...</lead>``
from all summaries and reprompt answers, told to use no outside knowledge. The loop follows the paper's
pseudo-code (digest, Sec. 2):

    for video: summary[video] = VideoLLM(video, "describe the video in detail")
    for video: s = summary[video]
        for i < max_iterations: r = Reasoner(event_query, s); if not r.new_query_needed: break
                                s = VideoLLM(video, r.new_query); keep (r.new_query, s)
    article = TextLLM(event_query, summaries, reprompts)

Choices where the paper is vague (each a constructor argument or a versioned prompt file in ``prompts/``):

- the reasoner sees the event query and the *latest* answer about the video, as in the pseudo-code (not the
  questions asked before); its JSON is validated against a schema with one repair turn
  (:func:`reprolab.agents.ask_structured`); an answer still invalid after the repair, or
  ``new_query_needed: true`` with an empty query, ends that video's turns and is counted (``status
  "invalid"``); a query already asked about the same video (or the default prompt) ends them too (``status
  "repeat"``): a deterministic describer would answer it identically;
- the writer gets every default summary and every (question, answer) pair, grouped by video, and the
  instruction to use no outside knowledge; its text between ``<lead>`` and ``</lead>`` is the article (an
  answer without the tags is wrapped and counted as untagged);
- prompts (ours; the official code is not released): ``prompts/reasoner_v1.txt``, ``prompts/writer_v1.txt``;
- every call is budgeted (:class:`reprolab.agents.Budget`, checked before the call; the default cap is the
  loop's own maximum, a safety net; reprompting stops one call early so the writer always has its call) and metered
  per role; pass ``cache=`` to answer repeated calls from disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ...agents import Budget, BudgetExceeded, FailureCounter, Meter, MeteredLLM, Trace, ask_structured
from ...errors import ConfigError
from ...llm import LLM, CachedLLM, Completion, ResponseCache, Sampling

PROMPTS_DIR = Path(__file__).parent / "prompts"
DEFAULT_PROMPT = "describe the video in detail"  # the paper's default VideoLLM prompt (digest, Sec. 5)
# Arm C of the study: questions a pipeline would ask without reading the summary (ours)
GENERIC_QUESTIONS = ("What happens in this video?", "What else can you see in this video?")
REASONER_SCHEMA = {
    "type": "object",
    "properties": {"new_query_needed": {"type": "boolean"}, "new_query": {"type": "string"}},
    "required": ["new_query_needed"],
}


def load_prompt(name: str) -> tuple[str, str]:
    """``(system, user template)`` of ``prompts/<name>.txt`` (the two halves around a line ``---``)."""
    p = PROMPTS_DIR / f"{name}.txt"
    if not p.is_file():
        raise ConfigError("prompt", name, f"one of {sorted(f.stem for f in PROMPTS_DIR.glob('*.txt'))}")
    system, _, user = p.read_text(encoding="utf-8").partition("\n---\n")
    return system.strip(), user.strip()


@runtime_checkable
class Describer(Protocol):
    """What CAG needs of a VideoLLM: ``describe(video, question) -> text``. An implementation may expose
    ``last: Completion`` (the call's tokens and seconds) for the meters."""

    def describe(self, video: Any, question: str) -> str: ...


def video_id(video: Any) -> str:
    """A video's key in the article's records: its ``id`` attribute, else a path's stem, else ``str(video)``."""
    vid = getattr(video, "id", None)
    if vid is not None:
        return str(vid)
    if isinstance(video, (str, os.PathLike)):
        return Path(video).stem
    return str(video)


@dataclass
class ReasonerTurn:
    video: str
    status: str  # "asked" | "stop" | "invalid" | "repeat" | "budget"
    query: str = ""
    attempts: int = 0  # reasoner calls of this turn (2 after a repair)
    error: str = ""


@dataclass
class Article:
    """One generated article and how it was made."""

    query: str
    lead: str  # "<lead>...</lead>"
    summaries: dict[str, str]  # video -> default summary
    reprompts: dict[str, list[tuple[str, str]]]  # video -> [(question, answer)]
    turns: list[ReasonerTurn] = field(default_factory=list)
    usage: dict[str, dict[str, float]] = field(default_factory=dict)  # role -> calls, tokens, seconds, cache hits
    tagged: bool = True  # the writer wrapped its lead in <lead> tags
    stopped: str = ""  # why reprompting stopped early ("budget reached: ..."), if it did

    @property
    def valid_queries(self) -> int:
        return sum(t.status == "asked" for t in self.turns)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["reprompts"] = {v: [list(qa) for qa in qas] for v, qas in self.reprompts.items()}
        return d


@dataclass
class _RoleMeter(Meter):
    """A role's meter (describer, reasoner, writer) that also charges, and is checked against, the article's."""

    total: Meter | None = None
    reserve: int = 0  # calls of the article's budget this role must leave free (the writer's one call)

    def check(self, *, step: bool = False) -> None:
        if self.total is None:
            return super().check(step=step)
        self.total.check(step=step)
        cap = self.total.budget.max_calls
        if cap is not None and self.total.calls + self.reserve >= cap:
            raise BudgetExceeded("max_calls", self.total.calls, cap - self.reserve)

    def add(self, c: Completion) -> None:
        super().add(c)
        if self.total is not None:
            self.total.add(c)


class CollaborativeArticleGenerator:
    """CAG (see the module doc). ``reasoner`` may be None when ``max_iterations`` is 0 (captions -> writer).

    Args:
        describer: a :class:`Describer` (a VLM endpoint fed video frames, or the study's symbolic describer).
        reasoner: the reasoning LLM (any :class:`reprolab.llm.LLM`).
        writer: the text LLM that writes the lead.
        max_iterations: reasoner turns per video (the paper's ``max_iterations``; the study uses 2).
        budget: limits of one article's calls, tokens and seconds, over all roles (default: the loop's maximum).
        cache: a SQLite response cache (path or :class:`ResponseCache`) for the reasoner and writer.
        trace: a JSONL file (or :class:`Trace`) receiving every call.
    """

    def __init__(self, describer: Describer, reasoner: LLM | None, writer: LLM, max_iterations: int = 2, *,
                 budget: Budget | None = None, cache: str | os.PathLike | ResponseCache | None = None,
                 trace: str | os.PathLike | Trace | None = None, default_prompt: str = DEFAULT_PROMPT,
                 reasoner_sampling: Sampling = Sampling(max_tokens=80), writer_sampling: Sampling = Sampling(max_tokens=200),
                 reasoner_prompt: str = "reasoner_v1", writer_prompt: str = "writer_v1"):
        if not isinstance(max_iterations, int) or isinstance(max_iterations, bool) or max_iterations < 0:
            raise ConfigError("max_iterations", max_iterations, "an integer >= 0 (reasoner turns per video)")
        if reasoner is None and max_iterations > 0 and type(self) is CollaborativeArticleGenerator:
            raise ConfigError("reasoner", None, "an LLM (or max_iterations=0 for captions -> writer)")
        if not callable(getattr(describer, "describe", None)):
            raise ConfigError("describer", type(describer).__name__, "an object with describe(video, question) -> str")
        if writer is None:
            raise ConfigError("writer", None, "an LLM that writes the lead")
        for role, llm in (("writer", writer), ("reasoner", reasoner)):
            if llm is not None and not isinstance(llm, LLM):
                raise ConfigError(role, type(llm).__name__, "a reprolab.llm.LLM (load_llm(...))")
        if not default_prompt.strip():
            raise ConfigError("default_prompt", default_prompt, "a non-empty prompt")
        shared = ResponseCache(cache) if isinstance(cache, (str, os.PathLike)) else cache
        wrap = (lambda llm: CachedLLM(llm, shared) if llm is not None and shared is not None else llm)
        self.describer = describer
        self.reasoner = wrap(reasoner)
        self.writer = wrap(writer)
        self.max_iterations = max_iterations
        self.budget = budget
        self.trace = trace if isinstance(trace, Trace) or trace is None else Trace(trace)
        self.default_prompt = default_prompt
        self.reasoner_sampling = reasoner_sampling
        self.writer_sampling = writer_sampling
        self.reasoner_prompt = load_prompt(reasoner_prompt)
        self.writer_prompt = load_prompt(writer_prompt)
        self.failures = FailureCounter()  # the reasoner's structured outputs: asked, repaired, failed (by reason)

    # -- the loop --
    def generate(self, query: str, videos: Sequence[Any]) -> Article:
        """The article about the event ``query`` from ``videos`` (any objects the describer reads)."""
        if not isinstance(query, str) or not query.strip():
            raise ConfigError("query", query, "a non-empty event query")
        videos = list(videos)
        if not videos:
            raise ConfigError("videos", "[]", "at least one video")
        ids = [video_id(v) for v in videos]
        if len(set(ids)) != len(ids):
            raise ConfigError("videos", ids, "videos with distinct ids (an id attribute or distinct file names)")
        total = Meter(self.budget or self._default_budget(len(videos)))
        meters = {role: _RoleMeter(total=total, reserve=0 if role == "writer" else 1) for role in ("describer", "reasoner", "writer")}
        reasoner = MeteredLLM(self.reasoner, meters["reasoner"], self.trace, "reasoner") if self.reasoner is not None else None
        writer = MeteredLLM(self.writer, meters["writer"], self.trace, "writer")

        summaries = {vid: self._describe(v, vid, self.default_prompt, meters["describer"]) for vid, v in zip(ids, videos)}
        reprompts: dict[str, list[tuple[str, str]]] = {vid: [] for vid in ids}
        turns: list[ReasonerTurn] = []
        stopped = ""
        try:
            for vid, v in zip(ids, videos):
                summary = summaries[vid]
                for _ in range(self.iterations_for(vid)):
                    asked = [self.default_prompt] + [q for q, _ in reprompts[vid]]
                    turn = self.next_query(reasoner, query, vid, summary, asked)
                    turns.append(turn)
                    if turn.status != "asked":
                        break
                    summary = self._describe(v, vid, turn.query, meters["describer"])
                    reprompts[vid].append((turn.query, summary))
        except BudgetExceeded as exc:
            stopped = exc.message
            turns.append(ReasonerTurn(vid, "budget", error=exc.message))
        lead, tagged = self._write(writer, query, summaries, reprompts)
        usage = {role: m.summary() for role, m in meters.items()}
        usage["total"] = total.summary()
        return Article(query, lead, summaries, reprompts, turns, usage, tagged, stopped)

    # -- hooks --
    def iterations_for(self, video: str) -> int:
        """Reasoner turns allowed for this video (``max_iterations``)."""
        return self.max_iterations

    def next_query(self, reasoner: LLM | None, query: str, video: str, summary: str, asked: list[str]) -> ReasonerTurn:
        """One reasoner turn: the validated ``{new_query_needed, new_query}`` as a :class:`ReasonerTurn`."""
        system, user = self.reasoner_prompt
        msgs = [{"role": "system", "content": system},
                {"role": "user", "content": user.format(query=query, video=video, summary=summary.strip() or "(empty)")}]
        out = ask_structured(reasoner, msgs, REASONER_SCHEMA, self.reasoner_sampling, counter=self.failures)
        if not out.ok:
            return ReasonerTurn(video, "invalid", attempts=out.attempts, error=out.error)
        if not out.value["new_query_needed"]:
            return ReasonerTurn(video, "stop", attempts=out.attempts)
        q = str(out.value.get("new_query") or "").strip()
        if not q:
            self.failures.fail("empty_query")
            return ReasonerTurn(video, "invalid", attempts=out.attempts, error="new_query_needed is true but new_query is empty")
        if _norm(q) in {_norm(a) for a in asked}:
            return ReasonerTurn(video, "repeat", q, out.attempts)
        return ReasonerTurn(video, "asked", q, out.attempts)

    # -- internals --
    def _default_budget(self, n_videos: int) -> Budget:
        per_video = 1 + self.max_iterations * 3  # default summary + per turn: reasoner, its repair, the describer
        return Budget(max_calls=n_videos * per_video + 1)

    def _describe(self, video: Any, vid: str, question: str, meter: _RoleMeter) -> str:
        meter.check()
        t0 = time.perf_counter()
        text = self.describer.describe(video, question)
        if not isinstance(text, str):
            raise ConfigError("describer answer", type(text).__name__, "a string from describe(video, question)")
        last = getattr(self.describer, "last", None)
        c = last if isinstance(last, Completion) else Completion(text=text, seconds=time.perf_counter() - t0)
        meter.add(c)
        if self.trace is not None:
            self.trace.log("describe", agent="describer", video=vid, question=question, text=text,
                           prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens, seconds=round(c.seconds, 4),
                           cached=c.cached)
        return text

    def _write(self, writer: LLM, query: str, summaries: Mapping[str, str], reprompts: Mapping[str, list[tuple[str, str]]]) -> tuple[str, bool]:
        system, user = self.writer_prompt
        msgs = [{"role": "system", "content": system},
                {"role": "user", "content": user.format(query=query, n_videos=len(summaries), material=writer_material(summaries, reprompts))}]
        s = self.writer_sampling
        if "</lead>" not in s.stop:
            from dataclasses import replace

            s = replace(s, stop=(*s.stop, "</lead>"))
        text = writer.chat(msgs, s)[0].text
        return extract_lead(text)


class FixedQuestionsGenerator(CollaborativeArticleGenerator):
    """The study's arm C: the same loop with the reasoner replaced by fixed generic questions, asked
    ``calls_per_video`` times per video (an int, or per video id, e.g. the reprompts CAG made there), cycling
    through ``questions``. It tells whether the reasoning, not the extra describer calls, does the work."""

    def __init__(self, describer: Describer, writer: LLM, calls_per_video: int | Mapping[str, int] = 2, *,
                 questions: Sequence[str] = GENERIC_QUESTIONS, **kwargs: Any):
        counts = calls_per_video.values() if isinstance(calls_per_video, Mapping) else [calls_per_video]
        if any(not isinstance(c, int) or c < 0 for c in counts):
            raise ConfigError("calls_per_video", calls_per_video, "an integer >= 0, or one per video id")
        if not questions or any(not isinstance(q, str) or not q.strip() for q in questions):
            raise ConfigError("questions", questions, "non-empty question strings")
        super().__init__(describer, None, writer, max(counts, default=0), **kwargs)
        self.calls_per_video = calls_per_video
        self.questions = tuple(questions)

    def iterations_for(self, video: str) -> int:
        if isinstance(self.calls_per_video, Mapping):
            return int(self.calls_per_video.get(video, 0))
        return self.calls_per_video

    def next_query(self, reasoner: LLM | None, query: str, video: str, summary: str, asked: list[str]) -> ReasonerTurn:
        return ReasonerTurn(video, "asked", self.questions[(len(asked) - 1) % len(self.questions)])


def writer_material(summaries: Mapping[str, str], reprompts: Mapping[str, list[tuple[str, str]]]) -> str:
    """Every summary and every (question, answer), grouped by video: the writer's whole input."""
    blocks = []
    for vid, summary in summaries.items():
        lines = [f"Video {vid}, description: {summary.strip()}"]
        for q, a in reprompts.get(vid, []):
            lines.append(f"Video {vid}, question: {q.strip()}\nAnswer: {a.strip()}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def extract_lead(text: str) -> tuple[str, bool]:
    """``("<lead>...</lead>", tagged)``: the text between the tags (an unclosed ``<lead>`` runs to the end;
    no tag at all: the whole answer, ``tagged`` False)."""
    start = text.find("<lead>")
    if start < 0:
        return f"<lead>{text.strip()}</lead>", False
    body = text[start + len("<lead>"):]
    end = body.find("</lead>")
    body = body if end < 0 else body[:end]
    return f"<lead>{body.strip()}</lead>", True


def _norm(q: str) -> str:
    return " ".join(q.lower().replace("?", " ").replace(".", " ").split())


__all__ = ["Article", "CollaborativeArticleGenerator", "DEFAULT_PROMPT", "Describer", "FixedQuestionsGenerator", "GENERIC_QUESTIONS",
           "REASONER_SCHEMA", "ReasonerTurn", "extract_lead", "load_prompt", "video_id", "writer_material"]
