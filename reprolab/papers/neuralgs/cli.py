"""``reprolab neuralgs ...``: compress a 3DGS .ply with NeuralGS, decompress it, or write an example.

    reprolab neuralgs example demo/                      # demo/scene.ply + demo/views.npz (procedural)
    reprolab neuralgs compress demo/scene.ply --views demo/views.npz --out demo/scene.ngs
    reprolab neuralgs decompress demo/scene.ngs --out demo/decoded.ply
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from ...runtime import readable_file

app = typer.Typer(help="NeuralGS (arXiv 2503.23162): compress original 3DGS .ply scenes with per-cluster neural fields.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console(soft_wrap=True)


@app.command()
def compress(
    ply: Path = typer.Argument(..., help="An original-layout 3DGS .ply (x, y, z, f_dc_*, f_rest_*, opacity, scale_*, rot_*)."),
    views: Path = typer.Option(..., "--views", help="Training views: .npz with images (V,H,W,3), viewmats (V,4,4) world-to-camera, Ks (V,3,3)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output file (default: the .ply's name with .ngs)."),
    clusters: int = typer.Option(8, "--clusters", help="Number of clusters / MLPs (paper: 6-10 objects, 40-80 indoor, 100-140 outdoor)."),
    width: int = typer.Option(128, "--width", help="MLP hidden width (paper: 128)."),
    fit_iterations: int = typer.Option(60_000, "--fit-iterations", help="Attribute-fitting steps (paper: 60k)."),
    finetune_iterations: int = typer.Option(25_000, "--finetune-iterations", help="Fine-tuning steps through the renderer (paper: 25k)."),
    prune_ratio: float = typer.Option(0.4, "--prune-ratio", help="Fraction of least important Gaussians removed (paper: 0.4)."),
    seed: int = typer.Option(0, "--seed"),
    threads: int = typer.Option(1, "--threads", help="CPU threads; 1 is fastest for the rasterizer's many small ops on a shared CPU."),
) -> None:
    """Compress a 3DGS scene into one NeuralGS file and print its size against the .ply."""
    import torch

    from ...gaussians import load_views, read_ply
    from ...runtime import progress_display
    from .neuralgs import NeuralGSConfig
    from .neuralgs import compress as ngs_compress

    scene = read_ply(readable_file(ply, ".ply", "pass the path of an existing, readable 3DGS .ply (e.g. `reprolab neuralgs example demo/` writes one)"))
    cams, images = load_views(readable_file(views, "views .npz", "pass the .npz of training views (`reprolab.gaussians.save_views` writes one)"))
    torch.set_num_threads(max(1, threads))
    cfg = NeuralGSConfig(num_clusters=clusters, mlp_width=width, fit_iterations=fit_iterations, finetune_iterations=finetune_iterations, prune_ratio=prune_ratio)
    with progress_display():
        f = ngs_compress(scene, cams, images, cfg, seed=seed)
    out = out or ply.with_suffix(".ngs")
    f.save(out)
    size, orig = out.stat().st_size, ply.stat().st_size
    console.print(f"{ply} ({orig / 1e3:.1f} kB, {scene.num_gaussians} Gaussians) -> {out} ({size / 1e3:.1f} kB, {f.stats['kept_gaussians']} Gaussians, {f.stats['clusters']} MLPs): {orig / size:.1f}x smaller in {f.stats['times']['total_s']:.1f} s", markup=False, highlight=False)


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
