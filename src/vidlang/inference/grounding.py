"""Grounding inference: ``GroundingPredictor.from_pretrained(dir).predict(...)``.

One class serves every grounding model: it reads the model folder written by training
(``model.safetensors`` + ``config.yaml``), resamples features exactly as the model's
``feature_spec()`` says, builds the engine's grounding batch and returns each query's ranked
``[start_s, end_s, score]`` windows - for one video (a video file or its features), or several
(video, query) pairs in one batch (what a search page needs).

    predictor = GroundingPredictor.from_pretrained("runs/mmn_charades/best")
    windows = predictor.predict(feats, ["a person opens the door"], duration=31.2)[0]
    windows = predictor.predict("clip.mp4", "a person opens the door")[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlang.data.records import GroundingRecord
from vidlang.errors import ConfigError, DataError
from vidlang.inference.base import Predictor, VideoInput
from vidlang.metrics.postprocess import GroundingPostprocess


class GroundingPredictor(Predictor):
    """Ranked moments for free-text queries; remembers the folder it was loaded from so a
    video file is featurised with the extractor the model was trained on."""

    def __init__(self, model: Any, device: str | torch.device = "cpu", ckpt: Path | None = None,
                 postprocess: GroundingPostprocess | None = None) -> None:
        """``postprocess``: the NMS / top-k step applied to the model's ranked candidates
        (:func:`vidlang.engine.pipelines.grounding.grounding_postprocess` of the training
        config; ``from_pretrained`` builds it from the folder's config.yaml). None: the
        default ``eval`` section's (preset ``mmn``)."""
        if getattr(model, "task", None) != "grounding":
            raise ConfigError(f"GroundingPredictor needs a grounding model, got task {getattr(model, 'task', None)!r}")
        self.device = torch.device(device)
        super().__init__(model.to(self.device).eval(), ckpt)
        if postprocess is None:
            from vidlang.metrics import resolve_convention

            postprocess = GroundingPostprocess(resolve_convention())
        self.postprocess = postprocess

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> GroundingPredictor:
        """Load a model folder (or a run folder holding ``best/`` or ``last/``); its recorded
        ``eval`` settings decide suppression, as they did in evaluation."""
        from vidlang.engine.checkpoint import load_config_of, load_model
        from vidlang.engine.pipelines.grounding import grounding_postprocess

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(load_model(path, map_location=dev), dev, Path(path),
                   grounding_postprocess(load_config_of(path)))

    def predict(self, video: VideoInput, queries: str | Sequence[str], duration: float | None = None,
                top_k: int | None = None, extractor: str | None = None,
                extractor_model: str | None = None) -> list[list[list[float]]]:
        """Per query, its windows ``[start_s, end_s, score]`` ranked best first.

        ``video`` is a video file (decoded and featurised as the training features were, or
        with ``extractor`` / ``extractor_model``; ``duration`` defaults to the decoded length)
        or the video's raw [T, D] clip features (as in the training feature store; resampling
        is done here; ``duration``, the video length in seconds, is then required).
        """
        texts = [queries] if isinstance(queries, str) else list(queries)
        if not texts or not all(isinstance(q, str) and q.strip() for q in texts):
            raise DataError("queries must be one or more non-empty strings")
        raw, seconds = self.features_of(video, duration, extractor, extractor_model)
        return self._ranked([("input", raw, seconds, texts)], top_k)  # type: ignore[list-item]

    def predict_video(self, video: str | Path, queries: str | Sequence[str], top_k: int | None = None,
                      extractor: str | None = None) -> list[list[list[float]]]:
        """:meth:`predict` on a video file (kept for callers of the older name)."""
        return self.predict(Path(video), queries, None, top_k, extractor)

    def predict_many(self, videos: Sequence[tuple[np.ndarray, float]], query: str,
                     top_k: int | None = None) -> list[list[list[float]]]:
        """One query on several videos (``(features [T, D], duration_s)`` each) in one batch:
        per video, its windows ``[start_s, end_s, score]`` ranked best first."""
        return self.predict_pairs([(feats, duration, query) for feats, duration in videos], top_k)

    def predict_pairs(self, pairs: Sequence[tuple[np.ndarray, float, str]],
                      top_k: int | None = None) -> list[list[list[float]]]:
        """Several (video features, duration_s, query) pairs in one batch (what a service
        does with the searches that arrive together): per pair, its ranked windows."""
        for i, (_, _, query) in enumerate(pairs):
            if not isinstance(query, str) or not query.strip():
                raise DataError(f"the query of pair {i} must be a non-empty string")
        return self._ranked([(f"v{i}", feats, duration, [query])
                             for i, (feats, duration, query) in enumerate(pairs)], top_k)

    @torch.no_grad()
    def _ranked(self, videos: Sequence[tuple[str, np.ndarray, float, Sequence[str]]],
                top_k: int | None) -> list[list[list[float]]]:
        """The one batch path: (video id, raw features, duration_s, queries) per video -> per
        query, in order, its ranked windows (cut to ``top_k`` when given)."""
        from vidlang.engine.pipelines.grounding import (
            GroundingItem,
            collate_grounding,
            prepare_features,
        )
        from vidlang.ops.device import to_device

        if top_k is not None and top_k < 0:
            raise ConfigError(f"top_k: must be >= 0 (0 or None = all windows), got {top_k}")
        if not videos:
            return []
        spec = self.model.feature_spec()
        items, qid = [], 0
        for vid, raw, duration, texts in videos:
            if not duration or duration <= 0:
                raise DataError(f"duration must be > 0 seconds, got {duration} for video {vid}")
            records = []
            for q in texts:
                records.append(GroundingRecord(qid=str(qid), video_id=vid, duration=float(duration),
                                               query=q, windows=()))
                qid += 1
            items.append(GroundingItem(vid, prepare_features(np.asarray(raw), spec, vid),
                                       float(duration), records))
        batch = to_device(collate_grounding(items), self.device)
        preds = {str(p["qid"]): p["pred_relevant_windows"]
                 for p in self.postprocess(self.model.predict(batch))}
        out = []
        for i in range(qid):
            windows = [[float(x) for x in w] for w in preds[str(i)]]
            out.append(windows[:top_k] if top_k else windows)
        return out

    def predict_from_store(self, store_path: str | Path, video_id: str, queries: str | Sequence[str],
                           duration: float | None = None, key_pattern: str | None = None,
                           top_k: int | None = None) -> list[list[list[float]]]:
        """:meth:`predict` for one video of a feature store (HDF5 file or npy folder); the
        duration comes from the store when it records one."""
        from vidlang.data.features import open_feature_store

        with open_feature_store(store_path, key_pattern=key_pattern) as store:
            feats = np.asarray(store[video_id])
            dur = duration or store.duration(video_id)
        if not dur:
            raise DataError(f"no duration recorded for video {video_id!r}; pass one", store_path)
        return self.predict(feats, queries, float(dur), top_k)
