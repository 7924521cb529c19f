"""WikiVideo: the CAG loop on scripted models, the real formats (article JSON, an mp4 through a VLM endpoint stub,
ROUGE), the synthetic events and their exact scorers on hand-written articles, and each rule with a control that
must fail and a planted effect that must pass."""

from __future__ import annotations

import base64
import io
import json
import random

import numpy as np
import pytest

from reprolab.agents import Budget
from reprolab.errors import ConfigError, MalformedFile
from reprolab.llm.fake import ScriptedLLM
from reprolab.papers.wikivideo import (ClaimSupportJudge, CollaborativeArticleGenerator, FixedQuestionsGenerator, VideoFrameDescriber,
                                       extract_lead, fact_recall, hallucinated_sentences, hallucination_rate, make_events,
                                       read_articles, rouge_scores, sample_frames, union_visible, write_articles)
from reprolab.papers.wikivideo import study as wv_study
from reprolab.study import Verdict
from tests.openai_stub import openai_stub


class Clip:
    def __init__(self, vid: str):
        self.id = vid


class RecordingDescriber:
    """Answers "<video>: <question>" and records every call."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []

    def describe(self, video, question):
        self.calls.append((video.id, question))
        return f"answer of {video.id} to [{question}]"


def _reasoner(queries: list[str]):
    """A reasoner that asks the given queries in turn (per video), then says it needs nothing more."""
    def respond(prompt, s):
        k = max((i + 1 for i, q in enumerate(queries) if q in prompt), default=0)  # the latest answer quotes the last question
        if k < len(queries):
            return json.dumps({"new_query_needed": True, "new_query": queries[k]})
        return '{"new_query_needed": false, "new_query": ""}'
    return ScriptedLLM(respond, name="reasoner")


def _writer():
    return ScriptedLLM(lambda p, s: "<lead>An event happened. It was filmed.</lead> trailing", name="writer")


# ----------------------------------------------------------------------------------------------- the loop
def test_cag_reasks_up_to_max_iterations_and_the_writer_gets_every_answer():
    d, w = RecordingDescriber(), _writer()
    cag = CollaborativeArticleGenerator(d, _reasoner(["Who collided?", "What broke?", "Never asked"]), w, max_iterations=2)
    art = cag.generate("Some event", [Clip("v1"), Clip("v2")])
    assert d.calls == [("v1", "describe the video in detail"), ("v2", "describe the video in detail"),
                       ("v1", "Who collided?"), ("v1", "What broke?"), ("v2", "Who collided?"), ("v2", "What broke?")]
    assert art.reprompts["v1"] == [("Who collided?", "answer of v1 to [Who collided?]"), ("What broke?", "answer of v1 to [What broke?]")]
    assert [t.status for t in art.turns] == ["asked"] * 4 and art.valid_queries == 4
    (prompt,) = w.prompts
    assert "outside knowledge" in prompt and "Some event" in prompt
    for _, q in d.calls:
        assert q in prompt or q == "describe the video in detail"
    for vid in ("v1", "v2"):
        assert art.summaries[vid] in prompt and all(a in prompt for _, a in art.reprompts[vid])
    assert art.lead == "<lead>An event happened. It was filmed.</lead>" and art.tagged
    assert art.usage["describer"]["calls"] == 6 and art.usage["reasoner"]["calls"] == 4 and art.usage["writer"]["calls"] == 1


def test_the_loop_stops_when_the_reasoner_needs_nothing_and_on_a_repeat():
    d = RecordingDescriber()
    art = CollaborativeArticleGenerator(d, _reasoner([]), _writer(), 2).generate("E", [Clip("v1")])
    assert [t.status for t in art.turns] == ["stop"] and art.reprompts == {"v1": []} and len(d.calls) == 1
    rep = ScriptedLLM(lambda p, s: '{"new_query_needed": true, "new_query": "Describe the video in detail."}')
    art = CollaborativeArticleGenerator(RecordingDescriber(), rep, _writer(), 2).generate("E", [Clip("v1")])
    assert [t.status for t in art.turns] == ["repeat"] and art.reprompts == {"v1": []}


def test_invalid_json_gets_one_repair_then_is_counted_as_a_failure():
    answers = iter(["I think we should ask more.", '{"new_query_needed": true, "new_query": "Who?"}'])
    fixed = ScriptedLLM(lambda p, s: next(answers, '{"new_query_needed": false}'))
    cag = CollaborativeArticleGenerator(RecordingDescriber(), fixed, _writer(), 1)
    art = cag.generate("E", [Clip("v1")])
    assert art.turns[0].status == "asked" and art.turns[0].attempts == 2 and cag.failures.repaired == 1
    broken = CollaborativeArticleGenerator(RecordingDescriber(), ScriptedLLM(lambda p, s: "no json here"), _writer(), 2)
    art = broken.generate("E", [Clip("v1"), Clip("v2")])
    assert [t.status for t in art.turns] == ["invalid", "invalid"] and broken.failures.failed == 2
    empty = CollaborativeArticleGenerator(RecordingDescriber(), ScriptedLLM(lambda p, s: '{"new_query_needed": true}'), _writer(), 2)
    assert empty.generate("E", [Clip("v1")]).turns[0].status == "invalid" and empty.failures.reasons == {"empty_query": 1}


def test_budget_stops_reprompting_and_cache_answers_repeats(tmp_path):
    d = RecordingDescriber()
    cag = CollaborativeArticleGenerator(d, _reasoner(["a?", "b?"]), _writer(), 2, budget=Budget(max_calls=5))
    art = cag.generate("E", [Clip("v1"), Clip("v2")])
    assert art.stopped.startswith("budget reached") and art.usage["total"]["calls"] == 5 and art.turns[-1].status == "budget"
    with pytest.raises(Exception, match="budget reached"):  # not even the writer fits
        CollaborativeArticleGenerator(RecordingDescriber(), _reasoner([]), _writer(), 2, budget=Budget(max_calls=2)).generate(
            "E", [Clip("v1"), Clip("v2")])
    reasoner, writer = _reasoner(["a?"]), _writer()
    first = CollaborativeArticleGenerator(RecordingDescriber(), reasoner, writer, 1, cache=tmp_path / "c.sqlite").generate("E", [Clip("v1")])
    n = len(reasoner.prompts) + len(writer.prompts)
    again = CollaborativeArticleGenerator(RecordingDescriber(), reasoner, writer, 1, cache=tmp_path / "c.sqlite").generate("E", [Clip("v1")])
    assert again.lead == first.lead and len(reasoner.prompts) + len(writer.prompts) == n  # all from the cache
    assert again.usage["writer"]["cache_hits"] == 1


def test_fixed_questions_match_the_given_call_counts():
    d = RecordingDescriber()
    art = FixedQuestionsGenerator(d, _writer(), {"v1": 2, "v2": 0}).generate("E", [Clip("v1"), Clip("v2")])
    assert d.calls[2:] == [("v1", "What happens in this video?"), ("v1", "What else can you see in this video?")]
    assert art.reprompts["v2"] == []
    with pytest.raises(ConfigError):
        CollaborativeArticleGenerator(d, None, _writer(), 2)
    with pytest.raises(ConfigError):
        CollaborativeArticleGenerator(d, _reasoner([]), _writer(), -1)
    with pytest.raises(ConfigError):
        CollaborativeArticleGenerator(d, _reasoner([]), _writer(), 1).generate("E", [Clip("v1"), Clip("v1")])


def test_extract_lead():
    assert extract_lead("Sure! <lead>A. B.</lead> Done") == ("<lead>A. B.</lead>", True)
    assert extract_lead("<lead>cut by the stop string") == ("<lead>cut by the stop string</lead>", True)
    assert extract_lead("No tags.") == ("<lead>No tags.</lead>", False)


# ----------------------------------------------------------------------------------------------- real formats
def test_official_article_json_round_trip_and_bad_files(tmp_path):
    p = tmp_path / "a.json"
    art = CollaborativeArticleGenerator(RecordingDescriber(), None, _writer(), 0).generate("test_pt2_query_186", [Clip("v")])
    write_articles(p, {"Project Natick": art, "Brexit": ("test_pt2_query_320", "<lead>x</lead>")})
    raw = json.loads(p.read_text())
    assert raw == {"Project Natick": {"query": "test_pt2_query_186", "article": "<lead>An event happened. It was filmed.</lead>"},
                   "Brexit": {"query": "test_pt2_query_320", "article": "<lead>x</lead>"}}
    assert read_articles(p)["Brexit"].article == "<lead>x</lead>"
    (tmp_path / "bad.json").write_text('{"E": {"query": "q"}}')
    for bad in (tmp_path / "missing.json", tmp_path / "bad.json"):
        with pytest.raises(MalformedFile):
            read_articles(bad)
    (tmp_path / "trunc.json").write_text('{"E": {"query": ')
    with pytest.raises(MalformedFile):
        read_articles(tmp_path / "trunc.json")


def test_rouge_comes_from_rouge_score():
    pytest.importorskip("rouge_score")
    assert rouge_scores("<lead>the cat sat</lead>", "the cat sat")["rougeL"] == pytest.approx(1.0)
    r = rouge_scores("the cat", "the cat sat")  # P 1, R 2/3 -> F 0.8
    assert r["rouge1"] == pytest.approx(0.8) and r["rouge2"] == pytest.approx(2 / 3)


def test_claim_support_judge_is_alignscore_like_from_yes_no_logprobs():
    from reprolab.papers.wikivideo import evaluation

    assert "AlignScore-like" in (ClaimSupportJudge.__doc__ or "") and "not AlignScore" in (evaluation.__doc__ or "")
    judge = ClaimSupportJudge(ScriptedLLM(lambda p, s: "", choices=lambda p: {"Yes": -0.1, "No": -2.3} if "red" in p.split("Claim:")[1]
                                          else {"Yes": -3.0, "No": -0.05}))
    out = judge.score("<lead>Alpha is red. Alpha is blue.</lead>", ["Alpha is a red circle."])
    p_yes = np.exp(-0.1) / (np.exp(-0.1) + np.exp(-2.3))
    assert out["per_sentence"][0] == pytest.approx(p_yes) and out["per_sentence"][1] < 0.1
    assert out["score"] == pytest.approx((out["per_sentence"][0] + out["per_sentence"][1]) / 2)


def _write_mp4(path, n=16, w=64, h=48):
    cv2 = pytest.importorskip("cv2")
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 8, (w, h))
    assert vw.isOpened()
    for i in range(n):
        vw.write(np.full((h, w, 3), 10 + 15 * i, np.uint8))  # frame i has grey level 10 + 15 i
    vw.release()


def test_video_describer_samples_frames_uniformly_and_sends_base64_image_parts(tmp_path):
    from PIL import Image

    from reprolab.llm.openai_http import OpenAICompatLLM

    video = tmp_path / "clip.mp4"
    _write_mp4(video)
    frames = sample_frames(video, 4)
    assert len(frames) == 4 and frames[0].shape == (48, 64, 3)
    levels = [float(f.mean()) for f in frames]
    assert levels == sorted(levels) and abs(levels[0] - 10) < 8 and abs(levels[-1] - (10 + 15 * 15)) < 8  # first and last frames
    with openai_stub(" Grey frames. ", usage={"prompt_tokens": 900, "completion_tokens": 3}) as (url, seen):
        d = VideoFrameDescriber(OpenAICompatLLM(url, model="vlm"), n_frames=4, max_side=32)
        art = CollaborativeArticleGenerator(d, None, _writer(), 0).generate("Event", [video])
    path, body = seen[0]
    assert path == "/v1/chat/completions" and body["model"] == "vlm"
    (msg,) = body["messages"]
    parts = msg["content"]
    assert parts[0] == {"type": "text", "text": "describe the video in detail"}
    urls = [p["image_url"]["url"] for p in parts[1:]]
    assert len(urls) == 4 and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    im = Image.open(io.BytesIO(base64.b64decode(urls[-1].split(",", 1)[1])))
    assert im.size == (32, 24)
    assert art.summaries == {"clip": "Grey frames."} and art.usage["describer"]["prompt_tokens"] == 900


def test_missing_and_corrupt_videos_are_typed_errors(tmp_path):
    pytest.importorskip("cv2")
    with pytest.raises(MalformedFile, match="no such video"):
        sample_frames(tmp_path / "nope.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(MalformedFile):
        sample_frames(bad)


# ----------------------------------------------------------------------------------------------- events and scorers
def test_events_have_about_eight_levelled_facts_split_over_cameras():
    events = make_events(6, 4, seed=0)
    assert events[0].reference == make_events(1, 4, seed=0)[0].reference  # reproducible
    for ev in events:
        assert 8 <= len(ev.facts) <= 10 and set(ev.levels) == {"low", "event"} and all(ev.levels.values())
        assert 3 <= len(ev.videos) <= 5
        for v in ev.videos:
            assert len(v.visible) < len(ev.facts)  # no camera shows everything
        assert union_visible(ev) >= {f.key for f in ev.facts} - {"count"}
        assert all(any(e.name in v.frame_log for v in ev.videos) for e in ev.entities)  # the count is there to integrate
        assert ev.place.upper() in " ".join(v.camera.overlay for v in ev.videos) and ev.day.upper() in " ".join(v.camera.overlay for v in ev.videos)
    with pytest.raises(ConfigError):
        make_events(1, 6)


def test_exact_scorers_on_hand_written_articles():
    ev = make_events(1, 4, seed=3)[0]
    a, b, c = ev.entity("mover"), ev.entity("target"), ev.entity("static")
    full = fact_recall(ev, ev.reference)
    assert full["recall"] == 1.0 and full["recall_low"] == 1.0 and full["recall_event"] == 1.0
    assert hallucination_rate(ev, ev.reference) == 0.0
    words = {2: "two", 3: "three", 5: "five"}
    hand = (f"<lead>{a.name} crashed into {b.name}. Then {b.name} broke into {words[ev.pieces]} fragments. "
            f"{c.name} was {c.colour}.</lead>")
    r = fact_recall(ev, hand)
    assert set(r["recalled"]) == {"collision", "outcome", "colour_static"}
    assert r["recall_event"] == pytest.approx(2 / 5) and r["recall_low"] == pytest.approx(1 / 4)
    # slots split over two sentences do not count
    assert not fact_recall(ev, f"<lead>{a.name} moved. It collided with {b.name[::-1]}.</lead>")["recalled"]
    wrong_colour = next(x for x in ("red", "blue", "green", "yellow", "purple", "orange") if x not in {e.colour for e in ev.entities})
    other_day = next(d for d in ("Monday", "Tuesday") if d != ev.day)
    bad = f"<lead>{a.name} is a {wrong_colour} shape. It happened on {other_day}. {a.name} is {a.colour}. Zzyzx Unknown appeared.</lead>"
    assert hallucinated_sentences(ev, bad) == [f"{a.name} is a {wrong_colour} shape.", f"It happened on {other_day}."]
    assert hallucination_rate(ev, bad) == pytest.approx(2 / 4)
    assert fact_recall(ev, "<lead></lead>")["recall"] == 0.0 and hallucination_rate(ev, "") == 0.0


# ----------------------------------------------------------------------------------------------- rules
def _metrics(cag: list[float], cap: list[float], fixed: list[float] | None = None, *, low=None, event=None, hal=None,
             share: float = 1.0) -> dict:
    n = len(cag)
    fixed = fixed if fixed is not None else cap
    arm = lambda r, lo, ev, h: {"recall": r, "recall_low": lo, "recall_event": ev, "hallucination": h, "nonempty": [True] * n}  # noqa: E731
    low = low or (cap, cap)
    event = event or (cag, cap)
    hal = hal or ([0.1] * n, [0.1] * n)
    return {"cag_query_share": share,
            "arms": {"cag": arm(cag, low[0], event[0], hal[0]), "captions": arm(cap, low[1], event[1], hal[1]),
                     "fixed": arm(fixed, cap, cap, [0.1] * n)}}


def test_recall_rules_fail_on_controls_and_pass_on_planted_effects():
    rng = random.Random(0)
    n = 24
    noise = [rng.choice([0.2, 0.4, 0.6]) for _ in range(n)]
    other = [rng.choice([0.2, 0.4, 0.6]) for _ in range(n)]
    planted = [x + 0.3 for x in noise]
    for judge, key in ((wv_study.judge_beats_captions, "cap"), (wv_study.judge_reasoning_matters, "fixed")):
        def m(a, b):
            return _metrics(a, b) if key == "cap" else _metrics(a, noise, b)
        assert judge(m(noise, noise)).verdict != Verdict.REPRODUCED  # identical arms
        assert judge(m(other, noise)).verdict != Verdict.REPRODUCED  # random choices
        assert judge(m(planted, noise)).verdict == Verdict.REPRODUCED
        assert judge(m(noise, planted)).verdict == Verdict.NOT_REPRODUCED


def test_event_level_rule():
    n = 20
    rng = random.Random(1)
    base = [rng.choice([0.0, 0.25, 0.5]) for _ in range(n)]
    same_gain = _metrics(base, base, low=([x + 0.2 for x in base], base), event=([x + 0.2 for x in base], base))
    assert wv_study.judge_event_level(same_gain).verdict != Verdict.REPRODUCED  # control: equal gains
    shuffled = [rng.choice([-0.2, 0.0, 0.2]) for _ in range(n)]
    ctl = _metrics(base, base, low=([x + s for x, s in zip(base, shuffled)], base), event=([x + s for x, s in zip(base, reversed(shuffled))], base))
    assert wv_study.judge_event_level(ctl).verdict != Verdict.REPRODUCED  # control: random gains
    planted = _metrics(base, base, low=(base, base), event=([x + 0.4 + 0.1 * (i % 2) for i, x in enumerate(base)], base))
    assert wv_study.judge_event_level(planted).verdict == Verdict.REPRODUCED


def test_hallucination_rule_is_non_inferiority_at_five_points():
    n = 20
    rng = random.Random(2)
    cap = [rng.choice([0.0, 0.2, 0.25]) for _ in range(n)]
    worse = [x + 0.2 for x in cap]  # control: CAG hallucinates 20 points more
    assert wv_study.judge_hallucination(_metrics([0.5] * n, [0.2] * n, hal=(worse, cap))).verdict == Verdict.NOT_REPRODUCED
    jitter = [x + rng.choice([-0.02, 0.0, 0.02]) for x in cap]  # planted: the same rate up to noise
    assert wv_study.judge_hallucination(_metrics([0.5] * n, [0.2] * n, hal=(jitter, cap))).verdict == Verdict.REPRODUCED


def test_preconditions_make_claims_not_testable():
    n = 10
    m = _metrics([0.9] * n, [0.1] * n, share=0.2)  # the reasoner almost never asked a valid question
    for judge in (wv_study.judge_beats_captions, wv_study.judge_reasoning_matters, wv_study.judge_event_level, wv_study.judge_hallucination):
        assert judge(m).verdict == Verdict.NOT_TESTABLE
    m = _metrics([0.9] * n, [0.1] * n)
    m["arms"]["captions"]["nonempty"][0] = False
    assert wv_study.judge_beats_captions(m).verdict == Verdict.NOT_TESTABLE


def test_scripted_arms_on_one_event_follow_the_protocol():
    ev = make_events(1, 3, seed=0)[0]
    cfg = wv_study.WikiVideoStudy.scales[wv_study.Scale.SMOKE]
    models = wv_study.load_models(cfg, None)
    arts, rj = wv_study.run_arms(ev, models, cfg, None)
    counts = {v: len(q) for v, q in arts["cag"].reprompts.items()}
    assert sum(counts.values()) >= 1 and rj["failed"] == 0
    assert {v: len(q) for v, q in arts["fixed"].reprompts.items()} == counts  # arm C: the same describer calls per video
    assert arts["captions"].reprompts == {v.id: [] for v in ev.videos}
    assert wv_study.score_article(ev, arts["cag"])["recall"] > wv_study.score_article(ev, arts["captions"])["recall"]
