"""Turn a retrieval checkpoint + a feature store into index vectors, and queries into query vectors.

Any model with ``encode_video(feats [B, T, D], mask [B, T]) -> [B, E]`` and
``encode_text(list[str]) -> [B, E]`` (the retrieval models) can build and query an index. The
model's identity (name + a fingerprint of its weights) is stored in the index so a query from
another model is refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlang.errors import ConfigError
from vidlang.ops.padding import pad_arrays


def weights_fingerprint(model_dir: str | Path) -> str:
    """sha256 (first 16 hex digits) of the checkpoint's ``model.safetensors``."""
    from vidlang.engine.checkpoint import WEIGHTS, resolve_model_dir

    h = hashlib.sha256()
    with open(resolve_model_dir(model_dir) / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


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
