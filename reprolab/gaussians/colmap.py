"""Read (and write) COLMAP sparse models, the camera input of the original 3DGS implementation.

A sparse model is a folder (``sparse/0``) with ``cameras``, ``images`` and ``points3D``, either
all binary (``.bin``) or all text (``.txt``). The layouts follow COLMAP's ``read_write_model.py``
and its documentation ("Output format"):

- ``cameras.bin``: uint64 count; per camera int32 id, int32 model id, uint64 width, uint64 height,
  float64 params (as many as the model has). ``cameras.txt``: ``ID MODEL WIDTH HEIGHT PARAMS...``.
- ``images.bin``: uint64 count; per image int32 id, float64 qvec (w, x, y, z), float64 tvec,
  int32 camera id, a NUL-terminated name, uint64 n2D, n2D x (float64 x, float64 y, int64 point id).
  ``images.txt``: two lines per image, ``ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then
  ``X Y POINT3D_ID`` triples (possibly an empty line).
- ``points3D.bin``: uint64 count; per point uint64 id, float64 xyz, uint8 rgb, float64 error,
  uint64 track length, length x (int32 image id, int32 point2D index). ``points3D.txt``:
  ``ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...``.

(qvec, tvec) is the world-to-camera pose in OpenCV axes, the convention of :class:`Camera`.
Like the original 3DGS (``scene/dataset_readers.py``), :func:`colmap_cameras` accepts only
undistorted pinhole models (SIMPLE_PINHOLE, PINHOLE); other models are read but refused there,
with the fix (``colmap image_undistorter``). Everything malformed (a truncated file, a count
larger than the bytes that follow, an unknown model, non-finite numbers, an image naming an
unknown camera, a missing file) raises :class:`~reprolab.errors.MalformedFile` naming the file
and the problem.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import MalformedFile
from ..runtime import atomic_write_bytes, readable_file
from .camera import Camera

# model id -> (name, number of params); COLMAP's src/colmap/sensor/models.h
CAMERA_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
}
_MODEL_IDS = {name: (i, n) for i, (name, n) in CAMERA_MODELS.items()}
_FIX = "pass a COLMAP sparse model folder (cameras, images, points3D as .bin or .txt, e.g. sparse/0)"


@dataclass(frozen=True)
class ColmapCamera:
    id: int
    model: str
    width: int
    height: int
    params: tuple[float, ...]


@dataclass(frozen=True)
class ColmapImage:
    id: int
    qvec: tuple[float, float, float, float]  # (w, x, y, z), world -> camera
    tvec: tuple[float, float, float]
    camera_id: int
    name: str
    xys: np.ndarray = field(repr=False, compare=False)  # (n, 2) float64
    point3D_ids: np.ndarray = field(repr=False, compare=False)  # (n,) int64, -1 = none


@dataclass
class ColmapModel:
    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points_xyz: np.ndarray  # (P, 3) float64
    points_rgb: np.ndarray  # (P, 3) uint8
    points_error: np.ndarray  # (P,) float64
    point_ids: np.ndarray  # (P,) int64


class _Reader:
    """A cursor over bytes that refuses to read past the end (so a bogus count fails by name)."""

    def __init__(self, raw: bytes, name: str):
        self.raw, self.name, self.pos = raw, name, 0

    def take(self, fmt: str, count: int = 1) -> tuple:
        size = struct.calcsize("<" + fmt) * count
        if size < 0 or self.pos + size > len(self.raw):
            raise MalformedFile(self.name, f"is truncated: needs {size} more bytes at offset {self.pos}, has {len(self.raw) - self.pos}", fix=_FIX)
        out = struct.unpack_from("<" + fmt * count, self.raw, self.pos)
        self.pos += size
        return out

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize * count
        if count < 0 or self.pos + size > len(self.raw):
            raise MalformedFile(self.name, f"declares {count} {what} but only {len(self.raw) - self.pos} bytes follow (truncated, or a bogus count)", fix=_FIX)
        out = np.frombuffer(self.raw, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += size
        return out

    def cstring(self) -> str:
        end = self.raw.find(b"\x00", self.pos)
        if end < 0:
            raise MalformedFile(self.name, "an image name is not NUL-terminated (truncated)", fix=_FIX)
        try:
            s = self.raw[self.pos : end].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedFile(self.name, "an image name is not UTF-8", fix=_FIX) from None
        self.pos = end + 1
        return s

    def done(self) -> None:
        if self.pos != len(self.raw):
            raise MalformedFile(self.name, f"has {len(self.raw) - self.pos} bytes after the declared records (inconsistent count?)", fix=_FIX)


def _finite(name: str, what: str, *values) -> None:
    if not all(math.isfinite(v) for v in values):
        raise MalformedFile(name, f"has a non-finite {what} ({values})", fix=_FIX)


def _camera(name: str, cid: int, model: str, width: int, height: int, params) -> ColmapCamera:
    _finite(name, f"parameter of camera {cid}", *params)
    if not (0 < width < 2**20 and 0 < height < 2**20):
        raise MalformedFile(name, f"camera {cid} has image size {width}x{height}", fix=_FIX)
    return ColmapCamera(int(cid), model, int(width), int(height), tuple(float(p) for p in params))


def parse_cameras_bin(raw: bytes, name: str = "cameras.bin") -> dict[int, ColmapCamera]:
    r = _Reader(raw, name)
    (n,) = r.take("Q")
    cams = {}
    for _ in range(n):
        cid, mid, w, h = r.take("iiQQ")
        if mid not in CAMERA_MODELS:
            raise MalformedFile(name, f"camera {cid} has unknown model id {mid} (COLMAP has 0-10)", fix=_FIX)
        model, k = CAMERA_MODELS[mid]
        cams[cid] = _camera(name, cid, model, w, h, r.take("d", k))
    r.done()
    return cams


def parse_images_bin(raw: bytes, name: str = "images.bin") -> dict[int, ColmapImage]:
    r = _Reader(raw, name)
    (n,) = r.take("Q")
    images = {}
    for _ in range(n):
        (iid,) = r.take("i")
        q, t = r.take("d", 4), r.take("d", 3)
        _finite(name, f"pose of image {iid}", *q, *t)
        (cid,) = r.take("i")
        img_name = r.cstring()
        (n2d,) = r.take("Q")
        rec = r.array("<f8,<f8,<i8", n2d, "2D points")
        images[iid] = ColmapImage(iid, tuple(q), tuple(t), cid, img_name, np.stack([rec["f0"], rec["f1"]], 1), rec["f2"].astype(np.int64))
    r.done()
    return images


def parse_points3d_bin(raw: bytes, name: str = "points3D.bin") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r = _Reader(raw, name)
    (n,) = r.take("Q")
    if n * 51 > len(raw):  # the smallest record is 51 bytes: refuse a bogus count before allocating
        raise MalformedFile(name, f"declares {n} points but has only {len(raw)} bytes (truncated, or a bogus count)", fix=_FIX)
    ids, xyz, rgb, err = np.zeros(n, np.int64), np.zeros((n, 3)), np.zeros((n, 3), np.uint8), np.zeros(n)
    for i in range(n):
        pid, x, y, z, cr, cg, cb, e, tl = r.take("QdddBBBdQ")
        r.array("<i4", 2 * tl, "track entries")
        ids[i], xyz[i], rgb[i], err[i] = pid, (x, y, z), (cr, cg, cb), e
    r.done()
    if not (np.isfinite(xyz).all() and np.isfinite(err).all()):
        raise MalformedFile(name, "has non-finite point coordinates or errors", fix=_FIX)
    return xyz, rgb, err, ids


def _text_lines(raw: bytes, name: str) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFile(name, "is not UTF-8 text", fix=_FIX) from None
    return [ln.strip() for ln in text.splitlines() if not ln.lstrip().startswith("#")]


def _num(name: str, tok: str, kind=float):
    try:
        v = kind(tok)
    except ValueError:
        raise MalformedFile(name, f"has {tok!r} where a number was expected", fix=_FIX) from None
    if kind is float and not math.isfinite(v):
        raise MalformedFile(name, f"has a non-finite number {tok!r}", fix=_FIX)
    return v


def parse_cameras_txt(raw: bytes, name: str = "cameras.txt") -> dict[int, ColmapCamera]:
    cams = {}
    for ln in _text_lines(raw, name):
        if not ln:
            continue
        tok = ln.split()
        if len(tok) < 4 or tok[1] not in _MODEL_IDS:
            raise MalformedFile(name, f"bad camera line {ln[:80]!r} (expected ID MODEL WIDTH HEIGHT PARAMS...; model one of {sorted(_MODEL_IDS)})", fix=_FIX)
        k = _MODEL_IDS[tok[1]][1]
        if len(tok) != 4 + k:
            raise MalformedFile(name, f"camera line {ln[:80]!r}: model {tok[1]} has {k} parameters, the line {len(tok) - 4}", fix=_FIX)
        cid = _num(name, tok[0], int)
        cams[cid] = _camera(name, cid, tok[1], _num(name, tok[2], int), _num(name, tok[3], int), [_num(name, x) for x in tok[4:]])
    return cams


def parse_images_txt(raw: bytes, name: str = "images.txt") -> dict[int, ColmapImage]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedFile(name, "is not UTF-8 text", fix=_FIX) from None
    lines = [ln.strip() for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    while lines and not lines[-1]:
        lines.pop()
    images = {}
    i = 0
    while i < len(lines):
        if not lines[i]:  # blank separators between records
            i += 1
            continue
        tok = lines[i].split(maxsplit=9)
        if len(tok) != 10:
            raise MalformedFile(name, f"bad image line {lines[i][:80]!r} (expected ID QW QX QY QZ TX TY TZ CAMERA_ID NAME)", fix=_FIX)
        iid = _num(name, tok[0], int)
        q = tuple(_num(name, x) for x in tok[1:5])
        t = tuple(_num(name, x) for x in tok[5:8])
        cid = _num(name, tok[8], int)
        pts = lines[i + 1].split() if i + 1 < len(lines) else []
        if len(pts) % 3:
            raise MalformedFile(name, f"the points line of image {iid} has {len(pts)} numbers, not X Y POINT3D_ID triples", fix=_FIX)
        arr = np.array([_num(name, x) for x in pts], dtype=np.float64).reshape(-1, 3)
        images[iid] = ColmapImage(iid, q, t, cid, tok[9], arr[:, :2].copy(), arr[:, 2].astype(np.int64))
        i += 2
    return images


def parse_points3d_txt(raw: bytes, name: str = "points3D.txt") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids, xyz, rgb, err = [], [], [], []
    for ln in _text_lines(raw, name):
        if not ln:
            continue
        tok = ln.split()
        if len(tok) < 8 or (len(tok) - 8) % 2:
            raise MalformedFile(name, f"bad point line {ln[:80]!r} (expected ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...)", fix=_FIX)
        ids.append(_num(name, tok[0], int))
        xyz.append([_num(name, x) for x in tok[1:4]])
        c = [_num(name, x, int) for x in tok[4:7]]
        if not all(0 <= v <= 255 for v in c):
            raise MalformedFile(name, f"point {tok[0]} has colour {c} outside 0-255", fix=_FIX)
        rgb.append(c)
        err.append(_num(name, tok[7]))
    return (np.array(xyz, dtype=np.float64).reshape(-1, 3), np.array(rgb, dtype=np.uint8).reshape(-1, 3), np.array(err, dtype=np.float64), np.array(ids, dtype=np.int64))


def read_colmap_model(folder: str | os.PathLike) -> ColmapModel:
    """Read a COLMAP sparse model folder (binary if ``cameras.bin`` is there, else text)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MalformedFile(str(folder), "is not a folder, so not a COLMAP sparse model", fix=_FIX)
    ext = ".bin" if (folder / "cameras.bin").exists() else ".txt"
    parsers = {".bin": (parse_cameras_bin, parse_images_bin, parse_points3d_bin), ".txt": (parse_cameras_txt, parse_images_txt, parse_points3d_txt)}[ext]
    raws = [readable_file(folder / f"{stem}{ext}", f"COLMAP {stem}{ext}", _FIX).read_bytes() for stem in ("cameras", "images", "points3D")]
    cams = parsers[0](raws[0], str(folder / f"cameras{ext}"))
    images = parsers[1](raws[1], str(folder / f"images{ext}"))
    xyz, rgb, err, ids = parsers[2](raws[2], str(folder / f"points3D{ext}"))
    for im in images.values():
        if im.camera_id not in cams:
            raise MalformedFile(str(folder / f"images{ext}"), f"image {im.id} ({im.name}) names camera {im.camera_id}, which cameras{ext} does not define", fix=_FIX)
        if np.linalg.norm(im.qvec) == 0:
            raise MalformedFile(str(folder / f"images{ext}"), f"image {im.id} ({im.name}) has an all-zero quaternion", fix=_FIX)
    return ColmapModel(cams, images, xyz, rgb, err, ids)


def qvec_to_rotmat(q) -> np.ndarray:
    """COLMAP's (w, x, y, z) quaternion (normalised here) to a 3x3 rotation matrix."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def rotmat_to_qvec(R: np.ndarray) -> np.ndarray:
    """Inverse of :func:`qvec_to_rotmat`, with w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    K = np.array([
        [R[0, 0] - R[1, 1] - R[2, 2], 0, 0, 0],
        [R[1, 0] + R[0, 1], R[1, 1] - R[0, 0] - R[2, 2], 0, 0],
        [R[2, 0] + R[0, 2], R[2, 1] + R[1, 2], R[2, 2] - R[0, 0] - R[1, 1], 0],
        [R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1], R[0, 0] + R[1, 1] + R[2, 2]],
    ]) / 3.0
    vals, vecs = np.linalg.eigh(K)
    q = vecs[[3, 0, 1, 2], np.argmax(vals)]
    return -q if q[0] < 0 else q


def colmap_cameras(model: ColmapModel, downscale: int = 1) -> list[tuple[str, Camera]]:
    """(image name, :class:`Camera`) for every registered image, sorted by name (as 3DGS does).

    Only undistorted pinhole models are accepted, like the original 3DGS; ``downscale`` divides
    the image size and intrinsics (3DGS's ``-r``)."""
    out = []
    for im in sorted(model.images.values(), key=lambda i: i.name):
        cam = model.cameras[im.camera_id]
        if cam.model == "SIMPLE_PINHOLE":
            f, cx, cy = cam.params
            fx = fy = f
        elif cam.model == "PINHOLE":
            fx, fy, cx, cy = cam.params
        else:
            raise MalformedFile(f"camera {cam.id}", f"has model {cam.model}; 3DGS takes only undistorted SIMPLE_PINHOLE / PINHOLE cameras", fix="undistort the images first: `colmap image_undistorter --image_path ... --input_path sparse/0 --output_path undistorted`")
        s = float(downscale)
        out.append((im.name, Camera(torch.tensor(qvec_to_rotmat(im.qvec), dtype=torch.float32), torch.tensor(im.tvec, dtype=torch.float32), fx / s, fy / s, cx / s, cy / s, max(1, round(cam.width / s)), max(1, round(cam.height / s)))))
    return out


def load_colmap_views(model_dir: str | os.PathLike, images_dir: str | os.PathLike, downscale: int = 1) -> tuple[list[Camera], Tensor]:
    """(cameras, images (V, H, W, 3) float32 in [0, 1]) from a sparse model and its image folder."""
    from .images import read_image

    pairs = colmap_cameras(read_colmap_model(model_dir), downscale)
    if not pairs:
        raise MalformedFile(str(model_dir), "registers no images", fix=_FIX)
    images_dir = Path(images_dir)
    imgs = [read_image(images_dir / name, (cam.width, cam.height)) for name, cam in pairs]
    return [c for _, c in pairs], torch.stack(imgs)


def colmap_points(model: ColmapModel) -> tuple[Tensor, Tensor]:
    """The sparse points as (positions (P, 3), colours (P, 3) in [0, 1]): 3DGS's initial cloud."""
    return torch.as_tensor(model.points_xyz, dtype=torch.float32), torch.as_tensor(model.points_rgb, dtype=torch.float32) / 255.0


# -- writing (for tests, and to export our procedural scenes to COLMAP tools) --------------------

def write_colmap_model(folder: str | os.PathLike, model: ColmapModel, binary: bool = True) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    P = len(model.points_xyz)
    ids = model.point_ids if len(model.point_ids) == P else np.arange(1, P + 1)
    if binary:
        cams = [struct.pack("<Q", len(model.cameras))]
        for c in model.cameras.values():
            mid, k = _MODEL_IDS[c.model]
            cams.append(struct.pack("<iiQQ", c.id, mid, c.width, c.height) + struct.pack(f"<{k}d", *c.params))
        ims = [struct.pack("<Q", len(model.images))]
        for im in model.images.values():
            rec = np.zeros(len(im.xys), dtype="<f8,<f8,<i8")
            if len(im.xys):
                rec["f0"], rec["f1"], rec["f2"] = im.xys[:, 0], im.xys[:, 1], im.point3D_ids
            ims.append(struct.pack("<i4d3di", im.id, *im.qvec, *im.tvec, im.camera_id) + im.name.encode() + b"\x00" + struct.pack("<Q", len(im.xys)) + rec.tobytes())
        pts = [struct.pack("<Q", P)] + [struct.pack("<QdddBBBdQ", int(ids[i]), *model.points_xyz[i], *(int(v) for v in model.points_rgb[i]), float(model.points_error[i]), 0) for i in range(P)]
        files = {"cameras.bin": b"".join(cams), "images.bin": b"".join(ims), "points3D.bin": b"".join(pts)}
    else:
        cams = "# Camera list\n" + "".join(f"{c.id} {c.model} {c.width} {c.height} {' '.join(repr(p) for p in c.params)}\n" for c in model.cameras.values())
        ims = "# Image list with two lines of data per image\n" + "".join(
            f"{im.id} {' '.join(repr(float(v)) for v in (*im.qvec, *im.tvec))} {im.camera_id} {im.name}\n" + " ".join(f"{x!r} {y!r} {int(p)}" for (x, y), p in zip(im.xys.tolist(), im.point3D_ids)) + "\n"
            for im in model.images.values()
        )
        pts = "# 3D point list\n" + "".join(f"{int(ids[i])} {' '.join(repr(float(v)) for v in model.points_xyz[i])} {' '.join(str(int(v)) for v in model.points_rgb[i])} {float(model.points_error[i])!r}\n" for i in range(P))
        files = {"cameras.txt": cams.encode(), "images.txt": ims.encode(), "points3D.txt": pts.encode()}
    for fname, raw in files.items():
        atomic_write_bytes(folder / fname, raw)
    return folder


def model_from_cameras(named_cameras: list[tuple[str, Camera]], points_xyz=None, points_rgb=None) -> ColmapModel:
    """A :class:`ColmapModel` (one PINHOLE camera per image) from our cameras, to write with
    :func:`write_colmap_model`."""
    cams, ims = {}, {}
    for i, (name, c) in enumerate(named_cameras, start=1):
        cams[i] = ColmapCamera(i, "PINHOLE", c.width, c.height, (c.fx, c.fy, c.cx, c.cy))
        ims[i] = ColmapImage(i, tuple(rotmat_to_qvec(c.R.double().cpu().numpy()).tolist()), tuple(c.t.double().cpu().tolist()), i, name, np.zeros((0, 2)), np.zeros(0, np.int64))
    xyz = np.zeros((0, 3)) if points_xyz is None else np.asarray(points_xyz, dtype=np.float64)
    rgb = np.zeros((0, 3), np.uint8) if points_rgb is None else np.asarray(points_rgb, dtype=np.uint8)
    return ColmapModel(cams, ims, xyz, rgb, np.zeros(len(xyz)), np.arange(1, len(xyz) + 1))


__all__ = [
    "CAMERA_MODELS", "ColmapCamera", "ColmapImage", "ColmapModel", "read_colmap_model", "colmap_cameras", "colmap_points",
    "load_colmap_views", "write_colmap_model", "model_from_cameras", "qvec_to_rotmat", "rotmat_to_qvec",
    "parse_cameras_bin", "parse_images_bin", "parse_points3d_bin", "parse_cameras_txt", "parse_images_txt", "parse_points3d_txt",
]
