"""RISEBench's official scoring (parity with hand computation) and its real formats: data_total.json, the
outputs/ layout, the judge prompts, the resumable judge runner and the VLM judge's request body."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from reprolab.errors import ConfigError, MalformedFile
from reprolab.papers.risebench import (Sample, VLMJudge, evaluate_outputs, extract_final_score, find_output_image, judge_requests,
                                       load_samples, parse_judgements, prompt_text, result_table, run_judge, sample_score,
                                       score_samples, table_csv)
from reprolab.papers.risebench.scoring import DimensionScores


def fs(x) -> str:
    return f"Step 1: the output looks fine.\n\n**Final Score:** **{x}**"


def S(index, category, subtask=None, **kw):
    ref = {"reference_txt": "x"} if category == "logical_reasoning" else {"reference": "x"}
    return Sample(index, category, "do it", f"{index}.png", subtask=subtask, **{**ref, **kw})


# the fixture: (sample, judge texts) -> hand-computed C, R, P, score and completion
FIXTURE = [
    (S("t1", "temporal_reasoning", "Life Progression"), {"judge1": fs(4), "judge2": fs(5), "judge3": fs(3)}),
    (S("t2", "temporal_reasoning", "Environmental Cycles", consistency_free=True), {"judge1": None, "judge2": fs(5), "judge3": fs(5)}),
    (S("c1", "causal_reasoning"), {"judge1": "Final Score: 5", "judge2": "final score 1", "judge3": "**Final Score**: **5**"}),
    (S("c2", "causal_reasoning"), {"judge1": fs(5), "judge2": "I think it is good.", "judge3": fs(5)}),  # malformed
    (S("s1", "spatial_reasoning", "Object Arrangement"), {"judge1": fs(5), "judge2": fs(5), "judge3": "Final Scores: 5"}),
    (S("l1", "logical_reasoning", "Puzzle Solving"), {"judge1": "**Final Score**: **1**", "judge2": "**Final Score**: **0**"}),
    (S("l2", "logical_reasoning", "Puzzle Solving"), {"judge1": fs(1), "judge2": fs(1)}),
    (S("l3", "logical_reasoning"), {"judge1": fs(0), "judge2": fs(0)}),
]
HAND = {  # C, R, P, score, complete
    "t1": (4, 5, 3, 0.3 * 4 + 0.5 * 5 + 0.2 * 3, 0),
    "t2": (None, 5, 5, 0.8 * 5 + 0.2 * 5, 1),
    "c1": (5, 1, 5, (0.3 * 5 + 0.5 * 1 + 0.2 * 5) / 2, 0),  # R = 1: halved
    "c2": None,
    "s1": (5, 5, 5, 5.0, 1),
    "l1": (5, 1, None, (0.3 * 5 + 0.7 * 1) / 2, 0),  # binary 1 -> 5, 0 -> 1; R = 1 halves: 1.1
    "l2": (5, 5, None, 5.0, 1),
    "l3": (1, 1, None, 1.0, 0),  # 0.3 + 0.7 = 1.0, halved to 0.5, floor 1
}


def test_extract_follows_the_official_regex():
    assert extract_final_score("**Final Score:** **4**") == [4]
    assert extract_final_score("blah\nFinal score: 3") == [3]
    assert extract_final_score("**Final Score**: **1**") == [1]
    assert extract_final_score("Final Scores: 5") == [5]
    assert extract_final_score("Final Score: 2, 3") == [2, 3]  # several numbers after one "Final Score"
    assert extract_final_score("Final Score: none\nFinal Score: 4") == [4]  # the first match with a number
    assert extract_final_score("the image scores 5") is None
    assert extract_final_score("Final Score: n/a") is None
    with pytest.raises(ConfigError):
        extract_final_score(None)


def test_parity_fixture_every_number_against_hand_computation():
    samples = [s for s, _ in FIXTURE]
    judgements = {s.index: j for s, j in FIXTURE}
    scored = score_samples(samples, judgements)
    for r in scored:
        want = HAND[r.index]
        if want is None:
            assert r.dims is None and r.score is None and r.complete == 0 and not r.matched
            continue
        C, R, P, score, complete = want
        assert (r.dims.consistency, r.dims.reasoning, r.dims.plausibility) == (C, R, P)
        assert r.score == pytest.approx(score) and r.complete == complete
    table = result_table(scored)
    ok = [HAND[k] for k in HAND if HAND[k] is not None]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    overall = mean([h[3] for h in ok])
    assert table["Overall"] == pytest.approx((overall, 25 * (overall - 1), 3 / 8))  # c2 counts as incomplete, not in the score mean
    assert table["Temporal"] == pytest.approx((4.65, 25 * 3.65, 0.5))
    assert table["Causal"] == pytest.approx((1.5, 12.5, 0.0))
    assert table["Spatial"] == pytest.approx((5.0, 100.0, 1.0))
    logical = (1.1 + 5 + 1) / 3
    assert table["Logical"] == pytest.approx((logical, 25 * (logical - 1), 1 / 3))
    assert table["Overall_Reasoning"][0] == pytest.approx(23 / 7)
    assert table["Overall_ApprConsistency"][0] == pytest.approx(25 / 6)
    assert table["Overall_VisualPlausibility_total"][:2] == pytest.approx((4.5, 87.5))
    assert table["Overall_Reasoning"][2] is None
    assert table["Temporal_Consistency"][0] == 4 and table["Temporal_Quality"][0] == 4
    assert table["Logical_Reasoning"][0] == pytest.approx(7 / 3) and table["Logical_Consistency"][0] == pytest.approx(11 / 3)
    assert "Logical_Quality" not in table
    assert table["Temp-Life Progression"] == pytest.approx((4.3, 82.5, 0.0))
    assert table["Temp-Environmental Cycles"] == pytest.approx((5.0, 100.0, 1.0))
    assert table["Logic-Puzzle Solving"] == pytest.approx((3.05, 51.25, 0.5))
    rows = list(table)
    assert rows[:8] == ["Overall", "Temporal", "Causal", "Spatial", "Logical", "Overall_Reasoning", "Overall_ApprConsistency",
                        "Overall_VisualPlausibility_total"]
    assert rows[-4:] == ["Temp-Life Progression", "Temp-Environmental Cycles", "Spa-Object Arrangement", "Logic-Puzzle Solving"]
    text = table_csv(table).splitlines()
    assert text[0] == "-,Score-Origin,Score-Percentage,Accuracy"
    assert text[6].startswith("Overall_Reasoning,") and text[6].endswith(",")  # no accuracy for dimensions
    assert len(text) == 1 + 19 + 4


def test_weights_halving_and_accuracy_edges():
    assert sample_score("spatial_reasoning", DimensionScores(1, 2, 1)) == pytest.approx(0.3 + 1.0 + 0.2)
    assert sample_score("temporal_reasoning", DimensionScores(2, 1, 2)) == 1.0  # (0.6 + 0.5 + 0.4) / 2 = 0.75 -> floor 1
    assert sample_score("logical_reasoning", DimensionScores(5, 5, None)) == 5.0
    # the official truthiness quirk: a NaN consistency_free selects 0.8 R + 0.2 P; ours does not
    d = DimensionScores(1, 5, 5)
    assert sample_score("causal_reasoning", d, float("nan")) == pytest.approx(0.3 + 2.5 + 1.0)
    assert sample_score("causal_reasoning", d, float("nan"), nan_consistency_free_quirk=True) == pytest.approx(5.0)
    # two numbers after one Final Score: the official list has the wrong length; we count the sample incomplete
    assert parse_judgements({"judge1": "Final Score: 4, 5", "judge2": fs(5), "judge3": fs(5)}) is None
    with pytest.raises(ConfigError):
        sample_score("humour", d)
    with pytest.raises(ConfigError):
        score_samples([S("x", "causal_reasoning")], {})


def _png(path, colour=(255, 0, 0), size=(900, 300)):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def bench(tmp_path):
    data = tmp_path / "data"
    items = [
        {"index": "temporal_reasoning_1", "category": "temporal_reasoning", "instruction": "After a year?",
         "image": "temporal_reasoning_images/1.png", "reference": "Rotten banana.", "subtask": "Life Progression"},
        {"index": "spatial_reasoning_1", "category": "spatial_reasoning", "instruction": "Assemble it.",
         "image": "spatial_reasoning_images/1.png", "reference_img": "spatial_reasoning_images/1_ref.png"},
        {"index": "logical_reasoning_1", "category": "logical_reasoning", "instruction": "Solve the puzzle.",
         "image": "logical_reasoning_images/1.png", "reference_txt": "a square", "subtask": "Puzzle Solving"},
        {"index": "causal_reasoning_1", "category": "causal_reasoning", "instruction": "Drop it.", "image": "causal_reasoning_images/1.png",
         "reference": "Broken egg.", "consistency_free": True, "reasoning_img": True},
    ]
    for it in items:
        _png(data / it["image"])
        if "reference_img" in it:
            _png(data / it["reference_img"], (0, 0, 255))
    (data / "data_total.json").write_text(json.dumps(items))
    out = tmp_path / "outputs" / "MyModel"
    for it, suffix in zip(items, ("png", "jpg", "jpeg", "png")):
        _png(out / "images" / it["category"] / f"{it['index']}.{suffix}", (0, 255, 0))
    return data, out


def test_loaders_layout_and_which_prompt_each_judgement_gets(bench, tmp_path):
    data, out = bench
    samples = load_samples(data / "data_total.json")
    assert [s.category for s in samples] == ["temporal_reasoning", "spatial_reasoning", "logical_reasoning", "causal_reasoning"]
    assert find_output_image(out, samples[2]).suffix == ".jpeg"
    t, sp, lo, ca = (judge_requests(s, find_output_image(out, s), data / s.image, data / s.reference_img if s.reference_img else None)
                     for s in samples)
    assert set(t) == {"consistency", "reasoning", "plausibility"}
    assert t["reasoning"].prompt == prompt_text("reasoning").format(instruct="After a year?", reference="Rotten banana.")
    assert len(t["reasoning"].images) == 1 and t["consistency"].prompt_name == "consist"
    # spatial with a reference image: the consistency judge compares the output with the reference (as the official code)
    assert sp["reasoning"].prompt_name == "spatial_ref_img" and sp["consistency"].images[0].name == "1_ref.png"
    assert set(lo) == {"consistency", "reasoning"} and lo["reasoning"].binary and lo["reasoning"].prompt_name == "logical_txt"
    assert "a square" in lo["consistency"].prompt
    assert set(ca) == {"reasoning", "plausibility"} and ca["reasoning"].prompt_name == "reasoning_w_input"
    assert "{instruct}" not in t["consistency"].prompt
    # bad input: typed errors naming the value
    (tmp_path / "bad.json").write_text("[{\"index\": 1}]")
    with pytest.raises(MalformedFile, match="lacks"):
        load_samples(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text("{not json")
    with pytest.raises(MalformedFile, match="not JSON"):
        load_samples(tmp_path / "bad2.json")
    with pytest.raises(MalformedFile, match="missing"):
        find_output_image(tmp_path / "nowhere", samples[0])
    with pytest.raises(ConfigError, match="category"):
        S("z", "humour")


def test_runner_is_resumable_and_writes_the_official_csv(bench, tmp_path):
    data, out = bench
    samples = load_samples(data / "data_total.json")
    calls = []

    def judge(rq):
        calls.append((rq.sample, rq.dimension))
        if rq.sample == "spatial_reasoning_1" and rq.dimension == "reasoning" and len(calls) < 100:
            raise KeyboardInterrupt  # interrupted mid-run
        return fs(1 if rq.binary else 5)

    judge.name = "scripted"
    cache = tmp_path / "judge.sqlite"
    with pytest.raises(KeyboardInterrupt):
        run_judge(samples, out, judge, input_dir=data, cache=cache, progress=False)
    done_before = len(calls) - 1
    calls.clear()
    judge_ok = lambda rq: (calls.append((rq.sample, rq.dimension)), fs(1 if rq.binary else 5))[1]  # noqa: E731
    judge_ok.name = "scripted"
    j = run_judge(samples, out, judge_ok, input_dir=data, cache=cache, progress=False)
    assert len(calls) == 3 + 3 + 2 + 2 - done_before  # only what was missing
    assert j["causal_reasoning_1"]["judge1"] is None and "judge3" not in j["logical_reasoning_1"]
    calls.clear()
    run_judge(samples, out, judge_ok, input_dir=data, cache=cache, progress=False)
    assert calls == []  # all cached
    scored, table = evaluate_outputs(samples, j, csv_path=out / "MyModel_judge.csv")
    assert table["Overall"] == (5.0, 100.0, 1.0)
    assert (out / "MyModel_judge.csv").read_text().startswith("-,Score-Origin,Score-Percentage,Accuracy\nOverall,5.0,100.0,1.0\n")


def test_vlm_judge_sends_the_official_request_body(bench):
    from reprolab.llm.openai_http import OpenAICompatLLM
    from tests.openai_stub import openai_stub

    data, out = bench
    s = load_samples(data / "data_total.json")[0]
    rq = judge_requests(s, find_output_image(out, s), data / s.image)["consistency"]
    with openai_stub("Consistent.\n**Final Score:** **5**") as (url, seen):
        text = VLMJudge(OpenAICompatLLM(url, model="qwen2.5-vl"))(rq)
    assert extract_final_score(text) == [5]
    path, body = seen[-1]
    assert path == "/v1/chat/completions" and body["temperature"] == 0 and body["max_tokens"] == 4096
    assert body["model"] == "qwen2.5-vl" and len(body["messages"]) == 1
    parts = body["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "image_url"] and parts[0]["text"] == rq.prompt
    from PIL import Image

    for p in parts[1:]:
        head, b64 = p["image_url"]["url"].split(",", 1)
        assert head == "data:image/jpeg;base64" and p["image_url"]["detail"] == "high"
        im = Image.open(io.BytesIO(base64.b64decode(b64)))
        assert im.format == "JPEG" and im.size == (768, 256)  # 900 x 300 thumbnailed to 768 on the longest side
    # arrays (our renders) are sent too
    rq2 = judge_requests(s, np.zeros((3, 64, 64), np.float32), np.ones((3, 64, 64), np.float32))["plausibility"]
    with openai_stub("**Final Score:** **3**") as (url, seen):
        assert VLMJudge(OpenAICompatLLM(url))(rq2).endswith("**3**")
    assert seen[-1][1]["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/jpeg;base64,")


def test_cli_judge_and_score_on_a_stub_endpoint(bench):
    from typer.testing import CliRunner

    from reprolab.papers.risebench.cli import app
    from tests.openai_stub import openai_stub

    data, out = bench
    with openai_stub("Fine.\n**Final Score:** **1**") as (url, seen):  # 1: a perfect binary answer, a poor 1-5 one
        res = CliRunner().invoke(app, ["judge", str(data / "data_total.json"), str(out), "--endpoint", url, "--model", "vlm"])
    assert res.exit_code == 0, res.output
    assert len(seen) == 3 + 3 + 2 + 2 and "Overall" in res.output
    saved = out / "MyModel_judgements.json"
    res2 = CliRunner().invoke(app, ["score", str(data / "data_total.json"), str(saved), "--csv", str(out / "again.csv")])
    assert res2.exit_code == 0, res2.output
    assert (out / "again.csv").read_text() == (out / "MyModel_judge.csv").read_text()


def test_cli_bad_input_is_one_line(tmp_path):
    import subprocess
    import sys

    (tmp_path / "data.json").write_text("[]")
    r = subprocess.run([sys.executable, "-m", "reprolab.cli", "risebench", "score", str(tmp_path / "data.json"), str(tmp_path / "j.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "data.json" in r.stderr
