"""3D Gaussian Splatting, shared by the 3D papers: scenes in the original parameterisation, the
original ``.ply`` layout, pinhole cameras (read from COLMAP sparse models or NeRF-synthetic
``transforms.json``), a differentiable pure-PyTorch rasterizer (gsplat on
CUDA when installed), image metrics, a procedural test scene and a plain 3DGS fitter.

    from reprolab.gaussians import read_ply, render, look_at
    scene = read_ply("point_cloud.ply")
    image = render(scene, look_at((3, 0, 1), (0, 0, 0))).image   # (H, W, 3)
"""

from .camera import Camera, look_at, orbit_cameras
from .colmap import colmap_cameras, colmap_points, load_colmap_views, read_colmap_model, write_colmap_model
from .nerf_synthetic import load_transforms, write_transforms
from .image_metrics import fourier_amplitude_loss, psnr, ssim
from .ply import ply_property_names, read_ply, scene_to_ply_bytes, write_ply
from .rasterizer import RenderOutput, covariance_3d, project, quat_to_rotmat, render, render_reference
from .scene import SH_COEFFS, GaussianScene, inverse_sigmoid, random_scene
from .sh import rgb_to_sh_dc, sh_basis, sh_to_rgb
from .views import load_views, save_views

__all__ = [
    "Camera", "look_at", "orbit_cameras",
    "psnr", "ssim", "fourier_amplitude_loss",
    "read_ply", "write_ply", "scene_to_ply_bytes", "ply_property_names",
    "RenderOutput", "render", "render_reference", "project", "covariance_3d", "quat_to_rotmat",
    "GaussianScene", "SH_COEFFS", "inverse_sigmoid", "random_scene",
    "sh_basis", "sh_to_rgb", "rgb_to_sh_dc",
    "load_views", "save_views",
    "read_colmap_model", "colmap_cameras", "colmap_points", "load_colmap_views", "write_colmap_model",
    "load_transforms", "write_transforms",
]
