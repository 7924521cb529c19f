"""The shared tiny Llava (reprolab.nn.mllm): the one-word tokenizer is unchanged, multi-token answers learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.visual_math import VisualMathConfig, make_visual_math, vocabulary
from reprolab.data.vqa_shapes import answer_vocabulary, question_vocabulary
from reprolab.errors import ConfigError, ShapeError
from reprolab.nn.mllm import EOS, SPECIALS, MLLMConfig, ShapesVQAProcessor, TrainConfig, build_mllm, build_tokenizer, response_batch, train_mllm_responses
from reprolab.runtime import torch_threads

TINY = MLLMConfig(hidden=32, intermediate=64, layers=2, vision_layers=1, vision_hidden=32, vision_feature_layer=0)


def test_default_tokenizer_is_the_one_word_tokenizer_of_old():
    tok = build_tokenizer()
    words = list(SPECIALS) + sorted(set(question_vocabulary()) | set(answer_vocabulary()))
    assert tok.get_vocab() == {w: i for i, w in enumerate(words)} and tok.eos_token_id is None
    model = build_mllm(TINY, tok)
    assert model.config.text_config.eos_token_id == tok.pad_token_id


def test_extended_tokenizer_keeps_old_ids_and_adds_eos():
    old, tok = build_tokenizer(), build_tokenizer(vocabulary())
    assert all(tok.convert_tokens_to_ids(w) == i for w, i in old.get_vocab().items())
    assert tok.eos_token == EOS and build_mllm(TINY, tok).generation_config.eos_token_id == tok.eos_token_id
    ids = tok("the answer is \\boxed{ 3 } .", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == "the answer is \\boxed{ 3 } ." and tok.unk_token_id not in ids


def test_response_batch_labels_only_the_response_and_eos():
    tok = build_tokenizer(vocabulary())
    proc = ShapesVQAProcessor(tok, build_mllm(TINY, tok).config)
    ds = make_visual_math(2, VisualMathConfig(), seed=0)
    b = response_batch(proc, ds.images, ds.questions, ["1 .", "the answer is \\boxed{ 2 } ."])
    lab = b["labels"]
    assert (lab[0] != -100).sum() == 3 and (lab[1] != -100).sum() == 8  # words + <eos>
    assert int(lab[0][lab[0] != -100][-1]) == tok.eos_token_id
    with pytest.raises(ConfigError, match="responses"):
        response_batch(proc, ds.images, ds.questions, ["zebra", "1"])
    with pytest.raises(ShapeError):
        response_batch(proc, ds.images, ds.questions, ["1"])
    with pytest.raises(ConfigError, match="eos"):
        response_batch(ShapesVQAProcessor(build_tokenizer(), proc_cfg := build_mllm(TINY, build_tokenizer()).config), ds.images, ds.questions, ["one", "two"])
    del proc_cfg


def test_multi_token_answers_are_learnt():
    tok = build_tokenizer(vocabulary())
    ds = make_visual_math(16, VisualMathConfig(), seed=0)
    with torch_threads(1):
        model = build_mllm(TINY, tok, seed=0)
        proc = ShapesVQAProcessor(tok, model.config)
        out = train_mllm_responses(model, proc, ds.images, ds.questions, ds.cots, TrainConfig(steps=60, batch=16, lr=1e-2, warmup=4))
    assert out.losses[-1] < 0.5 * out.losses[0]
    assert torch.isfinite(torch.tensor(out.losses)).all()


def test_question_first_prompt_puts_the_question_before_the_image():
    tok = build_tokenizer()
    model = build_mllm(TINY, tok)
    img = np.zeros((3, model.config.vision_config.image_size, model.config.vision_config.image_size), np.float32)
    q = "how many red shapes"
    after = ShapesVQAProcessor(tok, model.config)(images=[img], text=[q])["input_ids"][0].tolist()
    first = ShapesVQAProcessor(tok, model.config, question_first=True)(images=[img], text=[q])["input_ids"][0].tolist()
    image_id = model.config.image_token_id
    n_img = model.config.image_seq_length
    ids = tok.convert_tokens_to_ids(q.split())
    assert after[1:1 + n_img] == [image_id] * n_img and after[1 + n_img:] == ids
    assert first[1:1 + len(ids)] == ids
    assert first[1 + len(ids):1 + len(ids) + n_img] == [image_id] * n_img
    assert first[-1] == ids[-1] and len(first) == len(after) + 1
