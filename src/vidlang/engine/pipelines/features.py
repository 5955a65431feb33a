"""Feature access shared by the task pipelines: the store path, a lazy per-process opener,
and per-video resampling to the model's ``feature_spec()``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlang.engine.schema import DataConfig
from vidlang.errors import ConfigError, DataError
from vidlang.models.base import FeatureSpec

FeatureSource = Mapping[str, Any]  # video_id -> [T, D] array


def prepare_features(raw: Any, spec: FeatureSpec, video_id: str = "") -> torch.Tensor:
    """A [T, D] float tensor resampled as ``spec`` asks (``vidlang.data.features.resample``)."""
    arr = np.asarray(raw, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DataError(f"features must be a non-empty [T, D] array, got shape {arr.shape}",
                        record=video_id or None)
    if spec.mode != "none" or spec.l2_normalise:
        from vidlang.data.features import resample

        arr = np.asarray(resample(arr, spec), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr))


_DEFAULT_FEATURES = {"synthvl": "features.h5"}  # file inside data.root


def feature_store_path(data: DataConfig) -> str:
    """``data.features``, else the dataset's default file inside ``data.root`` (SynthVL)."""
    if data.features:
        return data.features
    default = _DEFAULT_FEATURES.get(data.dataset)
    if default is None or not data.root:
        raise ConfigError(f"data.features: required for dataset {data.dataset!r} (path to a feature store)")
    return str(Path(data.root) / default)


class StoreOpener:
    """Picklable, lazy ``open_feature_store(path, key_pattern)``."""

    def __init__(self, path: str, key_pattern: str | None) -> None:
        self.path, self.key_pattern = path, key_pattern

    def __call__(self) -> FeatureSource:
        from vidlang.data.features import open_feature_store

        store: Any = open_feature_store(self.path, key_pattern=self.key_pattern)
        return store  # a FeatureStore: mapping-like (video_id -> [T, D])


_StoreOpener = StoreOpener  # old private name, still imported by other pipelines
