"""The MAYE trainer on real formats built from configs here (issue 28, items 1 and 4): the tiny shapes Llava
(``LlavaForConditionalGeneration``), ``Qwen2VLForConditionalGeneration``, ``Qwen2_5_VLForConditionalGeneration``
and a plain causal LM; the component switches; one update per batch = REINFORCE; beta = 0 builds no reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.visual_math import VisualMathConfig, make_visual_math, vocabulary
from reprolab.errors import ConfigError, ShapeError
from reprolab.nn.mllm import MLLMConfig, ShapesVQAProcessor, build_mllm, build_tokenizer
from reprolab.papers.vlm_rl import MayeConfig, MayeTrainer, masked_mean, select_rows, shapes_collate, text_collate
from reprolab.papers.vlm_rl.maye import _forward_logprobs, advantages, component_of, token_rewards
from reprolab.runtime import torch_threads

TINY = MLLMConfig(hidden=32, intermediate=64, layers=2, vision_layers=1, vision_hidden=32, vision_feature_layer=0)
SMALL = dict(batch_size=4, ppo_batch_size=2, max_new_tokens=6, lr=1e-3, min_response_length=2, clip_grad_norm=None)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer([*vocabulary(), "<vision_start>", "<vision_end>"])


@pytest.fixture(scope="module")
def data():
    return make_visual_math(8, VisualMathConfig(), seed=0).samples()


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(model, before) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for n, p in model.named_parameters():
        c = component_of(n)
        out[c] = out.get(c, False) or not torch.equal(p, before[n])
    return out


def test_llava_trains_only_the_llm_by_default(tok, data):
    with torch_threads(1):
        model = build_mllm(TINY, tok, seed=0)
        tr = MayeTrainer(model, tok, shapes_collate(ShapesVQAProcessor(tok, model.config)), MayeConfig(**SMALL), total_steps=1)
        assert tr.ref is not None  # beta_loss = 0.001 > 0: a frozen reference copy
        before = _snapshot(model)
        st = tr.step(data[:4])
    assert _changed(model, before) == {"vit": False, "connector": False, "llm": True}
    assert np.isfinite([st.policy_loss, st.kl_loss, st.entropy, st.grad_norm]).all() and 1 <= st.response_length <= 6
    with pytest.raises(ShapeError, match="batch_size"):
        tr.step(data[:3])


def test_component_switches_freeze_what_they_say(tok, data):
    with torch_threads(1):
        model = build_mllm(TINY, tok, seed=0)
        tr = MayeTrainer(model, tok, shapes_collate(ShapesVQAProcessor(tok, model.config)), MayeConfig(**SMALL, train_vit=True, train_connector=True, train_llm=False), total_steps=1)
        before = _snapshot(model)
        tr.step(data[:4])
    changed = _changed(model, before)
    assert changed["connector"] and not changed["llm"]  # the vision tower may get a zero gradient, the LLM must not move


def test_one_update_per_batch_is_reinforce_and_beta_zero_needs_no_reference(tok, data):
    cfg = MayeConfig(**{**SMALL, "ppo_batch_size": 4}, beta_loss=0.0, beta_rew=0.0)
    with torch_threads(1):
        model = build_mllm(TINY, tok, seed=0)
        tr = MayeTrainer(model, tok, shapes_collate(ShapesVQAProcessor(tok, model.config)), cfg, total_steps=1)
        assert tr.ref is None
        traj = tr.trajectory(data[:4])
        assert traj.ref_logprobs is None
        # REINFORCE on the whitened returns, by hand, on the same trajectory
        rew, _ = token_rewards(traj.scores["score"], traj.logprobs, None, 0.0, traj.last_index)
        adv, _ = advantages(rew, cfg.gamma, traj.valid)
        model.train()
        logp = _forward_logprobs(model, traj.inputs, traj.responses, cfg.temperature)
        want = torch.autograd.grad(-masked_mean(adv * logp, traj.valid), [p for p in model.parameters() if p.requires_grad])
        got = []
        tr.opt.register_step_pre_hook(lambda opt, a, k: got.extend(p.grad.clone() for g in opt.param_groups for p in g["params"]))
        stats = tr.update(traj)
    assert stats["ratio"] == pytest.approx(1.0, abs=1e-6) and stats["kl_loss"] == 0.0
    assert len(got) == len(want) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want))


def _qwen_vl(kind: str, tok):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLConfig, Qwen2VLForConditionalGeneration

    ids = tok.convert_tokens_to_ids
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=256, rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    vision = dict(depth=1, hidden_size=32, embed_dim=32, num_heads=2, in_channels=3, patch_size=4, spatial_merge_size=2, temporal_patch_size=2)
    common = dict(image_token_id=ids("<image>"), video_token_id=ids("<unk>"), vision_start_token_id=ids("<vision_start>"), vision_end_token_id=ids("<vision_end>"))
    if kind == "qwen2_vl":
        cfg = Qwen2VLConfig(text_config=text, vision_config={**vision, "mlp_ratio": 2}, **common)
        cls = Qwen2VLForConditionalGeneration
    else:
        cfg = Qwen2_5_VLConfig(text_config=text, vision_config={**vision, "intermediate_size": 64, "out_hidden_size": 32, "window_size": 8, "fullatt_block_indexes": [0]}, **common)
        cls = Qwen2_5_VLForConditionalGeneration
    torch.manual_seed(0)
    model = cls(cfg)
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    return model


def _qwen_collate(tok):
    """What a Qwen2-VL processor produces for an 8x8 image: grid (1, 2, 2) = 4 patches -> 1 merged image token."""

    def collate(samples):
        rows = [f"<bos> <vision_start> <image> <vision_end> {s['question']}" for s in samples]
        enc = tok(rows, add_special_tokens=False, padding=True, return_tensors="pt")
        pix = [torch.as_tensor(np.asarray(s["image"], dtype=np.float32)[:, :8, :8]) for s in samples]  # (3, 8, 8)
        patches = [torch.stack([p, p]).reshape(2, 3, 2, 4, 2, 4).permute(3, 5, 1, 0, 2, 4).reshape(4, 3 * 2 * 4 * 4) for p in pix]
        types = (enc["input_ids"] == tok.convert_tokens_to_ids("<image>")).long()  # mm_token_type_ids: 1 at image tokens
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "mm_token_type_ids": types, "pixel_values": torch.cat(patches),
                "image_grid_thw": torch.tensor([[1, 2, 2]] * len(samples))}

    return collate


@pytest.mark.parametrize("kind", ["qwen2_vl", "qwen2_5_vl"])
def test_qwen_vl_formats_train_with_the_connector_switch(kind, tok, data):
    with torch_threads(1):
        model = _qwen_vl(kind, tok)
        tr = MayeTrainer(model, tok, _qwen_collate(tok), MayeConfig(**SMALL, train_connector=True), total_steps=1)
        before = _snapshot(model)
        st = tr.step(data[:4])
        # the per-sample split of flattened pixel_values keeps each image with its row
        enc = _qwen_collate(tok)(data[:4])
        sub = select_rows(enc, torch.tensor([2, 0]))
    changed = _changed(model, before)
    assert changed["llm"] and changed["connector"] and not changed["vit"]
    assert np.isfinite([st.policy_loss, st.kl_loss]).all()
    assert torch.equal(sub["pixel_values"][:4], enc["pixel_values"][8:12]) and sub["image_grid_thw"].shape == (2, 3)


def test_plain_causal_lm(tok, data):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id))
    with torch_threads(1):
        tr = MayeTrainer(model, tok, text_collate(tok, prompt="", chat=False), MayeConfig(**SMALL), total_steps=1)
        before = _snapshot(model)
        st = tr.step(data[:4])
    assert _changed(model, before) == {"llm": True} and np.isfinite(st.policy_loss)
    with pytest.raises(ConfigError, match="question"):
        text_collate(tok)([{"image": 0}])


def test_nan_weights_give_a_typed_error(tok, data):
    from reprolab.errors import NonFiniteError

    with torch_threads(1):
        model = build_mllm(TINY, tok, seed=0)
        tr = MayeTrainer(model, tok, shapes_collate(ShapesVQAProcessor(tok, model.config)), MayeConfig(**SMALL), total_steps=1)
        with torch.no_grad():
            model.lm_head.weight.fill_(float("nan"))
        with pytest.raises(NonFiniteError, match="nan"):
            tr.step(data[:4])
    with pytest.raises(ConfigError, match="image"):
        shapes_collate(ShapesVQAProcessor(tok, model.config))([{"question": "how many shapes ?"}])
