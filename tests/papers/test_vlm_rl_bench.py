"""The bench's TRL wrapper feeds the model exactly what our processor feeds it (a fair side-by-side)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.visual_math import make_visual_math, vocabulary
from reprolab.nn.mllm import MLLMConfig, ShapesVQAProcessor, build_mllm, build_tokenizer
from reprolab.papers.vlm_rl.bench import VlmRlBench, _pil, _quantised, llava_processor
from reprolab.study import _BENCHES


def test_llava_processor_wrapper_matches_our_processor():
    pytest.importorskip("transformers")
    tok = build_tokenizer(vocabulary())
    model = build_mllm(MLLMConfig(hidden=32, intermediate=64, layers=1, vision_layers=1, vision_hidden=32, vision_feature_layer=0), tok)
    ours = ShapesVQAProcessor(tok, model.config)
    ds = make_visual_math(3, seed=0)
    images = _quantised(ds.images)
    want = ours(images=list(images), text=ds.questions)
    proc = llava_processor(build_tokenizer(vocabulary()))
    msgs = [[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}] for q in ds.questions]
    got = proc(images=_pil(ds.images), text=[proc.apply_chat_template(m, tokenize=False) for m in msgs], return_tensors="pt", padding=True)
    assert torch.equal(got["input_ids"], want["input_ids"]) and torch.equal(got["attention_mask"], want["attention_mask"])
    assert torch.allclose(got["pixel_values"], want["pixel_values"], atol=1e-6)
    assert _BENCHES["vlm_rl"] is VlmRlBench  # registered on import
    assert np.abs(images - ds.images).max() <= 0.5 / 255 + 1e-7
