"""The image-evaluation room: detections, COCO adapter, proposals, colour classifiers, scene reader, bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reprolab.data.shapes import COLOUR_RGB, COLOURS, ShapeSpec, render_scene
from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ShapeError
from reprolab.imageeval import (
    GENEVAL_TEMPLATES, ClipZeroShotColour, CocoResultsDetector, Detection, Detector, DetectorConfig, MaskedCropColour, ShapesDetector,
    as_hwc_uint8, bootstrap_ci, box_iou, degrade, geneval_crop, paired_bootstrap, propose_regions, read_scene, resample_share,
    scene_matches, write_coco_results,
)


def _render(*objs: ShapeSpec, size: int = 32) -> np.ndarray:
    return as_hwc_uint8(render_scene(list(objs), size))


def test_detection_validates_and_converts():
    d = Detection("circle", 0.8, (1, 2, 5, 9))
    assert d.centre == (3.0, 5.5) and d.row() == [1.0, 2.0, 5.0, 9.0, 0.8]
    with pytest.raises(NonFiniteError, match="circle"):
        Detection("circle", float("nan"), (0, 0, 1, 1))
    with pytest.raises(ShapeError, match="x2 >= x1"):
        Detection("circle", 0.5, (5, 0, 1, 1))
    with pytest.raises(ShapeError, match="box"):
        Detection("circle", 0.5, (0, 0, 1))
    img = render_scene([ShapeSpec("circle", "red", "medium", 0.5, 0.5)], 16)
    u = as_hwc_uint8(img)
    assert u.shape == (16, 16, 3) and u.dtype == np.uint8
    assert np.array_equal(as_hwc_uint8(torch.from_numpy(img)), u)
    with pytest.raises(ShapeError):
        as_hwc_uint8(np.zeros((4, 4)))
    with pytest.raises(NonFiniteError):
        as_hwc_uint8(np.full((3, 4, 4), np.nan, dtype=np.float32))


def test_box_iou_by_hand():
    # GenEval's +1 convention: [0,0,1,1] has area 4; overlap with [1,1,2,2] is 1 pixel -> 1 / (4 + 4 - 1)
    assert box_iou([0, 0, 1, 1], [1, 1, 2, 2]) == pytest.approx(1 / 7)
    assert box_iou([0, 0, 3, 3], [0, 0, 3, 3]) == 1.0
    assert box_iou([0, 0, 1, 1], [5, 5, 6, 6]) == 0.0


def test_coco_results_adapter_roundtrip(tmp_path):
    rows = [{"image_id": 7, "category_id": 18, "bbox": [10, 20, 30, 40], "score": 0.9},
            {"image_id": 7, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.2},
            {"image_id": 8, "category_id": 18, "bbox": [1, 1, 1, 1], "score": 0.5}]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(rows))
    det = CocoResultsDetector(path, {1: "person", 18: "dog"}, image_ids={"00000/samples/0000.png": 7})
    assert isinstance(det, Detector)
    got = det.detect(np.zeros((4, 4, 3), np.uint8), image_id="00000/samples/0000.png")
    assert [(d.label, d.score, d.box) for d in got] == [("dog", 0.9, (10.0, 20.0, 40.0, 60.0)), ("person", 0.2, (0.0, 0.0, 5.0, 5.0))]
    assert det.detect(None, image_id=99) == []
    out = write_coco_results(tmp_path / "again.json", {7: got}, {"person": 1, "dog": 18})
    again = CocoResultsDetector(out, {1: "person", 18: "dog"}).detect(None, image_id=7)
    assert [d.box for d in again] == [d.box for d in got]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MalformedFile, match="not JSON"):
        CocoResultsDetector(tmp_path / "bad.json", {1: "person"})
    with pytest.raises(MalformedFile, match="entry 0"):
        CocoResultsDetector([{"image_id": 1}], {1: "person"})
    with pytest.raises(ConfigError, match="category_id"):
        CocoResultsDetector([{"image_id": 1, "category_id": 5, "bbox": [0, 0, 1, 1], "score": 1}], {1: "person"})
    with pytest.raises(MalformedFile, match="no such"):
        CocoResultsDetector(tmp_path / "missing.json", {1: "person"})


def test_proposals_find_each_object_with_its_mask():
    a = ShapeSpec("circle", "red", "medium", 0.25, 0.3)
    b = ShapeSpec("square", "blue", "medium", 0.72, 0.7)
    img = _render(a, b)
    regions = propose_regions(img)
    assert len(regions) == 2
    for spec in (a, b):
        px, py = spec.cx * 32, spec.cy * 32
        assert sum(r.box[0] <= px <= r.box[2] + 1 and r.box[1] <= py <= r.box[3] + 1 for r in regions) == 1
    assert propose_regions(_render()) == []  # background only


def test_refined_masks_keep_a_thin_shape_outline():
    """The 3x3 median filter fills a small cross's concave corners (arms 2.5 px wide at 32 px) and cuts its tips, so its
    mask is an octagon; a refined mask is the cross as drawn, on the same components (noise included)."""
    img = _render(ShapeSpec("cross", "orange", "small", 0.5, 0.5))
    drawn = np.abs(img / 255.0 - img[0, 0] / 255.0).max(axis=-1) > 0.12
    (plain,) = propose_regions(img)
    (fine,) = propose_regions(img, refine=True)
    assert (plain.mask & ~drawn).sum() >= 4 and (drawn & ~plain.mask).sum() >= 4  # corners filled, tips cut
    assert np.array_equal(fine.mask, drawn)
    ys, xs = np.nonzero(drawn)
    assert fine.box == (xs.min(), ys.min(), xs.max(), ys.max())
    det = ShapesDetector(DetectorConfig(refine_mask=True, width=8))
    assert np.array_equal(det.propose(img)[0].mask, fine.mask)
    scene = degrade(_render(ShapeSpec("cross", "red", "small", 0.3, 0.3), ShapeSpec("ring", "blue", "medium", 0.7, 0.7)), "noise:0.05", seed=0)
    assert [r.mask.sum() > 0 for r in propose_regions(scene, refine=True)] == [True] * len(propose_regions(scene)) == [True, True]


def test_masked_crop_colour_core_ignores_a_dim_rim():
    """A refined mask holds a small square's anti-aliased rim (20 dim pixels around 16 solid ones): the median of the
    whole mask is a dimmed colour, nearer another palette entry; ``core`` keeps the solid pixels."""
    whole, core = MaskedCropColour(), MaskedCropColour(core=0.5)
    wrong = 0
    for colour in COLOURS:
        img = _render(ShapeSpec("square", colour, "small", 0.5, 0.5))
        (r,) = propose_regions(img, refine=True)
        d = Detection("square", 1.0, r.box, r.mask)
        wrong += whole.classify(img, [d]) != [colour]
        assert core.classify(img, [d]) == [colour]
    assert wrong >= 3
    with pytest.raises(ConfigError, match="core"):
        MaskedCropColour(core=1.0)


def test_a_noisy_canvas_is_clutter_not_an_object():
    """A generator's noisy canvas reads as one component over the whole image; max_area drops it, real objects stay."""
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)), size=32, mode="nearest")
    canvas = (smooth[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    canvas[0], canvas[-1], canvas[:, 0], canvas[:, -1] = 25, 25, 25, 25  # a background border, as in a half-trained sample
    big = propose_regions(canvas)
    assert len(big) >= 1 and big[0].mask.mean() > 0.5  # the canvas is one huge component
    assert all(r.mask.mean() <= 0.5 for r in propose_regions(canvas, max_area=0.5))
    scene = _render(ShapeSpec("circle", "red", "large", 0.3, 0.3), ShapeSpec("square", "blue", "large", 0.72, 0.72))
    assert len(propose_regions(scene, max_area=0.5)) == len(propose_regions(scene)) == 2  # the largest shapes are far below half the image
    cfg = DetectorConfig(scenes=30, steps=2, batch=16, width=8, crop=16, min_score=0.0)
    torch.manual_seed(0)
    loose, strict = ShapesDetector(cfg), ShapesDetector(DetectorConfig(**{**cfg.__dict__, "max_area": 0.5}))
    strict.net.load_state_dict(loose.net.state_dict())
    assert loose.detect(canvas) and not any(d.mask.mean() > 0.5 for d in strict.detect(canvas))
    with pytest.raises(ConfigError, match="max_area"):
        DetectorConfig(max_area=0.001)


def test_masked_crop_colour_is_exact_on_renders():
    clf = MaskedCropColour()
    for colour in COLOURS:
        img = _render(ShapeSpec("diamond", colour, "large", 0.5, 0.5))
        (r,) = propose_regions(img)
        with_mask = Detection("diamond", 1.0, r.box, r.mask)
        without = Detection("diamond", 1.0, r.box)
        assert clf.classify(img, [with_mask, without]) == [colour, colour]
    with pytest.raises(ShapeError, match="mask"):
        clf.classify(img, [Detection("diamond", 1.0, r.box, np.ones((3, 3), bool))])
    with pytest.raises(ShapeError, match="palette"):
        MaskedCropColour({"red": (1, 0)})


def _tiny_clip(seed: int = 0):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(seed)
    cfg = CLIPConfig(text_config=dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      max_position_embeddings=32, bos_token_id=1, eos_token_id=2, pad_token_id=0),
                     vision_config=dict(image_size=16, patch_size=8, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2), projection_dim=8)
    return CLIPModel(cfg).eval()


def _word_tokenizer(texts, padding=True, return_tensors="pt"):
    """A stand-in for CLIPTokenizer: <bos> hashed words <eos>, padded with 0."""
    ids = [[1] + [3 + (sum(map(ord, w)) % 61) for w in t.replace("-", " - ").split()] + [2] for t in texts]
    n = max(map(len, ids))
    return {"input_ids": torch.tensor([i + [0] * (n - len(i)) for i in ids]),
            "attention_mask": torch.tensor([[1] * len(i) + [0] * (n - len(i)) for i in ids])}


def test_geneval_crop_pastes_on_999_and_cuts_the_box():
    img = _render(ShapeSpec("circle", "red", "large", 0.5, 0.5))
    (r,) = propose_regions(img)
    crop = np.asarray(geneval_crop(img, Detection("circle", 1.0, r.box, r.mask)))
    x1, y1, x2, y2 = r.box
    assert crop.shape[:2] == (y2 - y1, x2 - x1)  # PIL crop: right/lower edges exclusive
    assert (crop[0, 0] == 153).all()  # corner of the box lies outside the circle: #999
    assert tuple(crop[crop.shape[0] // 2, crop.shape[1] // 2]) == tuple(img[(y1 + y2) // 2 + (y2 - y1) % 2, (x1 + x2) // 2 + (x2 - x1) % 2])


def test_clip_zero_shot_colour_follows_geneval_on_a_tiny_random_clip():
    model = _tiny_clip()
    clf = ClipZeroShotColour(model, _word_tokenizer, colours=("red", "blue", "green"))
    w = clf.classifier("circle")
    assert w.shape == (8, 3) and torch.allclose(w.norm(dim=0), torch.ones(3), atol=1e-5)
    # by hand: mean of the three normalised template embeddings, normalised again
    texts = [t.format(c="blue", cls="circle") for t in GENEVAL_TEMPLATES]
    assert texts == ["a photo of a blue circle", "a photo of a blue-colored circle", "a photo of a blue object"]
    with torch.no_grad():
        e = model.get_text_features(**_word_tokenizer(texts)).pooler_output
    e = e / e.norm(dim=-1, keepdim=True)
    assert torch.allclose(w[:, 1], e.mean(0) / e.mean(0).norm(), atol=1e-5)
    img = _render(ShapeSpec("circle", "red", "medium", 0.3, 0.3), ShapeSpec("circle", "blue", "medium", 0.7, 0.7))
    dets = [Detection("circle", 1.0, r.box, r.mask) for r in propose_regions(img)]
    logits = clf.logits(img, dets, "circle")
    assert logits.shape == (2, 3) and torch.isfinite(logits).all() and logits.abs().max() <= 100.0 + 1e-3
    assert all(c in ("red", "blue", "green") for c in clf.classify(img, dets, "circle"))
    with pytest.raises(ConfigError, match="templates"):
        ClipZeroShotColour(model, _word_tokenizer, templates=("no slot",))


def test_clip_zero_shot_colour_picks_the_planted_colour():
    """A CLIP whose image and text towers are wired to agree on colour words must name each crop's colour."""
    model = _tiny_clip(1)
    clf = ClipZeroShotColour(model, _word_tokenizer, colours=("red", "blue"), templates=("{c}",))
    red = _word_tokenizer(["red"])["input_ids"][0, 1].item()
    blue = _word_tokenizer(["blue"])["input_ids"][0, 1].item()

    class Wired(torch.nn.Module):  # text: one-hot on the colour token; image: mean red vs blue channel
        def __init__(self):
            super().__init__()
            self.config = model.config
            self.p = torch.nn.Parameter(torch.zeros(1))

        def get_text_features(self, input_ids, attention_mask=None):
            return torch.stack([(input_ids == red).any(1).float(), (input_ids == blue).any(1).float()], 1) + 1e-3

        def get_image_features(self, pixel_values):
            m = pixel_values.mean(dim=(2, 3))
            return torch.stack([m[:, 0] - m[:, 2], m[:, 2] - m[:, 0]], 1)

    clf.model = Wired()
    img = _render(ShapeSpec("square", "red", "medium", 0.3, 0.3), ShapeSpec("square", "blue", "medium", 0.7, 0.7))
    regions = propose_regions(img)
    dets = [Detection("square", 1.0, r.box, r.mask) for r in regions]
    truth = ["red" if img[int(r.box[1] + r.box[3]) // 2, int(r.box[0] + r.box[2]) // 2, 0] > 128 else "blue" for r in regions]
    assert clf.classify(img, dets, "square") == truth


class _StubDetector:
    def __init__(self, dets):
        self.dets = dets

    def detect(self, image, image_id=None):
        return self.dets


def test_read_scene_keeps_the_top_class_per_region_and_names_colours():
    a, b = ShapeSpec("circle", "red", "medium", 0.25, 0.3), ShapeSpec("square", "blue", "medium", 0.72, 0.7)
    img = _render(a, b)
    ra, rb = sorted(propose_regions(img), key=lambda r: r.box[0])
    dets = [Detection("circle", 0.9, ra.box, ra.mask), Detection("ring", 0.1, ra.box, ra.mask),
            Detection("square", 0.6, rb.box, rb.mask), Detection("diamond", 0.35, rb.box, rb.mask)]
    objs = read_scene(img, _StubDetector(dets))
    assert [(o.label, o.colour) for o in objs] == [("circle", "red"), ("square", "blue")]
    assert abs(objs[0].cx - 0.25) < 0.05 and abs(objs[1].cy - 0.7) < 0.05
    assert scene_matches(objs, [a, b]) and not scene_matches(objs[:1], [a, b])


def test_bootstrap_helpers():
    x = np.r_[np.ones(30), np.zeros(10)]
    m, lo, hi = bootstrap_ci(x)
    assert m == 0.75 and lo < 0.75 < hi and 0.55 < lo and hi < 0.9
    rng = np.random.default_rng(0)
    base = rng.random(60)
    planted = paired_bootstrap(base + 0.2 + 0.05 * rng.standard_normal(60), base, confidence=0.9)
    assert planted.outcome.value == "holds" and planted.confidence == 0.9
    control = paired_bootstrap(base[rng.permutation(60)], base)
    assert control.outcome.value != "holds"
    with pytest.raises(ConfigError, match="same units"):
        paired_bootstrap(base, base[:10])
    with pytest.raises(NonFiniteError):
        bootstrap_ci([1.0, float("nan")])
    assert resample_share(np.arange(50), lambda s: s.mean() > -1) == 1.0
    assert resample_share(np.arange(50), lambda s: s.mean() > 1e9) == 0.0


def test_degradations_are_seeded_and_typed():
    img = _render(ShapeSpec("ring", "green", "large", 0.5, 0.5))
    assert np.array_equal(degrade(img, "noise:0.05", seed=3), degrade(img, "noise:0.05", seed=3))
    assert not np.array_equal(degrade(img, "noise:0.05", seed=3), img)
    assert degrade(img, "jpeg:50").shape == img.shape and degrade(img, "blur").shape == img.shape
    assert np.array_equal(degrade(img, "clean"), img)
    with pytest.raises(ConfigError, match="degradation"):
        degrade(img, "sharpen")
    with pytest.raises(ConfigError):
        degrade(img, "noise:abc")


def test_shapes_detector_trains_caches_and_finds_a_clean_object(tmp_path):
    cfg = DetectorConfig(scenes=30, steps=8, batch=32, width=8, crop=16)
    ckpt = tmp_path / "det.pt"
    det = ShapesDetector.train(cfg, checkpoint=ckpt, eval_scenes=5)
    assert ckpt.exists() and set(det.held_out) >= {"object_accuracy", "scene_count_exact"}
    again = ShapesDetector.train(cfg, checkpoint=ckpt)  # cached: loaded, not retrained
    for p, q in zip(det.net.parameters(), again.net.parameters()):
        assert torch.equal(p, q)
    img = _render(ShapeSpec("circle", "red", "large", 0.5, 0.5))
    dets = det.detect(img)
    assert dets and all(d.mask is not None and d.mask.shape == (32, 32) for d in dets)
    assert sum(d.score for d in dets) <= 1.0 + 1e-5  # class hypotheses of one region share its probability mass
    ckpt.write_bytes(b"garbage")
    with pytest.raises(MalformedFile, match="detector checkpoint"):
        ShapesDetector.load(ckpt)


@pytest.mark.slow
def test_shapes_detector_held_out_accuracy_is_high():
    det = ShapesDetector.train(DetectorConfig(), eval_scenes=200)
    assert det.held_out["object_accuracy"] > 0.75
