"""Temporal resampling of [T, D] clip features to the fixed lengths the published methods use.

* :func:`segment_average` - MMN / 2D-TAN (mmn.md §2 "Preprocessing"), bit-for-bit the rule
  behind the published numbers, including its side effect: the boundary clamp to T-1 means the
  last frame never enters any mean (for T > P).
* :func:`fixed_bin_pool` - CPL's 200 equal bins (cpl_ccr.md §1). By default every frame falls in
  exactly one bin; ``drop_last_frame=True`` reproduces the release, which shares MMN's clamp.
* :func:`uniform_pick` - rows at ``round(linspace(0, T-1, n))`` (CPL's 50-of-200, CLIP4Clip).
* :func:`resample` - dispatch on :class:`vidlang.data.features.spec.FeatureSpec` ``mode``.

Every function names the number of rows it returns ``num_rows``, the word
:class:`~vidlang.data.features.spec.FeatureSpec` uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vidlang.data.features.spec import FeatureSpec
from vidlang.errors import ConfigError, DataError


def _as_2d(feats: np.ndarray) -> np.ndarray:
    arr = np.asarray(feats, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DataError(f"features must be a non-empty [T, D] array, got shape {arr.shape}")
    return arr


def _check_count(n: int, what: str) -> int:
    if int(n) != n or n < 1:
        raise ConfigError(f"{what}: must be a positive integer, got {n!r}")
    return int(n)


def l2_normalise_rows(feats: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Each time step divided by its L2 norm (all-zero rows stay zero)."""
    arr = _as_2d(feats)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.maximum(norms, eps)


def bin_bounds(length: int, num_rows: int, drop_last_frame: bool) -> np.ndarray:
    """Edges ``b_k = round(k * T / P)`` for k = 0..P of P = ``num_rows`` bins over T =
    ``length`` rows (numpy round: half to even).

    With ``drop_last_frame`` the edges are clamped to <= T-1 (MMN, 2D-TAN and the CPL release),
    so row T-1 is in no bin unless a bin is empty and falls back to it.
    """
    edges = np.round(np.arange(num_rows + 1) * length / num_rows).astype(np.int64)
    if drop_last_frame:
        edges = np.minimum(edges, length - 1)
    return edges


def _mean_in_bins(arr: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin k = mean of rows edges[k]..edges[k+1]-1; an empty bin repeats row edges[k] (nearest).

    Vectorised across bins but with the upstream arithmetic: rows are added to each bin in
    order, as numpy's axis-0 ``mean`` does, then divided by the count, so the result is
    bit-identical to ``arr[s:e].mean(axis=0)`` per bin. The loop runs over the largest bin
    size (a few rows), not over the bins.
    """
    last = arr.shape[0] - 1
    starts, ends = edges[:-1], edges[1:]
    counts = np.maximum(ends - starts, 0)
    out = arr[np.minimum(starts, last)]  # first row of each bin; the nearest row if empty
    for k in range(1, int(counts.max(initial=0))):
        grow = counts > k
        out[grow] += arr[starts[grow] + k]
    several = counts > 1
    out[several] /= counts[several, None].astype(arr.dtype)
    return out.astype(np.float32, copy=False)


def segment_average(feats: np.ndarray, num_rows: int, l2_normalise: bool = True) -> np.ndarray:
    """MMN / 2D-TAN resampling to ``num_rows`` segments (P), exactly as the release does it.

    Optionally L2-normalise each time step first (MMN does), then average rows b_k..b_{k+1}-1
    with ``b_k = min(round(k*T/P), T-1)``; an empty range repeats row b_k. Side effect kept on
    purpose (it produced the published numbers): the last frame never enters a mean when T > P.
    """
    n = _check_count(num_rows, "num_rows")
    arr = l2_normalise_rows(feats) if l2_normalise else _as_2d(feats)
    return _mean_in_bins(arr, bin_bounds(arr.shape[0], n, drop_last_frame=True))


def fixed_bin_pool(feats: np.ndarray, num_rows: int, drop_last_frame: bool = False) -> np.ndarray:
    """CPL resampling: ``num_rows`` equal bins, each averaged; an empty bin (T < bins) repeats
    the nearest frame. ``drop_last_frame=True`` reproduces the release's clamp (see above)."""
    n = _check_count(num_rows, "num_rows")
    arr = _as_2d(feats)
    return _mean_in_bins(arr, bin_bounds(arr.shape[0], n, drop_last_frame))


def uniform_pick_indices(length: int, num_rows: int) -> np.ndarray:
    """Row indices ``round(linspace(0, T-1, num_rows))`` into T = ``length`` rows (numpy round:
    half to even)."""
    return np.round(np.linspace(0, length - 1, _check_count(num_rows, "num_rows"))).astype(np.int64)


def uniform_pick(feats: np.ndarray, num_rows: int) -> np.ndarray:
    """``num_rows`` rows picked evenly, first and last included (index picking, not pooling)."""
    arr = _as_2d(feats)
    return arr[uniform_pick_indices(arr.shape[0], num_rows)]


def _need_rows(spec: FeatureSpec) -> int:
    if spec.num_rows is None:
        raise ConfigError(f"feature_spec.num_rows: required for mode {spec.mode!r}")
    return _check_count(spec.num_rows, "feature_spec.num_rows")


def _mode_segment_mean(feats: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    return segment_average(feats, _need_rows(spec), l2_normalise=spec.l2_normalise)


def _mode_fixed_bin(feats: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    arr = l2_normalise_rows(feats) if spec.l2_normalise else feats
    return fixed_bin_pool(arr, _need_rows(spec))


def _mode_uniform(feats: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    arr = l2_normalise_rows(feats) if spec.l2_normalise else feats
    return uniform_pick(arr, _need_rows(spec))


def _mode_none(feats: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    return l2_normalise_rows(feats) if spec.l2_normalise else _as_2d(feats)


RESAMPLE_MODES: dict[str, Callable[[np.ndarray, FeatureSpec], np.ndarray]] = {
    "segment_mean": _mode_segment_mean,
    "fixed_bin": _mode_fixed_bin,
    "uniform": _mode_uniform,
    "none": _mode_none,
}


def resample(feats: np.ndarray, spec: FeatureSpec) -> np.ndarray:
    """Resample [T, D] features as ``spec`` asks (per-step L2 norm first when it says so)."""
    try:
        fn = RESAMPLE_MODES[spec.mode]
    except KeyError:
        known = ", ".join(sorted(RESAMPLE_MODES))
        raise ConfigError(f"feature_spec.mode: unknown {spec.mode!r}; known: {known}") from None
    return fn(feats, spec)
