"""Accumulating metric objects shaped like mmaction2's ``evaluation/metrics``:
``process(predictions, ground_truth)`` per batch, ``compute_metrics()`` at the end,
``reset()`` to start over. Each wraps the matching one-shot function."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vidlang.metrics.grounding import evaluate_grounding
from vidlang.metrics.qa import mc_accuracy
from vidlang.metrics.qvhighlights import evaluate_qvhighlights
from vidlang.metrics.retrieval import retrieval_metrics
from vidlang.metrics.steps import step_recall


class BaseMetric:
    """Keeps the processed predictions and ground truth until :meth:`compute_metrics`."""

    def __init__(self) -> None:
        self.predictions: list[Any] = []
        self.ground_truth: list[Any] = []

    def process(self, predictions: Sequence[Any], ground_truth: Sequence[Any] | None = None) -> None:
        """Add one batch; ``ground_truth`` may be left out by metrics whose outputs carry it."""
        self.predictions.extend(predictions)
        if ground_truth is not None:
            self.ground_truth.extend(ground_truth)

    def reset(self) -> None:
        self.predictions.clear()
        self.ground_truth.clear()

    def compute_metrics(self) -> dict[str, Any]:
        raise NotImplementedError


class GroundingMetric(BaseMetric):
    """:func:`evaluate_grounding` over everything processed (preset and overrides fixed)."""

    def __init__(self, preset: str = "mmn", **overrides: Any) -> None:
        super().__init__()
        self.preset = preset
        self.overrides = overrides

    def compute_metrics(self) -> dict[str, float]:
        return evaluate_grounding(self.predictions, self.ground_truth, self.preset, **self.overrides)


class QVHighlightsMetric(BaseMetric):
    """moment_detr-compatible QVHighlights metrics (nested dict with ``brief``)."""

    def compute_metrics(self) -> dict[str, Any]:
        return evaluate_qvhighlights(self.predictions, self.ground_truth)


class RetrievalMetric(BaseMetric):
    """Rows of the text x video similarity matrix per batch; ``ground_truth`` holds each
    row's video column (or pass None for all batches: the diagonal)."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options

    def process(self, predictions: Sequence[Any], ground_truth: Sequence[Any] | None = None) -> None:
        self.predictions.append(np.asarray(predictions))
        if ground_truth is not None:
            self.ground_truth.extend(int(g) for g in ground_truth)

    def compute_metrics(self) -> dict[str, float]:
        sim = np.concatenate(self.predictions, axis=0)
        gt = np.array(self.ground_truth, dtype=np.int64) if self.ground_truth else None
        return retrieval_metrics(sim, gt, **self.options)


class MCQAMetric(BaseMetric):
    """Multiple-choice accuracy: ``predictions`` are score rows, ``ground_truth`` answers."""

    def __init__(self, ties: str = "average") -> None:
        super().__init__()
        self.ties = ties

    def compute_metrics(self) -> dict[str, float]:
        acc = mc_accuracy(np.asarray(self.predictions), np.asarray(self.ground_truth), self.ties)
        return {f"accuracy [mcqa,ties={self.ties}]": acc, "queries [mcqa]": float(len(self.predictions))}


class StepRecallMetric(BaseMetric):
    """CrossTask step recall over the processed videos."""

    def compute_metrics(self) -> dict[str, float]:
        return step_recall(self.predictions, self.ground_truth)
