"""SPCT's rejective fine-tuning data (DeepSeek-GRM Sec. 3, SPCT stage 1: rejective fine-tuning, the cold start).

For each query with known-best response, sample N judgements from the GRM and keep the ones
whose scores agree with the ground truth (for our pairs: the correct response strictly highest,
``meta_rm.sample_is_right``); reject the others. Queries whose N judgements are *all* right are
dropped as too easy, as the paper does ("trajectories ... where all ... are correct" are
discarded); queries with no right judgement are dropped as well (nothing to keep).
The paper's optional *hinted* sampling (the best response's index given in the prompt) is
available through ``hint=True``: the hint is a line appended to the query, and the kept text is
the hint-free judgement, as the paper notes hinted samples shortcut the critique.

Output: a fine-tuning set in TRL's prompt-completion format (``{"prompt": [user message],
"completion": [assistant message]}``, conversational), written atomically as JSONL.
The second stage of SPCT (rule-based online RL with GRPO) is out of reach here (spec sheet).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...runtime import atomic_write_text, track
from .data import PreferencePair
from .grm import GenerativeRewardModel
from .meta_rm import sample_is_right


@dataclass
class RFTSet:
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"queries": 0, "kept_queries": 0, "all_right": 0, "all_wrong": 0,
                                                             "kept_samples": 0, "rejected_samples": 0, "failed_samples": 0})

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows))


def build_rft_set(grm: GenerativeRewardModel, pairs: Sequence[PreferencePair], n_samples: int = 4, hint: bool = False) -> RFTSet:
    """Rejective sampling over ``pairs`` (each with its ``correct_index``); see the module doc."""
    if n_samples < 2:
        raise ConfigError("n_samples", n_samples, "an integer >= 2 (all-right / all-wrong filtering needs several samples)")
    out = RFTSet()
    for p in track(list(pairs), "spct: rejective sampling"):
        out.counts["queries"] += 1
        query = p.query
        if hint:
            query = f"{p.query.rstrip()}\n\n(Hint: the best response is Response {p.correct_index + 1}.)"
        samples = grm.sample(query, p.responses, k=n_samples)
        right = [sample_is_right(s, p.correct_index) for s in samples]
        out.counts["failed_samples"] += sum(not s.ok for s in samples)
        if all(right):
            out.counts["all_right"] += 1
            continue
        if not any(right):
            out.counts["all_wrong"] += 1
            continue
        out.counts["kept_queries"] += 1
        msgs = grm.messages(p.query, p.responses)  # the hint-free prompt
        for s, ok in zip(samples, right):
            if ok:
                out.rows.append({"prompt": msgs, "completion": [{"role": "assistant", "content": s.text}],
                                 "pair_id": p.pair_id, "sample": s.index, "forced": s.forced})
                out.counts["kept_samples"] += 1
            else:
                out.counts["rejected_samples"] += 1
    return out
