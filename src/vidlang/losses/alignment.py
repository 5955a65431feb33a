"""Sequence distances between a sentence sequence and a clip sequence: DTW, soft-DTW and OTAM.

All kernels take a batch of cost matrices ``cost [B, N, M]`` (rows: sentences, columns: clips)
with prefix validity masks ``row_mask [B, N]`` / ``col_mask [B, M]`` (True at the first
``n_b`` / ``m_b`` positions). Each pair's distance reads only its own ``n_b x m_b`` block, so
padding never changes a value (no +inf / zero-cost corridors).

The dynamic programme runs over anti-diagonals: cells with the same ``i + j`` are independent,
so one vectorised step fills a whole diagonal for the whole batch (n + m steps, no loop over
cells). Per-cell tables are row-major grids read through a zero-copy skewed view, so each step
reads strided slices. The forward keeps values in a rolling buffer of three diagonals and
stores each cell's predecessor weights; the backward is a custom autograd function running
Cuturi & Blondel's (ICML 2017) gradient recursion over the same diagonals from those weights
(no autograd graph, no value table).

Kinds (registered in :data:`SEQUENCE_DISTANCES`): ``dtw`` (hard, min), ``softdtw`` (soft-min
with smoothing ``gamma``), ``otam`` / ``softotam`` (Cao et al. 2020 as used by TempCLR: one
zero column padded before and after the clip axis; middle columns allow diagonal and horizontal
moves only, the padded ones also vertical ones, so the path may start and end anywhere).
Normalisation (:data:`NORMALISATIONS`): ``none``, ``path`` (divide by the length of the
optimal path; for soft kinds its expected length under the Gibbs path distribution, treated as
a constant; OTAM paths count their zero-column cells too), ``n_plus_m`` and ``area`` (divide by n*m, the release's per-pair area scaling up to
its set-wide constant ``max_len^2``). :func:`release_pairwise_distance` /
:func:`release_eval_distance` reproduce the release's evaluation with its quirks (raw-dot
cost, area scaling with +inf padding and a zero-cost corridor, the degenerate last-row
zeroing, OTAM's sign bug) for number matching only. See docs/models.md (TempCLR).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from vidlang.registry import Registry

INF = float("inf")
DIAG, UP, LEFT = 0, 1, 2
# numba's threading layer is fixed when its first parallel loop (or set_num_threads) runs; its
# default OpenMP layer fights torch's OpenMP runtime (see alignment_numba), so the compiled
# kernel's layer is chosen here, before any numba use. An explicit setting wins.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
if "numba" in sys.modules and os.environ["NUMBA_THREADING_LAYER"] == "workqueue":
    sys.modules["numba"].config.THREADING_LAYER = "workqueue"  # numba imported before us  # predecessor of cell (i, j): (i-1, j-1), (i-1, j), (i, j-1)


# ---------------------------------------------------------------------------------------------
# masks and cost matrices
# ---------------------------------------------------------------------------------------------
def prefix_lengths(mask: torch.Tensor | None, size: int, batch: int, name: str,
                   device: torch.device) -> torch.Tensor:
    """Lengths [B] of prefix masks [B, size]; all-valid when ``mask`` is None.

    A mask that is not a prefix (a False before a True) or has an empty row is an error:
    the kernels assume valid positions come first."""
    if mask is None:
        return torch.full((batch,), size, dtype=torch.long, device=device)
    if mask.shape != (batch, size):
        raise ValueError(f"{name}: expected shape {(batch, size)}, got {tuple(mask.shape)}")
    mask = mask.bool()
    lengths = mask.sum(dim=1)
    expected = torch.arange(size, device=mask.device)[None, :] < lengths[:, None]
    if not bool(torch.equal(mask, expected)):
        bad = int((mask != expected).any(dim=1).nonzero()[0])
        raise ValueError(f"{name}: row {bad} is not a prefix mask (valid positions must come first)")
    if bool((lengths == 0).any()):
        bad = int((lengths == 0).nonzero()[0])
        raise ValueError(f"{name}: row {bad} has no valid position")
    return lengths.to(device)


def cosine_cost(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``1 - cos(x_i, y_j)`` for x [B, N, D] and y [B, M, D] -> [B, N, M] (TempCLR's cost)."""
    return 1.0 - F.normalize(x, dim=-1, eps=eps) @ F.normalize(y, dim=-1, eps=eps).transpose(-1, -2)


def dot_cost(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``1 - x_i . y_j`` on raw vectors: the release's evaluation cost (quirk 1; only with
    ``reproduce_upstream_quirks``)."""
    return 1.0 - x @ y.transpose(-1, -2)


COSTS: Registry[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = Registry("alignment cost")
COSTS.register("cosine")(cosine_cost)
COSTS.register("dot")(dot_cost)


# ---------------------------------------------------------------------------------------------
# skewed (anti-diagonal) layout
# ---------------------------------------------------------------------------------------------
def _grid(batch: int, n: int, m: int, like: torch.Tensor, lead: tuple[int, ...] = ()
          ) -> torch.Tensor:
    """Zeroed storage for per-cell tables: a flat row-major [N+1, M+1] grid per pair plus M+1
    slack entries, so that :func:`_skew_view` never leaves the storage."""
    return like.new_zeros((*lead, batch, (n + 1) * (m + 1) + m + 1))


def _skew_view(flat: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """A zero-copy anti-diagonal view [N+M+2, B, N+2] of a grid from :func:`_grid`.

    Slot (k, b, i) is cell (i, k - i), at flat offset i(M+1) + k - i = k + iM, so one
    anti-diagonal is one strided slice. Slots whose j = k - i leaves [0, M] alias column-0
    cells or the slack, which the recursions never write and so stay zero. Leading dims of
    ``flat`` (e.g. the three predecessor weights) are kept after the diagonal axis."""
    lead = flat.shape[:-2]
    size = (n + m + 2, *lead, flat.shape[-2], n + 2)
    stride = (1, *flat.stride()[:-2], flat.stride(-2), m)
    return flat.as_strided(size, stride, flat.storage_offset())


def _cell_view(flat: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The [B, N+1, M+1] cell view of a grid from :func:`_grid`."""
    return flat[..., :(n + 1) * (m + 1)].unflatten(-1, (n + 1, m + 1))


def _dp_forward(cost: torch.Tensor, blocked_flipped: torch.Tensor | None, gamma: float,
                rows: torch.Tensor, cols: torch.Tensor, n: int, m: int, track_length: bool
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the recursion one anti-diagonal at a time over skewed ``cost`` [K, B, N+2].

    Returns each pair's value at its terminal cell (n_b, m_b), the per-cell weights of the
    three predecessors (diagonal, up, left) in that cell's (soft-)min as a grid [3, B, ...]
    (the soft-min's softmax weights, or a one-hot of the hard argmin with ties broken
    diagonal, up, left) - all the backward pass needs - and the expected path lengths
    (zeros unless ``track_length``). ``blocked_flipped`` [B, M+1] marks, at M - j, columns j
    a vertical move may not enter (OTAM; flipped so a diagonal's columns are one increasing
    slice); None allows vertical moves everywhere (DTW). Values live in a rolling buffer of
    three diagonals."""
    _, batch, n2 = cost.shape
    weights_flat = _grid(batch, n, m, cost, lead=(3,))
    weights = _skew_view(weights_flat, n, m)  # [K, 3, B, N+2]
    r = cost.new_full((3, batch, n2), INF)
    r[0, :, 0] = 0.0
    length = cost.new_zeros((3, batch, n2)) if track_length else None
    end_k = (rows + cols).tolist()
    finals = cost.new_zeros(batch)
    final_len = cost.new_zeros(batch)
    ends: dict[int, list[int]] = {}
    for b, k in enumerate(end_k):
        ends.setdefault(k, []).append(b)
    neg_inv_gamma = -1.0 / gamma if gamma > 0 else 0.0
    for k in range(2, n + m + 1):
        lo, hi = max(1, k - m), min(n, k - 1)
        cur, prev, prev2 = r[k % 3], r[(k - 1) % 3], r[(k - 2) % 3]
        up = prev[:, lo - 1:hi]
        if blocked_flipped is not None:
            up = up.masked_fill(blocked_flipped[:, m - k + lo:m - k + hi + 1], INF)
        preds = torch.stack((prev2[:, lo - 1:hi], up, prev[:, lo:hi + 1]))
        if gamma > 0:  # every computed cell has a finite predecessor, so ``low`` is finite
            low = preds.amin(dim=0)
            w = preds.sub_(low).mul_(neg_inv_gamma).exp_()
            total = w.sum(dim=0)
            w.div_(total)
            value = low - gamma * torch.log(total)
        else:
            value, pick = preds.min(dim=0)
            w = torch.zeros_like(preds).scatter_(0, pick[None], 1.0)
        weights[k, :, :, lo:hi + 1] = w
        cur.fill_(INF)
        torch.add(cost[k, :, lo:hi + 1], value, out=cur[:, lo:hi + 1])
        if length is not None:
            lens = torch.stack((length[(k - 2) % 3, :, lo - 1:hi], length[(k - 1) % 3, :, lo - 1:hi],
                                length[(k - 1) % 3, :, lo:hi + 1]))
            length[k % 3].zero_()
            length[k % 3, :, lo:hi + 1] = 1.0 + (w * lens).sum(dim=0)
        if k in ends:
            idx = torch.tensor(ends[k], device=cost.device)
            finals[idx] = cur[idx, rows[idx]]
            if length is not None:
                final_len[idx] = length[k % 3][idx, rows[idx]]
    return finals, weights_flat, final_len


def _dp_backward(weights_flat: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 n: int, m: int) -> torch.Tensor:
    """Expected alignment E [B, N+1, M+1] = d distance / d cost (Cuturi & Blondel's recursion).

    E[p] = sum over successors s of E[s] * w_s(p), where w_s(p) is the weight p had in s's
    soft-min (exp((R[s] - C[s] - R[p]) / gamma), or the hard choice), seeded with E = 1 at
    each pair's terminal cell. Cells outside a pair's block have no path to its terminal cell,
    so their E stays 0."""
    batch = weights_flat.shape[1]
    e_flat = _grid(batch, n, m, weights_flat)
    _cell_view(e_flat, n, m)[torch.arange(batch, device=e_flat.device), rows, cols] = 1.0
    e = _skew_view(e_flat, n, m)
    w_diag, w_up, w_left = (_skew_view(weights_flat[d], n, m) for d in (DIAG, UP, LEFT))
    for k in range(n + m - 1, 1, -1):
        lo, hi = max(1, k - m), min(n, k - 1)
        target = e[k, :, lo:hi + 1]
        target.addcmul_(e[k + 1, :, lo + 1:hi + 2], w_up[k + 1, :, lo + 1:hi + 2])
        target.addcmul_(e[k + 1, :, lo:hi + 1], w_left[k + 1, :, lo:hi + 1])
        target.addcmul_(e[k + 2, :, lo + 1:hi + 2], w_diag[k + 2, :, lo + 1:hi + 2])
    return _cell_view(e_flat, n, m)


class _AlignmentDP(torch.autograd.Function):
    """Batched (soft-)DTW value with a custom backward that reuses the forward's weights."""

    @staticmethod
    def forward(ctx: Any, cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                up_ok_cols: torch.Tensor | None, gamma: float, track_length: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, n, m = cost.shape
        i = torch.arange(n, device=cost.device)
        j = torch.arange(m, device=cost.device)
        valid = (i[None, :, None] < rows[:, None, None]) & (j[None, None, :] < cols[:, None, None])
        # cells outside a pair's block get cost 0, so NaN/inf padding cannot leak into weights
        flat = _grid(batch, n, m, cost)
        _cell_view(flat, n, m)[:, 1:, 1:] = torch.where(
            valid, cost, torch.zeros((), dtype=cost.dtype, device=cost.device))
        blocked_flipped = None
        if up_ok_cols is not None:  # OTAM: column j+1 of the grid is column j of the cost
            col_ok = torch.ones((batch, m + 1), dtype=torch.bool, device=cost.device)
            col_ok[:, 1:] = up_ok_cols
            blocked_flipped = (~col_ok).flip(-1).contiguous()
        value, weights_flat, path_len = _dp_forward(_skew_view(flat, n, m), blocked_flipped,
                                                    gamma, rows, cols, n, m, track_length)
        ctx.save_for_backward(weights_flat, rows, cols)
        ctx.meta = (n, m)
        ctx.mark_non_differentiable(path_len)
        return value, path_len

    @staticmethod
    def backward(ctx: Any, grad_value: torch.Tensor, _grad_len: torch.Tensor) -> tuple[Any, ...]:
        n, m = ctx.meta
        weights_flat, rows, cols = ctx.saved_tensors
        e = _dp_backward(weights_flat, rows, cols, n, m)
        return e[:, 1:, 1:] * grad_value[:, None, None], None, None, None, None, None


def _run_dp(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
            up_ok_cols: torch.Tensor | None, gamma: float, track_length: bool
            ) -> tuple[torch.Tensor, torch.Tensor]:
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    return _AlignmentDP.apply(cost, rows, cols, up_ok_cols, float(gamma), track_length)


# ---------------------------------------------------------------------------------------------
# the four kinds
# ---------------------------------------------------------------------------------------------
def _dtw(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, gamma: float,
         track_length: bool) -> tuple[torch.Tensor, torch.Tensor]:
    return _run_dp(cost, rows, cols, None, gamma, track_length)


def _otam(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, gamma: float,
          track_length: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """OTAM: zero columns at clip positions 0 and m_b + 1 (per pair), vertical moves only there."""
    batch, n, m = cost.shape
    padded = cost.new_zeros((batch, n, m + 2))
    col_idx = torch.arange(m + 2, device=cost.device)[None, :]
    real = (col_idx >= 1) & (col_idx <= cols[:, None])
    padded[:, :, 1:m + 1] = cost
    padded = torch.where(real[:, None, :], padded, torch.zeros((), dtype=cost.dtype,
                                                               device=cost.device))
    up_ok = (col_idx == 0) | (col_idx == cols[:, None] + 1)
    return _run_dp(padded, rows, cols + 2, up_ok, gamma, track_length)


_Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, bool],
                   tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class DistanceKind:
    """A registered sequence distance: its torch kernel, whether it smooths the min and
    whether it is OTAM (the compiled kernel takes the last two as flags)."""

    kernel: _Kernel
    soft: bool
    otam: bool = False


SEQUENCE_DISTANCES: Registry[DistanceKind] = Registry("sequence distance")
SEQUENCE_DISTANCES.register("dtw")(DistanceKind(_dtw, soft=False))
SEQUENCE_DISTANCES.register("softdtw")(DistanceKind(_dtw, soft=True))
SEQUENCE_DISTANCES.register("otam")(DistanceKind(_otam, soft=False, otam=True))
SEQUENCE_DISTANCES.register("softotam")(DistanceKind(_otam, soft=True, otam=True))


# ---------------------------------------------------------------------------------------------
# backend choice: the compiled CPU kernel (numba) or the anti-diagonal torch kernel
# ---------------------------------------------------------------------------------------------
BACKENDS = ("auto", "numba", "numba_f64", "torch")
BACKEND_ENV = "VIDLANG_DTW_BACKEND"
NUMBA_DTYPES = (torch.float32, torch.float64)
_forced_backend: list[str] = []  # innermost :func:`dtw_backend` context last


def numba_available() -> bool:
    """Whether the compiled CPU kernel can be used (numba imports)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def dtw_backend(name: str) -> Iterator[None]:
    """Within the block, every DTW / soft-DTW / OTAM call without an explicit ``backend``
    uses ``name`` (``auto`` | ``numba`` | ``numba_f64`` | ``torch``); e.g. to compare the
    kernels."""
    _check_backend(name, "dtw_backend")
    _forced_backend.append(name)
    try:
        yield
    finally:
        _forced_backend.pop()


def _check_backend(name: str, where: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"{where}: unknown DTW backend {name!r}; expected one of {BACKENDS}")


def resolve_backend(backend: str | None, cost: torch.Tensor) -> str:
    """``numba``, ``numba_f64`` or ``torch`` for ``cost``. The request is ``backend``, else the
    innermost :func:`dtw_backend`, else ``$VIDLANG_DTW_BACKEND``, else ``auto``: the compiled
    kernel for float32 / float64 costs on the CPU when numba imports, the torch kernel
    otherwise (GPUs, other float types). ``numba_f64`` (never chosen by ``auto``) runs the
    compiled kernel on a float64 copy of float32 costs: the kernel's numbers before issue 16
    gave float32 inputs float32 weights / exp / log, for reproducing runs recorded with it.
    Asking for a numba kernel where it cannot run is an error."""
    if backend is not None:
        name, where = backend, "backend"
    elif _forced_backend:
        name, where = _forced_backend[-1], "dtw_backend"
    else:
        name, where = os.environ.get(BACKEND_ENV, "auto") or "auto", f"${BACKEND_ENV}"
    _check_backend(name, where)
    fits = cost.device.type == "cpu" and cost.dtype in NUMBA_DTYPES
    if name == "auto":
        return "numba" if fits and numba_available() else "torch"
    if name.startswith("numba") and not fits:
        raise ValueError(f"{where}: the numba DTW kernel runs float32 / float64 costs on the "
                         f"CPU, got {cost.dtype} on {cost.device}")
    if name.startswith("numba") and not numba_available():
        raise ValueError(f"{where}: the numba DTW kernel needs numba (pip install numba)")
    return name


class _NumbaDP(torch.autograd.Function):
    """The compiled kernel's value; its gradient is computed in the same call (when the cost
    needs one) and kept for the backward, which only scales it. ``as_float64``: run the kernel
    on a float64 copy (the ``numba_f64`` backend)."""

    @staticmethod
    def forward(ctx: Any, cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                gamma: float, otam: bool, track_length: bool, as_float64: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        from vidlang.losses.alignment_numba import run_kernel

        want_grad = bool(ctx.needs_input_grad[0])
        kernel_in = cost.detach().double() if as_float64 else cost.detach()
        value, length, grad = run_kernel(kernel_in, rows, cols, gamma, otam, want_grad,
                                         track_length)
        ctx.dtype = cost.dtype
        if want_grad:
            ctx.save_for_backward(grad)
        ctx.mark_non_differentiable(length)
        return value.to(cost.dtype), length.to(cost.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_value: torch.Tensor, _grad_len: torch.Tensor) -> tuple[Any, ...]:
        (grad,) = ctx.saved_tensors
        scaled = grad * grad_value.to(grad.dtype)[:, None, None]
        return scaled.to(ctx.dtype), None, None, None, None, None, None

_Normaliser = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
NORMALISATIONS: Registry[_Normaliser] = Registry("length normalisation")
NORMALISATIONS.register("none")(lambda d, n, m, path: d)
NORMALISATIONS.register("path")(lambda d, n, m, path: d / path.clamp_min(1.0))
NORMALISATIONS.register("n_plus_m")(lambda d, n, m, path: d / (n + m).to(d.dtype))
NORMALISATIONS.register("area")(lambda d, n, m, path: d / (n * m).to(d.dtype))


def sequence_distance(cost: torch.Tensor, row_mask: torch.Tensor | None = None,
                      col_mask: torch.Tensor | None = None, kind: str = "softdtw",
                      gamma: float = 0.1, normalise: str = "none",
                      backend: str | None = None) -> torch.Tensor:
    """Distances [B] of a batch of cost matrices [B, N, M] under ``kind`` (see module doc).

    ``gamma`` is the soft-min temperature of ``softdtw`` / ``softotam`` (ignored by the hard
    kinds). Differentiable with respect to ``cost`` for every kind (hard kinds: the
    sub-gradient of the optimal path). ``backend`` picks the kernel (:func:`resolve_backend`;
    both give the same numbers)."""
    if cost.dim() != 3:
        raise ValueError(f"cost must be [B, N, M], got shape {tuple(cost.shape)}")
    spec = SEQUENCE_DISTANCES.get(kind)
    normaliser = NORMALISATIONS.get(normalise)
    batch, n, m = cost.shape
    rows = prefix_lengths(row_mask, n, batch, "row_mask", cost.device)
    cols = prefix_lengths(col_mask, m, batch, "col_mask", cost.device)
    if spec.soft and gamma <= 0:
        raise ValueError(f"{kind} needs gamma > 0, got {gamma}")
    smooth, track = float(gamma) if spec.soft else 0.0, normalise == "path"
    chosen = resolve_backend(backend, cost)
    if chosen != "torch":
        value, path = _NumbaDP.apply(cost, rows, cols, smooth, spec.otam, track,
                                     chosen == "numba_f64")
    else:
        value, path = spec.kernel(cost, rows, cols, smooth, track)
    return normaliser(value, rows, cols, path)


def pairwise_sequence_distance(text: torch.Tensor, text_mask: torch.Tensor, video: torch.Tensor,
                               video_mask: torch.Tensor, kind: str = "dtw", gamma: float = 0.1,
                               normalise: str = "none", cost: str = "cosine",
                               chunk_pairs: int = 4096, backend: str | None = None
                               ) -> torch.Tensor:
    """Distances [P, V] of every paragraph (text [P, N, D]) to every video (video [V, M, D]),
    computed in chunks of ``chunk_pairs`` pairs to bound memory."""
    cost_fn = COSTS.get(cost)
    v = video.shape[0]

    def block(start: int, q: int) -> torch.Tensor:
        t = text[start:start + q]
        tm = text_mask[start:start + q][:, None].expand(q, v, text_mask.shape[1]).reshape(q * v, -1)
        vm = video_mask[None].expand(q, v, video_mask.shape[1]).reshape(q * v, -1)
        c = cost_fn(t[:, None].expand(q, v, *t.shape[1:]).reshape(q * v, *t.shape[1:]),
                    video[None].expand(q, v, *video.shape[1:]).reshape(q * v, *video.shape[1:]))
        return sequence_distance(c, tm, vm, kind=kind, gamma=gamma, normalise=normalise,
                                 backend=backend)

    return _in_paragraph_chunks(text, v, chunk_pairs, block)


def _in_paragraph_chunks(text: torch.Tensor, num_videos: int, chunk_pairs: int,
                         block: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """[P, V] matrix filled by ``block(start, q)`` -> the q * V distances of paragraphs
    start..start+q-1 to every video, with about ``chunk_pairs`` pairs per call."""
    p = text.shape[0]
    out = text.new_empty((p, num_videos))
    step = max(1, chunk_pairs // max(num_videos, 1))
    for start in range(0, p, step):
        q = min(step, p - start)
        out[start:start + q] = block(start, q).reshape(q, num_videos)
    return out


# ---------------------------------------------------------------------------------------------
# the release's evaluation, quirks included (``reproduce_upstream_quirks``; tempclr.md section 3)
# ---------------------------------------------------------------------------------------------
def release_pad(block: torch.Tensor, rows: int, cols: int, otam: bool) -> torch.Tensor:
    """The release's padding of same-shape cost blocks [G, r, c] to its set-wide size.

    OTAM first adds a zero column on each side. Then +inf up to ``rows`` x ``cols`` (counted
    without OTAM's two columns, so OTAM grids are cols + 2 wide) and a zero-cost corridor: the
    cells from the last real row down and right of the last real column (quirk 2). Quirk 3:
    the corridor's column slice starts at -(cols - c); when c == cols that is -0, which selects
    every column, so the whole last real row is zeroed, real costs included. Negative size
    differences crop, as the release's ``F.pad`` does."""
    d_rows, d_cols = rows - block.shape[1], cols - block.shape[2]
    grid = F.pad(block, (1, 1), value=0.0) if otam else block
    grid = F.pad(grid, (0, d_cols, 0, d_rows), value=INF)
    grid[:, -d_rows - 1:, -d_cols:] = 0.0
    return grid


def release_hard_dp(grid: torch.Tensor, kind: str, otam_subtract_bug: bool = True) -> torch.Tensor:
    """The release's hard evaluation recursion over grids [B, R, C]; the value at the last cell.

    ``dtw``: first row and column are cumulative sums, then d + min(diagonal, left, up).
    ``otam`` (grids from :func:`release_pad` with ``otam``): column 0 stays 0, the first row
    is a cumulative sum; in later rows column 1 takes d - min(up-left, up, left) - the
    release's sign bug (quirk 4; ``otam_subtract_bug=False`` adds), middle columns
    d + min(diagonal, left), the last column d + min(diagonal, up, left). Loops over cells,
    vectorised over the batch."""
    if kind not in ("dtw", "otam"):
        raise ValueError(f"release evaluation uses hard dtw or otam, got {kind!r}")
    n_rows, n_cols = grid.shape[1:]
    if kind == "dtw":
        prev = grid[:, 0].cumsum(dim=-1)
    else:
        prev = torch.cat([grid.new_zeros(grid.shape[0], 1), grid[:, 0, 1:].cumsum(dim=-1)], dim=1)
    for i in range(1, n_rows):
        d = grid[:, i]
        if kind == "dtw":
            cells = [prev[:, 0] + d[:, 0]]
            for j in range(1, n_cols):
                best = torch.minimum(torch.minimum(prev[:, j - 1], prev[:, j]), cells[-1])
                cells.append(d[:, j] + best)
        else:
            cells = [torch.zeros_like(d[:, 0])]
            first = torch.minimum(torch.minimum(prev[:, 0], prev[:, 1]), cells[0])
            cells.append(d[:, 1] - first if otam_subtract_bug else d[:, 1] + first)
            for j in range(2, n_cols - 1):
                cells.append(d[:, j] + torch.minimum(prev[:, j - 1], cells[-1]))
            last = torch.minimum(torch.minimum(prev[:, -2], prev[:, -1]), cells[-1])
            cells.append(d[:, -1] + last)
        prev = torch.stack(cells, dim=1)
    return prev[:, -1]


def release_eval_distance(cost: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                          max_rows: int, max_cols: int, kind: str) -> torch.Tensor:
    """The release's evaluation distance [B] of cost blocks [B, N, M] (pair b: its top-left
    rows[b] x cols[b]; the cost is the release's 1 - raw dot product, computed by the caller).

    Each block is scaled by max_rows * max_cols / (n m) (the area normalisation), padded by
    :func:`release_pad` to max_rows x max_cols and scored by :func:`release_hard_dp`; OTAM
    adds the transposed block's distance, padded to the same size (as the release). Pairs are
    grouped by block shape, so each group is one batched recursion."""
    if kind not in ("dtw", "otam"):
        raise ValueError(f"release evaluation uses hard dtw or otam, got {kind!r}")
    out = cost.new_empty(cost.shape[0])
    shapes = torch.stack([rows, cols], dim=1)
    for n, m in torch.unique(shapes, dim=0).tolist():
        idx = ((rows == n) & (cols == m)).nonzero().squeeze(1)
        block = cost[idx, :n, :m] * (max_rows * max_cols / (n * m))
        otam = kind == "otam"
        value = release_hard_dp(release_pad(block, max_rows, max_cols, otam), kind)
        if otam:
            value = value + release_hard_dp(
                release_pad(block.transpose(1, 2), max_rows, max_cols, True), kind)
        out[idx] = value
    return out


def release_pairwise_distance(text: torch.Tensor, text_mask: torch.Tensor, video: torch.Tensor,
                              video_mask: torch.Tensor, kind: str, chunk_pairs: int = 4096
                              ) -> torch.Tensor:
    """The release's background-removed evaluation distance [P, V] of every paragraph to every
    video (:func:`release_eval_distance`, cost 1 - raw dot product). Blocks are padded to
    max_len x max_len, max_len the longest sequence of the set (the release: the most clips of
    a video, which is also its most captions, since each caption is one clip)."""
    rows_all, cols_all = text_mask.sum(dim=1), video_mask.sum(dim=1)
    max_rows = max_cols = max(int(rows_all.max()), int(cols_all.max()))
    v = video.shape[0]

    def block(start: int, q: int) -> torch.Tensor:
        t = text[start:start + q]
        cost = dot_cost(t[:, None], video[None]).reshape(q * v, t.shape[1], video.shape[1])
        rows = rows_all[start:start + q, None].expand(q, v).reshape(-1)
        cols = cols_all[None].expand(q, v).reshape(-1)
        return release_eval_distance(cost, rows, cols, max_rows, max_cols, kind)

    return _in_paragraph_chunks(text, v, chunk_pairs, block)


def reference_distance(cost: torch.Tensor, kind: str = "softdtw", gamma: float = 0.1
                       ) -> torch.Tensor:
    """Plain O(n*m) cell-by-cell dynamic programme for cost [..., n, m] (all cells valid;
    leading dims are a batch), differentiable through autograd. The test oracle and the
    benchmark baseline; slow on purpose."""
    soft = SEQUENCE_DISTANCES.get(kind).soft
    n, m = cost.shape[-2:]
    otam = kind in ("otam", "softotam")
    if otam:
        cost = F.pad(cost, (1, 1))
        m += 2

    def smin(values: list[torch.Tensor]) -> torch.Tensor:
        stacked = torch.stack(values)
        return -gamma * torch.logsumexp(-stacked / gamma, dim=0) if soft else stacked.amin(dim=0)

    inf = cost.new_full(cost.shape[:-2], INF)
    table: list[list[torch.Tensor]] = [[inf] * (m + 1) for _ in range(n + 1)]
    table[0][0] = torch.zeros_like(inf)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            vertical_ok = not otam or j in (1, m)
            preds = [table[i - 1][j - 1], table[i][j - 1]]
            if vertical_ok:
                preds.append(table[i - 1][j])
            table[i][j] = cost[..., i - 1, j - 1] + smin(preds)
    return table[n][m]
