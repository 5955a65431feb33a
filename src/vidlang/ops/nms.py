"""Greedy temporal NMS (hard or Gaussian soft), vectorised over queries.

Hard NMS (MMN, 2D-TAN): take the best-scored window still alive, drop every other window
whose IoU with it is **greater than** ``thresh``, repeat. Soft NMS (SnAG-style, Gaussian):
instead of dropping, multiply the other scores by ``exp(-iou**2 / sigma)`` and re-pick the
best. Ties in score keep input order (stable), so the same input gives the same output.

The batched form runs one round per kept window, each round touching (Q, P) numbers, so an
evaluator that needs only the first ``n`` survivors pays for ``n`` rounds, not for P x P IoUs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vidlang.errors import ConfigError, DataError
from vidlang.ops.windows import iou_bounds

NMS_KINDS = ("hard", "soft")


def batched_nms(windows: np.ndarray, scores: np.ndarray, valid: np.ndarray,
                thresh: float | None, rounds: int, kind: str = "hard",
                sigma: float = 0.5, min_score: float = 0.0) -> np.ndarray:
    """Kept indices (Q, rounds) into the P axis, best first; -1 where a query ran out.

    ``windows`` (Q, P, 2), ``scores`` (Q, P), ``valid`` (Q, P) bool. ``thresh=None`` keeps
    the windows in score order without suppression. ``rounds`` caps the number kept. Soft
    NMS ignores ``thresh``; it drops a window once its decayed score falls below ``min_score``.
    """
    if kind not in NMS_KINDS:
        raise ConfigError(f"nms_kind: {kind!r} is not one of {', '.join(NMS_KINDS)}")
    q, p = scores.shape
    rounds = max(0, min(int(rounds), p))
    kept = np.full((q, rounds), -1, dtype=np.int64)
    if q == 0 or p == 0 or rounds == 0:
        return kept
    rows = np.arange(q)
    starts = np.ascontiguousarray(windows[..., 0], dtype=np.float64)
    ends = np.ascontiguousarray(windows[..., 1], dtype=np.float64)
    if kind == "soft" and np.any(valid & (scores < 0)):
        raise DataError("soft NMS needs non-negative scores (it multiplies them by a decay)")
    current = np.where(valid, scores.astype(np.float64), -np.inf)
    for r in range(rounds):
        best = current.argmax(axis=1)  # first maximum: ties keep input order
        has = current[rows, best] > -np.inf
        if not has.any():
            break
        kept[:, r] = np.where(has, best, -1)
        current[rows, best] = -np.inf
        if kind == "hard" and thresh is None:
            continue
        # hull union, no guard: 0 / 0 (two identical points) is NaN and never suppresses
        iou = iou_bounds(starts, ends, starts[rows, best][:, None], ends[rows, best][:, None],
                         guard="none")
        if kind == "hard":
            current[iou > thresh] = -np.inf
        else:
            current *= np.exp(-(iou**2) / sigma)
            current[current < min_score] = -np.inf
    return kept


def nms(windows: np.ndarray, scores: np.ndarray, thresh: float,
        topk: int | None = None) -> np.ndarray:
    """Indices of the windows kept by greedy hard NMS (IoU > ``thresh`` suppressed), best
    first, at most ``topk``. ``windows`` (N, 2) in any time unit, ``scores`` (N,)."""
    w = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(w) != len(s):
        raise DataError(f"nms: {len(w)} windows but {len(s)} scores")
    n = len(s) if topk is None else min(int(topk), len(s))
    kept = batched_nms(w[None], s[None], np.ones((1, len(s)), dtype=bool), thresh, n)[0]
    return kept[kept >= 0]


def soft_nms(windows: np.ndarray, scores: np.ndarray, sigma: float = 0.5,
             topk: int | None = None) -> np.ndarray:
    """Indices in Gaussian soft-NMS pick order (all windows, or the first ``topk``)."""
    w = np.asarray(windows, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(s) if topk is None else min(int(topk), len(s))
    kept = batched_nms(w[None], s[None], np.ones((1, len(s)), dtype=bool), None, n,
                       kind="soft", sigma=sigma)[0]
    return kept[kept >= 0]


def nms_windows(windows: Sequence[Sequence[float]] | np.ndarray, thresh: float,
                topk: int | None = None) -> list[list[float]]:
    """The ``[s, e, score]`` rows kept by :func:`nms`, best first (for model ``predict``)."""
    rows = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    return rows[nms(rows[:, :2], rows[:, 2], thresh, topk)].tolist()
