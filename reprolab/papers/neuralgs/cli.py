"""``reprolab neuralgs ...``: compress a 3DGS .ply with NeuralGS, decompress it, or write an example.

    reprolab neuralgs example demo/                      # demo/scene.ply + demo/views.npz (procedural)
    reprolab neuralgs compress demo/scene.ply --views demo/views.npz --out demo/scene.ngs
    reprolab neuralgs compress scene/point_cloud.ply --colmap scene/sparse/0 --target-kb 2000
    reprolab neuralgs compress scene.ply --transforms lego/transforms_train.json --max-db-drop 0.5
    reprolab neuralgs decompress demo/scene.ngs --out demo/decoded.ply
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ...runtime import readable_file

app = typer.Typer(help="NeuralGS (arXiv 2503.23162): compress original 3DGS .ply scenes with per-cluster neural fields.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)


def _training_views(views: Optional[Path], colmap: Optional[Path], images: Optional[Path], transforms: Optional[Path], downscale: int):
    from ...errors import ConfigError
    from ...gaussians import load_colmap_views, load_transforms, load_views

    given = [n for n, v in (("--views", views), ("--colmap", colmap), ("--transforms", transforms)) if v is not None]
    if len(given) != 1:
        raise ConfigError("training views", given or "none", "exactly one of --views views.npz, --colmap sparse/0 (with --images), --transforms transforms_train.json")
    if views is not None:
        return load_views(readable_file(views, "views .npz", "pass the .npz of training views (`reprolab.gaussians.save_views` writes one)"))
    if colmap is not None:
        return load_colmap_views(colmap, images if images is not None else colmap.parent.parent / "images", downscale)
    return load_transforms(transforms, downscale=downscale)


@app.command()
def compress(
    ply: Path = typer.Argument(..., help="An original-layout 3DGS .ply (x, y, z, f_dc_*, f_rest_*, opacity, scale_*, rot_*)."),
    views: Optional[Path] = typer.Option(None, "--views", help="Training views: .npz with images (V,H,W,3), viewmats (V,4,4) world-to-camera, Ks (V,3,3)."),
    colmap: Optional[Path] = typer.Option(None, "--colmap", help="Training views from a COLMAP sparse model folder (e.g. scene/sparse/0; .bin or .txt; pinhole cameras)."),
    images: Optional[Path] = typer.Option(None, "--images", help="With --colmap: the images folder (default: <model>/../../images, the 3DGS layout)."),
    transforms: Optional[Path] = typer.Option(None, "--transforms", help="Training views from a NeRF-synthetic transforms_train.json (images beside it, composited over white)."),
    downscale: int = typer.Option(1, "--downscale", help="With --colmap/--transforms: divide the image size by this (3DGS's -r)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default: the .ply's name with .ngs)."),
    target_kb: Optional[float] = typer.Option(None, "--target-kb", help="Size target in kB; clusters and width are chosen to fit it (default: a tenth of the input)."),
    max_db_drop: Optional[float] = typer.Option(None, "--max-db-drop", help="Quality target: the smallest of input/50, /20, /10, /5, /2 whose PSNR drop (every 8th view held out) is at most this many dB."),
    clusters: Optional[int] = typer.Option(None, "--clusters", help="Clusters / MLPs (default: chosen from the target, at most 8; paper: 6-10 objects, 40-80 indoor, 100-140 outdoor)."),
    width: Optional[int] = typer.Option(None, "--width", help="MLP hidden width (default: chosen from the target, at most the paper's 128)."),
    fit_iterations: int = typer.Option(60_000, "--fit-iterations", help="Attribute-fitting steps at most (paper: 60k); --minutes may stop earlier."),
    finetune_iterations: int = typer.Option(25_000, "--finetune-iterations", help="Fine-tuning steps at most (paper: 25k); --minutes may stop earlier."),
    minutes: float = typer.Option(5.0, "--minutes", help="Time budget for fitting + fine-tuning (split over the tries with --max-db-drop); 0 = run every step."),
    fit_batch: int = typer.Option(4096, "--fit-batch", help="Gaussians per cluster per fitting step (0 = all)."),
    prune_ratio: float = typer.Option(0.4, "--prune-ratio", help="Fraction of least important Gaussians removed (paper: 0.4)."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads", help="CPU threads; 1 is fastest for the rasterizer's many small ops on a shared CPU."),
) -> None:
    """Compress a 3DGS scene into one NeuralGS file, never larger than the input, and print its size against the .ply."""
    import shutil

    import torch

    from ...errors import ConfigError
    from ...gaussians import read_ply
    from ...runtime import progress_display
    from .neuralgs import NeuralGSConfig
    from .operating import compress_to_quality, compress_to_target

    if downscale < 1:
        raise ConfigError("--downscale", downscale, "an integer >= 1 (1 = full resolution)")
    if target_kb is not None and max_db_drop is not None:
        raise ConfigError("--target-kb/--max-db-drop", (target_kb, max_db_drop), "one of them: a size target or a quality target")
    ply = readable_file(ply, ".ply", "pass the path of an existing, readable 3DGS .ply (e.g. `reprolab neuralgs example demo/` writes one)")
    scene = read_ply(ply)
    cams, imgs = _training_views(views, colmap, images, transforms, downscale)
    torch.set_num_threads(max(1, threads))
    cfg = NeuralGSConfig(fit_iterations=fit_iterations, finetune_iterations=finetune_iterations, prune_ratio=prune_ratio, fit_batch=fit_batch, time_budget_s=60.0 * minutes)
    n_in = ply.stat().st_size
    t0 = time.perf_counter()
    with progress_display():
        if max_db_drop is not None:
            if clusters is not None or width is not None:
                raise ConfigError("--clusters/--width", (clusters, width), "unset with --max-db-drop (the size ladder sets them)")
            res = compress_to_quality(scene, cams, imgs, max_db_drop, cfg, seed=seed, input_bytes=n_in)
            for row in res.tried:
                console.print(f"  tried {row['clusters']} MLPs x width {row['width']} (<= {row['target_bytes'] / 1e3:.1f} kB): " + (f"{row['bytes'] / 1e3:.1f} kB, PSNR drop {row['db_drop']:+.2f} dB on {row['views']} views" if "db_drop" in row else row.get("note", "")), markup=False, highlight=False)
        else:
            res = compress_to_target(scene, cams, imgs, None if target_kb is None else int(target_kb * 1e3), cfg, seed=seed, input_bytes=n_in, clusters=clusters, width=width)
    out = out or ply.with_suffix(".ngs")
    if res.kept_input:
        kept = out.with_suffix(ply.suffix)
        note = "the input is left as it is" if kept.resolve() == ply.resolve() else f"copied the input to {kept}"
        if kept.resolve() != ply.resolve():
            shutil.copyfile(ply, kept)
        console.print(f"not compressed: {res.reason}; kept the input format (.ply, {n_in / 1e3:.1f} kB): {note}", markup=False, highlight=False)
        return
    f = res.file
    f.save(out)
    size = out.stat().st_size
    st = f.stats
    console.print(f"{ply} ({n_in / 1e3:.1f} kB, {scene.num_gaussians} Gaussians) -> {out} ({size / 1e3:.1f} kB, {st['kept_gaussians']} Gaussians, {st['clusters']} MLPs of width {st['config']['mlp_width']}, {st['steps']['fit']} + {st['steps']['finetune']} steps): {n_in / size:.1f}x smaller in {time.perf_counter() - t0:.1f} s", markup=False, highlight=False)


@app.command()
def decompress(
    ngs: Path = typer.Argument(..., help="A file written by `reprolab neuralgs compress`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output .ply (default: the file's name with .decoded.ply)."),
) -> None:
    """Decode a NeuralGS file back to an original-layout 3DGS .ply."""
    from ...gaussians import write_ply
    from .neuralgs import decompress as ngs_decompress

    scene = ngs_decompress(readable_file(ngs, "NeuralGS", "pass a file written by `reprolab neuralgs compress`"))
    out = out or ngs.with_suffix(".decoded.ply")
    write_ply(out, scene)
    console.print(f"{ngs} -> {out} ({scene.num_gaussians} Gaussians, SH degree {scene.sh_degree})", markup=False, highlight=False)


@app.command()
def example(
    folder: Path = typer.Argument(..., help="Where to write scene.ply and views.npz."),
    gaussians: int = typer.Option(1000, "--gaussians", help="Gaussians of the fitted scene."),
    size: int = typer.Option(32, "--size", help="Image size in pixels."),
    views: int = typer.Option(12, "--views", help="Training views."),
    iterations: int = typer.Option(200, "--iterations", help="3DGS fitting steps."),
) -> None:
    """Write a small procedural 3DGS scene (fitted by our rasterizer) and its training views."""
    import torch

    from ...gaussians import save_views, write_ply
    from ...gaussians.fit import FitConfig, fit_gaussians, initial_scene
    from ...gaussians.procedural import procedural_views, surface_points
    from ...runtime import progress_display

    v = procedural_views(views, size)
    pts, cols = surface_points(gaussians, torch.Generator().manual_seed(0))
    with progress_display():
        scene = fit_gaussians(initial_scene(pts, cols, 3), v.cameras, v.images, FitConfig(iterations=iterations))
    write_ply(folder / "scene.ply", scene)
    save_views(folder / "views.npz", v.cameras, v.images)
    console.print(f"wrote {folder / 'scene.ply'} ({scene.num_gaussians} Gaussians) and {folder / 'views.npz'} ({views} views, {size} px)", markup=False, highlight=False)
