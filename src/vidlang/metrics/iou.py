"""Temporal IoU, vectorised: pairwise (N x M), paired (N), and against per-query GT sets.

IoU of two windows [s1, e1], [s2, e2] is ``max(0, min(e) - max(s)) / union``. Two unions are
offered because the reference evaluators differ in their float arithmetic (not in the maths,
the two agree whenever the windows overlap):

* ``"hull"`` (default; MMN, 2D-TAN, CPL, moment_detr's R1): ``max(e) - min(s)``;
* ``"sum"`` (moment_detr's mAP): ``(e1 - s1) + (e2 - s2) - intersection``.

A zero union (two identical points) gives IoU 0. With several GT windows per query, a
prediction's IoU is its **maximum** IoU over the query's GT windows.
"""

from __future__ import annotations

import numpy as np

from vidlang.errors import ConfigError

UNIONS = ("hull", "sum")


def _iou_from_bounds(s1: np.ndarray, e1: np.ndarray, s2: np.ndarray, e2: np.ndarray,
                     union: str) -> np.ndarray:
    """Elementwise IoU of broadcastable start/end arrays."""
    inter = np.maximum(np.minimum(e1, e2) - np.maximum(s1, s2), 0.0)
    if union == "hull":
        uni = np.maximum(e1, e2) - np.minimum(s1, s2)
    elif union == "sum":
        uni = (e1 - s1) + (e2 - s2) - inter
    else:
        raise ConfigError(f"union: {union!r} is not one of {', '.join(UNIONS)}")
    out = np.zeros(np.broadcast(inter, uni).shape, dtype=np.float64)
    np.divide(inter, uni, out=out, where=uni > 0)
    return out


def temporal_iou(a: np.ndarray, b: np.ndarray, union: str = "hull") -> np.ndarray:
    """Pairwise IoU of windows ``a`` (N, 2) and ``b`` (M, 2) -> (N, M), symmetric, in [0, 1]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    return _iou_from_bounds(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1], union)


def paired_iou(a: np.ndarray, b: np.ndarray, union: str = "hull") -> np.ndarray:
    """IoU of row i of ``a`` with row i of ``b`` (any matching leading shape, last dim 2)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return _iou_from_bounds(a[..., 0], a[..., 1], b[..., 0], b[..., 1], union)


def iou_to_gt_sets(pred: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray,
                   union: str = "hull") -> np.ndarray:
    """Batched IoU (Q, P, G) of each query's predictions (Q, P, 2) with its GT windows
    (Q, G, 2); padded GT slots (``gt_valid`` False) get IoU -1 so they never match."""
    iou = _iou_from_bounds(pred[:, :, None, 0], pred[:, :, None, 1],
                           gt[:, None, :, 0], gt[:, None, :, 1], union)
    return np.where(gt_valid[:, None, :], iou, -1.0)


def max_iou_to_gt(pred: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray,
                  union: str = "hull") -> np.ndarray:
    """Each prediction's best IoU over its query's GT windows: (Q, P, 2) x (Q, G, 2) -> (Q, P).
    A query without valid GT gets 0."""
    return np.maximum(iou_to_gt_sets(pred, gt, gt_valid, union).max(axis=-1, initial=-1.0), 0.0)
