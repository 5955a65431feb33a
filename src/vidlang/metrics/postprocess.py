"""Grounding post-processing: the one step that turns a model's ranked candidate windows into
the windows a user sees and the metrics score (NMS, then the top-k cap).

A grounding model's ``predict`` returns every candidate ``[start_s, end_s, score]`` ranked best
first, without suppression. :class:`GroundingPostprocess` holds the evaluation convention
(``eval.preset`` + its per-dataset settings + ``eval.overrides``) and applies its ranking,
suppression and cap; the training/evaluation pipeline and ``vidlang.inference``'s
``GroundingPredictor`` both apply it, so one setting (``eval.overrides.nms_thresh``, else the
preset's value) decides suppression everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidlang.errors import ConfigError
from vidlang.metrics.conventions import GroundingConvention, resolve_convention
from vidlang.ops.nms import batched_nms


def rank_windows(pred: np.ndarray, scores: np.ndarray, valid: np.ndarray,
                 conv: GroundingConvention, rounds: int) -> np.ndarray:
    """Kept indices (Q, rounds) into the P axis after the convention's ranking (by score, or
    list order), NMS (``nms_thresh``, ``nms_kind``) and ``topk_cap``; -1 where a query ran out.
    ``pred`` (Q, P, 2), ``scores`` and ``valid`` (Q, P)."""
    if not conv.sort_by_score:
        scores = -np.broadcast_to(np.arange(pred.shape[1], dtype=np.float64), scores.shape)
    if conv.topk_cap is not None:
        rounds = min(rounds, conv.topk_cap)
    kind = conv.nms_kind if conv.nms_thresh is not None else "hard"
    return batched_nms(pred, scores, valid, conv.nms_thresh, rounds, kind=kind,
                       sigma=conv.soft_sigma)


@dataclass(frozen=True)
class GroundingPostprocess:
    """Ranking + NMS + top-k cap of a :class:`GroundingConvention`, applied to predictions."""

    convention: GroundingConvention

    @classmethod
    def from_eval(cls, preset: str, overrides: Mapping[str, Any], dataset: str | None) -> GroundingPostprocess:
        """The step of an ``eval`` section: ``preset`` with its per-dataset settings for
        ``dataset`` (when the preset has them and ``overrides`` names no ``dataset``), then
        ``overrides``. Errors name the ``eval`` key."""
        options = dict(overrides)
        chosen = options.pop("dataset", None)
        if chosen is None and dataset is not None:
            try:
                resolve_convention(preset, dataset)
                chosen = dataset
            except ConfigError:
                pass  # no per-dataset settings for this preset: use the preset's defaults
        try:
            return cls(resolve_convention(preset, chosen, **options))
        except ConfigError as e:
            key = "eval.preset" if str(e).startswith("unknown grounding preset") else "eval.overrides"
            raise ConfigError(f"{key}: {e}") from None

    def windows(self, windows: Sequence[Sequence[float]] | np.ndarray) -> list[list[float]]:
        """One query's candidate ``[s, e, score]`` rows -> the kept rows, best first."""
        rows = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
        n = len(rows)
        kept = rank_windows(rows[None, :, :2], rows[None, :, 2], np.ones((1, n), dtype=bool),
                            self.convention, n)[0]
        return rows[kept[kept >= 0]].tolist()

    def __call__(self, predictions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """``{"qid", "pred_relevant_windows", ...}`` dicts with their windows post-processed."""
        return [{**p, "pred_relevant_windows": self.windows(p["pred_relevant_windows"])}
                for p in predictions]

    def scoring_convention(self) -> GroundingConvention:
        """The convention the metrics use on post-processed windows: the same tag and hit
        rules, with suppression off (it ran once, here; the cap is already met)."""
        return dataclasses.replace(self.convention, nms_thresh=None, nms_kind="hard")
