"""Retrieval inference: a retrieval run folder -> sentence and video embeddings.

This module owns the embedding code: ``vidlang index build/add`` and ``vidlang search``, the
service and scripts all embed through :class:`RetrievalPredictor` (and
:func:`embed_collection`, the routine behind ``vidlang index build/add``), so the vectors a
query is compared with are exactly the ones in the index.

Any model with ``encode_video(feats [B, T, D], mask [B, T]) -> [B, E]`` and
``encode_text(list[str]) -> [B, E]`` (the retrieval models) can build and query an index. The
model's identity (name + a fingerprint of its weights) is stored in the index so a query from
another model is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlang.errors import ConfigError, DataError
from vidlang.inference.base import Predictor, VideoInput, is_video_file
from vidlang.inference.run_folder import weights_fingerprint
from vidlang.ops.padding import pad_arrays

__all__ = ["RetrievalPredictor", "embed_collection", "embed_queries", "embed_videos",
           "load_retrieval_model", "weights_fingerprint"]

#: ``progress(total)`` -> (a context the embedding runs in, ``advance(n)``), e.g. a rich bar
ProgressFactory = Callable[[int], tuple[AbstractContextManager[Any], Callable[[int], None]]]


def load_retrieval_model(ckpt: str | Path) -> tuple[Any, dict[str, Any]]:
    """The model in ``ckpt`` and its identity dict for the index metadata."""
    from vidlang.engine.checkpoint import load_config_of, load_model, resolve_model_dir

    model = load_model(ckpt)  # unreadable weights: one DataError naming the file
    if not (hasattr(model, "encode_video") and hasattr(model, "encode_text")):
        raise ConfigError(
            f"{ckpt}: model {type(model).__name__} cannot embed videos and sentences for search "
            "(it needs encode_video and encode_text: train a retrieval model such as dual_encoder or dmae)"
        )
    cfg = load_config_of(ckpt)
    identity = {
        "name": cfg.model_name,
        "fingerprint": weights_fingerprint(ckpt),
        "ckpt": str(resolve_model_dir(ckpt).resolve()),
    }
    return model, identity


def _batches(ids: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


@torch.no_grad()
def embed_videos(model: Any, store: Any, video_ids: Sequence[str], batch_size: int = 64,
                 progress: Any = None) -> np.ndarray:
    """[N, E] video vectors for ``video_ids`` of ``store``, resampled per the model's spec."""
    from vidlang.data.features import resample

    spec = model.feature_spec()
    device = next(model.parameters()).device
    out: list[np.ndarray] = []
    for chunk in _batches(list(video_ids), batch_size):
        feats = [resample(np.asarray(store[v], dtype=np.float32), spec) for v in chunk]
        x, mask = pad_arrays(feats, np.float32)
        emb = model.encode_video(torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device))
        out.append(emb.float().cpu().numpy())
        if progress is not None:
            progress(len(chunk))
    dim = getattr(getattr(model, "cfg", None), "embed_dim", 0)
    return np.concatenate(out) if out else np.zeros((0, dim), dtype=np.float32)


@torch.no_grad()
def embed_queries(model: Any, queries: Sequence[str]) -> np.ndarray:
    """[Q, E] query vectors."""
    return model.encode_text(list(queries)).float().cpu().numpy()


class RetrievalPredictor(Predictor):
    """Embeds sentences and videos with one retrieval model, loaded once."""

    def __init__(self, model: Any, identity: dict[str, Any], ckpt: Path | None = None) -> None:
        super().__init__(model.eval() if hasattr(model, "eval") else model, ckpt)
        #: name, weights fingerprint and folder: what :meth:`VideoIndex.check_model` compares
        self.identity = identity

    @classmethod
    def from_pretrained(cls, path: str | Path) -> RetrievalPredictor:
        """Load a retrieval model folder (or a run folder holding ``best/`` or ``last/``)."""
        model, identity = load_retrieval_model(path)
        return cls(model, identity, Path(path))

    def predict(self, video: VideoInput, extractor: str | None = None,
                extractor_model: str | None = None) -> np.ndarray:
        """[E] vector of one video: a video file (extracted as the model's training features
        were, or with ``extractor`` / ``extractor_model``) or its raw [T, D] clip features."""
        feats, _ = self.features_of(video, None, extractor, extractor_model)
        return self.embed_features([feats])[0]

    def embed_text(self, queries: str | Sequence[str]) -> np.ndarray:
        """[Q, E] query vectors (not normalised; the index normalises)."""
        texts = [queries] if isinstance(queries, str) else list(queries)
        if not texts or not all(isinstance(q, str) and q.strip() for q in texts):
            raise DataError("queries must be one or more non-empty strings")
        return embed_queries(self.model, texts)

    def embed_store(self, store: Mapping[str, np.ndarray] | Any, video_ids: Sequence[str],
                    batch_size: int = 64, progress: Callable[[int], Any] | None = None) -> np.ndarray:
        """[N, E] vectors of ``video_ids`` read from a feature store (or any id -> [T, D] map);
        ``progress(n)`` is called after each batch of ``n`` videos."""
        return embed_videos(self.model, store, video_ids, batch_size=batch_size, progress=progress)

    def embed_features(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """[N, E] vectors of raw [T, D] clip-feature arrays."""
        as_store = {str(i): np.asarray(f) for i, f in enumerate(features)}
        return self.embed_store(as_store, list(as_store))

    def embed_video(self, video: str | Path, extractor: str | None = None) -> np.ndarray:
        """[E] vector of a video file (:meth:`predict`; kept for callers of the older name)."""
        if not is_video_file(video):
            raise DataError(f"embed_video takes a video file path, got {type(video).__name__}")
        return self.predict(video, extractor)


def embed_collection(ckpt: str | Path, features: str | Path, key_pattern: str | None = None,
                     pick: Callable[[Any], Sequence[str]] | None = None, batch_size: int = 64,
                     index: Any = None, progress: ProgressFactory | None = None
                     ) -> tuple[np.ndarray, list[str], list[float | None], dict[str, Any]]:
    """(vectors, video ids, durations, model identity) of a feature store's videos, embedded by
    the retrieval run ``ckpt``: ``pick(store)`` chooses them (default: every video, sorted);
    those already in ``index`` (a :class:`vidlang.index.VideoIndex`) are left out. What
    ``vidlang index build/add`` and the serve demo collection index."""
    from vidlang.data.features import open_feature_store

    predictor = RetrievalPredictor.from_pretrained(ckpt)
    with open_feature_store(features, key_pattern=key_pattern) as store:
        ids = list(pick(store)) if pick is not None else sorted(store.video_ids())
        if index is not None:
            have = index.contains(ids)
            ids = [v for v in ids if v not in have]
        bar, advance = progress(len(ids)) if progress is not None else (nullcontext(), None)
        with bar:
            emb = predictor.embed_store(store, ids, batch_size=batch_size, progress=advance)
        durations = [store.duration(v) for v in ids]
    return emb, ids, durations, predictor.identity
