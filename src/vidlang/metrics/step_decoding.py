"""Step localisation of the alignment task: decode one time per step in order, then CrossTask
recall (:func:`vidlang.metrics.step_recall`).

:class:`StepLocalisationMetric` takes per-video outputs (``video_id``, ``frames`` [T, D]
per-second embeddings, ``text`` [K, D] step sentences, ``duration``, ``windows``: each step's
ground-truth window) and reports ``steps/recall`` with the video's sentences as its steps and
one task for the whole split.
"""

from __future__ import annotations

from typing import Any

import torch

from vidlang.metrics.alignment import VideoOutputsMetric
from vidlang.metrics.steps import step_recall


def order_constrained_decode(scores: torch.Tensor) -> torch.Tensor:
    """One position per step [K] for step scores [K, T], in order (t_1 < t_2 < ... when
    K <= T, else t_1 <= t_2 <= ...), maximising the summed score: CrossTask's one-interval-
    per-step dynamic programme with unit intervals. Loops over steps, vectorised over time."""
    k_steps, t_len = scores.shape
    strict = k_steps <= t_len
    best = scores[0].clone()
    back: list[torch.Tensor] = []
    for k in range(1, k_steps):
        run_max, run_arg = torch.cummax(best, dim=0)
        if strict:  # predecessor strictly earlier: shift by one
            prev_val = torch.cat([best.new_full((1,), float("-inf")), run_max[:-1]])
            prev_arg = torch.cat([run_arg.new_zeros(1), run_arg[:-1]])
        else:
            prev_val, prev_arg = run_max, run_arg
        back.append(prev_arg)
        best = scores[k] + prev_val
    pos = [int(best.argmax())]
    for arg in reversed(back):
        pos.append(int(arg[pos[-1]]))
    return torch.tensor(pos[::-1], dtype=torch.long)


def decode_step_times(frames: torch.Tensor, text: torch.Tensor, duration: float) -> list[float]:
    """Each step's predicted time (seconds, the centre of its decoded feature row) from the
    cosine of step sentences [K, D] with per-second frame embeddings [T, D]."""
    positions = order_constrained_decode(text @ frames.t())
    seconds_per_row = duration / frames.shape[0]
    return [(int(t) + 0.5) * seconds_per_row for t in positions]


class StepLocalisationMetric(VideoOutputsMetric):
    """``steps/recall``: CrossTask-style recall of the order-constrained decoding, each
    video's sentences as its steps and ``task`` (the dataset) as the one task."""

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task

    def compute_metrics(self) -> dict[str, float]:
        preds: list[dict[str, Any]] = []
        truth: list[dict[str, Any]] = []
        for it in self.ordered():
            times = decode_step_times(it["frames"].float(), it["text"].float(), it["duration"])
            preds.append({"vid": it["video_id"], "pred_steps": dict(enumerate(times))})
            truth.append({"vid": it["video_id"], "task": self.task,
                          "steps": {k: [list(w)] for k, w in enumerate(it["windows"])}})
        recall = next(v for k, v in step_recall(preds, truth).items()
                      if k.startswith("step recall "))
        return {"steps/recall": recall}
