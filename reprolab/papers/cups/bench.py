"""Benchmark ``cups``: the CUPS pseudo-label pipeline vs the U2Seg-style object-centric pipeline, side by side.

On the same synthetic stereo-video scenes (the study's generator, seed 7), with the same fitted semantic
clusters (EfficientNet-Lite0 features; their cost is shared and reported in ``extra``):
- ``cups``: OpenCV cues (SGBM both ways at t and t+1, DIS both ways on 2x upsampled images) + motion instances (8 runs)
  + depth-guided fusion + majority merge;
- ``u2seg``: MaskCut instances on the sliding-window code + slide-only semantics (thing classes by
  k-means over all masks, reported in ``extra``, not timed per image).
Seconds per image are measured round-robin per scene; PQ of each pipeline's labels over the scenes
(official matching) goes in the row notes. Second table: our :func:`.panoptic.panoptic_quality` against
``torchmetrics.detection.PanopticQuality`` on the CUPS labels (mapped to classes): same value, time ratio.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ...data.scenes import STEREO_STUFF, STEREO_THINGS, StereoVideoConfig, make_stereo_video
from ...runtime import torch_threads
from ...study import Benchmark, BenchResult, BenchRow, bench_rows, register_bench
from .labels import thing_stuff_split
from .panoptic import evaluate_clusters, panoptic_quality
from .pipeline import pseudo_label_scene, u2seg_thing_classes
from .semantics import ClusterSemantics, SemanticConfig
from .study import pseudo_label_config


@register_bench
class CupsBench(Benchmark):
    name = "cups"
    description = "PQ and seconds per image: CUPS pseudo-labels (stereo video) vs U2Seg-style (MaskCut); our PQ vs torchmetrics"

    def run(self, quick: bool) -> BenchResult:
        with torch_threads(1):  # small tensors on shared cores: see the study
            return self._run(quick)

    def _run(self, quick: bool) -> BenchResult:
        from ...runtime import library_versions, machine_info

        n = 8 if quick else 24
        video = make_stereo_video(n, StereoVideoConfig(), seed=7)
        t = time.perf_counter()
        sem = ClusterSemantics(SemanticConfig(k=8)).fit(torch.from_numpy(video.left0[: min(n, 16)]))
        low, slide, codes = sem.log_probs(torch.from_numpy(video.left0))
        semantics_s = (time.perf_counter() - t) / n
        plc = pseudo_label_config()
        times: dict[str, list[float]] = {"u2seg": [], "cups": []}
        out: dict[str, list[dict]] = {"u2seg": [], "cups": []}
        for i in range(n):
            scene = {k: getattr(video, k)[i] for k in ("left0", "right0", "left1", "right1")}
            order = ("cups", "u2seg") if i % 2 else ("u2seg", "cups")
            for arm in order:
                t = time.perf_counter()
                out[arm].append(pseudo_label_scene(scene, low[i], slide[i], codes[i], video.focal, video.baseline, arm, plc, seed=i))
                times[arm].append(time.perf_counter() - t)
        gt_s, gt_i = list(video.semantic), list(video.instance)
        s_c, i_c = [x["semantic"] for x in out["cups"]], [x["instance"] for x in out["cups"]]
        split = thing_stuff_split(s_c, i_c, 8)
        ev_c = evaluate_clusters(s_c, i_c, gt_s, gt_i, 8, STEREO_THINGS, STEREO_STUFF, split.things, split.stuff)
        t = time.perf_counter()
        s_u, th_u, st_u = u2seg_thing_classes([x["semantic"] for x in out["u2seg"]], [x["instance"] for x in out["u2seg"]],
                                              list(codes), 8, 4)
        u2seg_cluster_s = time.perf_counter() - t
        i_u = [x["instance"] for x in out["u2seg"]]
        ev_u = evaluate_clusters(s_u, i_u, gt_s, gt_i, 12, STEREO_THINGS, STEREO_STUFF, th_u, st_u)
        notes = {"cups": f"PQ {100 * ev_c.pq:.1f}", "u2seg": f"PQ {100 * ev_u.pq:.1f}"}
        rows = bench_rows(times, "u2seg", "s per image", notes)
        # our PQ vs torchmetrics on the CUPS labels mapped to classes
        from torchmetrics.detection import PanopticQuality

        cats = np.stack(ev_c.categories)
        inst = np.stack(i_c)
        void = 1 + max(STEREO_THINGS + STEREO_STUFF)
        preds = torch.from_numpy(np.stack([np.where(cats < 0, void, cats), inst], -1))
        target = torch.from_numpy(np.stack([video.semantic, video.instance], -1))
        reps = 3 if quick else 7
        ours_t, tm_t, ours_v, tm_v = [], [], 0.0, 0.0
        for _ in range(reps):
            t = time.perf_counter()
            ours_v = panoptic_quality(cats, inst, video.semantic, video.instance, STEREO_THINGS, STEREO_STUFF)
            ours_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            m = PanopticQuality(things=set(STEREO_THINGS), stuffs=set(STEREO_STUFF), allow_unknown_preds_category=True)
            m.update(preds, target)
            tm_v = float(m.compute())
            tm_t.append(time.perf_counter() - t)
        base = float(np.median(tm_t))
        rows += [BenchRow(f"torchmetrics PanopticQuality ({n} images)", base, float(np.subtract(*np.percentile(tm_t, [75, 25]))), 1.0,
                          f"PQ {100 * tm_v:.4f}"),
                 BenchRow(f"ours panoptic_quality ({n} images)", float(np.median(ours_t)),
                          float(np.subtract(*np.percentile(ours_t, [75, 25]))), float(np.median(ours_t)) / base,
                          f"PQ {100 * ours_v:.4f} (|diff| {abs(ours_v - tm_v):.1e})")]
        return BenchResult(
            bench=self.name, baseline="u2seg (s per image); torchmetrics for the PQ rows",
            rows=rows,
            config={"scenes": n, "size": "64x128", "clusters": 8, "motion_runs": 8, "flow": "dis x2"},
            extra={"pq_cups": ev_c.pq, "pq_u2seg": ev_u.pq, "semantics_seconds_per_image": semantics_s,
                   "u2seg_thing_clustering_seconds": u2seg_cluster_s, "pq_ours": ours_v, "pq_torchmetrics": tm_v,
                   "cups_things": list(split.things)},
            versions=library_versions(), machine=machine_info(),
        )
