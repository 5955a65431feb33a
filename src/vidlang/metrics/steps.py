"""CrossTask-style step localisation recall.

For each video, each ground-truth step that is present has one predicted time (a second or
frame index; the CrossTask decoder predicts one per step). The step is a *hit* when that time
falls inside one of the step's GT intervals (closed: ``start <= t <= end``, in the same unit).
Per task, recall = hits / GT steps present, summed over the task's videos; the reported
figure is the mean over tasks. A present step without a prediction is a miss (counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vidlang.errors import DataError
from vidlang.metrics.inputs import MAX_LISTED_IDS

TAG = "[crosstask]"


def _flatten(predictions: Sequence[dict[str, Any]], ground_truth: Sequence[dict[str, Any]]):
    """One row per GT interval: (pair id, task name, predicted time); plus per-pair task ids."""
    by_vid: dict[str, dict[str, Any]] = {}
    for p in predictions:
        vid = str(p.get("vid"))
        if vid in by_vid:
            raise DataError("two predictions for this video", record=vid)
        by_vid[vid] = p.get("pred_steps", {})
    missing = [str(g.get("vid")) for g in ground_truth if str(g.get("vid")) not in by_vid]
    if missing:
        raise DataError(f"{len(missing)} ground-truth videos have no prediction: "
                        f"{', '.join(missing[:MAX_LISTED_IDS])}")
    pair_task: list[str] = []
    pair_time: list[float] = []
    row_pair: list[int] = []
    bounds: list[Sequence[float]] = []
    for g in ground_truth:
        vid = str(g.get("vid"))
        if "task" not in g or "steps" not in g:
            raise DataError("a ground-truth video needs 'task' and 'steps'", record=vid)
        pred = {str(k): v for k, v in by_vid[vid].items()}
        for step, intervals in g["steps"].items():
            if not intervals:
                continue  # the step is not present in this video
            t = pred.get(str(step))
            pair_task.append(str(g["task"]))
            pair_time.append(np.nan if t is None else float(t))
            for iv in intervals:
                if len(iv) != 2 or float(iv[1]) < float(iv[0]):
                    raise DataError(f"step {step}: bad interval {iv!r}", record=vid)
                row_pair.append(len(pair_task) - 1)
                bounds.append(iv)
    return pair_task, np.array(pair_time), np.array(row_pair, dtype=np.int64), \
        np.asarray(bounds, dtype=np.float64).reshape(-1, 2)


def step_recall(predictions: Sequence[dict[str, Any]],
                ground_truth: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Recall (percent) per task and averaged over tasks.

    ``predictions``: ``{"vid", "pred_steps": {step: time}}``; ``ground_truth``:
    ``{"vid", "task", "steps": {step: [[start, end], ...]}}``."""
    pair_task, pair_time, row_pair, bounds = _flatten(predictions, ground_truth)
    if not pair_task:
        raise DataError("no ground-truth step is present in any video")
    t = pair_time[row_pair]
    inside = (bounds[:, 0] <= t) & (t <= bounds[:, 1])  # NaN (no prediction) is never inside
    hit = np.zeros(len(pair_task), dtype=bool)
    np.logical_or.at(hit, row_pair, inside)
    tasks, task_of_pair = np.unique(np.array(pair_task), return_inverse=True)
    hits = np.bincount(task_of_pair, weights=hit.astype(float), minlength=len(tasks))
    present = np.bincount(task_of_pair, minlength=len(tasks)).astype(float)
    recall = 100.0 * hits / present
    out = {f"step recall {TAG}": float(recall.mean())}
    out.update({f"step recall/{task} {TAG}": float(r) for task, r in zip(tasks, recall)})
    out[f"steps present {TAG}"] = float(present.sum())
    out[f"steps without prediction {TAG}"] = float(np.isnan(pair_time).sum())
    out[f"tasks {TAG}"] = float(len(tasks))
    return out
