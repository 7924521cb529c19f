"""reprolab.gaussians: the pure-PyTorch rasterizer against a brute-force per-pixel reference,
numerical gradients, SH and image metrics by hand, cameras, the procedural scene and the fitter."""

from __future__ import annotations

import math

import pytest
import torch

from reprolab.errors import ConfigError, ShapeError
from reprolab.gaussians import (
    GaussianScene,
    look_at,
    psnr,
    random_scene,
    render,
    render_reference,
    sh_to_rgb,
    ssim,
)
from reprolab.gaussians.fit import FitConfig, fit_gaussians, initial_scene, photometric_loss
from reprolab.gaussians.procedural import procedural_views, surface_points
from reprolab.gaussians.sh import C0, C1



pytestmark = pytest.mark.usefixtures("one_thread")

def tiny_scene(n: int, degree: int, seed: int, dtype=torch.float64) -> GaussianScene:
    s = random_scene(n, degree, torch.Generator().manual_seed(seed), extent=0.6, dtype=dtype)
    s.log_scales.add_(1.2)  # a few pixels wide at this image size
    s.opacity_logit.add_(1.0)
    return s


@pytest.mark.parametrize("degree,seed", [(0, 0), (1, 1), (2, 2), (3, 3)])
def test_matches_brute_force_reference(degree, seed):
    scene = tiny_scene(7, degree, seed)
    cam = look_at((2.2, 0.7 * seed - 1, 0.9), (0, 0, 0), width=13, height=9, fov_deg=60)
    bg = (0.2, 0.1, 0.3)
    ref = render_reference(scene, cam, background=bg)
    out = render(scene, cam, background=bg).image
    assert ref.std() > 0.02  # the scene is actually visible
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    out32 = render(scene.to(dtype=torch.float32), cam, background=bg).image
    torch.testing.assert_close(out32.double(), ref, rtol=0, atol=2e-5)


def test_early_stop_and_opacity_clamp_match_reference():
    """Many stacked opaque Gaussians: the 0.99 clamp and the T < 1e-4 stop decide the colour."""
    n = 6
    scene = GaussianScene(
        means=torch.stack([torch.zeros(n), torch.zeros(n), torch.linspace(-0.5, 0.5, n)], 1).double(),
        sh_dc=torch.randn(n, 3, generator=torch.Generator().manual_seed(0)).double(),
        sh_rest=torch.zeros(n, 0, 3, dtype=torch.float64),
        opacity_logit=torch.full((n,), 8.0, dtype=torch.float64),
        log_scales=torch.full((n, 3), math.log(0.4), dtype=torch.float64),
        quats=torch.tensor([[1.0, 0, 0, 0]] * n, dtype=torch.float64),
    )
    cam = look_at((0, 0.01, 3), (0, 0, 0), up=(0, 1, 0), width=5, height=5)
    torch.testing.assert_close(render(scene, cam).image, render_reference(scene, cam), rtol=0, atol=1e-10)


def test_gradients_match_finite_differences():
    scene = tiny_scene(3, 1, 5)
    cam = look_at((2.0, 0.3, 0.8), (0, 0, 0), width=7, height=6, fov_deg=60)
    names = list(scene.tensors())
    inputs = tuple(t.clone().requires_grad_(True) for t in scene.tensors().values())

    def f(*ts):
        return render(GaussianScene(**dict(zip(names, ts))), cam, background=(0.3, 0.2, 0.1)).image

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_blending_weights_and_transmittance_partition_each_pixel():
    """Per pixel sum_i alpha_i T_i + T_final = 1, so the weights summed over Gaussians plus the
    background share summed over pixels equals the pixel count."""
    scene = tiny_scene(20, 0, 7, dtype=torch.float32)
    cam = look_at((2.5, 0.0, 1.0), (0, 0, 0), width=16, height=12)
    out = render(scene, cam, return_weights=True)
    total = float(out.weights.sum() + (1 - out.alpha).sum())
    assert total == pytest.approx(16 * 12, rel=1e-5)
    assert (out.weights >= 0).all()


def test_opaque_gaussian_in_front_hides_the_one_behind():
    def two(front_opacity: float) -> torch.Tensor:
        s = GaussianScene(
            means=torch.tensor([[0.0, 0, 0.5], [0.0, 0, -0.5]]),
            sh_dc=torch.tensor([[1.8, -1.7, -1.7], [-1.7, -1.7, 1.8]]),  # red in front, blue behind
            sh_rest=torch.zeros(2, 0, 3),
            opacity_logit=torch.tensor([front_opacity, 5.0]),
            log_scales=torch.full((2, 3), math.log(0.3)),
            quats=torch.tensor([[1.0, 0, 0, 0]] * 2),
        )
        return render(s, look_at((0, 0.01, 3), (0, 0, 0), up=(0, 1, 0), width=9, height=9)).image[4, 4]

    opaque, faint = two(8.0), two(-3.0)
    assert opaque[0] > 0.9 and opaque[2] < 0.05
    assert faint[2] > faint[0]


def test_empty_and_out_of_view_scenes_render_the_background():
    cam = look_at((3, 0, 0), (0, 0, 0), width=6, height=5)
    s = random_scene(4, 0)
    s.means.add_(torch.tensor([10.0, 0, 0]))  # behind the camera
    img = render(s, cam, background=(0.1, 0.5, 0.9)).image
    torch.testing.assert_close(img, torch.tensor([0.1, 0.5, 0.9]).expand(5, 6, 3))
    assert render(random_scene(0, 3), cam).image.abs().sum() == 0


def test_bad_arguments_raise_typed_errors():
    s, cam = random_scene(2, 0), look_at((3, 0, 0), (0, 0, 0), width=4, height=4)
    with pytest.raises(ShapeError, match="background"):
        render(s, cam, background=(0.0, 0.0))
    with pytest.raises(ConfigError, match="backend"):
        render(s, cam, backend="vulkan")
    with pytest.raises(ConfigError, match="up"):
        look_at((0, 0, 3), (0, 0, 0), up=(0, 0, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="gsplat backend needs CUDA")
def test_gsplat_backend_agrees_with_torch_backend():
    pytest.importorskip("gsplat")
    scene = tiny_scene(30, 3, 9, dtype=torch.float32).to("cuda")
    cam = look_at((2.5, 0.2, 0.9), (0, 0, 0), width=32, height=32)
    a = render(scene, cam, backend="torch").image
    b = render(scene, cam, backend="gsplat").image
    assert psnr(b.clamp(0, 1), a.clamp(0, 1)) > 30


def test_sh_by_hand():
    dc = torch.tensor([[0.4, -0.2, 1.0]])
    sh = torch.zeros(1, 4, 3)
    sh[0, 0] = dc
    sh[0, 2] = torch.tensor([0.5, 0.0, -0.5])  # the z-coefficient of degree 1
    up = torch.tensor([[0.0, 0.0, 1.0]])
    expected = (C0 * dc + C1 * sh[0, 2] + 0.5).clamp_min(0)
    torch.testing.assert_close(sh_to_rgb(sh, up), expected)
    torch.testing.assert_close(sh_to_rgb(sh, -up), (C0 * dc - C1 * sh[0, 2] + 0.5).clamp_min(0))


def test_image_metrics_by_hand():
    a = torch.full((8, 8, 3), 0.5)
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    assert float(ssim(a, a)) == pytest.approx(1.0)
    noisy = (a + 0.2 * torch.randn(8, 8, 3, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert float(ssim(noisy, a)) < 0.9
    with pytest.raises(ShapeError):
        psnr(a, a[:4])


def test_camera_centre_and_projection():
    cam = look_at((1.0, 2.0, 3.0), (0.2, 0.1, 0.0), width=20, height=10)
    torch.testing.assert_close(cam.center, torch.tensor([1.0, 2.0, 3.0]), atol=1e-5, rtol=0)
    p = cam.R @ torch.tensor([0.2, 0.1, 0.0]) + cam.t
    assert p[2] > 0
    assert cam.fx * p[0] / p[2] + cam.cx == pytest.approx(10.0, abs=1e-4)
    assert cam.fy * p[1] / p[2] + cam.cy == pytest.approx(5.0, abs=1e-4)


def test_procedural_views_and_a_short_fit_reduce_the_loss():
    torch.manual_seed(0)
    views = procedural_views(4, size=16, ss=1)
    assert views.images.shape == (4, 16, 16, 3) and 0 <= views.images.min() and views.images.max() <= 1
    pts, cols = surface_points(300, torch.Generator().manual_seed(0))
    init = initial_scene(pts, cols, sh_degree=1)

    def loss_of(scene):
        with torch.no_grad():
            return sum(float(photometric_loss(render(scene, c).image, im)) for c, im in zip(views.cameras, views.images))

    fitted = fit_gaussians(init, views.cameras, views.images, FitConfig(iterations=60, sh_degree=1))
    assert fitted.sh_degree == 1 and len(fitted) <= 300
    assert loss_of(fitted) < 0.8 * loss_of(init)
