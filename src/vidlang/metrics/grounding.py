"""Temporal grounding metrics: R@n at IoU m, mIoU (top-1) and best IoU in the top k.

Hot path is vectorised over queries: predictions and GT are padded to (Q, P, 2) / (Q, G, 2),
NMS runs one round per kept window across all queries at once (see :mod:`vidlang.ops.nms`), and each
kept window's IoU is its maximum over the query's GT windows. All figures are percentages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidlang.metrics.conventions import GroundingConvention, resolve_convention
from vidlang.metrics.inputs import WindowArrays, window_arrays
from vidlang.metrics.postprocess import rank_windows
from vidlang.ops.windows import max_iou_to_gt

CHUNK_QUERIES = 8192  # bounds the temporaries of the (Q, P) NMS rounds


@dataclass
class GroundingResult:
    """Metrics plus what was evaluated: the convention, the query count, skipped queries."""

    metrics: dict[str, float]
    convention: GroundingConvention
    num_queries: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def skipped_summary(self, max_items: int = 5) -> str:
        if not self.skipped:
            return "skipped 0 queries"
        head = "; ".join(f"{q}: {why}" for q, why in self.skipped[:max_items])
        more = f"; ... and {len(self.skipped) - max_items} more" if len(self.skipped) > max_items else ""
        return f"skipped {len(self.skipped)} queries ({head}{more})"


def prepare_gt(arrays: WindowArrays, conv: GroundingConvention) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Apply ``clamp_gt`` and find queries without a usable GT window.

    Returns the GT validity mask to use and the skipped (qid, reason) pairs."""
    gt_valid = arrays.gt_valid.copy()
    if conv.clamp_gt:
        dur = arrays.durations[:, None]
        arrays.gt[:, :, 0] = np.clip(arrays.gt[:, :, 0], 0.0, dur)
        arrays.gt[:, :, 1] = np.clip(arrays.gt[:, :, 1], 0.0, dur)
        gt_valid &= arrays.gt[:, :, 0] < arrays.gt[:, :, 1]
    empty = ~gt_valid.any(axis=1)
    reason = ("no ground-truth window with start < end inside [0, duration]" if conv.clamp_gt
              else "no ground-truth window")
    skipped = [(arrays.qids[i], reason) for i in np.flatnonzero(empty)]
    return gt_valid, skipped


def to_time_base(arrays: WindowArrays, conv: GroundingConvention) -> None:
    """In place: ``normalised`` divides by the duration and clips predictions to [0, 1]."""
    if conv.time_base == "normalised":
        dur = arrays.durations[:, None, None]
        arrays.gt /= dur
        arrays.pred = np.clip(arrays.pred / dur, 0.0, 1.0)


def kept_window_ious(pred: np.ndarray, scores: np.ndarray, pred_valid: np.ndarray,
                     gt: np.ndarray, gt_valid: np.ndarray, conv: GroundingConvention,
                     rounds: int) -> np.ndarray:
    """(Q, rounds) best-over-GT IoU of the first ``rounds`` windows left after ranking and NMS;
    -1 where a query has fewer windows."""
    kept = rank_windows(pred, scores, pred_valid, conv, rounds)
    windows = np.take_along_axis(pred, np.maximum(kept, 0)[:, :, None], axis=1)
    iou = max_iou_to_gt(windows, gt, gt_valid)
    return np.where(kept >= 0, iou, -1.0)


def rounds_needed(conv: GroundingConvention) -> int:
    """How many ranked windows the metrics look at."""
    k = conv.miou_k if "best_of_k" in conv.miou else 1
    return max(max(conv.recall_at), k)


_HIT_TESTS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "ge": lambda iou, m: iou >= m,
    "gt": lambda iou, m: iou > m,
}
_MIOU: dict[str, Callable[[np.ndarray, GroundingConvention], tuple[str, np.ndarray]]] = {
    "top1": lambda iou, c: ("mIoU", np.maximum(iou[:, 0], 0.0)),
    "best_of_k": lambda iou, c: (f"mIoU,best-of-{c.miou_k}",
                                 np.maximum(iou[:, : c.miou_k].max(axis=1), 0.0)),
}


def recall_table(ious: np.ndarray, conv: GroundingConvention) -> dict[str, float]:
    """R@n,IoU{op}m and mIoU keys (percent, tagged) from (Q, R) ranked IoUs."""
    out: dict[str, float] = {}
    tag, sym = conv.tag, conv.op_symbol
    hit = _HIT_TESTS[conv.iou_op]
    q = max(len(ious), 1)
    for n in conv.recall_at:
        head = ious[:, :n]
        for m in conv.thresholds:
            hits = hit(head, m).any(axis=1)
            out[f"R@{n},IoU{sym}{m:g} {tag}"] = 100.0 * float(hits.sum()) / q
    for kind in conv.miou:
        name, values = _MIOU[kind](ious if ious.shape[1] else np.full((len(ious), 1), -1.0), conv)
        out[f"{name} {tag}"] = 100.0 * math.fsum(values.tolist()) / q  # order-independent
    return out


def score_arrays(arrays: WindowArrays, conv: GroundingConvention) -> GroundingResult:
    """Ranked-window scoring on padded arrays (the vectorised core)."""
    gt_valid, skipped = prepare_gt(arrays, conv)
    to_time_base(arrays, conv)
    keep = np.flatnonzero(gt_valid.any(axis=1))
    rounds = rounds_needed(conv)
    chunks = [keep[i:i + CHUNK_QUERIES] for i in range(0, len(keep), CHUNK_QUERIES)] or [keep]
    ious = np.concatenate([
        kept_window_ious(arrays.pred[c], arrays.scores[c], arrays.pred_valid[c], arrays.gt[c],
                         gt_valid[c], conv, rounds) for c in chunks])
    metrics = recall_table(ious, conv)
    metrics[f"queries {conv.tag}"] = float(len(keep))
    metrics[f"skipped {conv.tag}"] = float(len(skipped))
    return GroundingResult(metrics, conv, len(keep), skipped)


def _score_moment_detr(predictions: Sequence[dict[str, Any]], ground_truth: Sequence[Any],
                       conv: GroundingConvention) -> GroundingResult:
    """Ranked R@n keys plus moment_detr's MR-mAP / MR-R1 per length bucket."""
    from vidlang.metrics.qvhighlights import moment_retrieval_metrics

    result = _score_ranked(predictions, ground_truth, conv)
    mr = moment_retrieval_metrics(predictions, ground_truth)
    for bucket, block in mr.items():
        for family, values in block.items():  # "MR-mAP" / "MR-R1"
            for thr, v in values.items():
                at = "" if thr == "average" else f"@{thr}"
                result.metrics[f"MR-{bucket}-{family[3:]}{at} {conv.tag}"] = v
    return result


def _score_ranked(predictions: Sequence[dict[str, Any]], ground_truth: Sequence[Any],
                  conv: GroundingConvention) -> GroundingResult:
    need_duration = conv.clamp_gt or conv.time_base == "normalised"
    return score_arrays(window_arrays(predictions, ground_truth, need_duration), conv)


# preset name -> scorer; presets not listed use the ranked-window scorer
SCORERS: dict[str, Callable[[Sequence[dict[str, Any]], Sequence[Any], GroundingConvention],
                            GroundingResult]] = {"moment_detr": _score_moment_detr}


def evaluate_grounding_detailed(predictions: Sequence[dict[str, Any]], ground_truth: Sequence[Any],
                                preset: str = "mmn", dataset: str | None = None,
                                **overrides: Any) -> GroundingResult:
    """Like :func:`evaluate_grounding`, returning the convention and skipped queries too."""
    conv = resolve_convention(preset, dataset, **overrides)
    return score_with_convention(predictions, ground_truth, conv)


def score_with_convention(predictions: Sequence[dict[str, Any]], ground_truth: Sequence[Any],
                          conv: GroundingConvention) -> GroundingResult:
    """Score under an already resolved convention (the pipeline passes its post-processing
    step's :meth:`~vidlang.metrics.postprocess.GroundingPostprocess.scoring_convention`)."""
    return SCORERS.get(conv.name, _score_ranked)(predictions, ground_truth, conv)


def evaluate_grounding(predictions: list[dict], ground_truth: list[dict], preset: str = "mmn",
                       **overrides: Any) -> dict[str, float]:
    """Grounding metrics (percent) under a named convention, keys tagged e.g.
    ``R@1,IoU>=0.5 [mmn]``; also ``queries [..]`` and ``skipped [..]`` counts.

    ``predictions``: ``{"qid", "pred_relevant_windows": [[s, e, score], ...]}``;
    ``ground_truth``: ``{"qid", "duration", "relevant_windows"}`` dicts or GroundingRecords.
    ``overrides``: ``dataset`` (per-dataset thresholds / NMS of the preset) and any switch of
    :class:`GroundingConvention` (``iou_op``, ``nms_thresh``, ``nms_kind``, ``topk_cap``,
    ``thresholds``, ``miou``, ``time_base``, ``clamp_gt`` ...)."""
    dataset = overrides.pop("dataset", None)
    return evaluate_grounding_detailed(predictions, ground_truth, preset, dataset, **overrides).metrics
