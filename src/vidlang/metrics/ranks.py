"""Rank of the ground truth in each row of a score matrix, with explicit tie handling.

For a query row the GT's 0-based rank is bracketed by the *optimistic* rank (number of
gallery items scoring strictly higher) and the *pessimistic* rank (items scoring higher or
equal, the GT itself excluded). ``average`` treats every order of the tied items as equally
likely: its rank is the mid-point, and its R@K is the expected hit rate
``clip((K - opt) / (pes - opt + 1), 0, 1)``. Without ties all three agree.

With several GT items per row (video-to-text against all captions) the rank is that of the
best-scored GT item; other GT items never count against it. Rows are processed in chunks, so
a 10,000 x 10,000 matrix never needs a full-size temporary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vidlang.errors import ConfigError

CHUNK_ROWS = 512
TIE_MODES = ("average", "optimistic", "pessimistic")


@dataclass
class RankBounds:
    """Optimistic and pessimistic 0-based GT ranks of each query (int arrays)."""

    optimistic: np.ndarray
    pessimistic: np.ndarray

    def rank(self, ties: str) -> np.ndarray:
        return _RANK_OF[_check_ties(ties)](self)

    def hit_rate(self, k: int, ties: str) -> np.ndarray:
        """Per-query probability that the GT is within the top ``k``."""
        return _HIT_OF[_check_ties(ties)](self, k)


def _check_ties(ties: str) -> str:
    if ties not in TIE_MODES:
        raise ConfigError(f"ties: {ties!r} is not one of {', '.join(TIE_MODES)}")
    return ties


_RANK_OF: dict[str, Callable[[RankBounds], np.ndarray]] = {
    "optimistic": lambda b: b.optimistic.astype(np.float64),
    "pessimistic": lambda b: b.pessimistic.astype(np.float64),
    "average": lambda b: (b.optimistic + b.pessimistic) / 2.0,
}
_HIT_OF: dict[str, Callable[[RankBounds, int], np.ndarray]] = {
    "optimistic": lambda b, k: (b.optimistic < k).astype(np.float64),
    "pessimistic": lambda b, k: (b.pessimistic < k).astype(np.float64),
    "average": lambda b, k: np.clip((k - b.optimistic) / (b.pessimistic - b.optimistic + 1.0),
                                    0.0, 1.0),
}


def rank_bounds(rows: Callable[[int, int], np.ndarray], num_queries: int,
                gt_mask: Callable[[int, int], np.ndarray] | None = None,
                gt_index: np.ndarray | None = None) -> RankBounds:
    """Rank bounds of ``num_queries`` rows fetched in chunks by ``rows(q0, q1)``.

    The GT is one column per row (``gt_index``) or a boolean mask chunk ``gt_mask(q0, q1)``
    (best-scored GT item counts)."""
    opt = np.empty(num_queries, dtype=np.int64)
    pes = np.empty(num_queries, dtype=np.int64)
    for q0 in range(0, num_queries, CHUNK_ROWS):
        q1 = min(q0 + CHUNK_ROWS, num_queries)
        block = rows(q0, q1)
        if gt_index is not None:
            target = block[np.arange(q1 - q0), gt_index[q0:q1]][:, None]
            opt[q0:q1] = (block > target).sum(axis=1)
            pes[q0:q1] = (block >= target).sum(axis=1) - 1
        else:
            assert gt_mask is not None
            mask = gt_mask(q0, q1)
            target = np.where(mask, block, -np.inf).max(axis=1, keepdims=True)
            opt[q0:q1] = ((block > target) & ~mask).sum(axis=1)
            pes[q0:q1] = ((block >= target) & ~mask).sum(axis=1)
    return RankBounds(opt, pes)


def rank_summary(bounds: RankBounds, ks: tuple[int, ...], ties: str) -> dict[str, float]:
    """R@K (percent), MdR and MnR (1-based) of the given ranks; untagged keys."""
    n = len(bounds.optimistic)
    if n == 0:
        return {}
    rank = bounds.rank(ties)
    # exact (order-independent) sums, so permuting the queries cannot change a digit
    out = {f"R@{k}": 100.0 * math.fsum(bounds.hit_rate(k, ties).tolist()) / n for k in ks}
    out["MdR"] = float(np.median(rank)) + 1.0
    out["MnR"] = math.fsum(rank.tolist()) / n + 1.0
    return out
