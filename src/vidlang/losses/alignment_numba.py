"""Compiled CPU kernel (numba) for DTW, soft-DTW and OTAM: value, gradient and path length.

The same recursions as the anti-diagonal torch kernel in :mod:`vidlang.losses.alignment`, laid
out for a CPU. A batch is cut into blocks of ``lanes`` pairs (:func:`block_lanes`, 8); threads
take blocks (``prange``). The pairs of a block are the SIMD lanes (the innermost axis of every
table). Ragged pairs run on the block's largest grid with zero cost outside their own
``n_b x m_b`` block and are read at their own terminal cell; cells past the terminal cell get
no gradient.

Inside a block the grid runs in strips of up to ``strip`` rows (:data:`STRIP`, 64), held
skewed: cell (strip row s, column j) sits at step u = j + s, position f = s * lanes + lane of
that step's row (slot 0: the row above the strip). The cells of one step are independent (an
anti-diagonal of the strip, for every lane) and contiguous in f, so each step is one long
vectorised loop with no carried dependence; a plain row-by-row order would make every cell
wait for its left neighbour's exp / log chain. Per strip the kernel keeps, all in cache: the
skewed values (float64), the strip's costs transposed into that layout (only the strip's rows,
never a transposed copy of the whole block) and the last row, handed to the next strip.
Per block it keeps the diagonal and up soft-min weights of every cell (skewed, by strip) for
the backward pass, which runs the strips bottom-up in the same skewed order (Cuturi & Blondel's
gradient recursion, ICML 2017) and writes d value / d cost straight into the output (every
element written once, no zero fill). One call returns values, expected path lengths and the
gradient, so the autograd backward is one multiplication.

Precision. Values always accumulate in float64. float64 inputs: float64 weights, ``exp`` /
``log`` to ~1 ulp (:func:`_soft_step_fused`). float32 inputs (no float64 copy is made): float32
weight tables and float32 ``exp`` / ``log`` / weights at 8 lanes (:func:`_soft_step_split`); the
values then differ from the exact ones by well under float32 rounding of the result, the
gradients by < 1e-6 (tests/losses/test_alignment_numba.py checks both).

``exp`` and ``log`` are written out (range reduction + polynomial) because numba without
Intel's SVML calls libm once per lane, which stops the loop from vectorising. ``fastmath`` is
limited to contraction (FMA): reassociation would fold the rounding trick in :func:`_exp` and
the tables hold +inf, so ``nnan`` / ``ninf`` are not safe. Results do not depend on the number
of threads or on a pair's block or lane.
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
from numba.core import cgutils, types
from numba.extending import intrinsic, overload

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


def _bitcast(src: Any, dst: Any, llvm_type: Any, doc: str) -> Any:
    """A numba intrinsic reinterpreting a ``src`` value's bits as ``dst`` (a bitcast, so the
    loops that use it still vectorise)."""
    def typer(typingctx, x):  # type: ignore[no-untyped-def]
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.bitcast(args[0], llvm_type)
        return dst(src), codegen
    typer.__doc__ = doc
    return intrinsic(typer)


_f64_bits = _bitcast(types.float64, types.int64, ir.IntType(64), "IEEE bits of a float64 as int64")
_bits_f64 = _bitcast(types.int64, types.float64, ir.DoubleType(), "the float64 of int64 bits")
_f32_bits = _bitcast(types.float32, types.int32, ir.IntType(32), "IEEE bits of a float32 as int32")
_bits_f32 = _bitcast(types.int32, types.float32, ir.FloatType(), "the float32 of int32 bits")


@intrinsic
def _fetch_add(typingctx, counter, value):  # type: ignore[no-untyped-def]
    """Atomically add ``value`` to ``counter[0]`` (an int64 array); returns the old value."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary,
                                       [context.get_constant(types.intp, 0)])
        return builder.atomic_rmw("add", ptr, args[1], "seq_cst")
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64):
        return None
    return types.int64(counter, types.int64), codegen


_JIT: dict[str, Any] = {"nogil": True, "cache": True, "fastmath": FASTMATH, "error_model": "numpy"}


@numba.njit(inline="always", **_JIT)
def _exp_reduce(x: float) -> tuple[float, float]:
    """(r, 2**k) with x = k ln 2 + r, |r| <= ln(2) / 2, for x clamped to >= -708."""
    xc = max(x, -708.0)
    shifted = xc * _LOG2E + _MAGIC
    k = shifted - _MAGIC  # round(x / ln 2) as a float
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    bits = (_f64_bits(shifted) - _f64_bits(_MAGIC) + 1023) << 52  # type: ignore[call-arg]
    scale: float = _bits_f64(bits)  # type: ignore[call-arg]
    return r, scale


@numba.njit(inline="always", **_JIT)
def _exp(x: float) -> float:
    """exp(x) for x <= 0 (-inf allowed): exactly 0 below -708, 1 at 0, else within ~1 ulp."""
    r, scale = _exp_reduce(x)
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
    return 0.0 if x < -708.0 else p * scale


@numba.njit(inline="always", **_JIT)
def _log_split(t: float) -> tuple[float, float, float]:
    """For t in [1, 3] (a soft-min's sum of weights, the largest being exp(0) = 1): (1 / t,
    s, big) with log t = 2 atanh(s) + big ln 2, |s| <= 0.2, from one division."""
    big = (t > 1.5) * 1.0  # arithmetic, not a branch, so the loop vectorises
    u = t - 0.5 * big * t  # u in [0.75, 1.5]
    u1 = u + 1.0
    d = 1.0 / (t * u1)
    return u1 * d, (u - 1.0) * t * d, big  # 1 / t and (u - 1) / (u + 1)


@numba.njit(inline="always", **_JIT)
def _log_tail(s: float, big: float) -> float:
    """2 atanh(s) + big ln 2 = 2 (s + s^3/3 + ... + s^25/25) + big ln 2 (|s| <= 0.2: ~1 ulp)."""
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


F32 = np.float32
_F_MAGIC = F32(12582912.0)  # 1.5 * 2**23
_F_LOG2E = F32(1.4426950408889634)
_F_LN2_HI = F32(0.693359375)
_F_LN2_LO = F32(-2.12194440e-4)
_F_LN2 = F32(0.6931471805599453)
_F_ONE, _F_HALF, _F_ZERO = F32(1.0), F32(0.5), F32(0.0)


@numba.njit(inline="always", **_JIT)
def _exp_f32(x: float) -> float:
    """exp(x) in float32 for x <= 0: 0 below -87, else within ~1.5e-7 relative."""
    xc = max(x, F32(-87.0))
    shifted = xc * _F_LOG2E + _F_MAGIC
    k = shifted - _F_MAGIC
    r = (xc - k * _F_LN2_HI) - k * _F_LN2_LO
    r2 = r * r
    hi = (F32(1.0 / 24.0) + r * F32(1.0 / 120.0)) + r2 * (F32(1.0 / 720.0) + r * F32(1.0 / 5040.0))
    p = (_F_ONE + r) + r2 * ((_F_HALF + r * F32(1.0 / 6.0)) + r2 * hi)
    bits = (_f32_bits(shifted) - _f32_bits(_F_MAGIC) + 127) << 23  # type: ignore[call-arg]
    scale = _bits_f32(np.int32(bits))  # type: ignore[call-arg]
    return _F_ZERO if x < F32(-87.0) else p * scale


# Strip functions. A block's grid is cut into strips of up to ``strip`` rows; inside a strip
# the cells are held skewed: cell (slot s, column j) of the strip (slot s = strip row s, slot
# 0 the row above the strip) sits at step u = j + s and flat position f = s * lanes + lane. The
# cells of one step are independent (an anti-diagonal of the strip, every lane), and they are
# one contiguous run of f, so the innermost loop is long, has no carried dependence, and
# vectorises; the per-cell arithmetic (two exponentials, a logarithm, a division) then runs at
# throughput instead of the latency of one cell after another along a row.
_ROW: dict[str, Any] = {"nogil": True, "cache": True, "fastmath": FASTMATH, "error_model": "numpy",
        "boundscheck": False}


@numba.njit(inline="always", **_JIT)
def _uidx(f: int, lanes: int) -> tuple[int, int]:
    """(f, f - lanes) as unsigned integers: numba wraps negative signed indices around, a
    select per access that stops the loop from vectorising."""
    return np.uint64(f), np.uint64(f - lanes)


@numba.njit(**_ROW)
def _soft_step_fused(v: np.ndarray, c: np.ndarray, wd: np.ndarray, wu: np.ndarray,
                     pen: np.ndarray, u: int, f0: int, f1: int, lanes: int, shift: int,
                     inv_gamma: float, gamma: float) -> None:
    """One step of soft-min cells, float64 throughout (float64 weight tables):
    r = c + softmin(diagonal, up + penalty, left). The smallest of the three gets exp(0) = 1,
    so two exponentials per cell (``a`` / ``b``: the other two)."""
    for fs in range(f0, f1):
        f, fl = _uidx(fs, lanes)
        x = v[u - 2, fl]
        y = v[u - 1, fl] + pen[f + shift]
        z = v[u - 1, f]
        x_first = x <= y
        low_xy = min(x, y)
        z_min = z < low_xy
        low = min(low_xy, z)
        a = x if z_min else max(x, y)
        b = y if z_min else z
        pa = _exp((low - a) * inv_gamma)
        pb = _exp((low - b) * inv_gamma)
        inv, ls, big = _log_split(1.0 + pa + pb)
        ex = pa if (z_min or not x_first) else 1.0
        ey = pb if z_min else (pa if x_first else 1.0)
        wd[u, fl] = ex * inv
        wu[u, fl] = ey * inv
        v[u, f] = c[u, f] + low - gamma * _log_tail(ls, big)


@numba.njit(**_ROW)
def _soft_step_split(v: np.ndarray, c: np.ndarray, wd: np.ndarray, wu: np.ndarray,
                     pen: np.ndarray, u: int, f0: int, f1: int, lanes: int, shift: int,
                     inv_gamma: float, gamma: float, low_buf: np.ndarray, tmp: np.ndarray
                     ) -> None:
    """:func:`_soft_step_fused` for float32 weight tables, in three loops so that each
    vectorises at its own width: float64 (4 lanes) for the choice of the smallest
    predecessor, float32 (8 lanes) for the exponentials, logarithm and weights, float64
    for the value (which stays a float64 sum; only log(total) and the weights carry
    float32 rounding). ``tmp`` rows: the two exponents, which predecessor is smallest, and
    log(total)."""
    for fs in range(f0, f1):
        f, fl = _uidx(fs, lanes)
        x = v[u - 2, fl]
        y = v[u - 1, fl] + pen[f + shift]
        z = v[u - 1, f]
        x_first = x <= y
        low_xy = min(x, y)
        z_min = z < low_xy
        low = min(low_xy, z)
        a = x if z_min else max(x, y)
        b = y if z_min else z
        tmp[0, f] = F32((low - a) * inv_gamma)
        tmp[1, f] = F32((low - b) * inv_gamma)
        tmp[2, f] = F32(0.0) if z_min else (F32(1.0) if x_first else F32(2.0))  # the smallest
        low_buf[f] = low
    for fs in range(f0, f1):
        f, fl = _uidx(fs, lanes)
        pa = _exp_f32(tmp[0, f])
        pb = _exp_f32(tmp[1, f])
        total = _F_ONE + pa + pb
        big = F32(total > F32(1.5))
        w = total - _F_HALF * big * total
        w1 = w + _F_ONE
        d = _F_ONE / (total * w1)
        sv = (w - _F_ONE) * total * d
        s2 = sv * sv
        s4 = s2 * s2
        q = (_F_ONE + s2 * F32(1.0 / 3.0)) + s4 * (F32(1.0 / 5.0) + s2 * F32(1.0 / 7.0))
        inv = w1 * d
        k = tmp[2, f]
        ex = _F_ONE if k == F32(1.0) else pa
        ey = pb if k == F32(0.0) else (pa if k == F32(1.0) else _F_ONE)
        wd[u, fl] = ex * inv
        wu[u, fl] = ey * inv
        tmp[3, f] = F32(2.0) * sv * q + _F_LN2 * big
    for fs in range(f0, f1):
        f, fl = _uidx(fs, lanes)
        v[u, f] = c[u, f] + low_buf[f] - gamma * tmp[3, f]


def _soft_step(v: np.ndarray, c: np.ndarray, wd: np.ndarray, wu: np.ndarray, pen: np.ndarray,
               u: int, f0: int, f1: int, lanes: int, shift: int, inv_gamma: float,
               gamma: float, low_buf: np.ndarray, tmp: np.ndarray) -> None:
    """One step of soft-min cells: :func:`_soft_step_fused` for float64 weight tables,
    :func:`_soft_step_split` for float32 ones."""
    raise NotImplementedError("compiled only")


@overload(_soft_step)
def _soft_step_impl(v, c, wd, wu, pen, u, f0, f1, lanes, shift, inv_gamma, gamma, low_buf,
                    tmp):  # type: ignore[no-untyped-def]
    if wd.dtype == types.float32:
        def split(v, c, wd, wu, pen, u, f0, f1, lanes, shift, inv_gamma, gamma, low_buf,
                  tmp):  # type: ignore[no-untyped-def]
            _soft_step_split(v, c, wd, wu, pen, u, f0, f1, lanes, shift, inv_gamma, gamma,
                             low_buf, tmp)
        return split

    def fused(v, c, wd, wu, pen, u, f0, f1, lanes, shift, inv_gamma, gamma, low_buf,
              tmp):  # type: ignore[no-untyped-def]
        _soft_step_fused(v, c, wd, wu, pen, u, f0, f1, lanes, shift, inv_gamma, gamma)
    return fused


@numba.njit(**_ROW)
def _forward_strip(v: np.ndarray, lens: np.ndarray, c: np.ndarray, wd: np.ndarray,
                   wu: np.ndarray, pen: np.ndarray, lanes: int, k_eff: int, nj: int,
                   gamma: float, want_length: bool, low_buf: np.ndarray, tmp: np.ndarray
                   ) -> None:
    """Values v [T, (K+2) lanes] (and expected path lengths ``lens``) of strip slots 1..k_eff
    from slot 0 and column 0 (set by the caller), the skewed costs ``c`` and the reversed
    vertical-move penalties ``pen``; stores the diagonal / up weights of slot s at
    ``wd[u, f - lanes]`` (:func:`_soft_step`; ``low_buf`` / ``tmp``: its scratch).
    ``gamma`` 0: the min, one-hot weights, ties to diagonal, then up, then left (the torch
    kernel's order)."""
    inv_gamma = 1.0 / gamma if gamma > 0.0 else 0.0
    for t in range(1, nj + k_eff):
        u = t + 1
        f0 = max(1, t - nj + 1) * lanes
        f1 = (min(t, k_eff) + 1) * lanes
        shift = np.uint64((nj - t - 1) * lanes)  # pen[f + shift]: column t - s + 1 of slot s
        if gamma > 0.0:
            _soft_step(v, c, wd, wu, pen, u, f0, f1, lanes, shift, inv_gamma, gamma, low_buf,
                       tmp)
        else:
            for fs in range(f0, f1):
                f, fl = _uidx(fs, lanes)
                x = v[u - 2, fl]
                y = v[u - 1, fl] + pen[f + shift]
                z = v[u - 1, f]
                pick_x = (x <= y) & (x <= z)
                pick_y = (~pick_x) & (y <= z)
                wd[u, fl] = pick_x * 1.0
                wu[u, fl] = pick_y * 1.0
                v[u, f] = c[u, f] + min(x, min(y, z))
        if want_length:  # 1 + the weighted lengths of the three predecessors
            for fs in range(f0, f1):
                f, fl = _uidx(fs, lanes)
                w_d = wd[u, fl]
                w_u = wu[u, fl]
                lens[u, f] = 1.0 + (w_d * lens[u - 2, fl] + w_u * lens[u - 1, fl]
                                    + (1.0 - w_d - w_u) * lens[u - 1, f])


@numba.njit(**_ROW)
def _backward_strip(e: np.ndarray, wd: np.ndarray, wu: np.ndarray, lanes: int, k_eff: int,
                    nj: int, seed_u: np.ndarray, seed_f: np.ndarray) -> None:
    """E = d value / d cost of strip slots 1..k_eff, skewed like the forward (slot k_eff + 1:
    the first row of the strip below, E and weights set by the caller): E[i, j] =
    E[i+1, j] w_up[i+1, j] + E[i+1, j+1] w_diag[i+1, j+1] + E[i, j+1] w_left[i, j+1], and 1 at
    each pair's terminal cell (``seed_u`` / ``seed_f``; every successor of a terminal cell
    has E = 0)."""
    for t in range(nj + k_eff - 1, 0, -1):
        u = t + 1
        f0 = max(1, t - nj + 1) * lanes
        f1 = (min(t, k_eff) + 1) * lanes
        for fs in range(f0, f1):
            f, fl = _uidx(fs, lanes)
            fh = f + np.uint64(lanes)
            e[u, f] = (e[u + 1, fh] * wu[u + 1, f] + e[u + 2, fh] * wd[u + 2, f]
                       + e[u + 1, f] * (1.0 - wd[u + 1, fl] - wu[u + 1, fl]))
        for lane in range(lanes):
            if seed_u[lane] == u:
                e[u, seed_f[lane]] = 1.0


@numba.njit(**_ROW)
def _block(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, b0: int, lanes: int,
           strip: int, gamma: float, otam: bool, want_grad: bool, want_length: bool,
           values: np.ndarray, lengths: np.ndarray, grad: np.ndarray) -> None:
    """Pairs b0 .. b0 + lanes - 1 of the batch (lanes past the batch run a 1 x 1 pair)."""
    batch, _, m = cost.shape
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
    k = min(strip, ni)
    strips = (ni + k - 1) // k
    steps = nj + k + 3  # step u of slot s, column j is j + s; the backward reads to nj + k + 2
    width = (k + 2) * lanes
    # vertical-move penalties, reversed by column: pen[c * lanes + lane] is column nj - c
    pen = np.zeros(nj * lanes)
    if otam:  # +inf where a vertical move may not enter
        for col in range(nj):
            for lane in range(lanes):
                j = nj - col
                if j != 1 and j != term_j[lane]:
                    pen[col * lanes + lane] = INF
    v = np.empty((steps, width))
    c = np.empty((steps, width))
    lens = np.zeros((steps if want_length else 3, width))
    wd = np.empty((strips, steps, (k + 1) * lanes), dtype=cost.dtype)
    wu = np.empty((strips, steps, (k + 1) * lanes), dtype=cost.dtype)
    low_buf = np.empty(width)  # scratch of _soft_step_split
    tmp = np.empty((4, width), dtype=np.float32)
    prev = np.full((nj + 1, lanes), INF)  # the row above the strip (row 0 first)
    prev[0, :] = 0.0
    prev_len = np.zeros((nj + 1, lanes))
    for g in range(strips):
        i0 = g * k + 1  # the strip's first grid row
        k_eff = min(k, ni - i0 + 1)
        for u in range(nj + 1):
            for lane in range(lanes):
                v[u, lane] = prev[u, lane]
                if want_length:
                    lens[u, lane] = prev_len[u, lane]
        for s in range(1, k_eff + 1):
            for lane in range(lanes):
                v[s, s * lanes + lane] = INF  # column 0
                if want_length:
                    lens[s, s * lanes + lane] = 0.0
        # the strip's costs, transposed into the skewed layout: zero outside each pair's block
        # (slot by slot, so that the lanes of one step share a cache line while it is hot)
        for s in range(1, k_eff + 1):
            i = i0 + s - 2
            for lane in range(lanes):
                b = b0 + lane
                f = s * lanes + lane
                width_b = cols[b] if b < batch and i < rows[b] else 0
                for j in range(1, 1 + off):
                    c[j + s, f] = 0.0
                for j in range(width_b):
                    c[j + 1 + off + s, f] = cost[b, i, j]
                for j in range(width_b + 1 + off, nj + 1):
                    c[j + s, f] = 0.0
        _forward_strip(v, lens, c, wd[g], wu[g], pen, lanes, k_eff, nj, gamma, want_length,
                       low_buf, tmp)
        for lane in range(lanes):
            s = term_i[lane] - i0 + 1
            if 1 <= s <= k_eff and b0 + lane < batch:
                values[b0 + lane] = v[term_j[lane] + s, s * lanes + lane]
                if want_length:
                    lengths[b0 + lane] = lens[term_j[lane] + s, s * lanes + lane]
            prev[0, lane] = INF
        for j in range(1, nj + 1):
            for lane in range(lanes):
                prev[j, lane] = v[j + k_eff, k_eff * lanes + lane]
                if want_length:
                    prev_len[j, lane] = lens[j + k_eff, k_eff * lanes + lane]
    if not want_grad:
        return
    for lane in range(lanes):  # rows past a pair's block (the strips write the rest)
        b = b0 + lane
        if b < batch:
            for i in range(rows[b], cost.shape[1]):
                for j in range(m):
                    grad[b, i, j] = 0.0
    e = c  # the cost buffer is free now
    below = np.zeros((nj + 2, lanes))  # E of the first row of the strip below
    seed_u = np.empty(lanes, dtype=np.int64)
    seed_f = np.empty(lanes, dtype=np.int64)
    for g in range(strips - 1, -1, -1):
        i0 = g * k + 1
        k_eff = min(k, ni - i0 + 1)
        last = g == strips - 1
        for lane in range(lanes):
            s = term_i[lane] - i0 + 1
            seed_u[lane] = term_j[lane] + s if 1 <= s <= k_eff else -1
            seed_f[lane] = s * lanes + lane
        # the row below the strip (slot k_eff + 1): zeros under the grid
        f_below = (k_eff + 1) * lanes
        for j in range(1, nj + 2):
            inside = (not last) and j <= nj
            for lane in range(lanes):
                e[j + k_eff + 1, f_below + lane] = below[j, lane] if inside else 0.0
                wd[g, j + k_eff + 1, f_below - lanes + lane] = (wd[g + 1, j + 1, lane] if inside
                                                                else 0.0)
                wu[g, j + k_eff + 1, f_below - lanes + lane] = (wu[g + 1, j + 1, lane] if inside
                                                                else 0.0)
        for s in range(1, k_eff + 1):  # column nj + 1, right of the grid
            for lane in range(lanes):
                e[nj + 1 + s, s * lanes + lane] = 0.0
                wd[g, nj + 1 + s, (s - 1) * lanes + lane] = 0.0
                wu[g, nj + 1 + s, (s - 1) * lanes + lane] = 0.0
        _backward_strip(e, wd[g], wu[g], lanes, k_eff, nj, seed_u, seed_f)
        for j in range(1, nj + 1):
            for lane in range(lanes):
                below[j, lane] = e[j + 1, lanes + lane]
        for s in range(1, k_eff + 1):  # slot by slot, as the costs came in
            i = i0 + s - 2
            for lane in range(lanes):
                b = b0 + lane
                if b >= batch or i >= rows[b]:
                    continue
                f = s * lanes + lane
                for j in range(cols[b]):
                    grad[b, i, j] = e[j + 1 + off + s, f]
                for j in range(cols[b], m):
                    grad[b, i, j] = 0.0


@numba.njit(parallel=True, **_ROW)
def dp_kernel(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray, gamma: float, otam: bool,
              want_grad: bool, want_length: bool, lanes: int, strip: int, threads: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values [B], expected path lengths [B] (zeros unless ``want_length``) and the gradient
    [B, N, M] in cost's dtype (empty unless ``want_grad``) of cost [B, N, M] (float32 or
    float64, C-contiguous), pair b reading its top-left rows[b] x cols[b] block. ``gamma`` 0
    is the hard (min) kind; ``otam`` pads a zero column on each side of each pair's block and
    allows vertical moves only in those two columns. ``threads`` workers (numba's thread count)
    take blocks of ``lanes`` pairs; a block runs in strips of ``strip`` rows."""
    batch, n, m = cost.shape
    values = np.zeros(batch)
    lengths = np.zeros(batch)
    grad = np.empty((batch if want_grad else 0, n, m), dtype=cost.dtype)
    blocks = (batch + lanes - 1) // lanes
    # one worker per thread, each taking the next block from a shared counter: a thread that
    # the OS preempts (a shared machine) does fewer blocks instead of holding up the call, as
    # an even split would (the workqueue layer splits a prange evenly). A block's numbers do
    # not depend on which thread runs it.
    workers = max(1, min(threads, blocks))
    next_block = np.zeros(1, dtype=np.int64)
    for _ in prange(workers):
        blk = _fetch_add(next_block, 1)
        while blk < blocks:
            _block(cost, rows, cols, blk * lanes, lanes, strip, gamma, otam, want_grad,
                   want_length, values, lengths, grad)
            blk = _fetch_add(next_block, 1)
    return values, lengths, grad


# the workqueue layer aborts the process when two Python threads launch parallel loops at once
# (e.g. a threaded server); one launch at a time (the loop itself uses every numba thread)
_LAUNCH = threading.Lock()


def block_lanes(batch: int, threads: int) -> int:
    """Pairs per block: 8 (two AVX2 vectors of float64), fewer only when that would leave a
    thread without a block."""
    per_thread = -(-batch // max(1, threads))
    return max(1, min(8, per_thread))


STRIP = 64  # rows per strip: long steps (up to 64 x 8 cells) amortise each loop's set-up


def run_kernel(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, gamma: float,
               otam: bool, want_grad: bool, want_length: bool, lanes: int | None = None,
               strip: int = STRIP) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`dp_kernel` on torch tensors: (values [B], lengths [B]) in float64 and the
    gradient [B, N, M] in cost's dtype (empty unless ``want_grad``)."""
    batch = cost.shape[0]
    c = cost.detach()
    if c.dtype not in (torch.float32, torch.float64):
        c = c.to(torch.float64)
    c_np = c.contiguous().numpy()
    r = rows.to(device="cpu", dtype=torch.int64).contiguous().numpy()
    k = cols.to(device="cpu", dtype=torch.int64).contiguous().numpy()
    threads = numba.get_num_threads()
    if lanes is None:
        lanes = block_lanes(batch, threads)
    with _LAUNCH:
        values, lengths, grad = dp_kernel(c_np, r, k, float(gamma), bool(otam), bool(want_grad),
                                          bool(want_length), lanes, strip, threads)
    return torch.from_numpy(values), torch.from_numpy(lengths), torch.from_numpy(grad)
