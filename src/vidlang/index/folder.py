"""An index folder from a retrieval model and a feature store: the routine behind ``vidlang
index build`` / ``index add`` and the serve demo collection (which calls it, not the CLI).

:func:`embed_store` embeds a store's videos with a model folder; :func:`write_index_folder`
builds the index over them, saves it and copies the model's resolved config beside it
(``model_config.yaml``), so the folder documents what it holds.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.index.params import IndexParams
from vidlang.index.video_index import VideoIndex

#: ``progress(total)`` -> (a context the embedding runs in, ``advance(n)``), e.g. a rich bar
ProgressFactory = Callable[[int], tuple[AbstractContextManager[Any], Callable[[int], None]]]


def store_source(features: str | Path, key_pattern: str | None) -> dict[str, Any]:
    """The record of a feature store an index keeps (absolute path + HDF5 key pattern)."""
    return {"features": str(Path(features).resolve()), "key_pattern": key_pattern}


def embed_store(ckpt: str | Path, features: str | Path, key_pattern: str | None = None,
                pick: Callable[[Any], Sequence[str]] | None = None, batch_size: int = 64,
                index: VideoIndex | None = None, progress: ProgressFactory | None = None
                ) -> tuple[np.ndarray, list[str], list[float | None], dict[str, Any]]:
    """(vectors, video ids, durations, model identity) of the store's videos: ``pick(store)``
    chooses them (default: every video, sorted); those already in ``index`` are left out."""
    from vidlang.data.features import open_feature_store
    from vidlang.index.embed import embed_videos, load_retrieval_model

    model, identity = load_retrieval_model(ckpt)
    with open_feature_store(features, key_pattern=key_pattern) as store:
        ids = list(pick(store)) if pick is not None else sorted(store.video_ids())
        if index is not None:
            have = index.contains(ids)
            ids = [v for v in ids if v not in have]
        bar, advance = progress(len(ids)) if progress is not None else (nullcontext(), None)
        with bar:
            emb = embed_videos(model, store, ids, batch_size=batch_size, progress=advance)
        durations = [store.duration(v) for v in ids]
    return emb, ids, durations, identity


def write_index_folder(out: str | Path, emb: np.ndarray, ids: Sequence[str],
                       durations: Sequence[float | None], identity: dict[str, Any],
                       source: dict[str, Any], params: IndexParams | None = None, seed: int = 0,
                       backend: str = "faiss", **backend_args: Any) -> VideoIndex:
    """Build the index over ``emb`` (``backend_args``: Milvus ``uri`` / ``collection``), save
    it in ``out`` and copy the model's ``config.yaml`` there as ``model_config.yaml``."""
    out = Path(out)
    index = VideoIndex.build(emb, ids, params or IndexParams(), model=identity, seed=seed, source=source,
                             backend=backend, durations=durations, **backend_args)
    index.save(out)
    shutil.copyfile(Path(identity["ckpt"]) / "config.yaml", out / "model_config.yaml")
    return index
