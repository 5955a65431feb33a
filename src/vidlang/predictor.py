"""Grounding inference on one video: ``GroundingPredictor.from_pretrained(dir).predict(...)``.

One class serves every grounding model: it reads the model folder written by training
(``model.safetensors`` + ``config.yaml``), resamples features exactly as the model's
``feature_spec()`` says, builds the engine's grounding batch and returns each query's ranked
``[start_s, end_s, score]`` windows.

    predictor = GroundingPredictor.from_pretrained("runs/mmn_charades/best")
    windows = predictor.predict(feats, ["a person opens the door"], duration=31.2)[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlang.data.records import GroundingRecord
from vidlang.errors import ConfigError, DataError


class GroundingPredictor:
    """Ranked moments for free-text queries about one video's features."""

    def __init__(self, model: Any, device: str | torch.device = "cpu") -> None:
        if getattr(model, "task", None) != "grounding":
            raise ConfigError(f"GroundingPredictor needs a grounding model, got task {getattr(model, 'task', None)!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> GroundingPredictor:
        """Load a model folder (or a run folder holding ``best/`` or ``last/``)."""
        from vidlang.engine.checkpoint import load_model

        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return cls(load_model(path, map_location=dev), dev)

    @torch.no_grad()
    def predict(self, features: np.ndarray | torch.Tensor, queries: str | Sequence[str], duration: float,
                top_k: int | None = None) -> list[list[list[float]]]:
        """Per query, its windows ``[start_s, end_s, score]`` ranked best first.

        ``features`` is the video's raw [T, D] clip features (as in the training feature
        store; resampling is done here); ``duration`` is the video length in seconds.
        """
        from vidlang.engine.pipelines.grounding import (
            GroundingItem,
            collate_grounding,
            prepare_features,
        )
        from vidlang.engine.run import to_device

        texts = [queries] if isinstance(queries, str) else list(queries)
        if not texts or not all(isinstance(q, str) and q.strip() for q in texts):
            raise DataError("queries must be one or more non-empty strings")
        if not duration or duration <= 0:
            raise DataError(f"duration must be > 0 seconds, got {duration}")
        if top_k is not None and top_k < 0:
            raise ConfigError(f"top_k: must be >= 0 (0 or None = all windows), got {top_k}")
        raw = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else features
        feats = prepare_features(raw, self.model.feature_spec(), "input")
        records = [GroundingRecord(qid=str(i), video_id="input", duration=float(duration), query=q, windows=())
                   for i, q in enumerate(texts)]
        batch = collate_grounding([GroundingItem("input", feats, float(duration), records)])
        preds = {str(p["qid"]): p["pred_relevant_windows"] for p in self.model.predict(to_device(batch, self.device))}
        out = []
        for i in range(len(texts)):
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
