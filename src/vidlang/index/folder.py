"""An index folder from embedded videos: the routine behind ``vidlang index build`` / ``index
add`` and the serve demo collection (which calls it, not the CLI).

The vectors come from :func:`vidlang.inference.retrieval.embed_collection`;
:func:`write_index_folder` builds the index over them, saves it and copies the model's resolved config beside it
(``model_config.yaml``), so the folder documents what it holds.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.index.params import IndexParams
from vidlang.index.video_index import VideoIndex


def store_source(features: str | Path, key_pattern: str | None) -> dict[str, Any]:
    """The record of a feature store an index keeps (absolute path + HDF5 key pattern)."""
    return {"features": str(Path(features).resolve()), "key_pattern": key_pattern}


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
