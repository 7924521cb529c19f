"""reprolab.gaussians readers for the scene formats people have: COLMAP sparse models (binary and
text), NeRF-synthetic transforms.json with images; files written by the tests, hand-built bytes
checked against COLMAP's documented layout, typed errors, and fuzzed parsers."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprolab.errors import MalformedFile
from reprolab.gaussians import colmap_cameras, colmap_points, load_colmap_views, load_transforms, look_at, orbit_cameras, read_colmap_model, write_colmap_model, write_transforms
from reprolab.gaussians.colmap import (
    model_from_cameras, parse_cameras_bin, parse_cameras_txt, parse_images_bin, parse_images_txt, parse_points3d_bin, parse_points3d_txt, qvec_to_rotmat, rotmat_to_qvec,
)
from reprolab.gaussians.images import write_image
from reprolab.gaussians.nerf_synthetic import parse_transforms

pytestmark = pytest.mark.usefixtures("one_thread")


def _project(cam, p):
    x = cam.R.double() @ torch.as_tensor(p, dtype=torch.float64) + cam.t.double()
    return float(cam.fx * x[0] / x[2] + cam.cx), float(cam.fy * x[1] / x[2] + cam.cy), float(x[2])


# -- COLMAP --------------------------------------------------------------------------------------

def _hand_built_binary(folder):
    """cameras/images/points3D.bin built field by field from COLMAP's documented layout."""
    folder.mkdir()
    # SIMPLE_PINHOLE (model 0): f, cx, cy; 40x30 px
    (folder / "cameras.bin").write_bytes(struct.pack("<Q", 1) + struct.pack("<iiQQ", 7, 0, 40, 30) + struct.pack("<3d", 50.0, 20.0, 15.0))
    # identity rotation, camera 5 units in front of the origin; two 2D points, one unmatched (-1)
    img = struct.pack("<i", 3) + struct.pack("<4d", 1, 0, 0, 0) + struct.pack("<3d", 0, 0, 5) + struct.pack("<i", 7) + b"a.png\x00"
    img += struct.pack("<Q", 2) + struct.pack("<ddq", 30.0, 15.0, 11) + struct.pack("<ddq", 1.0, 2.0, -1)
    (folder / "images.bin").write_bytes(struct.pack("<Q", 1) + img)
    pt = struct.pack("<QdddBBBdQ", 11, 1.0, 0.0, 0.0, 255, 128, 0, 0.5, 1) + struct.pack("<ii", 3, 0)
    (folder / "points3D.bin").write_bytes(struct.pack("<Q", 1) + pt)


def test_hand_built_binary_model_is_read_field_by_field(tmp_path):
    _hand_built_binary(tmp_path / "sparse")
    m = read_colmap_model(tmp_path / "sparse")
    assert m.cameras[7].model == "SIMPLE_PINHOLE" and m.cameras[7].params == (50.0, 20.0, 15.0) and (m.cameras[7].width, m.cameras[7].height) == (40, 30)
    im = m.images[3]
    assert im.name == "a.png" and im.camera_id == 7 and im.point3D_ids.tolist() == [11, -1]
    np.testing.assert_array_equal(im.xys, [[30, 15], [1, 2]])
    np.testing.assert_array_equal(m.points_xyz, [[1, 0, 0]])
    assert m.points_rgb.tolist() == [[255, 128, 0]] and m.point_ids.tolist() == [11] and m.points_error.tolist() == [0.5]
    (name, cam), = colmap_cameras(m)
    # the point (1, 0, 0) is observed at (30, 15): u = f x/z + cx = 50 * 1/5 + 20
    u, v, z = _project(cam, (1.0, 0.0, 0.0))
    assert (name, round(u, 9), round(v, 9), z) == ("a.png", 30.0, 15.0, 5.0)
    xyz, rgb = colmap_points(m)
    assert xyz.tolist() == [[1, 0, 0]] and rgb[0, 0] == 1.0


COLMAP_DOC_TEXT = {
    # the examples of COLMAP's "Output format" documentation (abridged)
    "cameras.txt": "# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n# Number of cameras: 3\n"
    "1 SIMPLE_PINHOLE 3072 2304 2559.81 1536 1152\n2 PINHOLE 3072 2304 2560.56 2560.56 1536 1152\n3 SIMPLE_RADIAL 3072 2304 2559.69 1536 1152 -0.0218531\n",
    "images.txt": "# Image list with two lines of data per image:\n#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
    "1 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 1 P1180141.JPG\n2362.39 248.498 58396 1784.7 268.254 59027 1784.7 268.254 -1\n"
    "2 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 2 P1180142.JPG\n\n",
    "points3D.txt": "# 3D point list with one line of data per point:\n#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
    "63390 1.67241 0.292931 0.609726 115 121 122 1.33927 16 6542 15 7345 6 6714 14 7227\n63376 2.01848 0.108877 -0.0260841 102 209 250 1.73449 16 6519 15 7322\n",
}


def test_colmap_documentation_text_example(tmp_path):
    for k, v in COLMAP_DOC_TEXT.items():
        (tmp_path / k).write_text(v)
    m = read_colmap_model(tmp_path)
    assert [c.model for c in m.cameras.values()] == ["SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL"]
    assert m.images[1].name == "P1180141.JPG" and m.images[1].point3D_ids.tolist() == [58396, 59027, -1] and len(m.images[2].xys) == 0
    assert m.point_ids.tolist() == [63390, 63376] and m.points_rgb[1].tolist() == [102, 209, 250]
    R = qvec_to_rotmat(m.images[1].qvec)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-6)
    # both images' cameras are pinhole models: accepted, sorted by name
    assert [n for n, _ in colmap_cameras(m)] == ["P1180141.JPG", "P1180142.JPG"]
    (tmp_path / "images.txt").write_text(COLMAP_DOC_TEXT["images.txt"].replace(" 2 P1180142", " 3 P1180142"))
    with pytest.raises(MalformedFile, match="SIMPLE_RADIAL.*fix: undistort"):
        colmap_cameras(read_colmap_model(tmp_path))


@pytest.mark.parametrize("binary", [True, False])
def test_round_trip_our_cameras_and_views(tmp_path, binary):
    cams = orbit_cameras(5, 3.0, width=12, height=8)
    named = [(f"img_{i:02d}.png", c) for i, c in enumerate(cams)]
    pts = np.random.default_rng(0).normal(size=(9, 3))
    rgb = np.random.default_rng(1).integers(0, 256, size=(9, 3))
    write_colmap_model(tmp_path / "sparse", model_from_cameras(named, pts, rgb), binary=binary)
    assert sorted(p.name for p in (tmp_path / "sparse").iterdir()) == sorted(f"{s}.{'bin' if binary else 'txt'}" for s in ("cameras", "images", "points3D"))
    imgs = torch.rand(5, 8, 12, 3, generator=torch.Generator().manual_seed(0))
    (tmp_path / "images").mkdir()
    for (name, _), im in zip(named, imgs):
        write_image(tmp_path / "images" / name, im)
    cams2, imgs2 = load_colmap_views(tmp_path / "sparse", tmp_path / "images")
    assert imgs2.shape == (5, 8, 12, 3) and (imgs2 - imgs).abs().max() <= 0.5 / 255 + 1e-6
    for a, b in zip(cams, cams2):
        torch.testing.assert_close(b.R, a.R, atol=1e-6, rtol=0)
        torch.testing.assert_close(b.t, a.t, atol=1e-6, rtol=0)
        assert (b.fx, b.fy, b.cx, b.cy, b.width, b.height) == (a.fx, a.fy, a.cx, a.cy, a.width, a.height)
    np.testing.assert_allclose(read_colmap_model(tmp_path / "sparse").points_xyz, pts)
    half, _ = load_colmap_views(tmp_path / "sparse", tmp_path / "images", downscale=2)
    assert (half[0].width, half[0].height, half[0].fx) == (6, 4, cams[0].fx / 2)


def test_rotation_quaternion_round_trip():
    for c in orbit_cameras(6, 2.0) + [look_at((0.1, -3, 2), (0, 0, 0))]:
        R = c.R.double().numpy()
        np.testing.assert_allclose(qvec_to_rotmat(rotmat_to_qvec(R)), R, atol=1e-6)  # R is float32


def test_colmap_errors_are_typed_and_name_the_file(tmp_path):
    with pytest.raises(MalformedFile, match="not a folder"):
        read_colmap_model(tmp_path / "nowhere")
    _hand_built_binary(tmp_path / "s")
    (tmp_path / "s" / "points3D.bin").unlink()
    with pytest.raises(MalformedFile, match=r"points3D\.bin.*no such COLMAP points3D\.bin file") as e:
        read_colmap_model(tmp_path / "s")
    assert "fix:" in str(e.value) and "\n" not in str(e.value)
    raw = struct.pack("<Q", 1) + struct.pack("<iiQQ", 1, 42, 4, 4) + struct.pack("<3d", 1, 2, 2)
    with pytest.raises(MalformedFile, match="unknown model id 42"):
        parse_cameras_bin(raw)
    with pytest.raises(MalformedFile, match="truncated"):
        parse_cameras_bin(struct.pack("<Q", 2) + struct.pack("<iiQQ", 1, 1, 4, 4) + struct.pack("<4d", 1, 1, 2, 2))
    with pytest.raises(MalformedFile, match="declares 1000000000000 points"):
        parse_points3d_bin(struct.pack("<Q", 10**12))
    with pytest.raises(MalformedFile, match="bytes after"):
        parse_cameras_bin(struct.pack("<Q", 0) + b"x")
    with pytest.raises(MalformedFile, match="non-finite"):
        parse_cameras_txt(b"1 PINHOLE 4 4 nan 1 2 2\n")
    with pytest.raises(MalformedFile, match="has 4 parameters"):
        parse_cameras_txt(b"1 PINHOLE 4 4 1 2 2\n")
    with pytest.raises(MalformedFile, match="triples"):
        parse_images_txt(b"1 1 0 0 0 0 0 1 1 a.png\n1 2\n")
    with pytest.raises(MalformedFile, match="outside 0-255"):
        parse_points3d_txt(b"1 0 0 0 300 0 0 0.1\n")
    (tmp_path / "t").mkdir()
    for k, v in COLMAP_DOC_TEXT.items():
        (tmp_path / "t" / k).write_text(v.replace(" 1 P1180141", " 9 P1180141"))
    with pytest.raises(MalformedFile, match="names camera 9"):
        read_colmap_model(tmp_path / "t")


_BIN = {}


def _valid_bins():
    if not _BIN:
        named = [(f"v{i}.png", c) for i, c in enumerate(orbit_cameras(2, 3.0, width=8, height=8))]
        m = model_from_cameras(named, np.ones((2, 3)), np.zeros((2, 3)))
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            write_colmap_model(d, m, binary=True)
            write_colmap_model(d, m, binary=False)
            _BIN.update({p.name: p.read_bytes() for p in Path(d).iterdir()})
    return _BIN


_PARSERS = {"cameras.bin": parse_cameras_bin, "images.bin": parse_images_bin, "points3D.bin": parse_points3d_bin, "cameras.txt": parse_cameras_txt, "images.txt": parse_images_txt, "points3D.txt": parse_points3d_txt}


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.sampled_from(sorted(_PARSERS)), cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6), tail=st.binary(max_size=16))
def test_fuzz_colmap_parsers_return_a_model_or_raise_malformed_file(which, cut, flips, tail):
    valid = _valid_bins()[which]
    raw = bytearray(valid[: int(cut * len(valid))] + tail)
    for pos, val in flips:
        if raw:
            raw[min(int(pos * len(raw)), len(raw) - 1)] = val
    try:
        out = _PARSERS[which](bytes(raw), which)
    except MalformedFile:
        return
    if which.startswith("points3D"):
        assert np.isfinite(out[0]).all() and len(out[0]) == len(out[1]) == len(out[2])
    elif which.startswith("cameras"):
        assert all(c.width > 0 and c.height > 0 and all(math.isfinite(p) for p in c.params) for c in out.values())


# -- NeRF-synthetic ------------------------------------------------------------------------------

def test_blender_convention_by_hand(tmp_path):
    """A Blender camera at (0, 0, 4) with the identity rotation looks down -z at the origin: the
    origin is at the image centre, 4 units deep; world +x is image right; world +y is image up."""
    d = {"camera_angle_x": 2 * math.atan(0.5), "frames": [{"file_path": "./train/r_0", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]}]}
    (tmp_path / "train").mkdir()
    rgba = torch.zeros(6, 10, 3)
    rgba[..., 0] = 1.0  # red where opaque
    alpha = torch.zeros(6, 10)
    alpha[:, :5] = 1.0  # left half opaque, right half transparent
    write_image(tmp_path / "train" / "r_0.png", rgba, alpha)
    (tmp_path / "transforms_train.json").write_text(json.dumps(d))
    (cam,), imgs = load_transforms(tmp_path / "transforms_train.json")
    assert (cam.width, cam.height, cam.cx, cam.cy) == (10, 6, 5.0, 3.0) and cam.fx == pytest.approx(10.0)  # W / (2 tan(fov/2)) = 10 / 1
    assert _project(cam, (0, 0, 0)) == pytest.approx((5.0, 3.0, 4.0))
    u, v, _ = _project(cam, (1, 1, 0))
    assert u > 5 and v < 3
    assert imgs[0, 0, 0].tolist() == [1, 0, 0] and imgs[0, 0, 9].tolist() == [1, 1, 1]  # over white by default
    _, black = load_transforms(tmp_path / "transforms_train.json", background=(0, 0, 0))
    assert black[0, 0, 9].tolist() == [0, 0, 0]


def test_transforms_round_trip(tmp_path):
    cams = orbit_cameras(4, 3.0, width=10, height=10, fov_deg=40)
    imgs = torch.rand(4, 10, 10, 3, generator=torch.Generator().manual_seed(1))
    write_transforms(tmp_path / "transforms_train.json", cams, imgs)
    cams2, imgs2 = load_transforms(tmp_path / "transforms_train.json")
    assert (imgs2 - imgs).abs().max() <= 0.5 / 255 + 1e-6
    for a, b in zip(cams, cams2):
        torch.testing.assert_close(b.R, a.R, atol=1e-5, rtol=0)
        torch.testing.assert_close(b.t, a.t, atol=1e-5, rtol=0)
        assert b.fx == pytest.approx(a.fx) and (b.cx, b.cy) == (a.cx, a.cy)
    half, small = load_transforms(tmp_path / "transforms_train.json", downscale=2)
    assert small.shape == (4, 5, 5, 3) and half[0].fx == pytest.approx(cams[0].fx / 2)


def test_transforms_errors_are_typed(tmp_path):
    with pytest.raises(MalformedFile, match="no such transforms json file"):
        load_transforms(tmp_path / "absent.json")
    p = tmp_path / "t.json"
    for text, msg in (("{", "not JSON"), ("[]", "not an object"), ('{"frames": []}', "frames"), ('{"camera_angle_x": 0.7, "frames": [{"file_path": "a"}]}', "transform_matrix"),
                      ('{"frames": [{"file_path": "a", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}', "camera_angle_x"),
                      ('{"camera_angle_x": 7, "frames": [{"file_path": "a", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}', "not an angle"),
                      ('{"camera_angle_x": 0.7, "frames": [{"file_path": "a", "transform_matrix": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}', "no image file")):
        p.write_text(text)
        with pytest.raises(MalformedFile, match=msg) as e:
            load_transforms(p)
        assert "fix:" in str(e.value)
    (tmp_path / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(MalformedFile, match="not a readable image"):
        load_transforms(p)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(value=st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=5) | st.dictionaries(st.sampled_from(["frames", "camera_angle_x", "file_path", "transform_matrix", "fl_x", "x"]), c, max_size=4), max_leaves=30))
def test_fuzz_transforms_parser(value):
    try:
        raw = json.dumps(value).encode()
    except (ValueError, OverflowError):
        return
    try:
        d, frames = parse_transforms(raw)
    except MalformedFile:
        return
    assert frames and all(f["transform_matrix"].shape == (4, 4) and np.isfinite(f["transform_matrix"]).all() for f in frames)
