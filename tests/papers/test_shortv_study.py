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


def test_study_smoke_run(tmp_path):
    from reprolab.study import Verdict, run_study

    result, _ = run_study("shortv", "smoke", out=tmp_path)
    assert result.status == "ok"
    assert {c.key for c in result.claims} == {"lc_small", "freeze_half", "random_worse"}
    assert all(c.verdict != Verdict.NOT_RUN for c in result.claims)
    m = result.metrics
    assert len(m["lc"]["visual"]) == m["layers"] == 4 and m["lc"]["visual"][-1] == 0.0
    assert m["flops"]["measured_saving"] == m["flops"]["predicted_saving"] > 0
    assert len(result.figures) == 2
    again, reused = run_study("shortv", "smoke", out=tmp_path)
    assert reused and again.metrics == m
