"""Selective state-space scans (Mamba) in plain PyTorch, on any device and dtype, and a bidirectional Mamba block.

The scan has the inputs and semantics of mamba-ssm's ``selective_scan_ref`` (Gu & Dao 2023, Alg. 2;
``mamba_ssm/ops/selective_scan_interface.py``), for a real (S4D-real) ``A``:

    delta <- softplus(delta + delta_bias)                    (each optional)
    h_t   = exp(delta_t A) * h_{t-1} + delta_t B_t u_t      (per channel d and state n; h_0 = 0)
    y_t   = <C_t, h_t> + D u_t,     out = y * silu(z)      (D and z optional)

with ``u, delta, z``: (batch, d, L); ``A``: (d, n); ``B, C``: (d, n) fixed, (batch, n, L) selective, or
(batch, groups, n, L); ``D, delta_bias``: (d,). Computation is in float32 (as the reference), the output in the
input's dtype.

- :func:`selective_scan_ref`: the sequential loop, the reference.
- :func:`selective_scan`: the fast path, a parallel scan (recursive pairing) in ``ceil(log2 L)`` vectorised levels whose
  factors are products of decays <= 1, so nothing overflows however long the sequence (the failure of the
  ``exp(-cumsum)`` form). Equal to the reference to 1e-5 in float32, values and gradients (tested, and against
  mambapy's Blelloch ``pscan`` where mambapy is installed).
  Its backward is the reverse recurrence, one more parallel scan (:class:`_LinearScan`), and the batch is scanned in
  cache-sized pieces (:data:`CHUNK_ELEMENTS`). On a CPU, sequences of at most :data:`SEQUENTIAL_MAX_L` steps are
  scanned by a plain loop instead (forward, and the reverse recurrence backward), which is faster there. Seconds per forward + backward (128 sequences, one thread, 2-core machine, 2026-12-02,
  after the loop kernel and ``runtime.keep_freed_memory``; the reference loop and mambapy 1.2 ``pscan`` in brackets):
  ACTalker's study (128 channels x 32 tokens x 4 states, its face- and motion-branch scans) 0.038 (0.069, 0.059);
  its mouth-branch scans (128 x 12 x 4) 0.012 (0.014, 0.022); 64 x 64 x 8 0.074 (0.22, 0.15);
  64 x 96 x 16 0.17 (5.3, 0.67).
- :class:`BiMamba`: a Mamba block scanning the sequence and its reverse, outputs summed (Vision-Mamba /
  ACTalker style): in-projection, optional depthwise causal convolution, data-dependent ``delta, B, C``,
  S4D-real ``A`` (``A_n = -(n + 1)``), ``D = 1``, ``delta`` bias initialised so that ``softplus(bias)`` is
  log-uniform in [1e-3, 0.1], optional SiLU gate, out-projection (the official initialisations).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError

__all__ = ["CHUNK_ELEMENTS", "SEQUENTIAL_MAX_L", "BiMamba", "selective_scan", "selective_scan_ref"]

SEQUENTIAL_MAX_L = 64  # on a CPU, sequences up to this long are scanned by a plain loop (see _sequential)
CHUNK_ELEMENTS = 1 << 21  # the fast path scans the batch in pieces of at most this many (d x L x n) states (8 MB in float32)


def _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus, grouped=False):
    """Checked float32 inputs; B and C as (d, n) when fixed, else (batch, d, n, L), or with ``grouped`` (batch, groups,
    n, L) (selective = one group), which the fast path broadcasts without copying them d times."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ShapeError("u / delta", (tuple(u.shape), tuple(delta.shape)), "(batch, d, L) each, the same shape")
    batch, d, L = u.shape
    if A.dim() != 2 or A.shape[0] != d:
        raise ShapeError("A", tuple(A.shape), f"(d={d}, n)")
    if A.is_complex():
        raise ConfigError("A", "complex", "a real A (S4D-real, as Mamba uses); complex A is not supported here")
    n = A.shape[1]

    def expand(M: torch.Tensor, name: str) -> torch.Tensor:
        """-> (batch, d, n, L) or (d, n) for fixed."""
        if M.dim() == 2:
            if tuple(M.shape) != (d, n):
                raise ShapeError(name, tuple(M.shape), f"(d={d}, n={n}), (batch, n, L) or (batch, groups, n, L)")
            return M.float()
        if M.dim() == 3:
            if tuple(M.shape) != (batch, n, L):
                raise ShapeError(name, tuple(M.shape), f"({batch}, {n}, {L})")
            return M.float().unsqueeze(1) if grouped else M.float().unsqueeze(1).expand(batch, d, n, L)
        if M.dim() == 4 and M.shape[0] == batch and M.shape[2:] == (n, L) and d % M.shape[1] == 0:
            return M.float() if grouped else M.float().repeat_interleave(d // M.shape[1], dim=1)
        raise ShapeError(name, tuple(M.shape), f"(d, n), (batch, n, L) or (batch, groups dividing {d}, n, L)")

    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return u.float(), delta, A.float(), expand(B, "B"), expand(C, "C")


def _finish(y, u, D, z, dtype):
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(dtype)


def selective_scan_ref(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None,
                       z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                       return_last_state: bool = False):
    """The sequential scan (mamba-ssm's ``selective_scan_ref``): (batch, d, L), and the last state (batch, d, n) if asked."""
    dtype = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    batch, d, L = u.shape
    dA = torch.exp(delta.unsqueeze(-1) * A[None, :, None, :])  # (batch, d, L, n)
    Bt = B.unsqueeze(0).unsqueeze(-1).expand(batch, -1, -1, L) if B.dim() == 2 else B  # (batch, d, n, L)
    Ct = C.unsqueeze(0).unsqueeze(-1).expand(batch, -1, -1, L) if C.dim() == 2 else C
    dBu = (delta * u).unsqueeze(-1) * Bt.permute(0, 1, 3, 2)  # (batch, d, L, n)
    h = u.new_zeros(batch, d, A.shape[1])
    ys = []
    for t in range(L):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append((h * Ct[:, :, :, t]).sum(-1))
    y = _finish(torch.stack(ys, dim=2), u, D, z, dtype)
    return (y, h) if return_last_state else y


def _scan_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All states of ``h_t = a_t h_{t-1} + b_t`` (h_{-1} = 0) along dim 2, by recursive pairing (work-efficient,
    ``L`` work and ``log2 L`` depth): pairs (2i, 2i+1) combine into one step of a half-length scan, whose states are
    the odd positions; the even ones follow in one step."""
    L = a.shape[2]
    if L == 1:
        return b
    if L % 2:  # pad with an identity step (a = 1, b = 0), dropped at the end
        a = torch.cat([a, torch.ones_like(a[:, :, :1])], dim=2)
        b = torch.cat([b, torch.zeros_like(b[:, :, :1])], dim=2)
    a0, a1, b0, b1 = a[:, :, 0::2], a[:, :, 1::2], b[:, :, 0::2], b[:, :, 1::2]
    odd = _scan_pairs(a1 * a0, torch.addcmul(b1, a1, b0))  # h at 1, 3, 5, ...
    prev = torch.cat([torch.zeros_like(odd[:, :, :1]), odd[:, :, :-1]], dim=2)  # h at -1, 1, 3, ...
    even = torch.addcmul(b0, a0, prev)  # h at 0, 2, 4, ...
    return torch.stack([even, odd], dim=3).flatten(2, 3)[:, :, :L]


def _sequential(a: torch.Tensor) -> bool:
    """Whether the plain loop beats recursive pairing: on a CPU for sequences of at most :data:`SEQUENTIAL_MAX_L`
    steps (measured at 2M-element pieces, 2 threads: L = 8 loop 4.2 ms vs pairing 8.8 ms, L = 32 2.7 vs 5.8, L = 128
    6.5 vs 4.0). On an accelerator the loop's L small launches lose, so pairing is kept there."""
    return a.device.type == "cpu" and a.shape[2] <= SEQUENTIAL_MAX_L


def _scan_seq(a: torch.Tensor, b: torch.Tensor, *, reverse: bool = False) -> torch.Tensor:
    """The states of ``h_t = a_t h_{t-1} + b_t`` along dim 2 by a plain loop (no autograd). ``reverse``: the adjoint
    recurrence ``g_t = b_t + a_{t+1} g_{t+1}`` from the end (the scan's backward, with no flips)."""
    L = a.shape[2]
    h = torch.empty_like(b)
    steps = range(L - 2, -1, -1) if reverse else range(1, L)
    first = L - 1 if reverse else 0
    s = h[:, :, first]
    s.copy_(b[:, :, first])
    for t in steps:
        coef = a[:, :, t + 1] if reverse else a[:, :, t]
        s = torch.addcmul(b[:, :, t], coef, s, out=h[:, :, t])
    return h


class _LinearScan(torch.autograd.Function):
    """``h = scan(a, b)`` along dim 2 with a hand-written backward: the gradient of a linear recurrence is the reverse
    recurrence ``g_t = dL/dh_t + a_{t+1} g_{t+1}``, itself one parallel scan, with ``dL/db_t = g_t`` and
    ``dL/da_t = g_t h_{t-1}``. Autograd through :func:`_scan_pairs`'s strided views instead fills and copies zeros at
    every level (most of a training step's time at ACTalker's size)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        with torch.no_grad():
            h = _scan_seq(a, b) if _sequential(a) else _scan_pairs(a, b)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, gh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        a, h = ctx.saved_tensors
        with torch.no_grad():
            if _sequential(a):
                g = _scan_seq(a, gh, reverse=True)
            else:
                a_next = torch.cat([a[:, :, 1:], torch.zeros_like(a[:, :, :1])], dim=2)  # a_{t+1}, 0 after the end
                g = _scan_pairs(a_next.flip(2), gh.contiguous().flip(2)).flip(2)
            ga = torch.zeros_like(a)  # dL/da_t = g_t h_{t-1}, with h_{-1} = 0
            torch.mul(g[:, :, 1:], h[:, :, :-1], out=ga[:, :, 1:])
            return ga, g


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None,
                   z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None, delta_softplus: bool = False,
                   return_last_state: bool = False):
    """The parallel scan: same inputs and outputs as :func:`selective_scan_ref`, in ``ceil(log2 L)`` vectorised levels.

    The recurrence ``h_t = a_t h_{t-1} + b_t`` is an associative scan over pairs ``(a, b)`` with
    ``(a1, b1) then (a2, b2) = (a1 a2, a2 b1 + b2)``, computed by recursive pairing (:func:`_scan_pairs`, the
    work-efficient order of Blelloch's scan, out of place so autograd differentiates it as written). Every factor is
    a product of decays ``exp(delta A) <= 1``, so nothing can overflow however long the sequence (no ``exp(-cumsum)``).
    """
    dtype = u.dtype
    u, delta, A, B, C = _prepare(u, delta, A, B, C, D, z, delta_bias, delta_softplus, grouped=True)
    batch, d, L = u.shape
    step = max(1, CHUNK_ELEMENTS // max(1, d * L * A.shape[1]))
    if batch > step:  # the (batch, d, L, n) states in cache-sized pieces of the batch: the same numbers, faster on a CPU
        n_pieces = -(-batch // step)
        parts = [x.split(step) if x.dim() > 2 else [x] * n_pieces for x in (u, delta, B, C)]
        pieces = [_parallel(*args, A=A) for args in zip(*parts)]  # split (not slicing): its backward concatenates, no zero fills
        y, h_last = torch.cat([p[0] for p in pieces]), torch.cat([p[1] for p in pieces])
    else:
        y, h_last = _parallel(u, delta, B, C, A=A)
    y = _finish(y, u, D, z, dtype)
    return (y, h_last) if return_last_state else y


def _parallel(u: torch.Tensor, delta: torch.Tensor, B: torch.Tensor, C: torch.Tensor, *, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """y before D and z, and the last state, of prepared inputs (B, C: (d, n) fixed or (batch, groups, n, L))."""
    batch, d, L = u.shape
    n = A.shape[1]
    a = torch.exp(delta.unsqueeze(-1) * A[None, :, None, :])  # (batch, d, L, n)
    du = delta * u
    if B.dim() == 2:
        bu = du.unsqueeze(-1) * B[None, :, None, :]
    else:  # channels in groups: (batch, g, d/g, L, 1) x (batch, g, 1, L, n)
        g = B.shape[1]
        bu = (du.view(batch, g, d // g, L, 1) * B.transpose(-1, -2).unsqueeze(2)).view(batch, d, L, n)
    h = _LinearScan.apply(a, bu)  # (batch, d, L, n)
    if C.dim() == 2:
        y = (h * C[None, :, None, :]).sum(-1)
    else:
        g = C.shape[1]
        y = (h.view(batch, g, d // g, L, n) * C.transpose(-1, -2).unsqueeze(2)).sum(-1).view(batch, d, L)
    return y, h[:, :, -1]


class BiMamba(nn.Module):
    """A bidirectional Mamba block on (batch, L, dim) sequences: the same scan forwards and on the reversed sequence,
    with separate ``delta, B, C`` projections, ``A`` and ``D`` per direction, outputs summed.

    ``expand``: d_inner = expand * dim; ``d_state``: n; ``dt_rank``: ``ceil(dim / 16)`` by default; ``conv``: a
    depthwise causal convolution of width ``d_conv`` before the scan (Mamba), off for ACTalker's units; ``gate``: the
    SiLU z-gate (Mamba), off for ACTalker; ``in_proj`` / ``out_proj`` may be skipped when the caller projects
    (``project=False``: input and output are (batch, L, d_inner)).
    """

    def __init__(self, dim: int, *, d_state: int = 16, expand: int = 2, dt_rank: int | None = None, conv: bool = False, d_conv: int = 3,
                 gate: bool = False, project: bool = True, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4):
        super().__init__()
        if dim < 1 or d_state < 1 or expand < 1:
            raise ConfigError("dim / d_state / expand", (dim, d_state, expand), "positive integers")
        if gate and not project:
            raise ConfigError("gate", gate, "False when project=False (the z-gate comes from the in-projection)")
        self.dim, self.d_state = dim, d_state
        self.d_inner = expand * dim if project else dim
        self.dt_rank = dt_rank or math.ceil(dim / 16)
        self.gate, self.project = gate, project
        di = self.d_inner
        self.in_proj = nn.Linear(dim, di * (2 if gate else 1), bias=False) if project else None
        self.conv = nn.Conv1d(di, di, d_conv, groups=di, padding=d_conv - 1) if conv else None
        self.x_proj = nn.ModuleList([nn.Linear(di, self.dt_rank + 2 * d_state, bias=False) for _ in range(2)])
        self.dt_proj = nn.ModuleList([nn.Linear(self.dt_rank, di, bias=True) for _ in range(2)])
        for p in self.dt_proj:  # official dt_init: weights U(+-dt_rank^-0.5), softplus(bias) log-uniform in [dt_min, dt_max]
            nn.init.uniform_(p.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
            dt = torch.exp(torch.rand(di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_floor)
            with torch.no_grad():
                p.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(di, 1)
        self.A_log = nn.Parameter(torch.log(A).unsqueeze(0).repeat(2, 1, 1))  # (2, d_inner, n): A = -exp(A_log)
        self.D = nn.Parameter(torch.ones(2, di))
        self.out_proj = nn.Linear(di, dim, bias=False) if project else None

    def _deltas(self, h: torch.Tensor, k: int, keep: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(delta (batch, d_inner, L) after softplus and the skip mask, B, C (batch, n, L)) of direction k."""
        dbl = self.x_proj[k](h.transpose(1, 2))  # (batch, L, r + 2n)
        dt, Bm, Cm = dbl.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus((dt @ self.dt_proj[k].weight.T).transpose(1, 2) + self.dt_proj[k].bias[:, None])
        if keep is not None:  # a skipped token: delta = 0, so exp(delta A) = 1 and delta B u = 0, the state passes unchanged
            delta = delta * keep[:, None, :].to(delta.dtype)
        return delta, Bm.transpose(1, 2), Cm.transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, L, dim) -> (batch, L, dim). ``mask`` (batch, L) bool: tokens where it is False are skipped (identity
        steps of the recurrence in both directions), so the outputs at the kept tokens equal those of the sequence with
        the skipped tokens removed; outputs at skipped tokens are meaningless. This is how ACTalker's Mask-Drop runs
        samples with different masks in one batch."""
        if x.dim() != 3:
            raise ShapeError("x", tuple(x.shape), "(batch, L, dim)")
        if mask is not None and tuple(mask.shape) != tuple(x.shape[:2]):
            raise ShapeError("mask", tuple(mask.shape), f"(batch, L) = {tuple(x.shape[:2])}")
        if mask is not None and self.conv is not None:
            raise ConfigError("mask", "given", "no mask with conv=True (the convolution would mix skipped tokens into kept ones)")
        h = self.in_proj(x) if self.in_proj is not None else x
        if self.gate:
            h, zg = h.chunk(2, dim=-1)
        h = h.transpose(1, 2)  # (batch, d_inner, L)
        L = h.shape[-1]
        if self.conv is not None:
            h = F.silu(self.conv(h)[..., :L])
        hr = h.flip(-1)
        d0, B0, C0 = self._deltas(h, 0, mask)
        d1, B1, C1 = self._deltas(hr, 1, None if mask is None else mask.flip(-1))
        # both directions in one scan: channels [forward; reverse], B and C as two groups of d_inner channels each
        y = selective_scan(torch.cat([h, hr], dim=1), torch.cat([d0, d1], dim=1), -torch.exp(self.A_log.flatten(0, 1)),
                           torch.stack([B0, B1], dim=1), torch.stack([C0, C1], dim=1), self.D.flatten())
        yf, yr = y.split(self.d_inner, dim=1)
        y = yf + yr.flip(-1)
        y = y.transpose(1, 2)
        if self.gate:
            y = y * F.silu(zg)
        return self.out_proj(y) if self.out_proj is not None else y
