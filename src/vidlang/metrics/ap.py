"""Average precision, vectorised over many independent rankings (one per row).

* :func:`detection_ap` - ActivityNet-style temporal detection AP, as in moment_detr's
  standalone evaluator: predictions sorted by score (stable), each greedily matched to the
  unmatched GT window of highest IoU if that IoU >= threshold, then VOC interpolated AP
  (sum over recall steps of the precision envelope).
* :func:`ranking_ap` - AP of binary labels ranked by scores with the semantics of
  ``sklearn.metrics.precision_recall_curve`` + moment_detr's ``get_ap``: tied scores form one
  operating point; the precision envelope is taken towards higher recall; AP is the *mean*
  of the envelope over the operating points where recall changes (not recall-weighted).
"""

from __future__ import annotations

import numpy as np

from vidlang.ops.windows import iou_to_gt_sets


def _reverse_cummax(x: np.ndarray) -> np.ndarray:
    return np.maximum.accumulate(x[..., ::-1], axis=-1)[..., ::-1]


def detection_ap(pred: np.ndarray, scores: np.ndarray, pred_valid: np.ndarray, gt: np.ndarray,
                 gt_valid: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """AP (Q, T) of each query's predictions (Q, P, 2) against its GT windows (Q, G, 2) at
    each IoU threshold (T,). Rows without a valid prediction or GT window give NaN."""
    q, p = scores.shape
    t = len(thresholds)
    order = np.argsort(np.where(pred_valid, -scores, np.inf), axis=1, kind="stable")
    pred = np.take_along_axis(pred, order[:, :, None], axis=1)
    valid = np.take_along_axis(pred_valid, order, axis=1)
    iou = iou_to_gt_sets(pred, gt, gt_valid, union="sum")  # (Q, P, G), -1 on padding
    gt_order = np.argsort(iou, axis=-1)[..., ::-1]  # best GT first, as moment_detr visits them
    iou_sorted = np.take_along_axis(iou, gt_order, axis=-1)
    locked = np.zeros((q, t, gt.shape[1]), dtype=bool)
    tp = np.zeros((q, t, p), dtype=bool)
    rows = np.arange(q)[:, None]
    cols = np.arange(t)[None, :]
    for k in range(p):
        g_order = np.broadcast_to(gt_order[:, k, None, :], (q, t, gt.shape[1]))
        free = ~np.take_along_axis(locked, g_order, axis=-1)
        cand = (iou_sorted[:, k, None, :] >= thresholds[None, :, None]) & free
        cand &= valid[:, k, None, None]
        has = cand.any(axis=-1)
        g = np.take_along_axis(g_order, cand.argmax(axis=-1)[..., None], axis=-1)[..., 0]
        tp[:, :, k] = has
        locked[rows, cols, g] |= has
    fp = valid[:, None, :] & ~tp
    tp_c = np.cumsum(tp, axis=-1, dtype=np.float64)
    fp_c = np.cumsum(fp, axis=-1, dtype=np.float64)
    n_gt = gt_valid.sum(axis=1).astype(np.float64)[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp_c / n_gt
        precision = tp_c / (tp_c + fp_c)
    zeros = np.zeros((q, t, 1))
    m_prec = _reverse_cummax(np.concatenate([zeros, precision, zeros], axis=-1))
    m_rec = np.concatenate([zeros, recall, np.ones((q, t, 1))], axis=-1)
    steps = np.diff(m_rec, axis=-1) * m_prec[..., 1:]
    ap = np.cumsum(steps, axis=-1)[..., -1]  # sequential sum, as over the recall steps
    usable = valid.any(axis=1, keepdims=True) & gt_valid.any(axis=1, keepdims=True)  # (Q, 1)
    return np.where(usable, ap, np.nan)


def ranking_ap(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """AP (N,) of boolean ``labels`` (N, C) ranked by ``scores`` (N, C) over the ``valid``
    entries of each row; a row without a positive gives 0."""
    n, c = scores.shape
    s = np.where(valid, scores, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")
    s = np.take_along_axis(s, order, axis=1)
    pos = np.take_along_axis(labels & valid, order, axis=1)
    val = np.take_along_axis(valid, order, axis=1)
    tps = np.cumsum(pos, axis=1, dtype=np.float64)
    fps = np.cumsum(val & ~pos, axis=1, dtype=np.float64)
    nxt = np.concatenate([s[:, 1:], np.full((n, 1), -np.inf)], axis=1)
    nxt_valid = np.concatenate([val[:, 1:], np.zeros((n, 1), bool)], axis=1)
    point = val & ~(nxt_valid & (nxt == s))  # last entry of each tie group
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(point, tps / (tps + fps), 0.0)
    before = np.concatenate([np.zeros((n, 1)), np.where(point, tps, 0.0)[:, :-1]], axis=1)
    prev_tps = np.maximum.accumulate(before, axis=1)
    changed = point & (tps > prev_tps)
    envelope = _reverse_cummax(precision)
    count = changed.sum(axis=1)
    total = np.where(changed, envelope, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.zeros(n), where=count > 0)
