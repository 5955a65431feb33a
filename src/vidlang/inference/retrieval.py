"""Retrieval inference: a retrieval run folder -> sentence and video embeddings.

A thin object around :mod:`vidlang.index.embed` (which ``vidlang index build`` uses), so the
vectors a service or script computes are exactly the ones in the index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.errors import DataError


class RetrievalPredictor:
    """Embeds sentences and videos with one retrieval model, loaded once."""

    def __init__(self, model: Any, identity: dict[str, Any], ckpt: Path | None = None) -> None:
        self.model = model.eval() if hasattr(model, "eval") else model
        #: name, weights fingerprint and folder: what :meth:`VideoIndex.check_model` compares
        self.identity = identity
        self.ckpt = ckpt

    @classmethod
    def from_pretrained(cls, path: str | Path) -> RetrievalPredictor:
        """Load a retrieval model folder (or a run folder holding ``best/`` or ``last/``)."""
        from vidlang.index.embed import load_retrieval_model

        model, identity = load_retrieval_model(path)
        return cls(model, identity, Path(path))

    def embed_text(self, queries: str | Sequence[str]) -> np.ndarray:
        """[Q, E] query vectors (not normalised; the index normalises)."""
        from vidlang.index.embed import embed_queries

        texts = [queries] if isinstance(queries, str) else list(queries)
        if not texts or not all(isinstance(q, str) and q.strip() for q in texts):
            raise DataError("queries must be one or more non-empty strings")
        return embed_queries(self.model, texts)

    def embed_store(self, store: Mapping[str, np.ndarray] | Any, video_ids: Sequence[str],
                    batch_size: int = 64) -> np.ndarray:
        """[N, E] vectors of ``video_ids`` read from a feature store (or any id -> [T, D] map)."""
        from vidlang.index.embed import embed_videos

        return embed_videos(self.model, store, video_ids, batch_size=batch_size)

    def embed_features(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """[N, E] vectors of raw [T, D] clip-feature arrays."""
        as_store = {str(i): np.asarray(f) for i, f in enumerate(features)}
        return self.embed_store(as_store, list(as_store))

    def embed_video(self, video: str | Path, extractor: str | None = None) -> np.ndarray:
        """[E] vector of a video file, extracted as the model's training features were."""
        from vidlang.video.features import features_for_checkpoint

        if self.ckpt is None:
            raise DataError("embed_video needs a predictor loaded with from_pretrained")
        feats, _ = features_for_checkpoint(self.ckpt, video, extractor)
        return self.embed_features([feats])[0]
