"""reprolab.gaussians: the original 3DGS .ply layout, round trips, typed errors, and a fuzzed reader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reprolab.errors import MalformedFile, ShapeError
from reprolab.gaussians import GaussianScene, ply_property_names, random_scene, read_ply, scene_to_ply_bytes, write_ply



pytestmark = pytest.mark.usefixtures("one_thread")

def assert_same(a: GaussianScene, b: GaussianScene) -> None:
    for k, v in a.tensors().items():
        torch.testing.assert_close(v, b.tensors()[k], rtol=0, atol=0)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_every_sh_degree(tmp_path, degree):
    scene = random_scene(17, degree, torch.Generator().manual_seed(degree))
    path = write_ply(tmp_path / "s.ply", scene)
    back = read_ply(path)
    assert back.sh_degree == degree and len(back) == 17
    assert_same(scene, back)
    assert path.read_bytes() == scene_to_ply_bytes(back)  # byte-identical re-write


def test_header_and_body_follow_the_official_layout():
    scene = random_scene(2, 3, torch.Generator().manual_seed(0))
    for k in range(15):
        for c in range(3):
            scene.sh_rest[:, k, c] = 100 * c + k  # channel-major: f_rest_{c*15+k}
    raw = scene_to_ply_bytes(scene)
    header, body = raw.split(b"end_header\n", 1)
    lines = header.decode().splitlines()
    assert lines[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 2"]
    names = [ln.split()[2] for ln in lines if ln.startswith("property float ")]
    assert names == ply_property_names(3) and len(names) == 62
    assert names[:9] == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] and names[-8:] == ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.frombuffer(body, dtype="<f4").reshape(2, 62)
    rest = data[:, 9:54]
    assert rest[0, 16] == 100 * 1 + 1  # f_rest_16 = channel 1, coefficient 1
    assert rest[0, 44] == 100 * 2 + 14
    np.testing.assert_array_equal(data[:, 3:6], 0)  # the unused normals
    np.testing.assert_allclose(data[:, 54], scene.opacity_logit.numpy())  # raw logit, not sigmoid


def test_reads_a_file_written_like_the_official_save_ply(tmp_path):
    """Build the file as the official GaussianModel.save_ply does (plyfile, structured array)."""
    from plyfile import PlyData, PlyElement

    rng = np.random.default_rng(0)
    n, k = 5, 8  # SH degree 2
    xyz, dc, rest = rng.normal(size=(n, 3)), rng.normal(size=(n, 3)), rng.normal(size=(n, 3 * k))
    op, sc, rot = rng.normal(size=(n, 1)), rng.normal(size=(n, 3)), rng.normal(size=(n, 4))
    names = ply_property_names(2)
    arr = np.empty(n, dtype=[(a, "f4") for a in names])
    arr[:] = list(map(tuple, np.concatenate([xyz, np.zeros((n, 3)), dc, rest, op, sc, rot], axis=1)))
    PlyData([PlyElement.describe(arr, "vertex")]).write(str(tmp_path / "official.ply"))
    scene = read_ply(tmp_path / "official.ply")
    assert scene.sh_degree == 2
    np.testing.assert_allclose(scene.means.numpy(), xyz.astype("f4"))
    np.testing.assert_allclose(scene.sh_rest.numpy(), rest.astype("f4").reshape(n, 3, k).transpose(0, 2, 1))
    np.testing.assert_allclose(scene.quats.numpy(), rot.astype("f4"))


def test_ascii_ply_is_read(tmp_path):
    from plyfile import PlyData

    scene = random_scene(3, 1, torch.Generator().manual_seed(1))
    write_ply(tmp_path / "b.ply", scene)
    ply = PlyData.read(str(tmp_path / "b.ply"))
    ply.text = True
    ply.write(str(tmp_path / "a.ply"))
    torch.testing.assert_close(read_ply(tmp_path / "a.ply").sh_rest, scene.sh_rest)


def _header_with(props: list[str], n: int = 1) -> bytes:
    return ("ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n" + "".join(f"property float {p}\n" for p in props) + "end_header\n").encode() + np.zeros((n, len(props)), "<f4").tobytes()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: raw[:-7], "truncated"),
        (lambda raw: raw + b"\0" * 8, "after the declared data"),
        (lambda raw: b"plx" + raw[3:], "magic"),
        (lambda raw: raw.replace(b"end_header", b"end_headxr"), "end_header"),
        (lambda raw: raw.replace(b"binary_little_endian", b"binary_middle_endian"), "format"),
        (lambda raw: _header_with([p for p in ply_property_names(0) if p != "rot_3"]), "rot_3"),
        (lambda raw: _header_with(ply_property_names(0)[:9] + [f"f_rest_{i}" for i in range(17)] + ply_property_names(0)[9:]), "SH degree 0-3"),
        (lambda raw: _header_with(ply_property_names(0)[:9] + [f"f_rest_{i}" for i in range(1, 10)] + ply_property_names(0)[9:]), "without gaps"),
        (lambda raw: raw.replace(b"element vertex 4", b"element vertex 9"), "truncated"),
        (lambda raw: raw.replace(b"element vertex 4", b"element face 4"), "vertex"),
    ],
)
def test_bad_files_raise_malformed_file_naming_the_problem(tmp_path, mutate, message):
    raw = scene_to_ply_bytes(random_scene(4, 0, torch.Generator().manual_seed(2)))
    path = tmp_path / "bad.ply"
    path.write_bytes(mutate(raw))
    with pytest.raises(MalformedFile, match=message) as e:
        read_ply(path)
    assert "bad.ply" in str(e.value) and "fix:" in str(e.value)


def test_non_finite_values_and_zero_quaternions_are_refused():
    scene = random_scene(3, 0, torch.Generator().manual_seed(3))
    raw = bytearray(scene_to_ply_bytes(scene))
    body = raw.index(b"end_header\n") + len(b"end_header\n")
    raw[body : body + 4] = np.array([np.nan], "<f4").tobytes()  # x of the first Gaussian
    with pytest.raises(MalformedFile, match="non-finite position"):
        read_ply(bytes(raw))
    scene.quats[1] = 0
    with pytest.raises(MalformedFile, match="all-zero quaternion"):
        read_ply(scene_to_ply_bytes(scene))


def test_missing_file_and_inconsistent_scene_shapes(tmp_path):
    with pytest.raises(MalformedFile, match="no such .ply file") as e:
        read_ply(tmp_path / "absent.ply")
    assert "absent.ply" in str(e.value) and "fix:" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(MalformedFile, match="not a regular file"):
        read_ply(tmp_path)
    s = random_scene(3, 1)
    with pytest.raises(ShapeError, match="log_scales"):
        GaussianScene(s.means, s.sh_dc, s.sh_rest, s.opacity_logit, s.log_scales[:2], s.quats)
    with pytest.raises(ShapeError, match="sh_rest"):
        GaussianScene(s.means, s.sh_dc, torch.zeros(3, 5, 3), s.opacity_logit, s.log_scales, s.quats)


# -- property-based ----------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 12), degree=st.integers(0, 3), seed=st.integers(0, 2**16), scale=finite)
def test_property_round_trip_any_scene(n, degree, seed, scale):
    scene = random_scene(n, degree, torch.Generator().manual_seed(seed))
    scene.means.mul_(scale)
    back = read_ply(scene_to_ply_bytes(scene))
    assert back.sh_degree == degree and len(back) == n
    assert_same(scene, back)


_VALID = scene_to_ply_bytes(random_scene(3, 1, torch.Generator().manual_seed(4)))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, len(_VALID)),
    flips=st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=6),
    tail=st.binary(max_size=16),
)
def test_fuzz_reader_returns_a_scene_or_raises_malformed_file(cut, flips, tail):
    raw = bytearray(_VALID[:cut] + tail)
    for pos, val in flips:
        if pos < len(raw):
            raw[pos] = val
    try:
        scene = read_ply(bytes(raw))
    except MalformedFile:
        return
    scene.check_finite()  # anything accepted is a consistent, finite scene
    assert scene.sh_degree in (0, 1, 2, 3)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(header=st.lists(st.sampled_from(["ply", "format ascii 1.0", "format binary_little_endian 1.0", "element vertex 2", "element vertex 99999999999", "property float x", "property list uchar int vertex_indices", "property float opacity", "comment hi", "end_header"]), max_size=12), body=st.binary(max_size=64))
def test_fuzz_headers(header, body):
    try:
        read_ply(("\n".join(header) + "\n").encode() + body)
    except MalformedFile:
        pass
