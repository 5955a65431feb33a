"""Turn moment_detr-style prediction / ground-truth dicts into padded numpy arrays.

Predictions: ``{"qid", "pred_relevant_windows": [[s, e, score], ...]}`` (``[s, e]`` rows are
ranked by list order). Ground truth: ``{"qid", "duration", "relevant_windows": [[s, e], ...]}``
or a :class:`vidlang.data.records.GroundingRecord`. qids are compared as strings. Every GT qid
needs exactly one prediction; bad rows raise :class:`DataError` naming the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.data.records import GroundingRecord, iter_jsonl
from vidlang.errors import DataError
from vidlang.ops.padding import pad_flat_rows

MAX_LISTED_IDS = 5


def gt_as_dict(item: Any) -> dict[str, Any]:
    """A GT entry as a moment_detr-style dict (GroundingRecord or dict)."""
    if isinstance(item, GroundingRecord):
        return item.to_json()
    if not isinstance(item, dict):
        raise DataError(f"a ground-truth entry must be a dict or GroundingRecord, got {type(item).__name__}")
    return item


def _field(item: dict[str, Any], key: str, index: int, what: str) -> Any:
    try:
        return item[key]
    except KeyError:
        qid = item.get("qid", f"#{index}")
        raise DataError(f"{what} has no {key!r} field", record=str(qid)) from None


def index_by_qid(items: Sequence[dict[str, Any]], what: str) -> dict[str, int]:
    """qid (as str) -> position; duplicate qids raise."""
    out: dict[str, int] = {}
    for i, item in enumerate(items):
        qid = str(_field(item, "qid", i, what))
        if qid in out:
            raise DataError(f"{what} lists this qid twice (entries {out[qid]} and {i})", record=qid)
        out[qid] = i
    return out


def _first(ids: Sequence[str]) -> str:
    more = f" and {len(ids) - MAX_LISTED_IDS} more" if len(ids) > MAX_LISTED_IDS else ""
    return ", ".join(ids[:MAX_LISTED_IDS]) + more


def align_predictions(predictions: Sequence[dict[str, Any]], gt_qids: Sequence[str],
                      strict_extra: bool = True) -> list[dict[str, Any]]:
    """The prediction of each GT qid, in GT order; missing (or unknown) qids raise."""
    pos = index_by_qid(predictions, "prediction")
    missing = [q for q in gt_qids if q not in pos]
    if missing:
        raise DataError(f"{len(missing)} ground-truth qids have no prediction: {_first(missing)}")
    if strict_extra and len(pos) != len(gt_qids):
        known = set(gt_qids)
        extra = [q for q in pos if q not in known]
        raise DataError(f"{len(extra)} predicted qids are not in the ground truth: {_first(extra)}")
    return [predictions[pos[q]] for q in gt_qids]


def _locate_bad_row(lists: Sequence[Any], qids: Sequence[str], widths: tuple[int, ...],
                    what: str) -> DataError:
    for qid, rows in zip(qids, lists):
        if not isinstance(rows, (list, tuple)):
            return DataError(f"{what} must be a list of windows, got {type(rows).__name__}",
                             record=qid)
        for j, row in enumerate(rows):
            ok = isinstance(row, (list, tuple)) and len(row) in widths
            if ok:
                try:
                    [float(v) for v in row]
                except (TypeError, ValueError):
                    ok = False
            if not ok:
                return DataError(f"{what}[{j}] = {row!r} is not a list of "
                                 f"{' or '.join(map(str, widths))} numbers", record=qid)
    return DataError(f"{what}: rows of different widths in one file ({' or '.join(map(str, widths))})")


def pad_ragged(lists: Sequence[Any], qids: Sequence[str], widths: tuple[int, ...],
               what: str, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ragged per-query rows -> (Q, P, w) float64 array and (Q, P) validity mask.

    Fast path: one ``np.asarray`` over all rows; the slow per-row scan runs only to name the
    bad record. Non-finite values raise."""
    q = len(lists)
    try:
        lens = np.fromiter((len(x) for x in lists), dtype=np.int64, count=q)
        flat = np.asarray(list(chain.from_iterable(lists)), dtype=np.float64)
    except (TypeError, ValueError):
        raise _locate_bad_row(lists, qids, widths, what) from None
    total = int(lens.sum())
    if total == 0:
        flat = flat.reshape(0, width or widths[0])
    if flat.ndim != 2 or flat.shape[1] not in widths:
        raise _locate_bad_row(lists, qids, widths, what)
    owner = np.repeat(np.arange(q), lens)
    bad = ~np.isfinite(flat).all(axis=1)
    if bad.any():
        raise DataError(f"{what} holds a non-finite value", record=qids[int(owner[bad.argmax()])])
    return pad_flat_rows(flat, lens)


@dataclass
class WindowArrays:
    """Padded windows of Q queries: predictions (Q, P, 2) with scores, GT (Q, G, 2)."""

    qids: list[str]
    durations: np.ndarray
    pred: np.ndarray
    scores: np.ndarray
    pred_valid: np.ndarray
    gt: np.ndarray
    gt_valid: np.ndarray


def window_arrays(predictions: Sequence[dict[str, Any]], ground_truth: Sequence[Any],
                  need_duration: bool = False) -> WindowArrays:
    """Align predictions to GT by qid and pad both. Windows with end < start raise."""
    gts = [gt_as_dict(g) for g in ground_truth]
    qids = list(index_by_qid(gts, "ground truth"))
    preds = align_predictions(predictions, qids)
    pred_lists = [_field(p, "pred_relevant_windows", i, "prediction") for i, p in enumerate(preds)]
    gt_lists = [_field(g, "relevant_windows", i, "ground truth") for i, g in enumerate(gts)]
    pred_rows, pred_valid = pad_ragged(pred_lists, qids, (2, 3), "pred_relevant_windows")
    gt_rows, gt_valid = pad_ragged(gt_lists, qids, (2,), "relevant_windows", width=2)
    if pred_rows.shape[2] == 3:
        scores = pred_rows[:, :, 2]
    else:  # no scores: list order is the ranking
        scores = -np.broadcast_to(np.arange(pred_rows.shape[1], dtype=np.float64),
                                  pred_rows.shape[:2]).copy()
    for rows, valid, what in ((pred_rows, pred_valid, "pred_relevant_windows"),
                              (gt_rows, gt_valid, "relevant_windows")):
        bad = valid & (rows[:, :, 1] < rows[:, :, 0])
        if bad.any():
            qi, j = np.argwhere(bad)[0]
            raise DataError(f"{what}[{j}] = {rows[qi, j, :2].tolist()} ends before it starts",
                            record=qids[qi])
    if need_duration:
        durations = np.array([float(_field(g, "duration", i, "ground truth"))
                              for i, g in enumerate(gts)], dtype=np.float64)
        if np.any(~(durations > 0)):
            i = int(np.argmax(~(durations > 0)))
            raise DataError(f"duration must be positive, got {durations[i]}", record=qids[i])
    else:
        durations = np.array([float(g.get("duration", np.nan)) for g in gts], dtype=np.float64)
    return WindowArrays(qids, durations, pred_rows[:, :, :2], scores, pred_valid, gt_rows, gt_valid)


def load_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All objects of a JSONL file; bad JSON raises DataError naming file:line."""
    return [obj for _, obj in iter_jsonl(path)]


def load_jsonl_checked(path: str | Path, required: Sequence[str]) -> list[dict[str, Any]]:
    """Like :func:`load_jsonl`, and a line missing a ``required`` key names file:line."""
    out = []
    for lineno, obj in iter_jsonl(path):
        for key in required:
            if key not in obj:
                raise DataError(f"missing key {key!r}", path, lineno, record=str(obj.get("qid", "?")))
        out.append(obj)
    return out
