"""QVHighlights evaluation, compatible with jayleicn/moment_detr's standalone evaluator.

Same inputs (``pred_relevant_windows`` [[s, e, score]], ``pred_saliency_scores`` per 2 s clip)
and the same output keys (``brief``, ``HL-min-{Fair,Good,VeryGood}``, ``full/long/middle/
short`` with ``MR-mAP`` and ``MR-R1``), values x100 rounded to 2 decimals. Conventions:

* MR-R1@m: the **first listed** window (not re-sorted), against the GT window it overlaps
  most; hit if IoU >= m, m in 0.5:0.05:0.95.
* MR-mAP: the first 10 windows, detection AP per query (see :func:`.ap.detection_ap`),
  averaged over queries, then over thresholds (``average``). Queries whose prediction list is
  empty are left out of the mean, as upstream.
* Length buckets by GT window length: short (0, 10], middle (10, 30], long (30, 150] s; GT
  windows outside a bucket are removed and queries left without one dropped; full = all.
* HL: num_clips = int(duration / 2); each annotator's score is positive at >= 2 (Fair),
  >= 3 (Good), >= 4 (VeryGood); HL-mAP averages per-(query, annotator) AP (prediction
  truncated / zero-padded to num_clips); HL-Hit1: the arg-max clip (first maximum) is
  positive for at least one annotator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vidlang.errors import DataError
from vidlang.metrics.ap import detection_ap, ranking_ap
from vidlang.metrics.inputs import (
    WindowArrays,
    align_predictions,
    gt_as_dict,
    index_by_qid,
    pad_ragged,
    window_arrays,
)
from vidlang.ops.windows import iou_to_gt_sets, paired_iou

MR_THRESHOLDS = tuple(float(f"{t:.2f}") for t in np.linspace(0.5, 0.95, 10))
LENGTH_BUCKETS = {"short": (0.0, 10.0), "middle": (10.0, 30.0), "long": (30.0, 150.0),
                  "full": None}
MAX_PRED_WINDOWS = 10
HL_LEVELS = {"Fair": 2, "Good": 3, "VeryGood": 4}
CLIP_SECONDS = 2.0
NUM_ANNOTATORS = 3


def _pct(x: float) -> float:
    """moment_detr's formatting: x100, 2 decimals."""
    return float(f"{100 * x:.2f}")


def _bucket(arrays: WindowArrays, length_range: tuple[float, float] | None) -> WindowArrays:
    """Keep GT windows with length in (lo, hi] and the queries that still have one."""
    if length_range is None:
        return arrays
    lo, hi = length_range
    length = arrays.gt[:, :, 1] - arrays.gt[:, :, 0]
    gt_valid = arrays.gt_valid & (length > lo) & (length <= hi)
    keep = gt_valid.any(axis=1)
    # move each query's in-range windows to the front, so "first GT" keeps upstream's order
    order = np.argsort(~gt_valid, axis=1, kind="stable")
    gt = np.take_along_axis(arrays.gt, order[:, :, None], axis=1)[keep]
    gt_valid = np.take_along_axis(gt_valid, order, axis=1)[keep]
    return WindowArrays([q for q, k in zip(arrays.qids, keep) if k], arrays.durations[keep],
                        arrays.pred[keep], arrays.scores[keep], arrays.pred_valid[keep],
                        gt, gt_valid)


def _r1(arrays: WindowArrays) -> dict[str, float]:
    """MR-R1 at each threshold: first listed window vs its best-overlapping GT window."""
    if arrays.pred.shape[1] == 0:  # no query has a window: every query misses
        return {str(t): 0.0 for t in MR_THRESHOLDS}
    first = arrays.pred[:, 0, :]
    has = arrays.pred_valid[:, 0]
    # moment_detr's cross IoU: 'sum' union, 0 only where the union is exactly 0
    ious = iou_to_gt_sets(first[:, None], arrays.gt, arrays.gt_valid, union="sum",
                          guard="nonzero")[:, 0]
    best = np.take_along_axis(arrays.gt, ious.argmax(axis=1)[:, None, None], axis=1)[:, 0]
    iou = np.where(has, paired_iou(first, best), -1.0)
    n = max(len(iou), 1)
    return {str(t): _pct(float((iou >= t).sum()) / n) for t in MR_THRESHOLDS}


def _map(arrays: WindowArrays) -> dict[str, float]:
    cap = min(MAX_PRED_WINDOWS, arrays.pred.shape[1])
    ap = detection_ap(arrays.pred[:, :cap], arrays.scores[:, :cap], arrays.pred_valid[:, :cap],
                      arrays.gt, arrays.gt_valid, np.array(MR_THRESHOLDS))
    ap = ap[~np.isnan(ap).any(axis=1)]
    per_thr = ap.mean(axis=0) if len(ap) else np.zeros(len(MR_THRESHOLDS))
    out = {str(t): _pct(float(v)) for t, v in zip(MR_THRESHOLDS, per_thr)}
    out["average"] = _pct(float(np.mean(per_thr)))
    return out


def moment_retrieval_metrics(predictions: Sequence[dict[str, Any]],
                             ground_truth: Sequence[Any]) -> dict[str, dict[str, dict[str, float]]]:
    """``{bucket: {"MR-mAP": {thr: v, "average": v}, "MR-R1": {thr: v}}}`` (percent)."""
    arrays = window_arrays(predictions, ground_truth)
    out = {}
    for name, length_range in LENGTH_BUCKETS.items():
        sub = _bucket(arrays, length_range)
        out[name] = {"MR-mAP": _map(sub), "MR-R1": _r1(sub)}
    return out


def _gt_saliency(gts: Sequence[dict[str, Any]], qids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip annotator scores (Q, C, 3) and the clip mask (Q, C), C = max num_clips."""
    num_clips = np.array([int(float(g["duration"]) / CLIP_SECONDS) for g in gts], dtype=np.int64)
    mismatch = _row_lengths(gts, "relevant_clip_ids") != _row_lengths(gts, "saliency_scores")
    if mismatch.any():
        raise DataError("relevant_clip_ids and saliency_scores differ in length",
                        record=qids[int(mismatch.argmax())])
    ids, ids_valid = _pad_ids(gts, qids)
    scores, _ = pad_ragged([g.get("saliency_scores", []) for g in gts], qids, (NUM_ANNOTATORS,),
                           "saliency_scores", width=NUM_ANNOTATORS)
    out_of_range = ids_valid & ((ids < 0) | (ids >= num_clips[:, None]))
    if out_of_range.any():
        qi = int(np.argwhere(out_of_range)[0][0])
        raise DataError(f"a relevant clip id is outside 0..{num_clips[qi] - 1} "
                        f"(num_clips = int(duration / {CLIP_SECONDS:g}))", record=qids[qi])
    c = int(num_clips.max()) if len(num_clips) else 0
    full = np.zeros((len(gts), c, NUM_ANNOTATORS))
    rows, slot = np.nonzero(ids_valid)
    full[rows, ids[rows, slot]] = scores[rows, slot]
    return full, np.arange(c)[None, :] < num_clips[:, None]


def _row_lengths(items: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.fromiter((len(g.get(key, [])) for g in items), dtype=np.int64, count=len(items))


def _pad_ids(gts: Sequence[dict[str, Any]], qids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = [[[i] for i in g.get("relevant_clip_ids", [])] for g in gts]
    ids, valid = pad_ragged(rows, qids, (1,), "relevant_clip_ids", width=1)
    return ids[:, :, 0].astype(np.int64), valid


def highlight_metrics(predictions: Sequence[dict[str, Any]],
                      ground_truth: Sequence[Any]) -> dict[str, dict[str, float]]:
    """``{"HL-min-<level>": {"HL-mAP": v, "HL-Hit1": v}}`` for Fair, Good and VeryGood."""
    gts = [gt_as_dict(g) for g in ground_truth]
    qids = list(index_by_qid(gts, "ground truth"))
    preds = align_predictions(predictions, qids)
    truth, clip_valid = _gt_saliency(gts, qids)
    rows = [[[v] for v in p.get("pred_saliency_scores", [])] for p in preds]
    sal, sal_valid = pad_ragged(rows, qids, (1,), "pred_saliency_scores", width=1)
    sal = sal[:, :, 0]
    c = truth.shape[1]
    scored = np.zeros(clip_valid.shape)  # truncated / zero-padded to num_clips
    width = min(c, sal.shape[1])
    scored[:, :width] = np.where(sal_valid[:, :width], sal[:, :width], 0.0)
    top = np.where(sal_valid, sal, -np.inf).argmax(axis=1) if sal.shape[1] else np.zeros(len(qids), int)
    top_ok = sal_valid.any(axis=1) & (top < clip_valid.sum(axis=1))
    out = {}
    for name, level in HL_LEVELS.items():
        positive = (truth >= level) & clip_valid[:, :, None]  # (Q, C, 3)
        labels = positive.transpose(0, 2, 1).reshape(-1, c)
        ap = ranking_ap(np.repeat(scored, NUM_ANNOTATORS, axis=0), labels,
                        np.repeat(clip_valid, NUM_ANNOTATORS, axis=0))
        hit_rows = positive[np.arange(len(qids)), np.minimum(top, max(c - 1, 0))].any(axis=1) \
            if c else np.zeros(len(qids), bool)
        hit = hit_rows & top_ok
        n = max(len(qids), 1)
        out[f"HL-min-{name}"] = {"HL-mAP": _pct(float(ap.mean()) if len(ap) else 0.0),
                                 "HL-Hit1": _pct(float(hit.sum()) / n)}
    return out


def evaluate_qvhighlights(predictions: Sequence[dict[str, Any]],
                          ground_truth: Sequence[Any]) -> dict[str, Any]:
    """moment_detr's ``eval_submission``: ``brief`` first, then the other blocks sorted by
    key. MR parts run when the first prediction has ``pred_relevant_windows``, HL parts
    when it has ``pred_saliency_scores``. The qid sets must match."""
    if not predictions:
        raise DataError("no predictions")
    brief: dict[str, float] = {}
    blocks: dict[str, Any] = {}
    if "pred_relevant_windows" in predictions[0]:
        mr = moment_retrieval_metrics(predictions, ground_truth)
        blocks.update(mr)
        mr_brief = {
            "MR-full-mAP": mr["full"]["MR-mAP"]["average"],
            "MR-full-mAP@0.5": mr["full"]["MR-mAP"]["0.5"],
            "MR-full-mAP@0.75": mr["full"]["MR-mAP"]["0.75"],
            "MR-short-mAP": mr["short"]["MR-mAP"]["average"],
            "MR-middle-mAP": mr["middle"]["MR-mAP"]["average"],
            "MR-long-mAP": mr["long"]["MR-mAP"]["average"],
            "MR-full-R1@0.5": mr["full"]["MR-R1"]["0.5"],
            "MR-full-R1@0.7": mr["full"]["MR-R1"]["0.7"],
        }
        brief.update(sorted(mr_brief.items()))
    if "pred_saliency_scores" in predictions[0]:
        hl = highlight_metrics(predictions, ground_truth)
        blocks.update(hl)
        for level, values in hl.items():
            for key, v in values.items():
                brief[f"{level}-{key.split('-')[1]}"] = v
    return {"brief": brief, **dict(sorted(blocks.items()))}
