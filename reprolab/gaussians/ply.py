"""Read and write the ``.ply`` layout of the original 3D Gaussian Splatting implementation.

The official ``GaussianModel.save_ply`` writes one ``vertex`` element, binary little endian,
all properties ``float`` (float32), in this order::

    x y z  nx ny nz  f_dc_0..2  f_rest_0..(3K-1)  opacity  scale_0..2  rot_0..3

with ``opacity`` a logit, ``scale_*`` logs, ``rot_*`` a quaternion (w, x, y, z), ``nx..nz`` unused
zeros and ``f_rest`` channel-major: ``f_rest_{c*K + k}`` is coefficient ``k`` of channel ``c``
(the official code transposes (N, K, 3) to (N, 3, K) before flattening). K = 0, 3, 8, 15 for SH
degree 0-3. The official ``load_ply`` finds properties by name, so do we; we also accept
float64 properties and ASCII files (both read by plyfile), but refuse anything inconsistent:
missing properties, a ``f_rest`` count that is no SH degree, gaps in the numbering, non-finite
values, a truncated body, or trailing bytes after the declared vertices.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import MalformedFile, NonFiniteError
from ..runtime import atomic_write_bytes, readable_file
from .scene import SH_COEFFS, GaussianScene, sh_degree_from_rest

REQUIRED = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
_FIX = "pass a .ply written by 3D Gaussian Splatting's save_ply (or reprolab.gaussians.write_ply)"


def ply_property_names(sh_degree: int) -> list[str]:
    """The property names, in order, that the original implementation writes for ``sh_degree``."""
    k = SH_COEFFS[sh_degree] - 1
    return (
        ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
        + [f"f_rest_{i}" for i in range(3 * k)]
        + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    )


def scene_to_ply_bytes(scene: GaussianScene) -> bytes:
    """The bytes of the .ply the original implementation would write for ``scene``."""
    scene.check_finite("scene to write")
    n = scene.num_gaussians
    names = ply_property_names(scene.sh_degree)
    means = scene.means.detach().float().cpu().numpy()
    flat = scene.flat_attributes().detach().float().cpu().numpy()  # f_dc, f_rest, opacity, scale, rot
    data = np.concatenate([means, np.zeros((n, 3), np.float32), flat], axis=1).astype("<f4")
    header = "ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n" + "".join(f"property float {p}\n" for p in names) + "end_header\n"
    return header.encode("ascii") + np.ascontiguousarray(data).tobytes()


def write_ply(path: str | os.PathLike, scene: GaussianScene) -> Path:
    """Write ``scene`` atomically as an original-layout 3DGS .ply; returns the path."""
    return atomic_write_bytes(path, scene_to_ply_bytes(scene))


def read_ply(source: str | os.PathLike | bytes, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> GaussianScene:
    """Read an original-layout 3DGS .ply (a path, or the file's bytes) into a :class:`GaussianScene`.

    Raises :class:`~reprolab.errors.MalformedFile` naming the problem for a truncated,
    malformed or inconsistent file, and for a missing or unreadable one.
    """
    from plyfile import PlyData

    if isinstance(source, (bytes, bytearray)):
        name, raw = "<bytes>", bytes(source)
    else:
        name = str(source)
        raw = readable_file(source, ".ply", _FIX).read_bytes()
    _check_header_and_length(name, raw)
    try:
        ply = PlyData.read(io.BytesIO(raw))
    except Exception as e:  # plyfile raises PlyParseError and, on odd input, ValueError/IndexError/...
        raise MalformedFile(name, f"not a readable .ply ({type(e).__name__}: {e})", fix=_FIX) from None
    if "vertex" not in [el.name for el in ply.elements]:
        raise MalformedFile(name, "has no 'vertex' element", fix=_FIX)
    vertex = ply["vertex"]
    props = [p.name for p in vertex.properties]
    missing = [p for p in REQUIRED if p not in props]
    if missing:
        raise MalformedFile(name, f"lacks the 3DGS properties {missing}", fix=_FIX)
    rest_idx = sorted(int(m.group(1)) for p in props if (m := re.fullmatch(r"f_rest_(\d+)", p)))
    if rest_idx != list(range(len(rest_idx))):
        raise MalformedFile(name, f"f_rest_* properties are not numbered 0..{len(rest_idx) - 1} without gaps (got {rest_idx[:6]}...)", fix=_FIX)
    if len(rest_idx) % 3 or (len(rest_idx) // 3 + 1) not in SH_COEFFS.values():
        raise MalformedFile(name, f"has {len(rest_idx)} f_rest_* properties; SH degree 0-3 needs 0, 9, 24 or 45", fix=_FIX)
    for p in vertex.properties:
        if p.name in REQUIRED or p.name.startswith("f_rest_"):
            if not hasattr(p, "val_dtype") or np.dtype(p.val_dtype).kind != "f":
                raise MalformedFile(name, f"property {p.name} has type {getattr(p, 'val_dtype', 'list')}; 3DGS stores float", fix=_FIX)
    data = vertex.data
    n = len(data)

    def col(*names: str) -> np.ndarray:
        return np.stack([np.asarray(data[c], dtype=np.float64) for c in names], axis=1) if names else np.zeros((n, 0))

    k = len(rest_idx) // 3
    means = col("x", "y", "z")
    dc = col("f_dc_0", "f_dc_1", "f_dc_2")
    rest = col(*[f"f_rest_{i}" for i in range(3 * k)]).reshape(n, 3, k).transpose(0, 2, 1)  # channel-major -> (N, K, 3)
    opacity = col("opacity")[:, 0]
    scales = col("scale_0", "scale_1", "scale_2")
    rots = col("rot_0", "rot_1", "rot_2", "rot_3")
    for label, arr in (("position", means), ("f_dc", dc), ("f_rest", rest), ("opacity", opacity), ("scale", scales), ("rot", rots)):
        if not np.isfinite(arr).all():
            raise MalformedFile(name, f"{int((~np.isfinite(arr)).sum())} non-finite {label} values", fix="the scene that was saved had diverged; refit or re-export it")
    if n and (np.linalg.norm(rots, axis=1) == 0).any():
        raise MalformedFile(name, f"{int((np.linalg.norm(rots, axis=1) == 0).sum())} Gaussians have an all-zero quaternion (rot_0..3)", fix=_FIX)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

    scene = GaussianScene(means=t(means), sh_dc=t(dc), sh_rest=t(rest), opacity_logit=t(opacity), log_scales=t(scales), quats=t(rots))
    try:
        scene.check_finite(name)  # float64 values beyond float32's range become inf
    except NonFiniteError as e:
        raise MalformedFile(name, f"values overflow {dtype}: {e.message}", fix=_FIX) from None
    sh_degree_from_rest(k)
    return scene


_SIZES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2, "uint16": 2, "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


def _check_header_and_length(name: str, raw: bytes) -> None:
    """Cheap checks before plyfile: the magic, a terminated ASCII header, and for binary files
    with only scalar vertex properties, a body of exactly the declared length (so a truncated
    file or one with a huge bogus vertex count fails fast and by name)."""
    if not raw.startswith(b"ply"):
        raise MalformedFile(name, "does not start with the 'ply' magic", fix=_FIX)
    end = raw.find(b"end_header")
    if end < 0:
        raise MalformedFile(name, "has no 'end_header' line (truncated or not a .ply)", fix=_FIX)
    nl = raw.find(b"\n", end)
    if nl < 0:
        raise MalformedFile(name, "header ends without a newline after 'end_header' (truncated)", fix=_FIX)
    try:
        header = raw[:end].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedFile(name, "header is not ASCII", fix=_FIX) from None
    lines = [ln.split() for ln in header.splitlines() if ln.strip()]
    fmt = next((ln[1] for ln in lines if ln[0] == "format" and len(ln) > 1), None)
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise MalformedFile(name, f"format {fmt!r} is not ascii / binary_little_endian / binary_big_endian", fix=_FIX)
    if fmt == "ascii":
        return
    elements: list[list] = []  # [name, count, row_bytes or None]
    for ln in lines:
        if ln[0] == "element":
            if len(ln) != 3 or not ln[2].isdigit():
                raise MalformedFile(name, f"bad element line {' '.join(ln)!r}", fix=_FIX)
            elements.append([ln[1], int(ln[2]), 0])
        elif ln[0] == "property":
            if not elements:
                raise MalformedFile(name, "property declared before any element", fix=_FIX)
            if len(ln) == 3 and ln[1] in _SIZES and elements[-1][2] is not None:
                elements[-1][2] += _SIZES[ln[1]]
            else:
                elements[-1][2] = None  # lists or unknown types: leave the length check to plyfile
    if elements and all(e[2] is not None for e in elements):
        expected = sum(e[1] * e[2] for e in elements)
        body = len(raw) - (nl + 1)
        if body < expected:
            raise MalformedFile(name, f"is truncated: the header declares {expected} bytes of data, the file has {body}", fix=_FIX)
        if body > expected:
            raise MalformedFile(name, f"has {body - expected} bytes after the declared data (inconsistent vertex count?)", fix=_FIX)


__all__ = ["read_ply", "write_ply", "scene_to_ply_bytes", "ply_property_names"]
