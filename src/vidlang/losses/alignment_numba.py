"""Compiled CPU kernel (numba) for DTW, soft-DTW and OTAM: value, gradient and path length.

The same recursions as the anti-diagonal torch kernel in :mod:`vidlang.losses.alignment`, laid
out for a CPU: a batch is cut into blocks of pairs (:func:`block_lanes`); threads take blocks
(``prange``) and, inside a block, every cell of the dynamic programme is one loop over the
pairs, so the pairs are the SIMD lanes (the innermost, contiguous axis of every table).
Ragged pairs run on the block's largest grid with zero cost outside their own ``n_b x m_b``
block and are read at their own terminal cell; cells past the terminal cell get no gradient.

One call returns the values, the expected path lengths and d value / d cost (the backward
recursion of Cuturi & Blondel, ICML 2017, from the soft-min weights the forward stores per
cell), so the autograd backward is one multiplication. Everything is computed in float64
(one compiled specialisation; float32 inputs come back within float32 rounding of the exact
values, even at gamma = 0.01).

``exp`` and ``log`` are written out (range reduction + polynomial, exact to ~1 ulp) because
numba without Intel's SVML calls libm once per lane, which stops the loop from vectorising.
``fastmath`` is limited to contraction (FMA): reassociation would fold the rounding trick in
:func:`_exp` and the tables hold +inf, so ``nnan`` / ``ninf`` are not safe.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import prange
from numba.core import types
from numba.extending import intrinsic

# numba's default OpenMP layer and torch's OpenMP runtime, both in one process, spin against
# each other: after a numba parallel loop, plain torch ops (a dtype cast) ran ~100x slower, and
# the kernel itself ~6x. The workqueue layer has no spinning pool. vidlang.losses.alignment
# sets NUMBA_THREADING_LAYER (unless set) before numba starts; this covers numba imported
# first. (workqueue does not nest parallel loops; ours do not.)
if os.environ.get("NUMBA_THREADING_LAYER", "workqueue") == "workqueue":
    setattr(numba.config, "THREADING_LAYER", "workqueue")  # noqa: B010 (no stub attribute)

FASTMATH = {"contract"}
INF = np.inf

_MAGIC = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer held in the low bits
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split so that k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.9082149292705877e-10
_LN2 = 0.6931471805599453


@intrinsic
def _f64_bits(typingctx, x):  # type: ignore[no-untyped-def]
    """The IEEE bits of a float64 as an int64 (a bitcast, so the loop still vectorises)."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, x):  # type: ignore[no-untyped-def]
    """The float64 whose IEEE bits are the int64 ``x``."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


_JIT: dict[str, Any] = {"nogil": True, "cache": True, "fastmath": FASTMATH, "error_model": "numpy"}


@numba.njit(inline="always", **_JIT)
def _exp(x: float) -> float:
    """exp(x) for x <= 0 (-inf allowed): exactly 0 below -708, 1 at 0, else within ~1 ulp."""
    xc = max(x, -708.0)
    shifted = xc * _LOG2E + _MAGIC
    k = shifted - _MAGIC  # round(x / ln 2) as a float
    r = (xc - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln(2) / 2
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    bits = (_f64_bits(shifted) - _f64_bits(_MAGIC) + 1023) << 52  # type: ignore[call-arg]
    scale: float = _bits_f64(bits)  # type: ignore[call-arg]
    return 0.0 if x < -708.0 else p * scale


@numba.njit(inline="always", **_JIT)
def _log_1_3(t: float) -> float:
    """log(t) for t in [1, 3] (a soft-min's sum of weights, the largest being exp(0) = 1)."""
    big = (t > 1.5) * 1.0  # arithmetic, not a branch, so the loop vectorises
    u = t - 0.5 * big * t  # u in [0.75, 1.5]
    s = (u - 1.0) / (u + 1.0)  # |s| <= 0.2; log u = 2 atanh(s) = 2 (s + s^3/3 + ...)
    s2 = s * s
    q = 1.0 / 25.0
    q = q * s2 + 1.0 / 23.0
    q = q * s2 + 1.0 / 21.0
    q = q * s2 + 1.0 / 19.0
    q = q * s2 + 1.0 / 17.0
    q = q * s2 + 1.0 / 15.0
    q = q * s2 + 1.0 / 13.0
    q = q * s2 + 1.0 / 11.0
    q = q * s2 + 1.0 / 9.0
    q = q * s2 + 1.0 / 7.0
    q = q * s2 + 1.0 / 5.0
    q = q * s2 + 1.0 / 3.0
    q = q * s2 + 1.0
    return 2.0 * s * q + _LN2 * big



# Row functions: one DP row of one block, the lanes (pairs) innermost. Every table a row
# writes is its own array, and a value carried along the row (the left / right neighbour)
# lives in a one-row buffer, so the vectoriser's overlap checks pass and the SIMD loop runs.
_ROW: dict[str, Any] = {"nogil": True, "cache": True, "fastmath": FASTMATH, "error_model": "numpy",
        "boundscheck": False}


@numba.njit(**_ROW)
def _soft_row(r_up: np.ndarray, r_out: np.ndarray, left: np.ndarray, cost: np.ndarray,
              up_penalty: np.ndarray, w_diag: np.ndarray, w_up: np.ndarray, inv_gamma: float,
              gamma: float, width: int) -> None:
    """Soft-min row: r_out[j] = cost[j-1] + softmin(r_up[j-1], r_up[j] + penalty, r_out[j-1]).

    The smallest of the three gets exp(0) = 1, so two exponentials per cell: ``a`` / ``b``
    are the other two (x, y when the left one is the strict minimum, else max(x, y) and z)."""
    lanes = left.shape[0]
    for lane in range(lanes):
        left[lane] = INF
    for j in range(1, width + 1):
        for lane in range(lanes):
            x = r_up[j - 1, lane]
            y = r_up[j, lane] + up_penalty[j, lane]
            z = left[lane]
            x_first = x <= y
            low_xy = min(x, y)
            z_min = z < low_xy
            low = min(low_xy, z)
            a = x if z_min else max(x, y)
            b = y if z_min else z
            pa = _exp((low - a) * inv_gamma)
            pb = _exp((low - b) * inv_gamma)
            total = 1.0 + pa + pb
            inv = 1.0 / total
            ex = pa if (z_min or not x_first) else 1.0
            ey = pb if z_min else (pa if x_first else 1.0)
            w_diag[j, lane] = ex * inv
            w_up[j, lane] = ey * inv
            value = cost[j - 1, lane] + low - gamma * _log_1_3(total)
            r_out[j, lane] = value
            left[lane] = value


@numba.njit(**_ROW)
def _hard_row(r_up: np.ndarray, r_out: np.ndarray, left: np.ndarray, cost: np.ndarray,
              up_penalty: np.ndarray, w_diag: np.ndarray, w_up: np.ndarray, width: int) -> None:
    """Min row with one-hot weights; ties go to diagonal, then up, then left (the torch
    kernel's order)."""
    lanes = left.shape[0]
    for lane in range(lanes):
        left[lane] = INF
    for j in range(1, width + 1):
        for lane in range(lanes):
            x = r_up[j - 1, lane]
            y = r_up[j, lane] + up_penalty[j, lane]
            z = left[lane]
            pick_x = (x <= y) & (x <= z)
            pick_y = (~pick_x) & (y <= z)
            w_diag[j, lane] = pick_x * 1.0
            w_up[j, lane] = pick_y * 1.0
            value = cost[j - 1, lane] + min(x, min(y, z))
            r_out[j, lane] = value
            left[lane] = value


@numba.njit(**_ROW)
def _length_row(len_up: np.ndarray, len_out: np.ndarray, left: np.ndarray, w_diag: np.ndarray,
                w_up: np.ndarray, width: int) -> None:
    """Expected path length: 1 + the weighted lengths of the three predecessors."""
    lanes = left.shape[0]
    for lane in range(lanes):
        left[lane] = 0.0
    for j in range(1, width + 1):
        for lane in range(lanes):
            wd = w_diag[j, lane]
            wu = w_up[j, lane]
            value = 1.0 + (wd * len_up[j - 1, lane] + wu * len_up[j, lane]
                           + (1.0 - wd - wu) * left[lane])
            len_out[j, lane] = value
            left[lane] = value


@numba.njit(**_ROW)
def _grad_row(e_down: np.ndarray, e_out: np.ndarray, right: np.ndarray, wu_down: np.ndarray,
              wd_down: np.ndarray, wd_row: np.ndarray, wu_row: np.ndarray, term_i: np.ndarray,
              term_j: np.ndarray, i: int, width: int) -> None:
    """E[i, j] = [terminal] + E[i+1, j] w_up[i+1, j] + E[i+1, j+1] w_diag[i+1, j+1]
    + E[i, j+1] w_left[i, j+1] (the weights of row i + 1 are all zero below the grid)."""
    lanes = right.shape[0]
    for lane in range(lanes):
        right[lane] = 0.0
    for j in range(width, 0, -1):
        for lane in range(lanes):
            seed = ((term_i[lane] == i) & (term_j[lane] == j)) * 1.0
            value = (seed + e_down[j, lane] * wu_down[j, lane]
                     + e_down[j + 1, lane] * wd_down[j + 1, lane]
                     + right[lane] * (1.0 - wd_row[j + 1, lane] - wu_row[j + 1, lane]))
            e_out[j, lane] = value
            right[lane] = value


@numba.njit(**_ROW)
def _block(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, b0: int, lanes: int,
           gamma: float, otam: bool, want_grad: bool, want_length: bool, values: np.ndarray,
           lengths: np.ndarray, grad: np.ndarray) -> None:
    """Pairs b0 .. b0 + lanes - 1 of the batch (lanes past the batch run a 1 x 1 pair)."""
    batch = cost.shape[0]
    extra = 2 if otam else 0
    off = 1 if otam else 0  # DP column of cost column j is j + 1 + off
    term_i = np.ones(lanes, dtype=np.int64)
    term_j = np.ones(lanes, dtype=np.int64)
    for lane in range(lanes):
        if b0 + lane < batch:
            term_i[lane] = rows[b0 + lane]
            term_j[lane] = cols[b0 + lane] + extra
    ni = term_i.max()
    nj = term_j.max()
    # the block's costs, lanes innermost; zero outside each pair's block and in OTAM's pads
    c = np.zeros((ni, nj, lanes))
    for lane in range(lanes):
        b = b0 + lane
        if b < batch:
            for i in range(rows[b]):
                for j in range(cols[b]):
                    c[i, j + off, lane] = cost[b, i, j]
    up_penalty = np.zeros((nj + 1, lanes))  # +inf where a vertical move may not enter
    if otam:
        for j in range(nj + 1):
            for lane in range(lanes):
                if j != 1 and j != term_j[lane]:
                    up_penalty[j, lane] = INF
    w_diag = np.empty((ni + 2, nj + 2, lanes))
    w_up = np.empty((ni + 2, nj + 2, lanes))
    for w in (w_diag, w_up):  # the backward reads one row / column past the grid
        w[ni + 1, :, :] = 0.0
        w[:, nj + 1, :] = 0.0
    r_a = np.full((nj + 1, lanes), INF)
    r_b = np.full((nj + 1, lanes), INF)
    len_a = np.zeros((nj + 1, lanes))
    len_b = np.zeros((nj + 1, lanes))
    carry = np.empty(lanes)
    r_a[0, :] = 0.0
    inv_gamma = 1.0 / gamma if gamma > 0.0 else 0.0
    for i in range(1, ni + 1):
        r_up, r_out = (r_a, r_b) if i % 2 == 1 else (r_b, r_a)
        if gamma > 0.0:
            _soft_row(r_up, r_out, carry, c[i - 1], up_penalty, w_diag[i], w_up[i], inv_gamma,
                      gamma, nj)
        else:
            _hard_row(r_up, r_out, carry, c[i - 1], up_penalty, w_diag[i], w_up[i], nj)
        r_up[0, :] = INF  # column 0 below row 0 is unreachable
        len_up, len_out = (len_a, len_b) if i % 2 == 1 else (len_b, len_a)
        if want_length:
            _length_row(len_up, len_out, carry, w_diag[i], w_up[i], nj)
        for lane in range(lanes):
            if term_i[lane] == i and b0 + lane < batch:
                values[b0 + lane] = r_out[term_j[lane], lane]
                lengths[b0 + lane] = len_out[term_j[lane], lane] if want_length else 0.0
    if not want_grad:
        return
    e_a = np.zeros((nj + 2, lanes))
    e_b = np.zeros((nj + 2, lanes))
    for i in range(ni, 0, -1):
        e_down, e_out = (e_a, e_b) if (ni - i) % 2 == 0 else (e_b, e_a)
        _grad_row(e_down, e_out, carry, w_up[i + 1], w_diag[i + 1], w_diag[i], w_up[i], term_i,
                  term_j, i, nj)
        for lane in range(lanes):
            b = b0 + lane
            if b < batch and i <= rows[b]:
                for j in range(cols[b]):
                    grad[b, i - 1, j] = e_out[j + 1 + off, lane]


@numba.njit(parallel=True, **_ROW)
def dp_kernel(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, gamma: float, otam: bool,
              want_grad: bool, want_length: bool, lanes: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values [B], expected path lengths [B] (zeros unless ``want_length``) and the gradient
    [B, N, M] (empty unless ``want_grad``) of cost [B, N, M] (float64, C-contiguous), pair b
    reading its top-left rows[b] x cols[b] block. ``gamma`` 0 is the hard (min) kind;
    ``otam`` pads a zero column on each side of each pair's block and allows vertical moves
    only in those two columns. Threads take blocks of ``lanes`` pairs."""
    batch, n, m = cost.shape
    values = np.zeros(batch)
    lengths = np.zeros(batch)
    grad = np.zeros((batch, n, m)) if want_grad else np.zeros((0, n, m))
    blocks = (batch + lanes - 1) // lanes
    for blk in prange(blocks):
        _block(cost, rows, cols, blk * lanes, lanes, gamma, otam, want_grad, want_length,
               values, lengths, grad)
    return values, lengths, grad


# the workqueue layer aborts the process when two Python threads launch parallel loops at once
# (e.g. a threaded server); one launch at a time (the loop itself uses every numba thread)
_LAUNCH = threading.Lock()


def block_lanes(batch: int, n: int, width: int, threads: int) -> int:
    """Pairs per block: 8 (two AVX2 vectors; the vectoriser's unit) for grids from 32 x 32 up,
    where a block's weight tables already fill the cache, up to 64 for tiny grids (less
    per-block overhead), but never so many that a thread is left without a block."""
    per_cell = max(1, 1024 // ((n + 1) * (width + 1)))
    lanes = 8 * min(8, per_cell)
    per_thread = -(-batch // max(1, threads))
    return max(8, min(lanes, 8 * -(-per_thread // 8)))


def run_kernel(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, gamma: float,
               otam: bool, want_grad: bool, want_length: bool
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`dp_kernel` on torch tensors: (values [B], lengths [B], gradient [B, N, M]),
    float64 (the gradient is empty unless ``want_grad``)."""
    batch, n, m = cost.shape
    c64 = cost.to(torch.float64).contiguous().numpy()
    r = rows.to(device="cpu", dtype=torch.int64).contiguous().numpy()
    k = cols.to(device="cpu", dtype=torch.int64).contiguous().numpy()
    width = m + (2 if otam else 0)
    lanes = block_lanes(batch, n, width, numba.get_num_threads())
    with _LAUNCH:
        values, lengths, grad = dp_kernel(c64, r, k, float(gamma), bool(otam), bool(want_grad),
                                          bool(want_length), lanes)
    return torch.from_numpy(values), torch.from_numpy(lengths), torch.from_numpy(grad)
