"""vidlang.metrics: grounding, QVHighlights, retrieval, multiple-choice QA and step-localisation
metrics that reproduce the official evaluators, each key tagged with its convention.

One-shot functions (``evaluate_grounding``, ``evaluate_qvhighlights``, ``retrieval_metrics``,
``mc_accuracy``, ``step_recall``) and mmaction2-style accumulating classes
(``process(predictions, ground_truth)`` then ``compute_metrics()``).
"""

from __future__ import annotations

from vidlang.metrics.conventions import PRESETS, GroundingConvention, resolve_convention
from vidlang.metrics.grounding import (
    GroundingResult,
    evaluate_grounding,
    evaluate_grounding_detailed,
)
from vidlang.metrics.iou import max_iou_to_gt, paired_iou, temporal_iou
from vidlang.metrics.nms import batched_nms, nms, soft_nms

__all__ = [
    "PRESETS",
    "GroundingConvention",
    "GroundingResult",
    "batched_nms",
    "evaluate_grounding",
    "evaluate_grounding_detailed",
    "max_iou_to_gt",
    "nms",
    "paired_iou",
    "resolve_convention",
    "soft_nms",
    "temporal_iou",
]
