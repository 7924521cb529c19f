"""IGPG's method: weights <-> chunks (exact round trip, both orders), instructions, the prior (KV-cache sampling,
conditioning on a planted example, position mixing), generation into loadable safetensors, LoRA through peft."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from reprolab.nn.encoders import HashEmbedder
from reprolab.nn.vqvae import VQVAEConfig
from reprolab.papers.igpg import (IGPG, ConditionalPrior, IGPGConfig, Manifest, PixelImageEncoder, PriorConfig, TrainingNetwork,
                                  chunks_to_state_dict, dataset_embedding, describe_architecture, load_generated, load_into,
                                  mix_positions, save_generated, state_dict_to_chunks, train_prior)
from reprolab.papers.igpg.zoo import build

pytestmark = pytest.mark.usefixtures("one_thread")


def _bn_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 4 * 4, 5, bias=False))


@pytest.mark.parametrize("order", ["layer", "architecture"])
@pytest.mark.parametrize("arch", ["cnn_a", "mlp", "bn"])
def test_weights_round_trip_exactly_in_both_orders(order, arch):
    model = _bn_net() if arch == "bn" else build(arch, init_seed=3)
    chunks, man = state_dict_to_chunks(model, 64, order=order, include_buffers=arch == "bn")
    scaled, man10 = state_dict_to_chunks(model, 64, order=order, scale=10.0, include_buffers=arch == "bn")
    assert torch.allclose(scaled, 10 * chunks) and all(torch.allclose(a, b) for a, b in zip(chunks_to_state_dict(scaled, man10).values(),
                                                                                            chunks_to_state_dict(chunks, man).values()))
    assert chunks.shape == (man.n_chunks, 64)
    back = chunks_to_state_dict(chunks, Manifest.from_json(man.to_json()))
    ref = dict(model.named_parameters()) | ({k: v for k, v in model.named_buffers() if v.is_floating_point()} if arch == "bn" else {})
    assert list(back) == man.names and set(back) == set(ref)
    for k, v in ref.items():
        assert back[k].dtype == v.dtype and torch.equal(back[k], v.detach())
    # layer-wise: no chunk mixes two layers; weight before bias inside a layer (the paper's order)
    if order == "layer":
        spans = {}
        for e in man.entries:
            lo, hi = e.offset // 64, (e.offset + math.prod(e.shape) - 1) // 64
            a, b = spans.get(e.layer, (lo, hi))
            spans[e.layer] = (min(a, lo), max(b, hi))
        ranges = sorted(spans.values())
        assert all(prev[1] < nxt[0] for prev, nxt in zip(ranges, ranges[1:]))
    names = [e.name for e in man.entries]
    if "0.bias" in names:
        assert names.index("0.weight") < names.index("0.bias")
    n_arch = state_dict_to_chunks(model, 64, order="architecture")[1].n_chunks
    assert n_arch <= state_dict_to_chunks(model, 64, order="layer")[1].n_chunks


def test_vectorisation_refuses_bad_input():
    model = build("mlp")
    chunks, man = state_dict_to_chunks(model, 32)
    with pytest.raises(ShapeError):
        chunks_to_state_dict(chunks[1:], man)
    bad = chunks.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        chunks_to_state_dict(bad, man)
    with pytest.raises(NonFiniteError):
        state_dict_to_chunks({"w": torch.tensor([1.0, float("inf")])}, 4)
    with pytest.raises(ConfigError):
        state_dict_to_chunks(model, 32, order="random")  # type: ignore[arg-type]
    with pytest.raises(MalformedFile):
        Manifest.from_json("{not json")
    with pytest.raises(ShapeError):
        load_into(build("cnn_a"), {k: torch.zeros(1) for k, _ in build("cnn_a").named_parameters()})


def test_architecture_description_comes_from_the_module_not_its_weights():
    a, b = build("cnn_a", init_seed=0), build("cnn_a", init_seed=1)
    text = describe_architecture(a)
    assert text == describe_architecture(b) and text != describe_architecture(build("mlp"))
    assert "Conv2d(1, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))" in text and "Total parameters: 1316." in text
    assert "tensor(4, 16)" in describe_architecture({"w": torch.zeros(4, 16)})


def test_dataset_embedding_keeps_label_order_and_the_papers_mean():
    torch.manual_seed(0)
    x = torch.cat([torch.full((6, 1, 8, 8), v) for v in (-1.0, 0.0, 1.0)])
    y = torch.arange(3).repeat_interleave(6)
    enc = PixelImageEncoder(2)
    e = dataset_embedding(x, y, 3, enc, per_class=4)
    assert e.shape == (3, 4) and torch.allclose(e[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    e_perm = dataset_embedding(x, (y + 1) % 3, 3, enc, per_class=4)  # relabel: rows follow the labels
    assert torch.allclose(e_perm, e[[2, 0, 1]])
    assert dataset_embedding(x, y, 3, enc, pooling="mean").shape == (1, 4)
    with pytest.raises(ConfigError):
        dataset_embedding(x, torch.zeros_like(y), 3, enc)  # classes 1, 2 missing


def _tiny_prior(n_codes=6, T=8):
    return ConditionalPrior(PriorConfig(n_codes=n_codes, max_tokens=T, data_dim=3, arch_dim=2, n_data_tokens=1, n_layer=1, n_head=2,
                                        n_embd=16, lr=1e-2))


def test_kv_cache_sampling_matches_a_full_forward():
    torch.manual_seed(0)
    p = _tiny_prior()
    d, a = torch.randn(2, 1, 3), torch.randn(2, 2)
    codes = p.sample(d, a, 8, top_k=1)  # greedy through the cache
    emb = torch.cat([p.prefix(d, a), p.gpt.transformer.wte(codes)], 1)
    logits = p.gpt(inputs_embeds=emb[:, :-1]).logits[:, 1:]  # predictions of c_1..c_8
    assert torch.equal(logits.argmax(-1), codes)


def test_the_prior_follows_its_instruction_on_a_planted_example():
    torch.manual_seed(0)
    p = _tiny_prior()
    seqs = [torch.tensor([1, 2, 3, 4, 5, 0, 1, 2]), torch.tensor([5, 4, 3, 2, 1, 0, 5, 4])]
    d = torch.tensor([[[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]]])
    a = torch.ones(2, 2)
    hist = train_prior(p, seqs, d, a, 150, batch=2)
    assert hist.loss[-1] < 0.2 * hist.loss[0]
    g = torch.Generator().manual_seed(0)
    out = p.sample(d, a, 8, temperature=0.5, generator=g)
    assert torch.equal(out[0], seqs[0]) and torch.equal(out[1], seqs[1])
    with pytest.raises(ShapeError):
        p.sample(torch.randn(1, 2, 3), a[:1], 4)
    with pytest.raises(ConfigError):
        p.sample(d, a, 9)


def test_position_mixing_takes_each_code_from_one_of_the_draws():
    draws = torch.stack([torch.zeros(2, 50, dtype=torch.long), torch.ones(2, 50, dtype=torch.long) * 7], 1)  # (B=2, n=2, T)
    mixed = mix_positions(draws, torch.Generator().manual_seed(0))
    assert mixed.shape == draws.shape and set(mixed.unique().tolist()) == {0, 7}
    assert (mixed == 0).float().mean() == pytest.approx(0.5, abs=0.1)  # positions drawn independently
    same = torch.full((1, 3, 10), 4)
    assert torch.equal(mix_positions(same), same)


def _fitted(templates, n_per=2, seed=0):
    cfg = IGPGConfig(vqvae=VQVAEConfig(chunk_size=32, downsample=8, hidden=8, embed_dim=8, n_embed=16, quantizer="nearest"),
                     vq_steps=5, prior_steps=5, n_embd=16, n_layer=1, n_head=2)
    gen = IGPG(cfg, text_embedder=HashEmbedder(16))
    nets = []
    for i, t in enumerate(templates):
        for s in range(n_per):
            torch.manual_seed(seed + 10 * i + s)
            state = {k: v.detach() + 0.01 * torch.randn_like(v) for k, v in (t.named_parameters() if isinstance(t, nn.Module) else t.items())}
            nets.append(TrainingNetwork(state, t, torch.randn(2, 5)))
    report = gen.fit(nets, seed=seed)
    return gen, report


def test_generate_returns_loadable_state_dicts_and_safetensors_round_trip(tmp_path):
    tpl = build("mlp", init_seed=0)
    gen, report = _fitted([tpl, build("cnn_b", init_seed=0)])
    assert 0 < report.codebook_usage <= 1 and report.perplexity >= 1
    states = gen.generate(torch.randn(2, 5), tpl, n=2, seed=1)
    assert len(states) == 2 and set(states[0]) == {k for k, _ in tpl.named_parameters()}
    two = gen.generate(torch.randn(3, 2, 5), tpl, n=2, independent=True, n_draws=3)
    assert len(two) == 6
    assert all(torch.equal(a, b) for a, b in zip(gen.generate(torch.ones(2, 5), tpl, seed=4)[0].values(),
                                                 gen.generate(torch.ones(2, 5), tpl, seed=4)[0].values()))  # seeded
    model = gen.generate_model(torch.randn(2, 5), build("mlp"))
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 4)
    path = save_generated(tmp_path / "net.safetensors", states[0], gen.manifest_for(tpl))
    fresh = build("mlp")
    back = load_generated(path, fresh)
    assert all(torch.equal(back[k], states[0][k]) for k in states[0])
    assert torch.equal(fresh[2].weight, states[0]["2.weight"])
    # corrupt, truncated, missing, wrong architecture
    (tmp_path / "bad.safetensors").write_bytes(path.read_bytes()[:40])
    with pytest.raises(MalformedFile):
        load_generated(tmp_path / "bad.safetensors")
    with pytest.raises(Exception) as e:
        load_generated(tmp_path / "missing.safetensors")
    assert "missing.safetensors" in str(e.value)
    with pytest.raises((ConfigError, ShapeError)):
        load_generated(path, build("cnn_a"))
    # a saved generator generates the same
    gen.save(tmp_path / "gen.pt")
    again = IGPG.load(tmp_path / "gen.pt", text_embedder=HashEmbedder(16))
    a = gen.generate(torch.ones(2, 5), tpl, seed=9)[0]
    b = again.generate(torch.ones(2, 5), tpl, seed=9)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(MalformedFile):
        IGPG.load(tmp_path / "junk.pt")
    with pytest.raises(ConfigError):
        IGPG(gen.config).generate(torch.ones(2, 5), tpl)  # not fitted


def test_lora_adapters_are_generated_for_a_tiny_qwen2_and_loaded_with_peft():
    peft = pytest.importorskip("peft")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from reprolab.papers.igpg import load_lora, lora_state

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=32)
    model = peft.get_peft_model(Qwen2ForCausalLM(cfg), peft.LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    template = lora_state(model)
    assert template and all("lora" in k for k in template)
    gen, _ = _fitted([template], n_per=3)
    state = gen.generate(torch.randn(2, 5), template, seed=0)[0]
    load_lora(model, state)
    now = peft.get_peft_model_state_dict(model)
    assert all(torch.equal(now[k], state[k]) for k in state)
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 64)
    with pytest.raises(ConfigError):
        load_lora(model, {"nope.lora_A.weight": torch.zeros(2, 32)})
    with pytest.raises(ShapeError):
        load_lora(model, {k: torch.zeros(1) for k in state})
