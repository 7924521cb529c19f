"""CUPS: each pseudo-label step against a hand computation, DropLoss's gradient, PQ parity with torchmetrics,
the stereo-video scenes, the OpenCV front-end and the official file formats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reprolab.data.scenes import STEREO_STUFF, STEREO_THINGS, StereoVideoConfig, make_stereo_video
from reprolab.errors import ConfigError, MalformedFile, NonFiniteError, ReprolabError, ShapeError
from reprolab.papers.cups import (IGNORE, MotionConfig, TinyPanopticNet, TrainConfig, copy_paste, depth_guided_fusion, drop_loss,
                                  evaluate_clusters, fill_holes, majority_merge, match_clusters, matrix_nms, motion_instances,
                                  panoptic_quality, postprocess_proposals, pq_counts, read_pseudo_label, read_split_statistics,
                                  run_consistency, self_training_labels, surface_area, thing_stuff_split, write_pseudo_label,
                                  write_split_statistics)
from reprolab.papers.cups.motion import sample

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def video():
    return make_stereo_video(3, StereoVideoConfig(noise=0.0), seed=4)


# ----------------------------------------------------------------------------- item 3: stereo video scenes
def test_disparity_is_focal_times_baseline_over_depth(video):
    np.testing.assert_allclose(video.disparity0, video.focal * video.baseline / video.depth0, rtol=1e-5)
    np.testing.assert_allclose(video.disparity1, video.focal * video.baseline / video.depth1, rtol=1e-5)
    assert video.focal == pytest.approx(0.5 * 128 / np.tan(np.radians(30)))


def test_right_view_is_the_left_view_shifted_by_the_disparity(video):
    H, W = video.disparity0.shape[1:]
    u, v = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    for i in range(len(video)):
        warped = sample(video.right0[i], u - video.disparity0[i], v)
        ok = (u - video.disparity0[i] > 1) & (np.abs(np.diff(video.depth0[i], axis=1, prepend=0)) < 0.05)
        err = np.abs(warped - video.left0[i]).mean(0)[ok]
        assert np.median(err) < 0.02


def test_warping_by_the_exact_flow_reproduces_the_next_frame_on_visible_static_pixels(video):
    H, W = video.flow.shape[2:]
    u, v = np.meshgrid(np.arange(W, dtype=float), np.arange(H, dtype=float))
    for i in range(len(video)):
        fl = video.flow[i]
        warped = sample(video.left1[i], u + fl[0], v + fl[1])  # frame t+1 pulled back along the flow
        ok = video.flow_valid[i] & ~video.moving[i]
        err = np.abs(warped - video.left0[i]).mean(0)[ok]
        unwarped = np.abs(video.left1[i] - video.left0[i]).mean(0)[ok]
        assert ok.sum() > 1000
        assert np.median(err) < 0.02 and np.median(err) < 0.25 * np.median(unwarped)


def test_scene_maps_are_consistent(video):
    assert set(np.unique(video.semantic)) <= {0, 1, 2, 3}
    assert ((video.instance > 0) == np.isin(video.semantic, STEREO_THINGS)).all()
    for i, objs in enumerate(video.objects):
        for o in objs:
            m = video.instance[i] == o["id"]
            assert (video.moving[i][m] == o["moving"]).all()
    assert any(o["moving"] for objs in video.objects for o in objs)


# ----------------------------------------------------------------------------- item 1: motion instances
def test_motion_instances_find_the_moving_objects_from_exact_cues():
    v = make_stereo_video(4, StereoVideoConfig(noise=0.0, moving_fraction=0.5), seed=1)
    cfg = MotionConfig(depth_min=1.0, depth_max=40.0, min_pixels=16, min_area=0.1, border=2)
    found = static_hits = 0
    for i in range(len(v)):
        d0, d1, fl = v.disparity0[i], v.disparity1[i], v.flow[i]
        inst = motion_instances(d0, d0, d1, d1, fl, -fl, v.focal, v.baseline, cfg, valid=v.flow_valid[i], noise=0.0)
        for o in v.objects[i]:
            g = v.instance[i] == o["id"]
            best = max([((inst == k) & g).sum() / ((inst == k) | g).sum() for k in range(1, inst.max() + 1)], default=0.0)
            if o["moving"] and g.sum() > 100:
                found += best > 0.5
            if not o["moving"]:
                static_hits += best > 0.5
    assert found >= 2 and static_hits == 0


def test_run_consistency_is_the_mean_run_count_over_the_mask():
    a = np.zeros((4, 4), bool)
    a[:2, :2] = True
    b = np.zeros((4, 4), bool)
    b[:2, :1] = True
    # pixels of a: 2 covered twice, 2 once -> mean 1.5, over runs=2 -> 0.75; b: both covered twice -> 1.0
    np.testing.assert_allclose(run_consistency([a, b], runs=2), [0.75, 1.0])


def test_matrix_nms_hand_computed():
    m = np.zeros((3, 4, 4), bool)
    m[0, :2, :2] = m[1, :2, :2] = True  # duplicates, IoU 1
    m[2, 2:, 2:] = True  # disjoint
    keep, scores = matrix_nms(m, np.array([0.9, 0.85, 0.8]), sigma=2.0, threshold=0.6)
    assert sorted(keep.tolist()) == [0, 2]
    # the duplicate's score would be 0.85 * exp(-2 * 1) = 0.115 < 0.6; the disjoint one keeps 0.8
    assert scores.tolist() == pytest.approx([0.9, 0.8])
    m2 = np.zeros((2, 2, 4), bool)
    m2[0, :, :2] = True
    m2[1, :, 1:3] = True  # IoU 1/3
    _, s2 = matrix_nms(m2, np.array([1.0, 0.9]), threshold=0.0)
    assert s2[1] == pytest.approx(0.9 * np.exp(-2.0 / 9.0))


def test_fill_holes_components_small_objects_and_border():
    ring = np.zeros((12, 16), bool)
    ring[2:7, 4:9] = True
    ring[4, 6] = False
    assert fill_holes(ring)[4, 6] and fill_holes(ring).sum() == 25
    pts = np.dstack(list(np.meshgrid(np.arange(16.0), np.arange(12.0))) + [np.full((12, 16), 5.0)])  # 1 unit per pixel, flat
    two = np.zeros((1, 12, 16), bool)
    two[0, 2:7, 4:9] = True
    two[0, 8:12, 10:14] = True  # a second component, 16 px
    two[0, 0:2, 0:2] = True  # 4 px, under min_pixels
    out = postprocess_proposals(two, pts, MotionConfig(min_pixels=10, min_area=0.0, border=0))
    assert out.max() == 2 and (out > 0).sum() == 25 + 16
    out = postprocess_proposals(two, pts, MotionConfig(min_pixels=10, min_area=0.0, border=5))
    assert (out[:, :5] == 0).all() and (out[:, -5:] == 0).all() and out.max() == 2
    out = postprocess_proposals(two, pts, MotionConfig(min_pixels=10, min_area=10.0, border=0))
    assert out.max() == 1  # the 4x4-pixel square spans 3x3 = 9 unit^2 of surface, the 5x5 one 16
    sq = np.zeros((12, 16), bool)
    sq[2:7, 4:9] = True
    assert surface_area(sq, pts) == pytest.approx(16.0)  # 5x5 pixel centres span 4x4


def test_motion_instances_typed_errors():
    d = np.ones((8, 8))
    f = np.zeros((2, 8, 8))
    with pytest.raises(ShapeError):
        motion_instances(d, d, d, d, np.zeros((2, 8, 9)), f, 100.0, 0.5)
    bad = d.copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        motion_instances(bad, d, d, d, f, f, 100.0, 0.5)


# ----------------------------------------------------------------------------- item 1: semantics and labels
def test_depth_guided_fusion_weights():
    low = np.zeros((2, 1, 3))
    slide = np.zeros((2, 1, 3))
    low[0] = 1.0
    slide[1] = 1.0
    depth = np.array([[0.0, 1.0, 3.0]])
    out = depth_guided_fusion(low, slide, depth)
    np.testing.assert_allclose(out[0, 0], [1.0, 0.5, 0.25])  # w = 1 / (d + 1)
    np.testing.assert_allclose(out[1, 0], [0.0, 0.5, 0.75])
    with pytest.raises(ShapeError):
        depth_guided_fusion(low, slide, np.zeros((2, 3)))
    with pytest.raises(NonFiniteError):
        depth_guided_fusion(low, slide, np.array([[0.0, -1.0, 1.0]]))


def test_majority_merge_hand_computed():
    sem = np.array([[0, 1, 1, 2], [0, 3, 3, 3]])
    inst = np.array([[1, 1, 1, 0], [2, 2, 2, 2]])
    out = majority_merge(sem, inst)
    assert out.tolist() == [[1, 1, 1, 2], [3, 3, 3, 3]]  # class 0 never wins inside an instance (official rule)


def test_thing_stuff_split_at_0_08():
    # class c: pixels inside instances / all pixels -> r = [0, 0.5, 1.0, 0.1] -> normalised [0, .3125, .625, .0625]
    inside = np.array([0, 5, 10, 1])
    allpix = np.array([100, 10, 10, 10])
    sp = thing_stuff_split(statistics=(inside, np.zeros(4, int), allpix))
    assert sp.things == (2, 1) and set(sp.stuff) == {0, 3}
    np.testing.assert_allclose(sp.ratio, [0, 0.3125, 0.625, 0.0625], rtol=1e-5)
    sp2 = thing_stuff_split(statistics=(inside, np.zeros(4, int), allpix), threshold=0.05)
    assert sp2.things == (2, 1, 3)


def test_self_training_label_rule():
    masks = np.zeros((3, 2, 4), bool)
    masks[0, :, :2] = True
    masks[1, :, 2:] = True
    masks[2, 0, :] = True
    scores = np.array([0.9, 0.6, 0.75])
    sem = np.zeros((2, 2, 4))
    sem[0] = [[0.8, 0.1, 0.3, 0.9], [0.2, 0.05, 0.0, 0.5]]  # class 0 max 0.9: keep >= 0.45
    sem[1] = [[0.1, 0.3, 0.2, 0.0], [0.4, 0.2, 0.1, 0.05]]  # class 1 max 0.4: keep >= 0.2
    s, i = self_training_labels(masks, scores, sem)
    assert s.tolist() == [[0, 1, 1, 0], [1, 1, IGNORE, 0]]
    assert i.tolist() == [[1, 1, 2, 2], [1, 1, 0, 0]]  # 0.9 first, then 0.75 on the free pixels; 0.6 < 0.7 dropped


# ----------------------------------------------------------------------------- item 1: matching + PQ parity
def _random_panoptic(rng, n, h, w, k):
    gt_c = rng.integers(0, 4, (n, h, w))
    gt_i = rng.integers(0, 3, (n, h, w))
    gt_c[:, : h // 2] = 0  # a stuff band
    pred_k = rng.integers(0, k, (n, h, w))
    pred_i = rng.integers(0, 3, (n, h, w))
    return gt_c, gt_i, pred_k, pred_i


def test_cluster_matching_plus_pq_equals_torchmetrics():
    from torchmetrics.detection import PanopticQuality

    rng = np.random.default_rng(0)
    for trial in range(3):
        gt_c, gt_i, pk, pi = _random_panoptic(rng, 4, 12, 16, 7)
        pk[:, :6] = rng.integers(0, 2, (4, 6, 16))  # clusters 0-1 mostly on the stuff band
        ev = evaluate_clusters(list(pk), list(pi), list(gt_c), list(gt_i), 7, STEREO_THINGS, STEREO_STUFF,
                               thing_clusters=(2, 3, 4), stuff_clusters=(0, 1, 5, 6))
        assert set(ev.assignment[[2, 3, 4]]) <= set(STEREO_THINGS) and set(ev.assignment[[0, 1, 5, 6]]) <= set(STEREO_STUFF)
        metric = PanopticQuality(things=set(STEREO_THINGS), stuffs=set(STEREO_STUFF), allow_unknown_preds_category=True)
        preds = torch.from_numpy(np.stack([np.stack(ev.categories), pi], -1))
        target = torch.from_numpy(np.stack([gt_c, gt_i], -1))
        metric.update(preds, target)
        assert ev.pq == pytest.approx(float(metric.compute()), abs=1e-6)


def test_pq_counts_void_handling_matches_torchmetrics():
    from torchmetrics.detection import PanopticQuality

    rng = np.random.default_rng(1)
    gt_c, gt_i, _, _ = _random_panoptic(rng, 3, 10, 10, 4)
    pc = gt_c.copy()
    pc[rng.random(pc.shape) < 0.3] = -1  # void predictions
    pi = gt_i.copy()
    ours = panoptic_quality(pc, pi, gt_c, gt_i, STEREO_THINGS, STEREO_STUFF)
    metric = PanopticQuality(things=set(STEREO_THINGS), stuffs=set(STEREO_STUFF), allow_unknown_preds_category=True)
    metric.update(torch.from_numpy(np.stack([np.where(pc < 0, 9, pc), pi], -1)), torch.from_numpy(np.stack([gt_c, gt_i], -1)))
    assert ours == pytest.approx(float(metric.compute()), abs=1e-6)
    with pytest.raises(ConfigError):
        pq_counts(pc[0], pi[0], gt_c[0], gt_i[0], {1, 2}, {1})


def test_match_clusters_many_to_one():
    conf = np.array([[10, 0], [0, 8], [3, 1]])  # three clusters, two classes
    assert match_clusters(conf).tolist() == [0, 1, 0]  # Hungarian for two, the surplus to its argmax


# ----------------------------------------------------------------------------- item 2: DropLoss, copy-paste, EMA switches
def test_droploss_removes_the_background_gradient_of_a_planted_unlabelled_object():
    torch.manual_seed(0)
    net = TinyPanopticNet(num_stuff=2, num_thing=1, queries=4, width=8)
    images = torch.rand(1, 3, 16, 32)
    out = net(images)
    # pseudo-label: one object at the left; the planted, unlabelled object at the right is predicted by query 3
    gm = torch.zeros(1, 4, 8, dtype=torch.bool)
    gm[0, :2, :2] = True
    with torch.no_grad():
        out["mask"][0] = -10.0
        out["mask"][0, 0, :2, :2] = 10.0  # query 0 covers the labelled object
        out["mask"][0, 3, 2:, 6:] = 10.0  # query 3 covers the unlabelled object (IoU 0 with the label)
    logits = out["cls"][0].detach().clone().requires_grad_(True)
    from reprolab.papers.cups.network import mask_iou
    import torch.nn.functional as F

    target = torch.tensor([0, 1, 1, 1])  # query 0 matched to the object; the others to no-object (class 1)
    ce = F.cross_entropy(logits, target, reduction="none")
    iou = mask_iou(out["mask"][0].detach() > 0, gm)
    matched = torch.tensor([True, False, False, False])
    drop_loss(ce, iou, 0.4, always_keep=matched).sum().backward()
    assert torch.all(logits.grad[3] == 0) and logits.grad[0].abs().sum() > 0
    logits.grad = None
    F.cross_entropy(logits, target, reduction="none").sum().backward()
    assert logits.grad[3].abs().sum() > 0  # without DropLoss the object is pushed to background


def test_droploss_keeps_proposals_overlapping_a_label():
    losses = torch.tensor([1.0, 2.0, 3.0])
    iou = torch.tensor([[0.5, 0.0], [0.39, 0.41], [0.2, 0.1]])
    assert drop_loss(losses, iou, 0.4).tolist() == [1.0, 2.0, 0.0]
    with pytest.raises(ShapeError):
        drop_loss(losses, torch.zeros(2, 2))


def test_copy_paste_pastes_objects_with_new_ids():
    rng = np.random.default_rng(0)
    img = torch.zeros(2, 3, 8, 8)
    img[1] = 1.0
    sem = torch.zeros(2, 8, 8, dtype=torch.long)
    inst = torch.zeros(2, 8, 8, dtype=torch.long)
    inst[1, 2:4, 2:4] = 1
    sem[1, 2:4, 2:4] = 5
    x, s, i = copy_paste(img, sem, inst, rng, (1, 8))
    assert (x[0][:, 2:4, 2:4] == 1).all() and (s[0][2:4, 2:4] == 5).all() and (i[0][2:4, 2:4] == 1).all()
    assert (img[0] == 0).all()  # inputs untouched
    cfg = TrainConfig()
    assert cfg.copy_paste and cfg.copy_paste_switch == 1000 and cfg.copy_paste_confidence == 0.75
    assert cfg.ema == 0.999 and cfg.drop_loss_tau == 0.4 and cfg.instance_confidence == 0.7 and cfg.semantic_relative == 0.5


def test_training_runs_and_self_training_returns_an_ema_teacher():
    from reprolab.papers.cups import self_train, train_panoptic

    rng = np.random.default_rng(0)
    imgs = torch.rand(4, 3, 16, 32)
    sem = torch.zeros(4, 16, 32, dtype=torch.long)
    inst = torch.zeros(4, 16, 32, dtype=torch.long)
    sem[:, 4:12, 8:16] = 2
    inst[:, 4:12, 8:16] = 1
    cfg = TrainConfig(steps=3, batch=2, width=8, queries=4, copy_paste_switch=2, self_steps=2, ema=0.5)
    model, log = train_panoptic(imgs, sem, inst, (2,), (0,), cfg, seed=0)
    assert len(log["loss"]) == 3 and all(np.isfinite(log["loss"]))
    teacher, slog = self_train(model, imgs, (2,), (0,), cfg, seed=0)
    assert len(slog["loss"]) == 2
    diff = sum(float((a - b).abs().sum()) for a, b in zip(teacher.parameters(), model.parameters()))
    assert diff > 0
    with pytest.raises(ShapeError):
        train_panoptic(imgs, sem[:, :8], inst, (2,), (0,), cfg)


# ----------------------------------------------------------------------------- item 4: files
def test_pseudo_label_files_round_trip(tmp_path):
    sem = np.arange(24).reshape(4, 6) % 7
    inst = (np.arange(24).reshape(4, 6) // 8)
    write_pseudo_label(tmp_path, "frankfurt_000000_000294", sem, inst)
    assert (tmp_path / "frankfurt_000000_000294_semantic.png").exists()
    s, i = read_pseudo_label(tmp_path, "frankfurt_000000_000294")
    assert (s == sem).all() and (i == inst).all()
    split = thing_stuff_split([majority_merge(sem, inst)], [inst], 7)
    p = write_split_statistics(tmp_path, split, subsplit=1)
    assert p.name == "pseudo_classes_split_1.pt"
    back = read_split_statistics(p)
    assert back.things == split.things and back.stuff == split.stuff
    d = torch.load(p, weights_only=True)
    assert set(d) == {"distribution all pixels", "distribution inside object proposals", "distribution per object proposal"}
    (tmp_path / "bad_semantic.png").write_bytes(b"not a png")
    (tmp_path / "bad_instance.png").write_bytes(b"not a png")
    with pytest.raises(MalformedFile):
        read_pseudo_label(tmp_path, "bad")
    with pytest.raises(ReprolabError):
        read_pseudo_label(tmp_path, "missing")
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(MalformedFile):
        read_split_statistics(tmp_path / "x.pt")
    with pytest.raises(ConfigError):
        write_pseudo_label(tmp_path, "big", sem + 300, inst)
    assert not (tmp_path / "big_semantic.png").exists()
