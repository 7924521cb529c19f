"""Study ``cups``: scene-centric unsupervised panoptic segmentation from stereo video, on synthetic scenes.

CUPS (arXiv 2504.01955). Data: :func:`reprolab.data.scenes.make_stereo_video` (64 x 128 stereo pairs at
t and t+1, ego-motion, spheres and boxes as things, about half of them moving; exact depth, flow,
classes, instances, moving flags). No video data exists offline; the scenes are ours.

Arms (pseudo-labels on the training scenes, all on the same semantic clusters):
- ``cups``: the pipeline on OpenCV cues (SGBM disparity both ways, DIS flow both ways on 2x upsampled images);
- ``oracle``: the same pipeline on the exact disparity and flow (an upper bound of the cues);
- ``u2seg``: the object-centric peer, MaskCut instances + k-means thing classes on instance codes;
- ``no_motion``: semantics + connected components of CUPS's thing clusters (a control without motion).
Networks (per seed): TinyPanopticNet on ``cups`` labels (DropLoss, copy-paste), the same after
self-training, on ``cups`` labels without DropLoss, on ``u2seg`` labels (same trainer).
All PQ numbers use the official evaluation (Hungarian cluster-to-class matching, things and stuff apart,
then PQ as torchmetrics computes it) over the named set.

Rules (fixed before the first full run; 95% intervals from ``reprolab.stats``; margin 0):
(a) pseudo_labels: PQ of ``cups`` pseudo-labels minus PQ of ``u2seg`` pseudo-labels over the training
    scenes (paired bootstrap of the dataset PQ, unit = training scenes), greater. Precondition: the
    cups pipeline produced at least one instance. Oracle and no-motion arms reported beside.
(b) network_pq: val PQ of the net trained on ``cups`` labels minus the net on ``u2seg`` labels, per-image
    counts summed over seeds (paired bootstrap over val images), greater (paper +9.4 on Cityscapes).
    Precondition: both nets output at least one thing segment.
(c) droploss_static: recall of static things (a predicted thing segment with IoU > 0.5), with minus
    without DropLoss, per static val object averaged over seeds (paired, unit = static objects,
    t interval below 20 units, bootstrap above), greater. Thing PQ beside. Preconditions: at least 5
    static objects; DropLoss silenced some unmatched queries.
(d) self_training: val PQ after minus before self-training (paired bootstrap over val images), greater.
    Precondition: the teacher produced instance labels (mean instances per image > 0).
(e) depth_fusion: semantic mIoU of depth-guided fusion minus the better (on the whole set) of low-only and
    slide-only, on the training scenes (paired bootstrap over images), greater. Precondition: fusion
    changed at least one pixel against both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ... import stats
from ...data.scenes import STEREO_STUFF, STEREO_THINGS, StereoVideoConfig, make_stereo_video
from ...runtime import torch_threads
from ...study import Claim, Judgement, Metrics, Paper, RunDir, Scale, Study, register
from .cues import CueConfig, stereo_cues
from .labels import majority_merge, thing_stuff_split
from .motion import MotionConfig
from .network import TrainConfig, predict_panoptic, self_train, train_panoptic
from .panoptic import PQCounts, evaluate_clusters, match_clusters, confusion, miou, miou_rows
from .pipeline import PseudoLabelConfig, add_component_instances, estimated_depth, fused_semantics, pseudo_label_scene, \
    u2seg_thing_classes
from .semantics import ClusterSemantics, SemanticConfig, random_encoder

PAPER = {"cityscapes": (27.8, 18.4), "kitti": (25.5, 20.6), "bdd": (19.9, 15.8), "muses": (24.4, 20.3), "waymo": (26.4, 19.8),
         "mots": (67.8, 50.7)}
PQ_ARMS = ("cups", "oracle", "u2seg", "no_motion")
NETS = ("cups", "cups_self", "cups_no_drop", "u2seg")
IOU_HIT = 0.5
MIN_STATIC = 5


@dataclass(frozen=True)
class CupsConfig:
    n_train: int  # training scenes (pseudo-labels)
    n_val: int  # validation scenes (network evaluation)
    seeds: tuple[int, ...]  # network seeds
    steps: int  # training steps per network
    self_steps: int  # self-training steps
    batch: int = 8
    k: int = 8  # semantic clusters (over 4 classes; official 27 over 27)
    k_thing: int = 4  # U2Seg thing clusters
    fit_images: int = 32  # images the PCA code and k-means probe are fitted on
    motion_runs: int = 8  # SF2SE3 runs (official 8)
    width: int = 32  # network width
    scene_seed: int = 0
    encoder: str = "efficientnet"  # "efficientnet" (EfficientNet-Lite0, offline) or "random" (smoke only: no weights, seconds)


def pseudo_label_config(runs: int = 8) -> PseudoLabelConfig:
    """The study's pipeline settings: the official filters scaled from Cityscapes (2048 px wide, metric 5.5-70 m)
    to 64 x 128 px and 3-20 m; inlier threshold 2 px and background gain 2 (chosen on 12 calibration scenes of
    another seed, before the full run: at 1 px a moving object splits into several motions under OpenCV's cues);
    DIS flow on 2x upsampled images."""
    motion = MotionConfig(runs=runs, depth_min=1.0, depth_max=40.0, min_pixels=16, min_area=0.1, border=2, inlier_px=2.0,
                          min_gain=2.0)
    return PseudoLabelConfig(motion=motion, cues=CueConfig(flow="dis", flow_upsample=2))


def _pq(rows: np.ndarray) -> float:
    return PQCounts.from_rows(rows).pq()


def _pq_things(rows: np.ndarray) -> float:
    return PQCounts.from_rows(rows).pq(STEREO_THINGS)


def _miou(rows: np.ndarray) -> float:
    return miou(rows)


def _rows(m: Metrics, key: str) -> np.ndarray:
    return np.asarray(m[key], dtype=np.float64)


def _ival(c: stats.Comparison, scale: float = 100.0) -> str:
    return f"{scale * c.effect:+.1f} [{scale * c.low:+.1f}, {scale * c.high:+.1f}] over {c.n} {c.unit}"


# ----------------------------------------------------------------------------- the rules
def judge_pseudo_labels(m: Metrics) -> Judgement:
    a, b = _rows(m, "pl_rows_cups"), _rows(m, "pl_rows_u2seg")
    c = stats.compare_statistic(a, b, _pq, unit="training scenes", direction="greater", margin=0.0,
                                label="pseudo-label PQ: CUPS vs U2Seg-style")
    extra = ", ".join(f"{arm} {100 * _pq(_rows(m, f'pl_rows_{arm}')):.1f}" for arm in ("oracle", "no_motion") if f"pl_rows_{arm}" in m)
    ours = (f"pseudo-label PQ CUPS {100 * _pq(a):.1f} vs U2Seg-style {100 * _pq(b):.1f} ({extra}; paper's networks on "
            f"Cityscapes 27.8 vs 18.4): {_ival(c)}")
    return Judgement.from_headline(ours, c, preconditions={"the CUPS pipeline produced instances": m["pl_instances_cups"] > 0})


def judge_network_pq(m: Metrics) -> Judgement:
    if "net_rows_cups" not in m:
        return Judgement.not_run("no networks at this scale")
    a, b = _rows(m, "net_rows_cups"), _rows(m, "net_rows_u2seg")
    c = stats.compare_statistic(a, b, _pq, unit="val images", direction="greater", margin=0.0,
                                label="val PQ: net on CUPS labels vs net on U2Seg-style labels")
    ours = (f"val PQ {100 * _pq(a):.1f} (CUPS labels) vs {100 * _pq(b):.1f} (U2Seg-style labels) over {len(m['seeds'])} seeds "
            f"(paper Cityscapes 27.8 vs 18.4, +9.4): {_ival(c)}")
    pre = {"the net on CUPS labels output thing segments": m["net_things_cups"] > 0,
           "the net on U2Seg-style labels output thing segments": m["net_things_u2seg"] > 0}
    return Judgement.from_headline(ours, c, preconditions=pre)


def judge_droploss_static(m: Metrics) -> Judgement:
    if "static_hit_cups" not in m:
        return Judgement.not_run("no networks at this scale")
    a, b = np.asarray(m["static_hit_cups"], float), np.asarray(m["static_hit_cups_no_drop"], float)
    pre = {f"at least {MIN_STATIC} static objects in the val scenes ({len(a)})": len(a) >= MIN_STATIC,
           f"DropLoss silenced unmatched queries (share {m['dropped_share']:.2f})": m["dropped_share"] > 0}
    if len(a) < 2:
        return Judgement.not_testable("too few static objects", pre)
    c = stats.compare_paired(a, b, unit="static objects", direction="greater", margin=0.0, unit_range=1.0,
                             label="static-thing recall: with vs without DropLoss")
    ours = (f"static-thing recall {100 * a.mean():.1f}% with DropLoss vs {100 * b.mean():.1f}% without "
            f"(moving {100 * np.mean(m['moving_hit_cups']):.1f}% vs {100 * np.mean(m['moving_hit_cups_no_drop']):.1f}%; thing PQ "
            f"{100 * _pq_things(_rows(m, 'net_rows_cups')):.1f} vs {100 * _pq_things(_rows(m, 'net_rows_cups_no_drop')):.1f}): "
            f"{_ival(c)}")
    return Judgement.from_headline(ours, c, preconditions=pre)


def judge_self_training(m: Metrics) -> Judgement:
    if "net_rows_cups_self" not in m:
        return Judgement.not_run("no networks at this scale")
    a, b = _rows(m, "net_rows_cups_self"), _rows(m, "net_rows_cups")
    c = stats.compare_statistic(a, b, _pq, unit="val images", direction="greater", margin=0.0,
                                label="val PQ: after vs before self-training")
    ours = f"val PQ {100 * _pq(a):.1f} after vs {100 * _pq(b):.1f} before self-training: {_ival(c)}"
    return Judgement.from_headline(ours, c, preconditions={
        f"the teacher labelled instances ({m['self_instances']:.2f} per image)": m["self_instances"] > 0})


def judge_depth_fusion(m: Metrics) -> Judgement:
    fused, low, slide = _rows(m, "sem_rows_depth"), _rows(m, "sem_rows_low"), _rows(m, "sem_rows_slide")
    better, name = (low, "low-only") if _miou(low) >= _miou(slide) else (slide, "slide-only")
    c = stats.compare_statistic(fused, better, _miou, unit="training scenes", direction="greater", margin=0.0,
                                label=f"semantic mIoU: depth-guided fusion vs {name}")
    ours = (f"mIoU depth-guided {100 * _miou(fused):.1f} vs low-only {100 * _miou(low):.1f}, slide-only {100 * _miou(slide):.1f}: "
            f"{_ival(c)}")
    return Judgement.from_headline(ours, c, preconditions={"fusion changed pixels against both views": m["fusion_changed"] > 0})


# ----------------------------------------------------------------------------- helpers
def object_hits(pred_inst: np.ndarray, pred_cat: np.ndarray, gt_inst: np.ndarray, things) -> dict[int, bool]:
    """Per GT instance id: is there a predicted thing segment with IoU > 0.5 (class-agnostic)?"""
    segs = [(pred_inst == k) for k in np.unique(pred_inst) if k != 0 and np.isin(pred_cat[pred_inst == k][0], list(things))]
    out = {}
    for g in np.unique(gt_inst):
        if g == 0:
            continue
        gm = gt_inst == g
        out[int(g)] = any((s & gm).sum() / (s | gm).sum() > IOU_HIT for s in segs)
    return out


def _scene(video, i: int) -> dict[str, np.ndarray]:
    return {k: getattr(video, k)[i] for k in ("left0", "right0", "left1", "right1", "depth0", "disparity0", "disparity1", "flow",
                                             "flow_valid")}


@register
class CupsStudy(Study):
    name = "cups"
    paper = Paper("Scene-Centric Unsupervised Panoptic Segmentation", arxiv="2504.01955", code="https://github.com/visinf/cups")
    claims = [
        Claim("pseudo_labels", "Motion- and depth-derived panoptic pseudo-labels beat object-centric (U2Seg-style) ones on scene-centric data.",
              "Table 1: PQ CUPS vs U2Seg, Cityscapes 27.8 vs 18.4 (KITTI 25.5/20.6, BDD 19.9/15.8, MUSES 24.4/20.3, Waymo 26.4/19.8, MOTS 67.8/50.7)",
              "unit: training scenes. Dataset PQ of cups pseudo-labels minus u2seg-style pseudo-labels (official matching), "
              "paired bootstrap of the statistic, greater, margin 0. Not testable if the cups pipeline found no instance",
              judge_pseudo_labels),
        Claim("network_pq", "A panoptic network trained on CUPS pseudo-labels beats the same network trained on U2Seg-style labels.",
              "Table 1: 27.8 vs 18.4 PQ on Cityscapes (+9.4)",
              "unit: val images (counts summed over 3 seeds). val PQ(net on cups) - val PQ(net on u2seg), paired bootstrap, "
              "greater, margin 0. Not testable unless both nets output thing segments", judge_network_pq),
        Claim("droploss_static", "DropLoss lets the network find static objects its motion pseudo-labels never showed it.",
              "Sec. 3.3 and ablations: DropLoss (tau 0.4) avoids pushing unlabelled regions to background; adds PQ",
              "unit: static val objects. Recall (IoU > 0.5, class-agnostic) with minus without DropLoss, averaged over seeds, "
              "paired, greater, margin 0. Not testable with < 5 static objects or if DropLoss never dropped", judge_droploss_static),
        Claim("self_training", "Self-training with an EMA teacher improves PQ.",
              "Ablation (paper): self-training adds PQ (no number in the digest)",
              "unit: val images. val PQ after minus before self-training, paired bootstrap, greater, margin 0. Not testable if the "
              "teacher produced no instance labels", judge_self_training),
        Claim("depth_fusion", "Depth-guided fusion of the low-resolution and sliding-window semantics beats either alone.",
              "Ablation (paper): depth guidance adds PQ (no number in the digest)",
              "unit: training scenes. Semantic mIoU (official matching) of depth-guided fusion minus the better of low-only "
              "and slide-only, paired bootstrap, greater, margin 0. Not testable if fusion changed no pixel", judge_depth_fusion),
    ]
    scales = {
        Scale.SMOKE: CupsConfig(n_train=4, n_val=2, seeds=(0,), steps=1, self_steps=1, batch=2, fit_images=4, motion_runs=1,
                                width=8, encoder="random"),
        Scale.QUICK: CupsConfig(n_train=40, n_val=16, seeds=(0,), steps=200, self_steps=40, fit_images=24),
        Scale.FULL: CupsConfig(n_train=160, n_val=48, seeds=(0, 1, 2), steps=600, self_steps=150),
    }

    def run(self, config: CupsConfig, run: RunDir) -> Metrics:
        # one intra-op thread: this study's tensors are small, and on a shared 2-core machine two torch threads
        # spin at every barrier (a training step: 66 ms with one thread, 1.2 s with two, measured)
        with torch_threads(1):
            return self._run(config, run)

    def _run(self, config: CupsConfig, run: RunDir) -> Metrics:
        from ...runtime import track

        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        sv = StereoVideoConfig()
        train = make_stereo_video(config.n_train, sv, seed=config.scene_seed)
        val = make_stereo_video(config.n_val, sv, seed=config.scene_seed + 1000)
        f, B = train.focal, train.baseline
        # motion filtering scaled from Cityscapes (2048 px wide, metric 5.5-70 m) to 128 px and our 3-20 m scenes
        plc = pseudo_label_config(config.motion_runs)
        # semantics
        t = time.perf_counter()
        enc = random_encoder(seed=config.scene_seed) if config.encoder == "random" else None
        sem_model = ClusterSemantics(SemanticConfig(k=config.k, upsample=1 if enc is not None else 2), encoder=enc,
                                     seed=config.scene_seed)
        sem_model.fit(torch.from_numpy(train.left0[: config.fit_images]))
        log_low, log_slide, codes = sem_model.log_probs(torch.from_numpy(train.left0))
        timings["semantics_s"] = time.perf_counter() - t
        # pseudo-labels
        t = time.perf_counter()
        labels: dict[str, list[dict]] = {a: [] for a in PQ_ARMS}
        sem_views: dict[str, list[np.ndarray]] = {"depth": [], "low": [], "slide": []}
        pl_seconds = {a: 0.0 for a in PQ_ARMS}
        for i in track(range(config.n_train), "CUPS pseudo-labels"):
            sc = _scene(train, i)
            tc = time.perf_counter()
            cues = stereo_cues(sc["left0"], sc["right0"], sc["left1"], sc["right1"], plc.cues)
            cue_s = time.perf_counter() - tc
            for arm in PQ_ARMS:
                ta = time.perf_counter()
                labels[arm].append(pseudo_label_scene(sc, log_low[i], log_slide[i], codes[i], f, B, arm, plc, seed=i, cues=cues))
                pl_seconds[arm] += time.perf_counter() - ta + (cue_s if arm in ("cups", "no_motion") else 0.0)
            depth = estimated_depth(cues["disparity0"], f, B)
            for view in sem_views:
                sem_views[view].append(fused_semantics(log_low[i], log_slide[i], depth, view))
        timings["pseudo_labels_s"] = time.perf_counter() - t
        gt_sem, gt_inst = list(train.semantic), list(train.instance)
        splits, final = {}, {}
        for arm in ("cups", "oracle"):
            sem = [x["semantic"] for x in labels[arm]]
            ins = [x["instance"] for x in labels[arm]]
            splits[arm] = thing_stuff_split(sem, ins, config.k)
            final[arm] = (sem, ins)
        sem0 = [x["semantic"] for x in labels["no_motion"]]
        ins0 = [add_component_instances(s, splits["cups"].things) for s in sem0]
        final["no_motion"] = ([majority_merge(s, i) for s, i in zip(sem0, ins0)], ins0)
        splits["no_motion"] = splits["cups"]
        u_sem, u_things, u_stuff = u2seg_thing_classes([x["semantic"] for x in labels["u2seg"]],
                                                       [x["instance"] for x in labels["u2seg"]], list(codes), config.k,
                                                       config.k_thing, seed=config.scene_seed)
        final["u2seg"] = (u_sem, [x["instance"] for x in labels["u2seg"]])
        metrics: Metrics = {"config_note": "synthetic stereo video 64x128; EfficientNet-Lite0 block-10 features; OpenCV cues",
                            "seeds": list(config.seeds), "n_train": config.n_train, "n_val": config.n_val}
        split_ids = {}
        for arm in PQ_ARMS:
            sem, ins = final[arm]
            if arm == "u2seg":
                th, st, ncl = u_things, u_stuff, config.k + config.k_thing
            else:
                th, st, ncl = splits[arm].things, splits[arm].stuff, config.k
            split_ids[arm] = (th, st, ncl)
            ev = evaluate_clusters(sem, ins, gt_sem, gt_inst, ncl, STEREO_THINGS, STEREO_STUFF, th, st)
            metrics[f"pl_rows_{arm}"] = ev.rows.tolist()
            metrics[f"pl_pq_{arm}"] = ev.pq
            metrics[f"pl_instances_{arm}"] = float(np.mean([i.max() for i in ins]))
            metrics[f"pl_seconds_per_image_{arm}"] = pl_seconds[arm] / config.n_train
            hits = [object_hits(i, c, g, STEREO_THINGS) for i, c, g in zip(ins, ev.categories, gt_inst)]
            mov = [h[o["id"]] for h, objs in zip(hits, train.objects) for o in objs if o["id"] in h and o["moving"]]
            sta = [h[o["id"]] for h, objs in zip(hits, train.objects) for o in objs if o["id"] in h and not o["moving"]]
            metrics[f"pl_recall_moving_{arm}"] = float(np.mean(mov)) if mov else 0.0
            metrics[f"pl_recall_static_{arm}"] = float(np.mean(sta)) if sta else 0.0
            metrics[f"pl_things_{arm}"] = list(th)
        # (e) semantic views, official matching without separation
        nc = len(STEREO_THINGS) + len(STEREO_STUFF)
        changed = 0
        for view, maps in sem_views.items():
            conf = sum(confusion(p, g, config.k, nc) for p, g in zip(maps, gt_sem))
            lut = match_clusters(conf)
            metrics[f"sem_rows_{view}"] = [miou_rows(lut[p], g, nc).tolist() for p, g in zip(maps, gt_sem)]
        changed = sum(int(((d != l) & (d != s)).sum()) for d, l, s in zip(sem_views["depth"], sem_views["low"], sem_views["slide"]))
        metrics["fusion_changed"] = changed
        # networks
        if config.steps > 0:
            t = time.perf_counter()
            self._networks(config, train, val, final, split_ids, metrics)
            timings["networks_s"] = time.perf_counter() - t
        metrics["timings"] = {**timings, "total_s": time.perf_counter() - t0}
        self._figures(run, train, final, split_ids, metrics)
        return metrics

    def _networks(self, config: CupsConfig, train, val, final, split_ids, metrics: Metrics) -> None:
        from ...runtime import track

        images = torch.from_numpy(train.left0)
        vimg = torch.from_numpy(val.left0)
        # official proportions at our step counts: copy-paste switches to own predictions after 1/8 of training
        # (1000 of 8000), and the EMA keeps the official horizon (0.999 ** 1500 = ema ** self_steps)
        ema = 0.999 ** (1500 / max(config.self_steps, 1))
        base = TrainConfig(steps=config.steps, batch=config.batch, self_steps=config.self_steps, width=config.width,
                           copy_paste_switch=max(config.steps // 8, 1), ema=min(ema, 0.999))
        rows = {n: np.zeros((config.n_val, 16)) for n in NETS}
        hits = {n: {"static": [], "moving": []} for n in NETS}
        things_out = {n: 0 for n in NETS}
        dropped, self_inst = [], []
        gt_sem, gt_inst = list(val.semantic), list(val.instance)
        for seed in track(config.seeds, "CUPS networks (seeds)"):
            nets = {}
            th, st, _ = split_ids["cups"]
            sem, ins = final["cups"]
            nets["cups"], log = train_panoptic(images, np.stack(sem), np.stack(ins), th, st, base, seed=seed)
            dropped.append(float(np.mean(log["dropped"])))
            nets["cups_self"], slog = self_train(nets["cups"], images, th, st, base, seed=seed)
            self_inst.append(float(np.mean(slog["instances"])) if slog["instances"] else 0.0)
            nets["cups_no_drop"], _ = train_panoptic(images, np.stack(sem), np.stack(ins), th, st, replace(base, drop_loss=False),
                                                     seed=seed)
            uth, ust, _ = split_ids["u2seg"]
            usem, uins = final["u2seg"]
            nets["u2seg"], _ = train_panoptic(images, np.stack(usem), np.stack(uins), uth, ust, base, seed=seed)
            for n, model in nets.items():
                arm = "u2seg" if n == "u2seg" else "cups"
                t_, s_, ncl = split_ids[arm]
                cat, inst, _ = predict_panoptic(model, vimg, t_, s_)
                ev = evaluate_clusters(list(cat), list(inst), gt_sem, gt_inst, ncl, STEREO_THINGS, STEREO_STUFF, t_, s_)
                rows[n] += ev.rows
                things_out[n] += int(sum(i.max() for i in inst))
                h = [object_hits(i, c, g, STEREO_THINGS) for i, c, g in zip(inst, ev.categories, gt_inst)]
                hits[n]["static"].append([hh[o["id"]] for hh, objs in zip(h, val.objects) for o in objs if o["id"] in hh and not o["moving"]])
                hits[n]["moving"].append([hh[o["id"]] for hh, objs in zip(h, val.objects) for o in objs if o["id"] in hh and o["moving"]])
        for n in NETS:
            metrics[f"net_rows_{n}"] = rows[n].tolist()
            metrics[f"net_pq_{n}"] = _pq(rows[n])
            metrics[f"net_things_{n}"] = things_out[n]
            metrics[f"static_hit_{n}"] = np.mean(np.asarray(hits[n]["static"], float), 0).tolist()
            metrics[f"moving_hit_{n}"] = np.mean(np.asarray(hits[n]["moving"], float), 0).tolist()
        metrics["dropped_share"] = float(np.mean(dropped))
        metrics["self_instances"] = float(np.mean(self_inst))

    def _figures(self, run: RunDir, train, final, split_ids, metrics: Metrics) -> None:
        from ...runtime import pyplot

        plt = pyplot()
        n = min(4, len(train))
        cols = ["image", "ground truth", "cups", "oracle", "u2seg", "no_motion"]
        fig, axes = plt.subplots(n, len(cols), figsize=(2.2 * len(cols), 1.3 * n + 0.4), squeeze=False)
        for r in range(n):
            maps = {"ground truth": train.semantic[r] * 50 + train.instance[r] * 7}
            for arm in ("cups", "oracle", "u2seg", "no_motion"):
                sem, ins = final[arm]
                maps[arm] = sem[r] * 17 + ins[r] * 41
            for c, name in enumerate(cols):
                ax = axes[r][c]
                if name == "image":
                    ax.imshow(train.left0[r].transpose(1, 2, 0))
                else:
                    ax.imshow(maps[name] % 256, cmap="tab20", interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(name, fontsize=8)
        run.save_figure(fig, "pseudo_labels", "Training scenes: image, ground truth (class x instance) and each arm's pseudo-label "
                        "(colour = pseudo class x instance)")
        fig, ax = plt.subplots(figsize=(7, 3.2))
        names = [f"labels: {a}" for a in PQ_ARMS] + [f"net: {n}" for n in NETS if f"net_pq_{n}" in metrics]
        vals = [100 * metrics[f"pl_pq_{a}"] for a in PQ_ARMS] + [100 * metrics[f"net_pq_{n}"] for n in NETS if f"net_pq_{n}" in metrics]
        ax.bar(range(len(vals)), vals, color=["C0"] * len(PQ_ARMS) + ["C1"] * (len(vals) - len(PQ_ARMS)))
        ax.axhline(27.8, color="k", ls="--", lw=1, label="paper CUPS (Cityscapes) 27.8")
        ax.axhline(18.4, color="grey", ls=":", lw=1, label="paper U2Seg (Cityscapes) 18.4")
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(names, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("PQ (%)")
        ax.legend(fontsize=7)
        run.save_figure(fig, "pq_per_arm", "PQ of each arm's pseudo-labels (training scenes) and networks (val scenes), with the "
                        "paper's Cityscapes numbers for reference")
        if "static_hit_cups" in metrics:
            fig, ax = plt.subplots(figsize=(4.5, 3))
            for j, kind in enumerate(("static", "moving")):
                for k, n in enumerate(("cups", "cups_no_drop")):
                    v = metrics[f"{kind}_hit_{n}"]
                    ax.bar(j * 3 + k, 100 * (np.mean(v) if v else 0.0), color=f"C{k}", label=(["with DropLoss", "without"][k] if j == 0 else None))
            ax.set_xticks([0.5, 3.5])
            ax.set_xticklabels(["static objects", "moving objects"])
            ax.set_ylabel("recall at IoU > 0.5 (%)")
            ax.legend(fontsize=7)
            run.save_figure(fig, "droploss_recall", "Val object recall of the net on CUPS labels, with and without DropLoss")
