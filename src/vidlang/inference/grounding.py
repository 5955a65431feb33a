"""Grounding inference: :class:`vidlang.predictor.GroundingPredictor` plus video files and
batches of videos (one forward pass for one query over several videos, as a search result
page needs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vidlang.errors import DataError
from vidlang.predictor import GroundingPredictor as _BasePredictor


class GroundingPredictor(_BasePredictor):
    """Ranked moments for free-text queries; remembers the folder it was loaded from so a
    new video file is featurised with the extractor the model was trained on."""

    ckpt: Path | None = None

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> GroundingPredictor:
        """Load a model folder (or a run folder holding ``best/`` or ``last/``)."""
        predictor = super().from_pretrained(path, device)
        assert isinstance(predictor, GroundingPredictor)
        predictor.ckpt = Path(path)
        return predictor

    def predict_video(self, video: str | Path, queries: str | Sequence[str], top_k: int | None = None,
                      extractor: str | None = None) -> list[list[list[float]]]:
        """:meth:`predict` on a video file, extracted as the training features were (or with
        ``extractor``); the duration is the decoded video's."""
        from vidlang.video.features import features_for_checkpoint

        if self.ckpt is None:
            raise DataError("predict_video needs a predictor loaded with from_pretrained (it reads the "
                            "extractor from the checkpoint's training features)")
        feats, seconds = features_for_checkpoint(self.ckpt, video, extractor)
        return self.predict(feats, queries, seconds, top_k)

    def predict_many(self, videos: Sequence[tuple[np.ndarray, float]], query: str,
                     top_k: int | None = None) -> list[list[list[float]]]:
        """One query on several videos (``(features [T, D], duration_s)`` each) in one batch:
        per video, its windows ``[start_s, end_s, score]`` ranked best first."""
        return self.predict_pairs([(feats, duration, query) for feats, duration in videos], top_k)

    @torch.no_grad()
    def predict_pairs(self, pairs: Sequence[tuple[np.ndarray, float, str]],
                      top_k: int | None = None) -> list[list[list[float]]]:
        """Several (video features, duration_s, query) pairs in one batch (what a service
        does with the searches that arrive together): per pair, its ranked windows."""
        from vidlang.data.records import GroundingRecord
        from vidlang.engine.pipelines.grounding import (
            GroundingItem,
            collate_grounding,
            prepare_features,
        )
        from vidlang.engine.run import to_device

        if not pairs:
            return []
        spec = self.model.feature_spec()
        items = []
        for i, (feats, duration, query) in enumerate(pairs):
            if not isinstance(query, str) or not query.strip():
                raise DataError(f"the query of pair {i} must be a non-empty string")
            if not duration or duration <= 0:
                raise DataError(f"duration must be > 0 seconds, got {duration} for pair {i}")
            record = GroundingRecord(qid=str(i), video_id=f"v{i}", duration=float(duration), query=query, windows=())
            items.append(GroundingItem(f"v{i}", prepare_features(np.asarray(feats), spec, f"v{i}"),
                                       float(duration), [record]))
        preds = {str(p["qid"]): p["pred_relevant_windows"]
                 for p in self.model.predict(to_device(collate_grounding(items), self.device))}
        out = []
        for i in range(len(pairs)):
            windows = [[float(x) for x in w] for w in preds[str(i)]]
            out.append(windows[:top_k] if top_k else windows)
        return out
