"""RISE-shapes, the editors and judges, each claim's rule on a control that must fail and a planted effect that must
pass, and the smoke run of the study (shared per session)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reprolab.data.shapes import COLOURS, SHAPES, SIZES
from reprolab.errors import ConfigError
from reprolab.imageeval import ShapesDetector, as_hwc_uint8
from reprolab.llm.fake import ScriptedLLM
from reprolab.papers.risebench.editors import (IdentityEditor, InstructionOnlyEditor, OracleEditor, PerceiveReasonRender,
                                               PlantedErrorOracle, extract_scene_json)
from reprolab.papers.risebench.judges import CaptionJudge, ExactJudge
from reprolab.papers.risebench.protocol import Sample, judge_requests
from reprolab.papers.risebench.reader import GridReader, _areas, reader_config
from reprolab.papers.risebench.rise_shapes import CELL_PX, TASK_TYPES, Cell, GridScene, SceneInvalid, make_tasks, render_grid
from reprolab.papers.risebench.scoring import extract_final_score
from reprolab.papers.risebench.study import (judge_logical_hardest, judge_non_reasoning_zero, judge_think_helps, judge_valid)
from reprolab.study import Verdict


def test_every_category_has_three_task_types_with_exact_expected_scenes():
    tasks = make_tasks(6, seed=3)
    assert all(len(v) == 3 for v in TASK_TYPES.values())
    assert {t.task_type for t in tasks} == {k for v in TASK_TYPES.values() for k in v}
    for t in tasks:
        assert t.changed, t.index  # every task asks for a change
        assert t.expected != t.input
    assert [t.expected for t in make_tasks(6, seed=3)] == [t.expected for t in tasks]  # seeded
    mix = next(t for t in tasks if t.task_type == "paint_mixing")
    (r, c), = [k for k in mix.changed if mix.expected.at(*k) is not None]
    assert mix.expected.at(r, c).colour in ("orange", "green", "magenta", "cyan")
    ttt = next(t for t in tasks if t.task_type == "tic_tac_toe")
    assert len(ttt.changed) == 1 and ttt.expected.at(*next(iter(ttt.changed))) == Cell("cross", "white")


def test_scene_json_round_trip_and_validation():
    t = make_tasks(1, seed=0)[0]
    assert GridScene.from_json(json.loads(json.dumps(t.input.to_json()))) == t.input
    with pytest.raises(SceneInvalid):
        GridScene.from_json({"grid": [["red circle", ""]]}, 3, 3)  # wrong shape
    with pytest.raises(SceneInvalid):
        GridScene.from_json({"grid": [["purple blob"]]})
    with pytest.raises(SceneInvalid):
        GridScene.from_json([1, 2])
    assert extract_scene_json('I think so. {"grid": [["x"]]} then {"grid": [["", "red circle"]]}') == {"grid": [["", "red circle"]]}
    assert render_grid(t.input).shape == (3, 3 * CELL_PX, 3 * CELL_PX)


class LookupReader:
    """A perfect reader for rule tests: knows the scenes it was shown rendered (the real reader is tested below, and
    its errors would blur what these tests check: the judges' and editors' logic)."""

    cell_px = CELL_PX

    def __init__(self, scenes):
        self.known = {as_hwc_uint8(render_grid(s)).tobytes(): s for s in scenes}

    def read(self, image, rows, cols):
        from reprolab.papers.risebench.reader import GridReading

        return GridReading(self.known[as_hwc_uint8(image).tobytes()], 0)


def _reader_for(tasks, extra=()):
    return LookupReader([s for t in tasks for s in (t.input, t.expected)] + list(extra))


def test_the_reader_sees_a_small_cross_as_drawn():
    """Study v1's oracle misses: the proposals' median filter made every small cross an octagon (read as a diamond);
    the reader's detector takes the drawn outline as the mask (no training needed to see it: proposals only), and
    cells are large enough for the cross's arms (v1: 32 px, arms 2.5 px wide)."""
    assert CELL_PX >= 48
    det = ShapesDetector(reader_config(scenes=1, steps=0))
    assert det.config.refine_mask
    img = as_hwc_uint8(render_grid(GridScene(((Cell("cross", "orange", "small"),),))))
    drawn = np.abs(img / 255.0 - img[0, 0] / 255.0).max(axis=-1) > det.config.threshold
    (region,) = det.propose(img)
    assert np.array_equal(region.mask, drawn)
    areas = _areas(CELL_PX, True)
    assert all(areas[(s, "small")] < areas[(s, "medium")] < areas[(s, "large")] for s in SHAPES)


@pytest.mark.slow
def test_the_grid_reader_reads_renders_back_exactly():
    reader = GridReader.train(None, scenes=800, steps=400)  # the full study's reader
    vocab = [Cell(sh, co, sz) for sh in SHAPES for co in COLOURS for sz in SIZES]
    wrong = [c for c in vocab if reader.read(render_grid(GridScene(((c,),))), 1, 1).scene.at(0, 0) != c]
    assert wrong == []  # every object the grids can hold, at the cell centre where the renderer puts it
    tasks = make_tasks(8, seed=5)
    ok = [reader.read(render_grid(s), s.rows, s.cols).scene == s for t in tasks for s in (t.input, t.expected)]
    assert np.mean(ok) >= 0.95


def _sample(t):
    if t.category == "logical_reasoning":
        return Sample(t.index, t.category, t.instruction, "x.png", reference_img="r.png")
    return Sample(t.index, t.category, t.instruction, "x.png", reference=t.reference())


def _judge_all(judge, task, image):
    reqs = judge_requests(_sample(task), image, render_grid(task.input), render_grid(task.expected))
    return {d: extract_final_score(judge(r))[0] for d, r in reqs.items()}


def test_editors_and_the_exact_judge_on_planted_cases():
    tasks = [t for t in make_tasks(2, seed=0) if t.category == "causal_reasoning"]
    t = tasks[0]
    free = next((r, c) for r in range(3) for c in range(3) if (r, c) not in t.changed and t.expected.at(r, c) is None)
    unintended = t.expected.with_cells({free: Cell("square", "blue")})
    ex = ExactJudge({x.index: x for x in tasks}, _reader_for(tasks, [unintended]))
    img = render_grid(t.input)
    ok = _judge_all(ex, t, OracleEditor().edit(t, img).image)
    assert ok == {"consistency": 5, "reasoning": 5, "plausibility": 5}
    assert _judge_all(ex, t, IdentityEditor().edit(t, img).image)["reasoning"] == 1  # nothing done
    assert _judge_all(ex, t, render_grid(unintended)) == {"consistency": 4, "reasoning": 5, "plausibility": 5}
    lt = make_tasks(1, seed=0)[3]  # logical: binary, mapped by the scorer
    lex = ExactJudge({lt.index: lt}, _reader_for([lt]))
    assert _judge_all(lex, lt, render_grid(lt.expected)) == {"consistency": 1, "reasoning": 1}
    assert _judge_all(lex, lt, render_grid(lt.input)) == {"consistency": 1, "reasoning": 0}
    # the instruction-only editor never sees the image; it draws what the instruction names
    assert InstructionOnlyEditor().edit(t, img).image.shape == img.shape


def test_planted_errors_occur_at_the_known_rate_and_always_break_the_task():
    tasks = make_tasks(40, seed=1)
    ed = PlantedErrorOracle(0.3, seed=2)
    planted = [ed.plant(t) for t in tasks]
    share = np.mean([k is not None for _, k in planted])
    assert abs(share - 0.3) < 0.08
    assert all((s != t.expected) == (k is not None) for (s, k), t in zip(planted, tasks))


def test_perceive_reason_render_validates_and_counts_failures():
    t = make_tasks(1, seed=0)[1]  # causal
    reader = _reader_for([t])
    answers = iter(["this is not json", json.dumps(t.expected.to_json())[len('{"rows": 3, "cols": 3, "grid": ['):]])

    def respond(prompt, s):
        return next(answers)

    llm = ScriptedLLM(respond)
    ed = PerceiveReasonRender(llm, reader)
    img = render_grid(t.input)
    e1 = ed.edit(t, img)
    assert not e1.valid and ed.failures == 1 and np.array_equal(e1.image, img)  # failure: input returned, counted
    assert "Instruction: " + t.instruction in llm.prompts[0] and json.dumps(t.input.to_json()["grid"]) in llm.prompts[0]
    e2 = ed.edit(t, img)  # the direct prompt is prefilled with '{"grid": [', the answer continues it
    assert e2.valid and e2.scene == t.expected and np.array_equal(e2.image, render_grid(t.expected)) and ed.failures == 1


def test_caption_judge_describes_images_and_reads_logprobs():
    t = make_tasks(1, seed=0)[3]  # logical
    reader = _reader_for([t])
    seen = []
    llm = ScriptedLLM(lambda p, s: "It matches.\n**Final Score:** **1**", choices=lambda p: seen.append(p) or {"1": -0.1, "0": -2.0})
    cap = CaptionJudge(llm, {t.index: t}, reader)
    rq = judge_requests(_sample(t), render_grid(t.expected), render_grid(t.input), render_grid(t.expected))["reasoning"]
    assert extract_final_score(cap(rq)) == [1]
    assert seen[-1].endswith("**Final Score:** **") and "Image 2, as read by a scene reader" in seen[-1]
    assert rq.prompt.rstrip() in seen[-1]
    gen = CaptionJudge(llm, {t.index: t}, reader, mode="generate")
    assert gen(rq).endswith("**1**")


# ----------------------------------------------------------------------------- the rules
CATS = ["temporal_reasoning"] * 8 + ["causal_reasoning"] * 8 + ["spatial_reasoning"] * 8 + ["logical_reasoning"] * 8


def _ed(complete, valid=None, scores=None):
    n = len(complete)
    d = {"complete": list(complete), "score": scores if scores is not None else [1 + 4 * c for c in complete],
         "consistency": [5] * n, "reasoning": [5 if c else 1 for c in complete], "plausibility": [5] * n}
    return {"valid": valid if valid is not None else [1] * n, "exact": d, "caption": dict(d)}


def _metrics(best, think=None, direct=None, oracle=None):
    n = len(CATS)
    return {"task_categories": CATS, "tasks": [f"t{i}" for i in range(n)], "reasoning_editors": ["m", "m-think"],
            "think_pair": ["m-think", "m"], "caption_editors": ["oracle", "m", "m-think"],
            "editors": {"oracle": _ed(oracle if oracle is not None else [1] * n), "m": _ed(direct if direct is not None else best),
                        "m-think": _ed(think if think is not None else best)}}


def test_logical_hardest_rule():
    rng = np.random.default_rng(0)
    planted = [1] * 24 + [0] * 8
    assert judge_logical_hardest(_metrics(planted)).verdict == Verdict.REPRODUCED
    coin = list((rng.random(32) < 0.5).astype(int))
    assert judge_logical_hardest(_metrics(coin)).verdict != Verdict.REPRODUCED
    assert judge_logical_hardest(_metrics([0] * 32)).verdict == Verdict.NOT_TESTABLE  # nothing to be harder than
    flat = [1, 1, 0, 0] * 8  # the same accuracy everywhere
    assert judge_logical_hardest(_metrics(flat)).verdict != Verdict.REPRODUCED


def test_think_helps_rule():
    base = [0] * 32
    planted = [1] * 20 + [0] * 12
    assert judge_think_helps(_metrics(base, think=planted, direct=base)).verdict == Verdict.REPRODUCED
    rng = np.random.default_rng(1)
    a = list((rng.random(32) < 0.3).astype(int))
    assert judge_think_helps(_metrics(base, think=a, direct=a)).verdict != Verdict.REPRODUCED  # same arm twice
    m = _metrics(base, think=planted, direct=base)
    m["editors"]["m-think"]["valid"] = [0] * 32
    assert judge_think_helps(m).verdict == Verdict.NOT_TESTABLE


def test_non_reasoning_zero_rule():
    n = 128
    good = {"control": {"identity": [0] * n, "instruction_only": [0] * n, "oracle": [1] * n}}
    assert judge_non_reasoning_zero(good).verdict == Verdict.REPRODUCED
    rng = np.random.default_rng(2)
    coin = list((rng.random(n) < 0.5).astype(int))
    assert judge_non_reasoning_zero({"control": {"identity": coin, "instruction_only": [0] * n, "oracle": [1] * n}}).verdict != Verdict.REPRODUCED


def test_judge_valid_rule():
    rng = np.random.default_rng(3)
    m = _metrics([1, 0] * 16, think=[0, 1] * 16, direct=[1, 1, 0, 0] * 8)
    for e in m["editors"].values():  # planted: the caption judge equals the exact judge up to rare noise
        for d in ("consistency", "reasoning", "plausibility"):
            e["exact"][d] = list(rng.integers(1, 6, 32))
            e["caption"][d] = [x if rng.random() > 0.05 else 3 for x in e["exact"][d]]
    assert judge_valid(m).verdict in (Verdict.REPRODUCED, Verdict.PARTLY)
    for e in m["editors"].values():  # control: a caption judge that answers at random
        for d in ("consistency", "reasoning", "plausibility"):
            e["caption"][d] = list(rng.integers(1, 6, 32))
    assert judge_valid(m).verdict != Verdict.REPRODUCED
    m["editors"]["oracle"]["exact"]["complete"] = [0] * 32
    assert judge_valid(m).verdict == Verdict.NOT_TESTABLE


def test_smoke_run(smoke_run):
    result, out = smoke_run("risebench")
    assert result.status == "ok" and {c.key for c in result.claims} == {"logical_hardest", "think_helps", "non_reasoning_zero", "judge_valid"}
    m = result.metrics
    run = out / "risebench" / "smoke" / "risebench"
    assert (run / "data" / "data_total.json").is_file()
    assert (run / "outputs" / "oracle" / "images" / "logical_reasoning" / "logical_reasoning_1.png").is_file()
    assert (run / "outputs" / "oracle" / "oracle_exact_judge.csv").read_text().startswith("-,Score-Origin,Score-Percentage,Accuracy")
    assert m["summary"]["identity"]["exact_accuracy"] == 0.0
    assert m["generate"]["total"] == 2


def test_each_scale_judges_with_caption_then_judge_editors_it_runs():
    from reprolab.papers.risebench.study import RiseBenchStudy, editor_names
    from reprolab.study import Scale

    scales = RiseBenchStudy.scales
    for cfg in scales.values():
        names = editor_names(cfg)
        assert set(cfg.caption_editors) <= set(names)
        # the editors judged span the score range: a non-editor, the planted-error oracle, a reasoning editor
        assert not cfg.caption_editors or {"identity", names[3], names[-1]} <= set(cfg.caption_editors)
    assert len(scales[Scale.QUICK].caption_editors) == len(scales[Scale.FULL].caption_editors) == 3
    assert scales[Scale.FULL].generate_outputs >= 1 and scales[Scale.SMOKE].generate_outputs >= 1


def test_bench_measures_three_judges_on_the_same_outputs(tmp_path):
    from reprolab.papers.risebench.bench import RiseBenchBench
    from reprolab.papers.risebench.editors import PlantedErrorOracle as P

    tasks = make_tasks(1, seed=4242)
    extra = [P(0.5, seed=1).plant(t)[0] for t in tasks]
    extra += [InstructionOnlyEditor(seed=1).edit(t, render_grid(t.input)).scene for t in tasks]
    calls = []

    def respond(p, s):  # every third answer rambles past the cap: cut before its score line, so incomplete
        calls.append(p)
        return ("step " * 2000 if len(calls) % 3 == 0 else "") + "**Final Score:** **5**"

    llm = ScriptedLLM(respond, choices=lambda p: {"5": -0.1, "1": -0.2, "0": -3.0})
    res = RiseBenchBench().measure(llm, _reader_for(tasks, extra), 1, tmp_path)
    assert [r.name.split(" ")[0] for r in res.rows] == ["exact", "logprob", "generate"] and res.baseline == "generate"
    assert res.extra["samples"] == 16 and res.extra["parsed"]["exact"] == 16
    assert res.extra["spearman_with_exact"]["exact"]["reasoning"] == pytest.approx(1.0)
    assert res.extra["generate_answers"] == len(calls) and res.extra["generate_cut_by_cap"] == len(calls) // 3 > 0
    assert 0 < res.extra["parsed"]["generate"] < 16  # a sample with a cut answer is incomplete
    two = RiseBenchBench().measure(llm, _reader_for(tasks, extra), 1, tmp_path / "two", editors=("oracle_err50", "identity"))
    assert two.extra["samples"] == 8 and two.config["editors"] == ["oracle_err50", "identity"]
    with pytest.raises(ConfigError, match="editors"):
        RiseBenchBench().measure(llm, _reader_for(tasks, extra), 1, tmp_path / "bad", editors=("flux",))
