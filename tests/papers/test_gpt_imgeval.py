"""GPT-ImgEval's GenEval harness: each decision rule on a hand-made case, the file formats, the official prompt file, WiScore."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError
from reprolab.imageeval import CocoResultsDetector, Detection
from reprolab.papers.gpt_imgeval import (
    OFFICIAL_COUNTS, RESULT_FIELDS, TAGS, GenEvalConfig, evaluate, evaluate_folder, evaluate_image, exact_verdict, fill_folder,
    format_summary, iter_folder, keep_detections, make_prompts, overall_wiscore, read_metadata, read_results, relative_position,
    render_prompt, summary_scores, wiscore,
)

OFFICIAL = Path(__file__).parent / "data" / "geneval_evaluation_metadata.jsonl"
IMG = np.zeros((64, 64, 3), np.uint8)


def det(label, score, box):
    return Detection(label, score, tuple(float(v) for v in box))


def colours_by_box(table):
    """A colour classifier stub: the colour planted for each box."""
    return lambda image, dets, cls: [table[tuple(d.box)] for d in dets]


# ----------------------------------------------------------------------------- thresholds, top-k, NMS
def test_threshold_is_strict_and_counting_uses_0_9():
    dets = [det("dog", 0.3, (0, 0, 1, 1)), det("dog", 0.31, (2, 2, 3, 3)), det("dog", 0.9, (4, 4, 5, 5)), det("dog", 0.95, (6, 6, 7, 7))]
    assert [d.score for d in keep_detections(dets, "two_object")["dog"]] == [0.95, 0.9, 0.31]
    assert [d.score for d in keep_detections(dets, "counting")["dog"]] == [0.95]
    assert keep_detections([det("cat", 0.2, (0, 0, 1, 1))], "colors") == {}


def test_at_most_16_per_class_most_confident_first_and_no_nms_by_default():
    dets = [det("kite", 0.4 + 0.01 * i, (0, 0, 10, 10)) for i in range(20)]  # 20 identical boxes
    kept = keep_detections(dets, "single_object")["kite"]
    assert len(kept) == 16 and [d.score for d in kept] == sorted((d.score for d in dets), reverse=True)[:16]
    with_nms = keep_detections(dets, "single_object", GenEvalConfig(max_overlap=0.5))["kite"]
    assert len(with_nms) == 1 and with_nms[0].score == pytest.approx(0.59)


# ----------------------------------------------------------------------------- include AND, exclude OR
def test_include_clauses_are_anded():
    m = {"tag": "two_object", "include": [{"class": "cat", "count": 1}, {"class": "dog", "count": 1}], "prompt": "a photo of a cat and a dog"}
    both = {"cat": [det("cat", 0.9, (0, 0, 5, 5))], "dog": [det("dog", 0.8, (10, 10, 15, 15))]}
    assert evaluate(IMG, both, m, None) == (True, "")
    ok, reason = evaluate(IMG, {"cat": both["cat"]}, m, None)
    assert not ok and reason == "expected dog>=1, found 0"


def test_exclude_clauses_are_ored_and_count_all_kept_detections():
    m = {"tag": "counting", "include": [{"class": "clock", "count": 2}], "exclude": [{"class": "clock", "count": 3}], "prompt": "a photo of two clocks"}
    two = {"clock": [det("clock", 0.95, (0, 0, 5, 5)), det("clock", 0.93, (10, 0, 15, 5))]}
    assert evaluate(IMG, two, m, None)[0]
    three = {"clock": two["clock"] + [det("clock", 0.92, (20, 0, 25, 5))]}
    ok, reason = evaluate(IMG, three, m, None)
    assert not ok and reason == "expected clock<3, found 3"
    m2 = dict(m, exclude=[{"class": "cat", "count": 1}, {"class": "clock", "count": 3}])
    assert not evaluate(IMG, {**two, "cat": [det("cat", 0.99, (30, 30, 35, 35))]}, m2, None)[0]  # either exclusion fails it


def test_colour_is_checked_on_the_top_count_objects_only():
    m = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a photo of a red car"}
    blue_top, red_second = det("car", 0.9, (0, 0, 5, 5)), det("car", 0.8, (10, 10, 15, 15))
    table = {blue_top.box: "blue", red_second.box: "red"}
    ok, reason = evaluate(IMG, {"car": [blue_top, red_second]}, m, colours_by_box(table))
    assert not ok and reason == "expected red car>=1, found 0 red; and 1 blue"
    assert evaluate(IMG, {"car": [red_second, blue_top]}, m, colours_by_box(table))[0]


# ----------------------------------------------------------------------------- relative position
def test_relative_position_by_hand():
    # offset (-20, 0), sizes 10 and 10: revised x = -(20 - 0.1 * 20) = -18, d = (-0.9, 0) -> left of
    assert relative_position([0, 0, 10, 10], [20, 0, 30, 10]) == {"left of"}
    assert relative_position([20, 0, 30, 10], [0, 0, 10, 10]) == {"right of"}
    # offset (10, 10), sizes 10: revised (8, 8), |offset| = 14.14, d = (0.566, 0.566) -> right of and below
    assert relative_position([10, 10, 20, 20], [0, 0, 10, 10]) == {"right of", "below"}
    # offset 2 px with sizes 10: revised max(2 - 2, 0) = 0 on both axes -> no relation
    assert relative_position([2, 0, 12, 10], [0, 0, 10, 10]) == set()
    # the 0.1 factor matters: offset (0, -12), sizes 10 -> revised -10, d_y = -0.83 -> above; with factor 0.7 -> none
    assert relative_position([0, 0, 10, 10], [0, 12, 10, 22]) == {"above"}
    assert relative_position([0, 0, 10, 10], [0, 12, 10, 22], 0.7) == set()


def test_position_every_found_object_against_every_target_and_no_target():
    m = {"tag": "position", "include": [{"class": "bench", "count": 1}, {"class": "dog", "count": 1, "position": ["left of", 0]}],
         "prompt": "a photo of a dog left of a bench"}
    bench, dog_left, dog_above = det("bench", 0.9, (40, 20, 50, 30)), det("dog", 0.9, (0, 20, 10, 30)), det("dog", 0.9, (40, 0, 50, 8))
    assert evaluate(IMG, {"bench": [bench], "dog": [dog_left]}, m, None) == (True, "")
    ok, reason = evaluate(IMG, {"bench": [bench], "dog": [dog_above]}, m, None)
    assert not ok and reason == "expected dog left of target, found above target"
    ok, reason = evaluate(IMG, {"dog": [dog_left]}, m, None)
    assert not ok and reason == "expected bench>=1, found 0\nno target for dog to be left of"


# ----------------------------------------------------------------------------- formats
def _planted_folder(tmp_path, metadatas, n=2):
    """Images whose true content is in their names: a generator that draws nothing, detections planted per file."""
    def gen(prompt, k, seed):
        return [np.full((8, 8, 3), 10 * (seed % 20), np.uint8) for _ in range(k)]

    return fill_folder(gen, metadatas, tmp_path / "images", n_samples=n, seed=0)


def test_folder_layout_results_fields_and_summary_numbers(tmp_path):
    metas = make_prompts(per_tag=1, seed=0)
    root = _planted_folder(tmp_path, metas)
    assert (root / "00000" / "metadata.jsonl").exists() and (root / "00005" / "samples" / "0001.png").exists()
    assert json.loads((root / "00003" / "metadata.jsonl").read_text()) == metas[3]
    items = list(iter_folder(root))
    assert len(items) == 12 and items[0][0].name == "0000.png"

    class OddFails:  # planted: image 0000 of each prompt holds the prompt's objects, 0001 nothing
        def detect(self, image, image_id=None):
            if image_id.endswith("0001.png"):
                return []
            m = json.loads((Path(image_id).parents[1] / "metadata.jsonl").read_text())
            out, x = [], 0
            for clause in m["include"]:
                for _ in range(clause["count"]):
                    out.append(Detection(clause["class"], 0.95, (x, 0.0, x + 1.0, 1.0)))
                    x += 3.0
            return out

    # the planted boxes run left to right, so a position prompt is right only when it says "right of"
    rows = []
    for path, m in items:
        def colour(image, dets, cls, m=m):  # the colour each clause asks for
            return [next(c.get("color") for c in m["include"] if c["class"] == cls)] * len(dets)

        rows.append(evaluate_image(path, m, OddFails(), colour, filename=str(path)))
    out = tmp_path / "results.jsonl"
    from reprolab.papers.gpt_imgeval import write_results

    write_results(out, rows)
    back = read_results(out)
    assert [list(r) for r in back] == [list(RESULT_FIELDS)] * 12
    assert json.loads(back[0]["metadata"]) == metas[0] and isinstance(back[0]["correct"], bool)
    assert json.loads(back[0]["details"])[metas[0]["include"][0]["class"]][0] == [0.0, 0.0, 1.0, 1.0, 0.95]
    s = summary_scores(back)
    pos_ok = metas[4]["include"][1]["position"][0] == "right of"
    assert s["total_images"] == 12 and s["total_prompts"] == 6
    assert s["tags"]["single_object"] == 0.5 and s["tags"]["position"] == (0.5 if pos_ok else 0.0)
    assert s["correct_images"] == pytest.approx((5 + pos_ok) / 12) and s["correct_prompts"] == pytest.approx((5 + pos_ok) / 6)
    assert s["overall"] == pytest.approx(np.mean(list(s["tags"].values())))
    assert list(s["tags"]) == list(TAGS)  # order of first appearance, as summary_scores.py's groupby(sort=False)
    text = format_summary(s)
    assert "Total images: 12" in text and "single_object    = 50.00% (1 / 2)" in text and "Overall score (avg. over tasks):" in text


def test_bad_inputs_get_typed_errors(tmp_path):
    metas = make_prompts(per_tag=1, seed=0)[:1]
    root = _planted_folder(tmp_path, metas, n=1)
    (root / "00000" / "samples" / "0000.png").write_bytes(b"not a png")
    with pytest.raises(MalformedFile, match="not a readable image"):
        evaluate_folder(root, CocoResultsDetector([], {}))
    (root / "00000" / "metadata.jsonl").write_text("{broken")
    with pytest.raises(MalformedFile, match="not JSON"):
        list(iter_folder(root))
    (tmp_path / "meta.jsonl").write_text('{"tag": "position", "include": [{"class": "a", "count": 1, "position": ["near", 0]}], "prompt": "x"}\n')
    with pytest.raises(MalformedFile, match="position"):
        read_metadata(tmp_path / "meta.jsonl")
    with pytest.raises(MalformedFile, match="no such"):
        read_metadata(tmp_path / "missing.jsonl")
    with pytest.raises(MalformedFile, match="not a folder"):
        evaluate_folder(tmp_path / "nowhere", CocoResultsDetector([], {}))
    with pytest.raises(ConfigError):
        GenEvalConfig(threshold=1.5)
    with pytest.raises(NonFiniteError):
        evaluate_image(np.full((3, 8, 8), np.nan, np.float32), metas[0], CocoResultsDetector([], {}))
    with pytest.raises(MalformedFile, match="detector's output"):
        evaluate_image(np.zeros((8, 8, 3), np.uint8), metas[0], type("D", (), {"detect": lambda self, im, image_id=None: [("dog", 0.9)]})())


# ----------------------------------------------------------------------------- the official prompt file, plugged detector
def test_official_553_prompt_file_with_a_plugged_coco_detector(tmp_path):
    metas = read_metadata(OFFICIAL)
    assert len(metas) == 553 and Counter(m["tag"] for m in metas) == OFFICIAL_COUNTS
    # planted COCO results: even prompts get exactly what they ask for, odd prompts nothing
    rows, colour_of, names = [], {}, {}
    for i, m in enumerate(metas):
        if i % 2:
            continue
        target = None
        for j, clause in enumerate(m["include"]):
            for k in range(clause["count"]):
                if "position" in clause:
                    dx, dy = {"left of": (-50, 0), "right of": (50, 0), "above": (0, -50), "below": (0, 50)}[clause["position"][0]]
                    x, y = target[0] + dx, target[1] + dy
                else:
                    x, y = 200 + 12 * (4 * j + k), 200
                target = target or (x, y)
                colour_of[(i, float(x), float(y))] = clause.get("color", "red")
                names.setdefault(clause["class"], len(names) + 1)
                rows.append({"image_id": i, "category_id": names[clause["class"]], "bbox": [x, y, 10, 10], "score": 0.95})
    (tmp_path / "coco.json").write_text(json.dumps(rows))
    detector = CocoResultsDetector(tmp_path / "coco.json", {v: k for k, v in names.items()})
    results = []
    for i, m in enumerate(metas):
        def colour(image, dets, cls, i=i):  # the colour planted for each box
            return [colour_of[(i, d.box[0], d.box[1])] for d in dets]

        results.append(evaluate_image(IMG, m, detector, colour, filename=f"{i:05}/samples/0000.png", image_id=i))
    s = summary_scores(results)
    assert s["total_images"] == 553
    for tag in TAGS:
        idx = [i for i, m in enumerate(metas) if m["tag"] == tag]
        assert s["tags"][tag] == pytest.approx(sum(1 for i in idx if i % 2 == 0) / len(idx)), tag


# ----------------------------------------------------------------------------- prompts and exact truth
def test_prompt_generator_follows_geneval_structure():
    ps = make_prompts(seed=43)
    assert Counter(p["tag"] for p in ps) == OFFICIAL_COUNTS
    counting = [p for p in ps if p["tag"] == "counting"]
    assert all(p["exclude"][0]["count"] == p["include"][0]["count"] + 1 and 2 <= p["include"][0]["count"] <= 4 for p in counting)
    pos = [p for p in ps if p["tag"] == "position"]
    assert all(p["include"][1]["position"][1] == 0 and p["include"][0]["class"] != p["include"][1]["class"] for p in pos)
    assert any(p["prompt"] == "a photo of an orange circle" for p in make_prompts(per_tag=60, seed=1) if p["tag"] == "colors")


def test_renders_match_their_exact_verdict_and_planted_errors_break_it():
    rng = np.random.default_rng(0)
    for p in make_prompts(per_tag=4, seed=3):
        img, objs = render_prompt(p, rng, 32)
        assert img.shape == (32, 32, 3) and exact_verdict(objs, p, 32)
        _, bad = render_prompt(p, rng, 32, error=True)
        assert not exact_verdict(bad, p, 32), p["prompt"]


# ----------------------------------------------------------------------------- WiScore
def test_wiscore_uses_wise_weights():
    assert wiscore(2, 2, 2) == pytest.approx(1.0) and wiscore(0, 0, 0) == 0.0
    assert wiscore(2, 0, 0) == pytest.approx(0.7) and wiscore(0, 2, 0) == pytest.approx(0.2) and wiscore(1, 1, 1) == pytest.approx(0.5)
    assert np.allclose(wiscore([2, 1], [0, 1], [0, 2]), [0.7, (0.7 + 0.2 + 0.2) / 2])
    per = {"culture": 1.0, "time": 0.0, "space": 0.0, "biology": 0.0, "physics": 0.0, "chemistry": 0.0}
    assert overall_wiscore(per) == pytest.approx(0.4)
    assert overall_wiscore(dict.fromkeys(per, 0.5)) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="missing"):
        overall_wiscore({"culture": 1.0})
    with pytest.raises(ConfigError):
        wiscore(3, 0, 0)
    with pytest.raises(NonFiniteError):
        wiscore(float("nan"), 0, 0)
