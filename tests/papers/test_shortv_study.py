"""The shapes VQA set (exact answers, relational kinds), the small MLLM's parts, the study's rules on synthetic
numbers (controls fail, planted effects pass), and a smoke run of the ``shortv`` study."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.shapes import render_scene
from reprolab.data.vqa_shapes import ALL_KINDS, NUMBERS, PLURALS, RELATIONAL_KINDS, VQAConfig, answer_vocabulary, make_vqa
from reprolab.errors import ConfigError, ShapeError
from reprolab.papers.shortv import apply_shortv, decoder_layers, remove_shortv

pytestmark = pytest.mark.usefixtures("one_thread")


def _check_answer(q: str, a: str, k: str, scene, cfg: VQAConfig) -> None:
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
    elif k == "relation":
        (x,) = [o for o in scene if (o.colour, o.shape) == (words[2], words[3])]  # "is the <colour> <shape> <rel> the ..."
        rel = " ".join(words[4:6]) if words[4] in ("left", "right") else words[4]
        (y,) = [o for o in scene if (o.colour, o.shape) == tuple(words[-3:-1])]
        truth = {"left of": x.cx < y.cx, "right of": x.cx > y.cx, "above": x.cy < y.cy, "below": x.cy > y.cy}[rel]
        assert a == ("yes" if truth else "no")
    elif k == "count_shape":  # "how many circles ?"
        shape = {v: s for s, v in PLURALS.items()}[words[2]]
        assert a == NUMBERS[sum(o.shape == shape for o in scene)]
    elif k == "compare":  # "are there more <c1> shapes than <c2> shapes ?"
        n1, n2 = (sum(o.colour == c for o in scene) for c in (words[3], words[6]))
        assert n1 != n2 and a == ("yes" if n1 > n2 else "no")
    elif k == "same_colour":  # "is the <s1> the same colour as the <s2> ?"
        (x,) = [o for o in scene if o.shape == words[2]]
        (y,) = [o for o in scene if o.shape == words[-2]]
        assert a == ("yes" if x.colour == y.colour else "no")
    else:  # "what colour is the <extreme> shape ?"
        key = {"leftmost": lambda o: o.cx, "rightmost": lambda o: -o.cx, "topmost": lambda o: o.cy, "bottommost": lambda o: -o.cy}[words[4]]
        first, second = sorted(scene, key=key)[:2]
        assert a == first.colour and key(second) - key(first) > cfg.margin


@pytest.mark.parametrize("kinds", [None, ALL_KINDS])
def test_vqa_answers_are_exact_and_seeded(kinds):
    cfg = VQAConfig(image_size=32) if kinds is None else VQAConfig(image_size=32, objects=(2, 4), kinds=kinds)
    ds = make_vqa(400, cfg, seed=3)
    again = make_vqa(400, cfg, seed=3)
    assert ds.questions == again.questions and np.array_equal(ds.images, again.images)
    assert make_vqa(400, cfg, seed=4).questions != ds.questions
    assert set(ds.answers) <= set(answer_vocabulary())
    assert set(ds.kinds) == ({"colour", "count", "position", "relation"} if kinds is None else set(ALL_KINDS))
    for img, q, a, k, scene in zip(ds.images, ds.questions, ds.answers, ds.kinds, ds.scenes):
        assert np.array_equal(img, render_scene(scene, 32))
        _check_answer(q, a, k, scene, cfg)
    if kinds is not None:  # compare is balanced by construction; same_colour asks for a 50/50 answer but not every scene has a pair
        for k, lo, hi in (("compare", 0.35, 0.65), ("same_colour", 0.15, 0.85)):
            yes = np.mean([a == "yes" for a, kk in zip(ds.answers, ds.kinds) if kk == k])
            assert lo < yes < hi, (k, yes)


def test_vqa_config_errors():
    with pytest.raises(ConfigError):
        VQAConfig(shapes=("hexagon",))
    with pytest.raises(ConfigError):
        VQAConfig(objects=(0, 2))
    with pytest.raises(ConfigError):
        VQAConfig(kinds=("colour", "telepathy"))
    with pytest.raises(ConfigError):
        make_vqa(0)
    assert set(RELATIONAL_KINDS) <= set(ALL_KINDS)


def test_mllm_processor_and_tokenizer_round_trip(tmp_path):
    from transformers import PreTrainedTokenizerFast

    from reprolab.papers.shortv.mllm import MLLMConfig, ShapesVQAProcessor, build_mllm, build_tokenizer

    tok = build_tokenizer()
    model = build_mllm(MLLMConfig(hidden=32, intermediate=64, layers=2, vision_layers=1, vision_hidden=32, vision_feature_layer=0), tok)
    proc = ShapesVQAProcessor(tok, model.config)
    ds = make_vqa(3, VQAConfig(objects=(2, 4), kinds=ALL_KINDS), seed=0)
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


def test_patch_embedding_features_do_not_mix_patches():
    """vision_feature_layer=0: each visual token depends on its own patch only (the LM must relate patches); the index
    reaches transformers as -(vision_layers + 1), the same hidden state (0 would read as output_hidden_states=False)."""
    from reprolab.papers.shortv.mllm import MLLMConfig, build_mllm, build_tokenizer

    model = build_mllm(MLLMConfig(hidden=32, intermediate=64, layers=1, vision_layers=1, vision_hidden=32, vision_feature_layer=0), build_tokenizer()).eval()
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[:, :, :8, :8] += 1.0  # change the first 8x8 patch only
    with torch.no_grad():
        fx = model.model.get_image_features(x, vision_feature_layer=model.config.vision_feature_layer, vision_feature_select_strategy="default")
        fy = model.model.get_image_features(y, vision_feature_layer=model.config.vision_feature_layer, vision_feature_select_strategy="default")
    fx = fx.pooler_output if hasattr(fx, "pooler_output") and fx.pooler_output is not None else fx
    fy = fy.pooler_output if hasattr(fy, "pooler_output") and fy.pooler_output is not None else fy
    fx = torch.cat(list(fx)) if isinstance(fx, (list, tuple)) else fx
    fy = torch.cat(list(fy)) if isinstance(fy, (list, tuple)) else fy
    diff = (fx - fy).reshape(16, -1).abs().amax(1)
    assert diff[0] > 1e-3 and torch.all(diff[1:] == 0)


def test_study_smoke_run(smoke_run, tmp_path):
    import shutil

    from reprolab.study import Result, Verdict, rejudge, run_study

    result, out = smoke_run("shortv")
    assert result.status == "ok"
    assert {c.key for c in result.claims} == {"freeze_half", "random_worse", "lc_predicts", "lc_small"}
    assert all(c.verdict != Verdict.NOT_RUN for c in result.claims)
    m = result.metrics
    assert m["layers"] == 4 and m["n_frozen"] == [1, 2, 3] and len(m["seeds"]) == 2
    for s in m["seeds"].values():
        assert len(s["lc"]["visual"]) == 4 and s["lc"]["visual"][-1] == 0.0
        assert {len(v) for v in s["items"].values()} == {48}  # per-question numbers of every arm, for rejudge
        assert {len(r["accuracy"]) for r in s["random"].values()} == {2} and len(s["single_layer"]) == 4
    assert m["flops"]["measured_saving"] == m["flops"]["predicted_saving"] > 0
    assert m["flops"]["paper_table1_tflops"]["LLaVA-1.5-7B"]["ours"] == [8.5, 4.69]
    assert [len(r) for r in m["calibration"]["lc"]] == [5, 5] and m["calibration"]["frozen_layers"] == [0, 1, 2, 3, 4]
    assert len(result.figures) == 3
    shutil.copytree(out, tmp_path, dirs_exist_ok=True)  # rerun on a copy: the shared smoke folder stays as it was
    again, reused = run_study("shortv", "smoke", out=tmp_path)
    assert reused and again.metrics == m
    saved = Result.load(tmp_path / "shortv" / "smoke" / "result.json")
    assert [(c.key, c.verdict, c.headline) for c in rejudge(saved).claims] == [(c.key, c.verdict, c.headline) for c in result.claims]


# ----------------------------------------------------------------------------- the rules (issue 20), on synthetic numbers

from reprolab.papers.shortv.study import ShortVStudy  # noqa: E402
from reprolab.study import Verdict  # noqa: E402

Q, L, DRAWS, SEEDS, NS = 300, 12, 20, 3, [3, 6, 9]


def _flip(hit: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Turn a fraction ``rate`` of the correct answers wrong."""
    return np.where(hit.astype(bool) & (rng.random(len(hit)) < rate), 0, hit)


def _m(*, lc_rates=(0.005, 0.01, 0.08), random_rates=(0.05, 0.12, 0.3), all_rate=0.35, blank_same=False, chance=0.36,
       visual=None, drop=None, seed=0) -> dict:
    """Metrics as the study writes them: SEEDS models at ~0.8 on Q questions (majority 0.36); arms made by flipping a
    fraction of the correct answers wrong; LC per layer; single-layer drops that follow LC unless ``drop`` says otherwise."""
    rng = np.random.default_rng(seed)
    seeds = {}
    for s in range(SEEDS):
        base = (rng.random(Q) < 0.8).astype(int)
        items = {"baseline": base, "blank_image": base.copy() if blank_same else (rng.random(Q) < 0.36).astype(int),
                 "all_frozen": _flip(base, all_rate, rng)}
        random = {}
        for n, lr, rr in zip(NS, lc_rates, random_rates):
            items[f"lc_{n}"] = _flip(base, lr, rng)
            hits = [_flip(base, rr, rng) for _ in range(DRAWS)]
            random[str(n)] = {"accuracy": [float(h.mean()) for h in hits], "correct_count": np.sum(hits, 0).tolist()}
        text = 10 ** rng.uniform(-2, -0.5, L)
        vis = text / 300 * 10 ** rng.uniform(-0.5, 0.5, L) if visual is None else visual(text, rng)
        vis[-1] = 0.0  # as in the model: the last layer's visual LC is 0
        d = (np.argsort(np.argsort(vis)) / L * 0.04 + rng.normal(0, 0.003, L)) if drop is None else drop(vis, rng)
        d[-1] = 0.0
        seeds[str(s)] = {"model_seed": s, "lc": {"visual": vis.tolist(), "text": text.tolist()},
                         "items": {k: np.asarray(v).tolist() for k, v in items.items()}, "random": random,
                         "single_layer": (base.mean() - d).tolist(), "accuracy": {"blank_image": float(np.mean(items["blank_image"]))}}
    return {"layers": L, "n_frozen": NS, "chance": chance, "seeds": seeds, "flops": {"predicted_fraction": 0.3}}


def _v(key: str, m: dict) -> Verdict:
    return {c.key: c for c in ShortVStudy.claims}[key].judge(m).verdict


def test_freeze_rule_is_relative_to_the_all_layers_cost():
    assert _v("freeze_half", _m()) == Verdict.REPRODUCED  # the half costs ~1 point of ~28
    assert _v("freeze_half", _m(lc_rates=(0.05, 0.18, 0.3))) == Verdict.NOT_REPRODUCED  # ~half of the all-layers cost
    assert _v("freeze_half", _m(lc_rates=(0.05, 0.35, 0.3))) == Verdict.NOT_REPRODUCED  # as bad as freezing everything


def test_random_rule_control_and_planted():
    assert _v("random_worse", _m()) == Verdict.REPRODUCED  # random sets lose 4-24 points more
    assert _v("random_worse", _m(random_rates=(0.005, 0.01, 0.08))) != Verdict.REPRODUCED  # random = the LC choice's cost
    assert _v("random_worse", _m(lc_rates=(0.1, 0.2, 0.4), random_rates=(0.05, 0.12, 0.3))) == Verdict.NOT_REPRODUCED  # LC worse


def test_lc_predicts_rule_control_and_planted():
    assert _v("lc_predicts", _m()) == Verdict.REPRODUCED  # drops follow the LC ranks
    shuffled = _m(drop=lambda vis, r: r.permutation(np.linspace(0, 0.04, L)))  # drops unrelated to LC
    assert _v("lc_predicts", shuffled) != Verdict.REPRODUCED
    reversed_ = _m(drop=lambda vis, r: 0.04 - np.argsort(np.argsort(vis)) / L * 0.04)  # LC ranks the layers backwards
    assert _v("lc_predicts", reversed_) == Verdict.NOT_REPRODUCED


def test_lc_small_rule_control_and_planted():
    assert _v("lc_small", _m()) == Verdict.REPRODUCED  # visual LC ~300x below text LC
    assert _v("lc_small", _m(visual=lambda t, r: t.copy())) == Verdict.NOT_REPRODUCED  # visual = text
    assert _v("lc_small", _m(visual=lambda t, r: r.permutation(t))) != Verdict.REPRODUCED  # shuffled text LC
    assert _v("lc_small", _m(visual=lambda t, r: t / 3)) == Verdict.NOT_REPRODUCED  # smaller, but not 10x


def test_preconditions_make_claims_not_testable():
    keys = ("freeze_half", "random_worse", "lc_predicts", "lc_small")
    assert {_v(k, _m(blank_same=True)) for k in keys} == {Verdict.NOT_TESTABLE}  # a blank image answers as well
    idle = _m(all_rate=0.0)  # freezing all layers costs nothing: the layers do not use the visual tokens
    assert {_v(k, idle) for k in keys[:3]} == {Verdict.NOT_TESTABLE} and _v("lc_small", idle) == Verdict.REPRODUCED
    weak = _m(all_rate=0.08)  # costs ~6 points: below the 10-point precondition
    assert _v("freeze_half", weak) == Verdict.NOT_TESTABLE
    assert {_v(k, _m(chance=0.78)) for k in keys} == {Verdict.NOT_TESTABLE}  # no better than the majority answer
