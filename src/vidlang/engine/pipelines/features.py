"""Feature access shared by the task pipelines: the store path, a lazy per-process opener,
and per-video resampling to the model's ``feature_spec()``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.pipelines.bank import FeatureBank
from vidlang.engine.schema import DataConfig
from vidlang.errors import ConfigError, DataError

log = logging.getLogger(__name__)
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


def flat_rows(groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """The row lists of one tensor's picks, concatenated (the ``flat`` of :func:`gather_rows`)."""
    return torch.tensor([r for rows in groups for r in rows], dtype=torch.long)


def gather_flat(base: torch.Tensor, starts: Sequence[int],
                flat: Sequence[torch.Tensor], lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Segments of rows of ``base`` [R, D] (its last row zero) in one ``index_select``:
    ``flat[i]`` are tensor i's picked rows (all its segments concatenated), counted from
    ``starts[i]`` in ``base``; ``lengths`` the rows of each segment -> ``[S, longest, D]``
    zero-padded and the ``[S, longest]`` mask (True at real rows)."""
    width = int(base.shape[-1])
    longest = int(lengths.max()) if len(lengths) else 0
    mask = torch.arange(longest)[None, :] < lengths[:, None]
    index = torch.full((len(lengths), longest), base.shape[0] - 1, dtype=torch.long)
    if len(flat):
        index[mask] = torch.cat([rows + int(start) for rows, start in zip(flat, starts)])
    out = torch.empty((len(lengths) * longest, width), dtype=base.dtype)
    torch.index_select(base, 0, index.reshape(-1), out=out)
    return out.view(len(lengths), longest, width), mask


def segment_lengths(groups: Sequence[Sequence[Sequence[int]]]) -> torch.Tensor:
    """Rows per segment of every tensor's ``groups``, in order."""
    return torch.tensor([len(rows) for group in groups for rows in group], dtype=torch.long)


def gather_rows(feats: Sequence[torch.Tensor], groups: Sequence[Sequence[Sequence[int]]],
                flat: Sequence[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``pad_rows([feats[i][rows] for i in range(len(feats)) for rows in groups[i]])`` (see
    :func:`vidlang.ops.padding.pad_rows`) with one ``index_select``: every picked row of every
    tensor at once, padding pointing at an appended zero row. ``flat``: each tensor's
    :func:`flat_rows`, when the caller keeps them."""
    width = int(feats[0].shape[-1])
    base = torch.cat([*(f.float() for f in feats), torch.zeros(1, width)])
    sizes = [int(f.shape[0]) for f in feats]
    starts = np.cumsum([0, *sizes[:-1]]).tolist()
    if flat is None:
        flat = [flat_rows(group) for group in groups]
    return gather_flat(base, starts, flat, segment_lengths(groups))


def raw_length(raw: Any) -> int:
    """T of a stored [T, D] array (or sequence of rows)."""
    shape = getattr(raw, "shape", None)
    return int(shape[0]) if shape is not None else len(raw)


class FeatureMemo:
    """Prepared features per video id, kept in memory up to ``limit_bytes`` (``data.feature_cache_mb``).

    Each video is read from the store and resampled once instead of at every step of every
    epoch; the values are the very tensors the uncached path computes, so training is
    unchanged. Once the budget is used up further videos are read per step as before (no
    eviction churn). One memo serves a pipeline's train and eval datasets (same
    ``feature_spec``), so evaluation reuses what training read.
    """

    def __init__(self, limit_bytes: int, bank: bool = True) -> None:
        self.limit_bytes = int(limit_bytes)
        self.bank_allowed = bank  # data.feature_bank
        self.items: dict[str, tuple[torch.Tensor, int]] = {}
        self.nbytes = 0
        self.full = False
        self.banks: dict[tuple[str, ...], FeatureBank] = {}  # video ids -> their bank

    def get(self, video_id: str) -> tuple[torch.Tensor, int] | None:
        return self.items.get(video_id)

    def put(self, video_id: str, feats: torch.Tensor, num_raw: int) -> None:
        size = feats.element_size() * feats.nelement()
        if self.nbytes + size > self.limit_bytes:
            self.full = True
            return
        self.items[video_id] = (feats, num_raw)
        self.nbytes += size

    def bank(self, video_ids: Sequence[str]) -> FeatureBank | None:
        """The videos' features pre-padded in one :class:`FeatureBank` (built once per id
        list) when all of them are held, have one width, and the padded copy fits the
        budget in place of the ragged one; the held tensors then become views into the bank."""
        ids = tuple(dict.fromkeys(video_ids))
        if ids in self.banks:
            return self.banks[ids]
        held = [self.items.get(vid) for vid in ids]
        if not ids or any(h is None for h in held):
            return None
        feats = [h[0] for h in held if h is not None]
        width = int(feats[0].shape[1])
        if any(f.shape[1] != width or f.dtype != torch.float32 for f in feats):
            return None
        ragged = sum(f.element_size() * f.nelement() for f in feats)
        padded = 4 * width * len(ids) * max(int(f.shape[0]) for f in feats)
        if self.nbytes - ragged + padded > self.limit_bytes:
            log.info("data.feature_cache_mb: the %d videos padded (%.0f MiB) do not fit; "
                     "batches are padded per step", len(ids), padded / 2**20)
            return None
        bank = FeatureBank(ids, feats)
        for row, (vid, h) in enumerate(zip(ids, held)):
            self.items[vid] = (bank.view(row), h[1] if h is not None else 0)
        self.nbytes += bank.nbytes - ragged
        self.banks[ids] = bank
        return bank


def feature_memo(data: DataConfig) -> FeatureMemo | None:
    """The pipeline's memo of prepared features, or None when ``data.feature_cache_mb`` is 0
    (``data.feature_bank``: whether training splits may be kept pre-padded, see
    :meth:`FeatureDataset.build_bank`)."""
    limit = int(getattr(data, "feature_cache_mb", 0))
    return FeatureMemo(limit * 2**20, bool(getattr(data, "feature_bank", True))) if limit > 0 else None


class FeatureDataset(Dataset):
    """Base of the pipelines' datasets: the feature store is opened lazily, once per process (so
    HDF5 handles are never shared across DataLoader workers), and a missing video is a
    ``DataError`` naming it. With a :class:`FeatureMemo` each video is read and resampled once."""

    def __init__(self, features: FeatureSource | Callable[[], FeatureSource], spec: FeatureSpec,
                 memo: FeatureMemo | None = None) -> None:
        self._features = features
        self.spec = spec
        self.memo = memo
        self.bank: FeatureBank | None = None  # set by build_bank

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

    def prepared(self, video_id: str) -> tuple[torch.Tensor, int]:
        """The video's features resampled to the model's ``feature_spec()`` and the number of
        stored rows they came from (from the memo when it holds them)."""
        hit = self.memo.get(video_id) if self.memo is not None else None
        if hit is not None:
            return hit
        raw = self.raw_features(video_id)
        feats, num_raw = prepare_features(raw, self.spec, video_id), raw_length(raw)
        if self.memo is not None:
            self.memo.put(video_id, feats, num_raw)
        return feats, num_raw

    def video_features(self, video_id: str) -> torch.Tensor:
        """The video's features resampled to the model's ``feature_spec()``."""
        return self.prepared(video_id)[0]

    def video_ids(self) -> list[str]:
        """The ids of the videos this dataset's items read (subclasses that support
        :meth:`build_bank` override it)."""
        raise NotImplementedError(f"{type(self).__name__} does not list its videos")

    def build_bank(self) -> FeatureBank | None:
        """Read every video of the dataset into the memo (once, before training) and keep
        them pre-padded in one :class:`FeatureBank`, so each batch's padded features are one
        gather (``data.feature_cache_mb``: the padded copy must fit; else None and batches
        are padded per step as before). Items built afterwards carry the bank."""
        if self.memo is None or self.memo.full or not self.memo.bank_allowed:
            return None
        ids = list(dict.fromkeys(self.video_ids()))
        log.info("reading the features of %d videos into memory (data.feature_cache_mb)", len(ids))
        for vid in ids:
            self.prepared(vid)
            if self.memo.full:
                log.info("data.feature_cache_mb reached: the other videos are read per step")
                return None
        self.bank = self.memo.bank(ids)
        return self.bank

    def preload(self) -> None:
        """Read every item once so the memo holds its features (before DataLoader workers
        fork, so they share the memory); a no-op without a memo or once it is full."""
        if self.memo is None or self.memo.full:
            return
        count = len(self)  # type: ignore[arg-type]  # every subclass defines __len__
        log.info("reading the features of %d items into memory (data.feature_cache_mb)", count)
        for index in range(count):
            self[index]
            if self.memo.full:
                log.info("data.feature_cache_mb reached: the other videos are read per step")
                return
