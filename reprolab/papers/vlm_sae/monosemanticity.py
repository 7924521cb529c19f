"""The Monosemanticity Score (MS) of Pach et al. (arXiv 2504.02821, Sec. 3.2, Eq. 5-7).

For one neuron k over N images with activations a_n^k and embeddings e_n from a *separate*
image encoder:

    r_n^k  = (a_n^k - min_n a_n^k) / (max_n a_n^k - min_n a_n^k)          (Eq. 5, min-max)
    s_nm   = cos(e_n, e_m)                                              (Eq. 6)
    MS^k   = sum_{n<m} r_n^k r_m^k s_nm  /  sum_{n<m} r_n^k r_m^k          (Eq. 7)

MS^k is the similarity of image pairs weighted by how strongly both images activate the
neuron: near 1 when the images that activate it look alike to the other encoder.

Computation without an N x N matrix. With unit embeddings u_n = e_n / ||e_n|| (u_n = 0
for a zero embedding, whose cosine torch also takes as 0) the similarity matrix is
S = U U^T, so for the weight vector r (one neuron):

    sum_{n<m} r_n r_m s_nm = ( ||U^T r||^2 - sum_n r_n^2 ||u_n||^2 ) / 2
    sum_{n<m} r_n r_m      = ( (sum_n r_n)^2 - sum_n r_n^2 ) / 2

which needs only U^T R (D x K) accumulated over chunks of images: O(N D K) time and
O(D K + chunk x max(D, K)) memory for K neurons; 50k images never form a pairwise matrix.
Sums are accumulated in float64 (the differences above cancel large terms).
:func:`monosemanticity_score_pairwise` evaluates Eq. 7 literally, pair block by pair block,
as the reference the tests compare against.

Embeddings are used as given (uncentred), as the official ``metric.py`` does;
``centre_embeddings=True`` subtracts their mean over the N images first (an option; the study
reports both).

Edge cases (as the official ``metric.py``): a neuron with max == min (constant, e.g. never
active) has undefined r and gets NaN; a neuron whose weight sum is 0 (active on fewer than
two images) gets NaN. ``min_active`` optionally also marks as NaN neurons with fewer than
that many images of r_n > 0 (our addition, for "best neuron" summaries; default 0 = off).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...errors import NonFiniteError, ShapeError

ArrayLike = torch.Tensor | np.ndarray


def _as_tensor(x: ArrayLike, name: str) -> ArrayLike:
    """Shape-check; numpy arrays (memmaps included) stay numpy and are converted chunk by chunk."""
    if not isinstance(x, torch.Tensor):
        x = x if isinstance(x, np.ndarray) else np.asarray(x)
    if x.ndim != 2:
        raise ShapeError(name, tuple(x.shape), "(N images, features)")
    return x


def _rows(x: ArrayLike, i0: int, i1: int, j0: int = 0, j1: int | None = None) -> torch.Tensor:
    """x[i0:i1, j0:j1] as a float64 tensor (a copy for numpy input, read only now)."""
    if isinstance(x, torch.Tensor):
        return x[i0:i1, j0:j1].to(torch.float64)
    return torch.from_numpy(np.array(x[i0:i1, j0:j1], dtype=np.float64))


def _check_inputs(activations: ArrayLike, embeddings: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    a = _as_tensor(activations, "activations")
    e = _as_tensor(embeddings, "embeddings")
    if a.shape[0] != e.shape[0]:
        raise ShapeError("embeddings", tuple(e.shape), f"({a.shape[0]}, D): one embedding per image, the same images as the activations")
    if a.shape[0] < 2:
        raise ShapeError("activations", tuple(a.shape), "(N >= 2, K): MS needs image pairs")
    return a, e


def minmax_range(activations: ArrayLike, chunk_size: int = 8192, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-neuron min and max over images, in chunks (float64, on ``device``)."""
    a = _as_tensor(activations, "activations")
    dev = torch.device(device) if device is not None else (a.device if isinstance(a, torch.Tensor) else torch.device("cpu"))
    lo = torch.full((a.shape[1],), np.inf, dtype=torch.float64, device=dev)
    hi = torch.full((a.shape[1],), -np.inf, dtype=torch.float64, device=dev)
    for i in range(0, a.shape[0], chunk_size):
        c = _rows(a, i, i + chunk_size).to(dev)
        if not torch.isfinite(c).all():
            raise NonFiniteError(f"activations[{i}:{i + len(c)}]", "NaN/inf", fix="remove the images whose activations are not finite")
        lo = torch.minimum(lo, c.min(0).values)
        hi = torch.maximum(hi, c.max(0).values)
    return lo, hi


def _normalise(chunk: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    span = hi - lo
    r = (chunk.to(torch.float64) - lo) / torch.where(span > 0, span, torch.ones_like(span))
    return r * (span > 0)  # constant neurons: r = 0 (their score is NaN anyway)


def _unit(e: torch.Tensor) -> torch.Tensor:
    if not torch.isfinite(e).all():
        raise NonFiniteError("embeddings", "NaN/inf", fix="remove the images whose embeddings are not finite")
    n = e.norm(dim=1, keepdim=True)
    return torch.where(n > 0, e / n.clamp_min(1e-300), torch.zeros_like(e))


def monosemanticity_score(
    activations: ArrayLike,
    embeddings: ArrayLike,
    *,
    chunk_size: int = 4096,
    neuron_chunk: int = 8192,
    min_active: int = 0,
    centre_embeddings: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """MS of every neuron (Eq. 7), shape (K,) float64; NaN where undefined (see module docstring).

    ``centre_embeddings``: subtract the mean embedding over the N images before the cosines. The
    official ``metric.py`` does not (its centring line is commented out), hence the default False;
    centring removes what all images share, which lowers the MS of units that fire broadly.

    ``activations``: (N, K) tensor or array (a ``numpy.memmap`` works: it is read chunk by
    chunk); ``embeddings``: (N, D) from a different encoder. ``chunk_size`` images and
    ``neuron_chunk`` neurons are processed at a time. ``device`` defaults to the activations'.
    """
    a, e = _check_inputs(activations, embeddings)
    n, k = a.shape
    dev = torch.device(device) if device is not None else (a.device if isinstance(a, torch.Tensor) else torch.device("cpu"))
    lo, hi = minmax_range(a, chunk_size, dev)
    shift = _embedding_mean(e, chunk_size, dev) if centre_embeddings else None
    out = torch.empty(k, dtype=torch.float64, device=dev)
    for j0 in range(0, k, neuron_chunk):
        j1 = min(k, j0 + neuron_chunk)
        ut_r = torch.zeros(e.shape[1], j1 - j0, dtype=torch.float64, device=dev)  # U^T R
        sum_r = torch.zeros(j1 - j0, dtype=torch.float64, device=dev)
        sum_r2 = torch.zeros_like(sum_r)
        sum_r2_u2 = torch.zeros_like(sum_r)  # sum_n r_n^2 ||u_n||^2 (the diagonal of r^T S r)
        active = torch.zeros(j1 - j0, dtype=torch.long, device=dev)
        for i in range(0, n, chunk_size):
            r = _normalise(_rows(a, i, i + chunk_size, j0, j1).to(dev), lo[j0:j1], hi[j0:j1])  # (c, k')
            ei = _rows(e, i, i + chunk_size).to(dev)
            u = _unit(ei - shift if shift is not None else ei)  # (c, D)
            ut_r += u.T @ r
            sum_r += r.sum(0)
            r2 = r * r
            sum_r2 += r2.sum(0)
            sum_r2_u2 += (u * u).sum(1) @ r2
            active += (r > 0).sum(0)
        num = 0.5 * ((ut_r * ut_r).sum(0) - sum_r2_u2)
        den = 0.5 * (sum_r * sum_r - sum_r2)
        ms = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.full_like(den, float("nan")))
        ms = torch.where(hi[j0:j1] > lo[j0:j1], ms, torch.full_like(ms, float("nan")))
        if min_active > 0:
            ms = torch.where(active >= min_active, ms, torch.full_like(ms, float("nan")))
        out[j0:j1] = ms
    return out


def _embedding_mean(e: ArrayLike, chunk_size: int, dev: torch.device) -> torch.Tensor:
    total = torch.zeros(e.shape[1], dtype=torch.float64, device=dev)
    for i in range(0, e.shape[0], chunk_size):
        c = _rows(e, i, i + chunk_size).to(dev)
        if not torch.isfinite(c).all():
            raise NonFiniteError("embeddings", "NaN/inf", fix="remove the images whose embeddings are not finite")
        total += c.sum(0)
    return total / e.shape[0]


def monosemanticity_score_pairwise(activations: ArrayLike, embeddings: ArrayLike, block: int = 256, centre_embeddings: bool = False) -> torch.Tensor:
    """Eq. 7 summed literally over pairs n < m, block by block (reference; O(N^2 K) time)."""
    a, e = _check_inputs(activations, embeddings)
    a = _rows(a, 0, a.shape[0])
    e = _rows(e, 0, e.shape[0])
    if centre_embeddings:
        e = e - e.mean(0, keepdim=True)
    lo, hi = a.min(0).values, a.max(0).values
    r = _normalise(a, lo, hi)
    u = _unit(e)
    num = torch.zeros(a.shape[1], dtype=torch.float64)
    den = torch.zeros_like(num)
    n = a.shape[0]
    for i0 in range(0, n, block):
        for j0 in range(i0, n, block):
            s = u[i0 : i0 + block] @ u[j0 : j0 + block].T  # (bi, bj) cosines
            ii = torch.arange(i0, min(n, i0 + block))[:, None]
            jj = torch.arange(j0, min(n, j0 + block))[None, :]
            upper = (ii < jj).to(torch.float64)  # pairs n < m only
            w = torch.einsum("ik,jk->ijk", r[i0 : i0 + block], r[j0 : j0 + block]) * upper[..., None]
            num += torch.einsum("ijk,ij->k", w, s)
            den += w.sum((0, 1))
    ms = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.full_like(den, float("nan")))
    return torch.where(hi > lo, ms, torch.full_like(ms, float("nan")))


@dataclass(frozen=True)
class MSSummary:
    """Summary of a layer's MS values (NaN = undefined neurons, excluded)."""

    best: float | None  # the highest MS (the paper's "best neuron"); None when no neuron is defined
    top10_mean: float | None  # mean of the 10 highest
    mean: float | None  # mean over defined neurons
    worst: float | None
    defined: int  # neurons with a defined MS
    total: int

    @classmethod
    def of(cls, ms: torch.Tensor | np.ndarray) -> MSSummary:
        v = np.asarray(ms.cpu() if isinstance(ms, torch.Tensor) else ms, dtype=np.float64)
        ok = v[np.isfinite(v)]
        if ok.size == 0:
            return cls(None, None, None, None, 0, int(v.size))
        top = np.sort(ok)[::-1][:10]
        return cls(float(ok.max()), float(top.mean()), float(ok.mean()), float(ok.min()), int(ok.size), int(v.size))
