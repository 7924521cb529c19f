"""The peers NeuralGS is compared with (spec sheet, "Peers"), each as bytes on disk and back.

- ``fp16_zip``: every raw attribute (position, SH, opacity logit, log scales, quaternion) in fp16,
  zlib level 9. No pruning, no training: what "just store it smaller" gives.
- ``prune_sh_vq``: the classic compact-3DGS recipe of LightGaussian (Fan et al. 2023, Sec. 3.1 and
  3.3): prune the least important Gaussians by the same global significance score, vector-quantise
  the SH coefficients beyond DC with a k-means codebook (one 3K-vector per Gaussian, importance-weighted
  codebook learning), store the other attributes in fp16, zlib level 9.

  Choices (LightGaussian's own settings are for millions of Gaussians): prune ratio 0.4, the same as
  NeuralGS, so both start from the same Gaussians; codebook size 256 (a uint8 index per Gaussian,
  LightGaussian uses 8192 for ~3M Gaussians); every kept Gaussian is quantised (LightGaussian keeps
  the top 40% by importance unquantised); no SH distillation and no fine-tuning after pruning.
"""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import torch

from ...errors import ConfigError, MalformedFile
from ...gaussians import GaussianScene
from .neuralgs import prune_least_important

_MAGIC = {"fp16zip": b"F16Z", "prunevq": b"PRVQ"}


def _pack(kind: str, header: dict, arrays: list[np.ndarray]) -> bytes:
    header = {**header, "arrays": [[a.dtype.str, list(a.shape)] for a in arrays]}
    h = json.dumps(header, separators=(",", ":")).encode()
    return _MAGIC[kind] + struct.pack("<I", len(h)) + h + zlib.compress(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays), 9)


def _unpack(kind: str, raw: bytes) -> tuple[dict, list[np.ndarray]]:
    if raw[:4] != _MAGIC[kind]:
        raise MalformedFile("<bytes>", f"is not a {kind} file (bad magic)", fix=f"pass bytes written by {kind}")
    (hlen,) = struct.unpack("<I", raw[4:8])
    try:
        header = json.loads(raw[8 : 8 + hlen])
        body = zlib.decompress(raw[8 + hlen :])
    except (ValueError, zlib.error) as e:
        raise MalformedFile("<bytes>", f"corrupt {kind} payload ({e})", fix=f"pass bytes written by {kind}") from None
    arrays, pos = [], 0
    for dt, shape in header["arrays"]:
        count = int(np.prod(shape))
        arrays.append(np.frombuffer(body, dtype=dt, count=count, offset=pos).reshape(shape))
        pos += count * np.dtype(dt).itemsize
    return header, arrays


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32))


def fp16_zip(scene: GaussianScene) -> bytes:
    """All raw attributes in fp16, zlib-compressed."""
    flat = torch.cat([scene.means, scene.flat_attributes()], dim=1).detach().cpu().numpy().astype("<f2")
    return _pack("fp16zip", {"sh_degree": scene.sh_degree}, [flat])


def fp16_unzip(raw: bytes) -> GaussianScene:
    _, (flat,) = _unpack("fp16zip", raw)
    flat = _t(flat)
    return GaussianScene.from_flat_attributes(flat[:, :3], flat[:, 3:])


def prune_sh_vq(scene: GaussianScene, scores: torch.Tensor, prune_ratio: float = 0.4, codebook_size: int = 256, seed: int = 0) -> bytes:
    """LightGaussian-style pruning + SH vector quantisation (see the module docstring)."""
    if not 2 <= codebook_size <= 65536:
        raise ConfigError("codebook_size", codebook_size, "an integer in [2, 65536]")
    kept, idx = prune_least_important(scene, scores, prune_ratio)
    w = scores[idx].double().cpu().numpy() + 1e-12
    n, k = kept.num_gaussians, kept.sh_rest.shape[1]
    rest = kept.sh_rest.reshape(n, 3 * k).detach().double().cpu().numpy()
    size = min(codebook_size, n)
    if k and size > 1:
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=size, n_init=1, random_state=seed, max_iter=100).fit(rest, sample_weight=w)
        codebook, index = km.cluster_centers_, km.labels_
    else:
        codebook, index = rest[:1] if n else np.zeros((1, 3 * k)), np.zeros(n, dtype=np.int64)
    index_dtype = "<u1" if size <= 256 else "<u2"
    other = torch.cat([kept.means, kept.sh_dc, kept.opacity_logit[:, None], kept.log_scales, kept.quats], dim=1).detach().cpu().numpy().astype("<f2")
    return _pack("prunevq", {"sh_degree": kept.sh_degree}, [other, codebook.astype("<f2"), index.astype(index_dtype)])


def prune_sh_vq_decode(raw: bytes) -> GaussianScene:
    header, (other, codebook, index) = _unpack("prunevq", raw)
    other = _t(other)
    k = codebook.shape[1] // 3
    rest = _t(codebook)[torch.from_numpy(index.astype(np.int64))].reshape(-1, k, 3)
    return GaussianScene(means=other[:, 0:3], sh_dc=other[:, 3:6], sh_rest=rest, opacity_logit=other[:, 6], log_scales=other[:, 7:10], quats=other[:, 10:14])
