"""The shapes VQA set (exact answers), the small MLLM's parts, and a smoke run of the ``shortv`` study."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.shapes import render_scene
from reprolab.data.vqa_shapes import NUMBERS, VQAConfig, answer_vocabulary, make_vqa
from reprolab.errors import ConfigError, ShapeError
from reprolab.papers.shortv import apply_shortv, decoder_layers, remove_shortv

pytestmark = pytest.mark.usefixtures("one_thread")


def test_vqa_answers_are_exact_and_seeded():
    cfg = VQAConfig(image_size=32)
    ds = make_vqa(300, cfg, seed=3)
    again = make_vqa(300, cfg, seed=3)
    assert ds.questions == again.questions and np.array_equal(ds.images, again.images)
    assert make_vqa(300, cfg, seed=4).questions != ds.questions
    assert set(ds.answers) <= set(answer_vocabulary()) and set(ds.kinds) == {"colour", "count", "position", "relation"}
    for img, q, a, k, scene in zip(ds.images, ds.questions, ds.answers, ds.kinds, ds.scenes):
        assert np.array_equal(img, render_scene(scene, 32))
        words = q.split()
        if k == "count":
            n = len(scene) if words[2] == "shapes" else sum(o.colour == words[2] for o in scene)
            assert a == NUMBERS[n]
        elif k == "colour":
            (obj,) = [o for o in scene if o.shape == words[4]]  # the shape occurs exactly once
            assert a == obj.colour
        elif k == "position":
            (obj,) = [o for o in scene if (o.colour, o.shape) == (words[3], words[4])]
            assert a == obj.quadrant and abs(obj.cx - 0.5) > cfg.margin and abs(obj.cy - 0.5) > cfg.margin
        else:
            (x,) = [o for o in scene if (o.colour, o.shape) == (words[2], words[3])]  # "is the <colour> <shape> <rel> the ..."
            rel = " ".join(words[4:6]) if words[4] in ("left", "right") else words[4]
            y_words = words[-3:-1]
            (y,) = [o for o in scene if (o.colour, o.shape) == tuple(y_words)]
            truth = {"left of": x.cx < y.cx, "right of": x.cx > y.cx, "above": x.cy < y.cy, "below": x.cy > y.cy}[rel]
            assert a == ("yes" if truth else "no")


def test_vqa_config_errors():
    with pytest.raises(ConfigError):
        VQAConfig(shapes=("hexagon",))
    with pytest.raises(ConfigError):
        VQAConfig(objects=(0, 2))
    with pytest.raises(ConfigError):
        make_vqa(0)


def test_mllm_processor_and_tokenizer_round_trip(tmp_path):
    from transformers import PreTrainedTokenizerFast

    from reprolab.papers.shortv.mllm import MLLMConfig, ShapesVQAProcessor, build_mllm, build_tokenizer

    tok = build_tokenizer()
    model = build_mllm(MLLMConfig(hidden=32, intermediate=64, layers=2, vision_layers=1, vision_hidden=32), tok)
    proc = ShapesVQAProcessor(tok, model.config)
    ds = make_vqa(3, VQAConfig(), seed=0)
    enc = proc(images=list(ds.images), text=ds.questions)
    assert (enc["input_ids"] == model.config.image_token_id).sum(1).tolist() == [16] * 3
    assert (enc["attention_mask"][:, -1] == 1).all()  # left padding: the answer comes after the last position
    tok.save_pretrained(tmp_path)
    again = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    assert again(ds.questions[0])["input_ids"] == tok(ds.questions[0])["input_ids"]
    with pytest.raises(ShapeError):
        proc(images=[np.zeros((3, 8, 8))], text=[ds.questions[0]])
    with pytest.raises(ConfigError):
        proc(images=[ds.images[0]], text=["what is love ?"])
    with torch.no_grad():  # ShortV on our model through the processor's input_ids: visual rows pass through
        ref = model(**enc).logits
        apply_shortv(model, [0, 1])
        out = model(**enc).logits
        remove_shortv(model)
    assert not torch.equal(out, ref) and len(decoder_layers(model)) == 2


def test_study_smoke_run(smoke_run, tmp_path):
    import shutil

    from reprolab.study import Verdict, run_study

    result, out = smoke_run("shortv")
    assert result.status == "ok"
    assert {c.key for c in result.claims} == {"lc_small", "freeze_half", "random_worse"}
    assert all(c.verdict != Verdict.NOT_RUN for c in result.claims)
    m = result.metrics
    assert len(m["lc"]["visual"]) == m["layers"] == 4 and m["lc"]["visual"][-1] == 0.0
    assert m["flops"]["measured_saving"] == m["flops"]["predicted_saving"] > 0
    assert len(result.figures) == 2
    assert {len(v) for v in m["items"].values()} == {48}  # per-question numbers of every arm, for rejudge
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)  # rerun on a copy: the shared smoke folder stays as it was
    again, reused = run_study("shortv", "smoke", out=tmp_path)
    assert reused and again.metrics == m
    from reprolab.study import Result, rejudge

    saved = Result.load(tmp_path / "shortv" / "smoke" / "result.json")
    assert [(c.key, c.verdict, c.headline) for c in rejudge(saved).claims] == [(c.key, c.verdict, c.headline) for c in result.claims]


# ----------------------------------------------------------------------------- the rules (issue 14), on synthetic numbers

from reprolab.papers.shortv.study import ShortVStudy  # noqa: E402
from reprolab.study import Verdict  # noqa: E402

Q, L, DRAWS = 2000, 12, 30


def _flip(hit: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Turn a fraction ``rate`` of the correct answers wrong."""
    return np.where(hit.astype(bool) & (rng.random(len(hit)) < rate), 0, hit)


def _m(*, lc_half=None, random_loss=0.0, random_same_as_lc=False, blank=None, all_frozen=None, visual=None, seed=0) -> dict:
    """Metrics as the study writes them: a model at 0.84 on Q questions (majority 0.36), LC per layer, and the arms."""
    rng = np.random.default_rng(seed)
    base = (rng.random(Q) < 0.84).astype(int)
    lc = base if lc_half is None else lc_half(base, rng)
    if random_same_as_lc:
        count = lc * DRAWS
        accs = [float(lc.mean())] * DRAWS
    else:
        hits = [_flip(base, random_loss, rng) for _ in range(DRAWS)]
        count, accs = np.sum(hits, axis=0), [float(h.mean()) for h in hits]
    text = 10 ** rng.uniform(-2, -0.5, L)
    vis = text / 300 * 10 ** rng.uniform(-0.5, 0.5, L) if visual is None else visual(text, rng)
    vis[-1] = 0.0  # as in the model: the last layer's visual LC is 0
    return {
        "layers": L, "n_frozen": L // 2, "chance": 0.36,
        "lc": {"visual": vis.tolist(), "text": text.tolist()},
        "items": {
            "baseline": base.tolist(), "lc_half": np.asarray(lc).tolist(),
            "blank_image": (blank(base, rng) if blank else (rng.random(Q) < 0.36).astype(int)).tolist(),
            "all_frozen": (all_frozen(base, rng) if all_frozen else _flip(base, 0.3, rng)).tolist(),
            "random_half_correct_count": np.asarray(count).tolist(),
        },
        "accuracy": {"random_half": accs},
        "flops": {"decoder_base": 1e6, "decoder_shortv": 6.7e5, "predicted_fraction": 0.33, "llava7b_tflops": [8.5, 5.0]},
    }


def _v(key: str, m: dict) -> Verdict:
    return {c.key: c for c in ShortVStudy.claims}[key].judge(m).verdict


def test_lc_rule_control_and_planted():
    assert _v("lc_small", _m()) == Verdict.REPRODUCED  # visual LC ~300x below text LC
    assert _v("lc_small", _m(visual=lambda t, r: t.copy())) == Verdict.NOT_REPRODUCED  # visual = text
    assert _v("lc_small", _m(visual=lambda t, r: r.permutation(t))) != Verdict.REPRODUCED  # shuffled text LC
    assert _v("lc_small", _m(visual=lambda t, r: t / 3)) == Verdict.NOT_REPRODUCED  # smaller, but not 10x


def test_freeze_rule_is_non_inferiority_with_a_broken_arm_as_control():
    assert _v("freeze_half", _m(lc_half=lambda b, r: _flip(b, 0.004, r))) == Verdict.REPRODUCED  # -0.3 points
    assert _v("freeze_half", _m(lc_half=lambda b, r: (r.random(Q) < 0.36).astype(int))) == Verdict.NOT_REPRODUCED  # at chance
    assert _v("freeze_half", _m(lc_half=lambda b, r: _flip(b, 0.08, r))) == Verdict.NOT_REPRODUCED  # -7 points


def test_random_rule_control_and_planted():
    assert _v("random_worse", _m(random_loss=0.05)) == Verdict.REPRODUCED  # random sets lose 4 points, LC none
    assert _v("random_worse", _m(random_same_as_lc=True)) != Verdict.REPRODUCED  # random draws = the LC choice
    assert _v("random_worse", _m(random_loss=0.0)) != Verdict.REPRODUCED  # nobody loses anything
    assert _v("random_worse", _m(lc_half=lambda b, r: _flip(b, 0.08, r), random_loss=0.01)) == Verdict.NOT_REPRODUCED  # LC worse


def test_preconditions_make_claims_not_testable():
    no_image = _m(blank=lambda b, r: b.copy(), random_loss=0.05)  # a blank image answers as well: the model ignores the image
    assert {_v(k, no_image) for k in ("lc_small", "freeze_half", "random_worse")} == {Verdict.NOT_TESTABLE}
    layers_idle = _m(all_frozen=lambda b, r: b.copy(), random_loss=0.05)  # freezing all layers costs nothing
    assert _v("freeze_half", layers_idle) == Verdict.NOT_TESTABLE and _v("random_worse", layers_idle) == Verdict.NOT_TESTABLE
    assert _v("lc_small", layers_idle) == Verdict.REPRODUCED  # (a) does not need it
    untrained = _m(lc_half=lambda b, r: b.copy())
    untrained["chance"] = 0.80  # the majority answer is as good as the model
    assert _v("freeze_half", untrained) == Verdict.NOT_TESTABLE
