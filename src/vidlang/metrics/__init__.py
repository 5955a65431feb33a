"""vidlang.metrics: grounding, QVHighlights, retrieval, multiple-choice QA and step-localisation
metrics that reproduce the official evaluators, each key tagged with its convention.

One-shot functions (``evaluate_grounding``, ``evaluate_qvhighlights``, ``retrieval_metrics``,
``mc_accuracy``, ``step_recall``) and mmaction2-style accumulating classes
(``process(predictions, ground_truth)`` then ``compute_metrics()``).
"""

from __future__ import annotations

from vidlang.metrics.classes import (
    BaseMetric,
    GroundingMetric,
    MCQAMetric,
    QVHighlightsMetric,
    RetrievalMetric,
    StepRecallMetric,
)
from vidlang.metrics.conventions import PRESETS, GroundingConvention, resolve_convention
from vidlang.metrics.grounding import (
    GroundingResult,
    evaluate_grounding,
    evaluate_grounding_detailed,
)
from vidlang.metrics.postprocess import GroundingPostprocess
from vidlang.metrics.qa import mc_accuracy
from vidlang.metrics.qvhighlights import evaluate_qvhighlights
from vidlang.metrics.retrieval import dual_softmax, qb_norm, retrieval_metrics
from vidlang.metrics.steps import step_recall
from vidlang.metrics.table import metrics_table
from vidlang.ops.nms import batched_nms, nms, nms_windows, soft_nms  # re-exported (public names)
from vidlang.ops.windows import max_iou_to_gt, paired_iou, temporal_iou

__all__ = [
    "PRESETS",
    "BaseMetric",
    "GroundingMetric",
    "MCQAMetric",
    "QVHighlightsMetric",
    "RetrievalMetric",
    "StepRecallMetric",
    "dual_softmax",
    "evaluate_qvhighlights",
    "mc_accuracy",
    "metrics_table",
    "qb_norm",
    "retrieval_metrics",
    "step_recall",
    "GroundingConvention",
    "GroundingPostprocess",
    "GroundingResult",
    "batched_nms",
    "evaluate_grounding",
    "evaluate_grounding_detailed",
    "max_iou_to_gt",
    "nms",
    "nms_windows",
    "paired_iou",
    "resolve_convention",
    "soft_nms",
    "temporal_iou",
]
