"""Kept as an import path (README, docs/search.md): the embedding code lives with the
retrieval predictor in :mod:`vidlang.inference.retrieval`, which ``vidlang index`` and
``vidlang search`` use."""

from vidlang.inference.retrieval import (
    embed_queries,
    embed_videos,
    load_retrieval_model,
    weights_fingerprint,
)

__all__ = ["embed_queries", "embed_videos", "load_retrieval_model", "weights_fingerprint"]
