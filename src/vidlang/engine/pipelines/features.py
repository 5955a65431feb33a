"""Feature access shared by the task pipelines: the store path, a lazy per-process opener,
and per-video resampling to the model's ``feature_spec()``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

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
    from vidlang.data.features import check_finite_features

    check_finite_features(arr, None, video_id or None)  # stores check on load; raw arrays here
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


def feature_source(data: DataConfig, features: FeatureSource | None = None
                   ) -> FeatureSource | Callable[[], FeatureSource]:
    """``features`` when given (tests, in-memory arrays), else a lazy opener of the configured store."""
    return features if features is not None else StoreOpener(feature_store_path(data), data.key_pattern)


class FeatureDataset(Dataset):
    """Base of the pipelines' datasets: the feature store is opened lazily, once per process (so
    HDF5 handles are never shared across DataLoader workers), and a missing video is a
    ``DataError`` naming it."""

    def __init__(self, features: FeatureSource | Callable[[], FeatureSource], spec: FeatureSpec) -> None:
        self._features = features
        self.spec = spec

    @property
    def features(self) -> FeatureSource:
        if callable(self._features):
            self._features = self._features()
        return self._features

    def raw_features(self, video_id: str) -> Any:
        """The video's stored [T, D] features, as the store returns them."""
        try:
            return self.features[video_id]
        except DataError:
            raise
        except KeyError:
            raise DataError("video has no features in the feature store", record=video_id) from None

    def video_features(self, video_id: str) -> torch.Tensor:
        """The video's features resampled to the model's ``feature_spec()``."""
        return prepare_features(self.raw_features(video_id), self.spec, video_id)
