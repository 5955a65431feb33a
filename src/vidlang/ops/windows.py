"""Temporal IoU of ``[start, end]`` windows: the one implementation, for NumPy and torch.

IoU of two windows [s1, e1], [s2, e2] is ``max(0, min(e) - max(s)) / union``. The callers'
float arithmetic differs in a few details, each kept by an explicit parameter so that every
caller computes bit-for-bit what it computed before the copies were merged:

``union`` (NumPy):
  * ``"hull"`` (default; MMN, 2D-TAN, CPL, moment_detr's R1): ``max(e) - min(s)``;
  * ``"sum"`` (moment_detr's mAP and cross IoU): ``(e1 - s1) + (e2 - s2) - intersection``.
  Both agree whenever the windows overlap; they differ only in rounding.

``guard`` (NumPy), what a union that is not positive gives:
  * ``"positive"`` (default): IoU 0 unless ``union > 0`` (float64 result);
  * ``"nonzero"``: IoU 0 where ``union == 0``, the plain quotient elsewhere (result in the
    inputs' dtype; a negative union, two reversed windows, gives -0.0);
  * ``"none"``: the plain quotient (0 / 0 = NaN, which compares False, so NMS never
    suppresses with it).

torch (:func:`window_iou`): ``eps`` floors the union before dividing (1e-12 for MMN and CPL,
1e-9 for the multi-level loss); ``guard="clamp"`` (default) divides by the floored union,
``guard="positive"`` gives 0 unless ``union > 0`` (MMN's targets).

With several GT windows per query, a prediction's IoU is its **maximum** IoU over the query's
GT windows (:func:`max_iou_to_gt`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vidlang.errors import ConfigError

UNIONS = ("hull", "sum")
GUARDS = ("positive", "nonzero", "none")
TORCH_GUARDS = ("clamp", "positive")


def _into_first(ufunc: np.ufunc, a: Any, b: Any) -> Any:
    """``ufunc(a, b)``, written into ``a`` (a fresh temporary) when the result has a's shape and
    dtype: the same numbers, one allocation fewer (NMS calls this once per round on (Q, P))."""
    if (isinstance(a, np.ndarray) and a.dtype.kind == "f"
            and a.shape == np.broadcast_shapes(a.shape, np.shape(b))
            and a.dtype == np.result_type(a, b)):
        return ufunc(a, b, out=a)
    return ufunc(a, b)


def iou_bounds(s1: Any, e1: Any, s2: Any, e2: Any, union: str = "hull",
               guard: str = "positive") -> np.ndarray:
    """Elementwise IoU of broadcastable start/end arrays (see the module notes for
    ``union`` and ``guard``)."""
    if union not in UNIONS:
        raise ConfigError(f"union: {union!r} is not one of {', '.join(UNIONS)}")
    if guard not in GUARDS:
        raise ConfigError(f"guard: {guard!r} is not one of {', '.join(GUARDS)}")
    inter = _into_first(np.subtract, np.minimum(e1, e2), np.maximum(s1, s2))
    inter = _into_first(np.maximum, inter, 0.0)
    if union == "hull":
        uni = _into_first(np.subtract, np.maximum(e1, e2), np.minimum(s1, s2))
    else:
        uni = (e1 - s1) + (e2 - s2) - inter
    if guard == "positive":
        out = np.zeros(np.broadcast(inter, uni).shape, dtype=np.float64)
        np.divide(inter, uni, out=out, where=uni > 0)
        return out
    if guard == "nonzero":
        return np.divide(inter, uni, out=np.zeros_like(inter), where=uni != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _into_first(np.divide, inter, uni)


def temporal_iou(a: np.ndarray, b: np.ndarray, union: str = "hull") -> np.ndarray:
    """Pairwise IoU of windows ``a`` (N, 2) and ``b`` (M, 2) -> (N, M), symmetric, in [0, 1]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    return iou_bounds(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1], union)


def paired_iou(a: np.ndarray, b: np.ndarray, union: str = "hull") -> np.ndarray:
    """IoU of row i of ``a`` with row i of ``b`` (any matching leading shape, last dim 2)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return iou_bounds(a[..., 0], a[..., 1], b[..., 0], b[..., 1], union)


def iou_to_gt_sets(pred: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray,
                   union: str = "hull", guard: str = "positive") -> np.ndarray:
    """Batched IoU (Q, P, G) of each query's predictions (Q, P, 2) with its GT windows
    (Q, G, 2); padded GT slots (``gt_valid`` False) get IoU -1 so they never match."""
    iou = iou_bounds(pred[:, :, None, 0], pred[:, :, None, 1],
                     gt[:, None, :, 0], gt[:, None, :, 1], union, guard)
    return np.where(gt_valid[:, None, :], iou, -1.0)


def max_iou_to_gt(pred: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray,
                  union: str = "hull") -> np.ndarray:
    """Each prediction's best IoU over its query's GT windows: (Q, P, 2) x (Q, G, 2) -> (Q, P).
    A query without valid GT gets 0."""
    return np.maximum(iou_to_gt_sets(pred, gt, gt_valid, union).max(axis=-1, initial=-1.0), 0.0)


def window_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12,
               guard: str = "clamp") -> torch.Tensor:
    """IoU of ``[..., 2]`` windows (broadcast; union = convex hull; disjoint pairs give 0).

    ``guard="clamp"``: ``inter / union.clamp(min=eps)``; ``guard="positive"``: the same
    quotient where ``union > 0``, else 0 (NaN windows give 0 instead of NaN)."""
    if guard not in TORCH_GUARDS:
        raise ConfigError(f"guard: {guard!r} is not one of {', '.join(TORCH_GUARDS)}")
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    if guard == "positive":
        return torch.where(union > 0, inter / union.clamp(min=eps), torch.zeros_like(inter))
    return inter / union.clamp(min=eps)


def pairwise_window_iou(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12,
                        guard: str = "clamp") -> torch.Tensor:
    """Pairwise IoU [N, M] of windows a [N, 2] and b [M, 2] (:func:`window_iou` of every pair)."""
    return window_iou(a[:, None, :], b[None, :, :], eps, guard)
