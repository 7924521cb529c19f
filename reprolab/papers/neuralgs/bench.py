"""Benchmark ``neuralgs``: size, held-out PSNR/SSIM, compression and decompression time of NeuralGS
beside its peers (the uncompressed .ply, fp16 + zip, pruning + SH vector quantisation), on the same
fitted procedural 3DGS scene and the same views, in one process.

Times: decompression (bytes -> GaussianScene) of every method is measured interleaved
(``runtime.interleaved_timings``); compression of the peers likewise; NeuralGS compression (minutes
at real step counts) runs once and is reported as one sample (IQR 0). Ratios are to fp16 + zip in
the same phase.

The torch rasterizer's speed (CPU here; the gsplat backend needs CUDA and is untested on this
machine) is measured at three scene sizes on the same 64 px view: a forward render (no gradient)
and a forward + backward pass, reported as Gaussians per second per view (N / seconds per view);
the ratio column of those rows is to the smallest size. Step counts are scaled down as in the study (``quick``: a 1000-Gaussian, 32 px
scene; ``--full``: the study's quick-scale scene and steps).
"""

from __future__ import annotations

import time

import torch

from ...gaussians import look_at, read_ply, render, scene_to_ply_bytes
from ...gaussians.fit import FitConfig, fit_gaussians, initial_scene
from ...gaussians.procedural import procedural_views, surface_points
from ...runtime import interleaved_timings, torch_threads
from ...study import Benchmark, BenchResult, bench_rows, register_bench
from .baselines import fp16_unzip, fp16_zip, prune_sh_vq, prune_sh_vq_decode
from .neuralgs import NeuralGSConfig, compress, decompress, importance_scores
from .study import evaluate


RASTER_SIZES = {True: (1_000, 4_000, 16_000), False: (1_000, 10_000, 100_000)}


def rasterizer_speed(sizes, image: int = 64, repeats: int = 3) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per view of the torch rasterizer (forward; forward + backward) for procedural scenes
    of each size in ``sizes``, all seen by one camera; returns (times, Gaussians per second)."""
    cam = look_at((2.6, 0.4, 1.2), (0.0, 0.0, 0.2), width=image, height=image)
    times: dict[str, list[float]] = {}
    for n in sizes:
        pts, cols = surface_points(n, torch.Generator().manual_seed(1))
        scene = initial_scene(pts, cols, 3)
        params = [t.requires_grad_(True) for t in scene.tensors().values()]

        def forward(scene=scene):
            with torch.no_grad():
                render(scene, cam)

        def backward(scene=scene, params=params):
            render(scene, cam).image.sum().backward()
            for p in params:
                p.grad = None

        times.update(interleaved_timings({f"{n} Gaussians, forward": forward, f"{n} Gaussians, forward + backward": backward}, repeats=repeats, warmup=1))
    rate = {k: float(k.split(" ")[0]) / runtime_median(v) for k, v in times.items()}
    return times, rate


def runtime_median(ts: list[float]) -> float:
    from ...runtime import median_iqr

    return median_iqr(ts)[0]


@register_bench
class NeuralGSBench(Benchmark):
    name = "neuralgs"
    description = "NeuralGS vs .ply, fp16+zip, pruning+SH-VQ: size, held-out PSNR/SSIM, compress/decompress time (ratios to fp16+zip)"

    def run(self, quick: bool) -> BenchResult:
        with torch_threads(1):  # see study.py: the rasterizer's small ops run fastest on one thread here
            return self._run(quick)

    def _run(self, quick: bool) -> BenchResult:
        if quick:
            n, size, n_train, gs_iters, width, clusters, fit_it, ft_it = 1000, 32, 12, 200, 16, 3, 400, 40
        else:
            n, size, n_train, gs_iters, width, clusters, fit_it, ft_it = 2000, 48, 20, 400, 24, 4, 800, 100
        train = procedural_views(n_train, size, heights=(1.0, 1.7, 0.6))
        test = procedural_views(4, size, heights=(1.3, 0.8), phase=0.24)
        pts, cols = surface_points(n, torch.Generator().manual_seed(0))
        scene = fit_gaussians(initial_scene(pts, cols, 3), train.cameras, train.images, FitConfig(iterations=gs_iters), description="bench: fit 3DGS")
        ply = scene_to_ply_bytes(scene)
        scene = read_ply(ply)

        cfg = NeuralGSConfig(num_clusters=clusters, mlp_width=width, fit_iterations=fit_it, finetune_iterations=ft_it)
        t0 = time.perf_counter()
        ngs_file = compress(scene, train.cameras, train.images, cfg, description="bench: NeuralGS")
        ngs_compress_s = time.perf_counter() - t0
        blobs = {"original .ply": ply, "fp16 + zip": fp16_zip(scene), "NeuralGS": ngs_file.to_bytes()}
        scores = importance_scores(scene, train.cameras)
        blobs["pruning + SH VQ"] = prune_sh_vq(scene, scores)

        decoders = {"original .ply": read_ply, "fp16 + zip": fp16_unzip, "pruning + SH VQ": prune_sh_vq_decode, "NeuralGS": decompress}
        reps = 20 if quick else 50
        dec_times = interleaved_timings({k: (lambda k=k: decoders[k](blobs[k])) for k in decoders}, repeats=reps, warmup=2)
        enc_times = interleaved_timings(
            {
                "original .ply": lambda: scene_to_ply_bytes(scene),
                "fp16 + zip": lambda: fp16_zip(scene),
                "pruning + SH VQ": lambda: prune_sh_vq(scene, importance_scores(scene, train.cameras)),
            },
            repeats=3 if quick else 5,
            warmup=1,
        )
        enc_times["NeuralGS"] = [ngs_compress_s]

        quality = {k: evaluate(decoders[k](blobs[k]), test) for k in decoders}
        sizes = RASTER_SIZES[quick]
        r_times, r_rate = rasterizer_speed(sizes, 64, repeats=3)
        base = next(iter(r_times))
        fwd_base = {k: (base if "backward" not in k else f"{sizes[0]} Gaussians, forward + backward") for k in r_times}
        raster_rows = []
        for k in r_times:
            row = bench_rows({k: r_times[k], "base": r_times[fwd_base[k]]}, "base", "torch rasterizer, 64 px view", {k: f"{r_rate[k] / 1e3:.0f}k Gaussians/s per view (CPU, {torch.get_num_threads()} thread)"})[0]
            raster_rows.append(row)
        notes = {
            k: f"{len(blobs[k]) / 1e3:.1f} kB ({len(ply) / len(blobs[k]):.1f}x smaller than .ply), PSNR {quality[k]['psnr']:.2f} dB, SSIM {quality[k]['ssim']:.3f}"
            for k in decoders
        }
        compress_notes = {**notes, "NeuralGS": notes["NeuralGS"] + f"; 1 run ({fit_it} fit + {ft_it} fine-tune steps)"}
        rows = bench_rows(enc_times, "fp16 + zip", "compress", compress_notes) + bench_rows(dec_times, "fp16 + zip", "decompress", notes) + raster_rows
        ng, f16, vq = (len(blobs[k]) for k in ("NeuralGS", "fp16 + zip", "pruning + SH VQ"))
        return BenchResult(
            bench=self.name,
            baseline="fp16 + zip (same phase)",
            rows=rows,
            config={"gaussians": scene.num_gaussians, "image_size": size, "train_views": n_train, "test_views": 4, "3dgs_iterations": gs_iters, "neuralgs": {"clusters": clusters, "width": width, "fit_iterations": fit_it, "finetune_iterations": ft_it}, "decompress_repeats": reps},
            extra={
                "sizes_bytes": {k: len(v) for k, v in blobs.items()},
                "psnr_db": {k: round(q["psnr"], 3) for k, q in quality.items()},
                "size_ratio_fp16zip_over_neuralgs": round(f16 / ng, 3),
                "rasterizer_gaussians_per_s_per_view": {k: round(v) for k, v in r_rate.items()},
                "rasterizer_note": "pure-PyTorch rasterizer on CPU; the gsplat (CUDA) backend is untested here",
                "size_ratio_prunevq_over_neuralgs": round(vq / ng, 3),
                "target": "NeuralGS smaller than both peers with PSNR within 0.5 dB of theirs",
                "target_met": bool(ng < f16 and ng < vq and all(quality["NeuralGS"]["psnr"] >= quality[p]["psnr"] - 0.5 for p in ("fp16 + zip", "pruning + SH VQ"))),
            },
        )
