"""Feature stores: lazy ``video_id -> [T, D] float32`` lookups over HDF5 files and npy folders.

Every store follows :class:`FeatureStore`, is registered in ``vidlang.registry.FEATURE_STORES``
and is opened by :func:`open_feature_store`, which detects the kind of file. Nothing is read
until a video is asked for; a missing video raises :class:`MissingVideoError` (a ``DataError``
and a ``KeyError``) naming the file and the id.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import numpy as np

from vidlang.data.features.canonical import DURATIONS_FILE, durations_path, is_canonical
from vidlang.errors import DataError
from vidlang.registry import FEATURE_STORES


class MissingVideoError(DataError, KeyError):
    """A video id the store does not hold (also a KeyError, so stores act like mappings)."""

    __str__ = Exception.__str__


class NonFiniteFeaturesError(DataError):
    """A video whose features hold NaN or infinite values (``bad``: how many)."""

    def __init__(self, message: str, path: str | Path | None, record: str | None, bad: int) -> None:
        super().__init__(message, path, record=record)
        self.bad = bad


def check_finite_features(arr: np.ndarray, path: str | Path | None, vid: str | None) -> np.ndarray:
    """``arr`` unchanged when every value is finite, else :class:`NonFiniteFeaturesError`
    naming the file, the video, how many values and the first (clip, dim).

    Every feature store calls this in ``__getitem__``, so training, evaluation, ``predict``,
    ``index build`` and ``search`` never see a NaN/inf feature (one NaN would otherwise train a
    NaN model or rank videos arbitrarily).
    """
    finite = np.isfinite(arr)
    if finite.all():
        return arr
    bad = np.argwhere(~finite)
    kinds = sorted({"NaN" if np.isnan(arr[tuple(i)]) else "inf" for i in bad[:1000]})
    where = ", ".join(f"{n}={int(v)}" for n, v in zip(("clip", "dim"), bad[0]))
    raise NonFiniteFeaturesError(
        f"features hold {len(bad)} {'/'.join(kinds)} value(s) of {arr.size} (first at {where}); "
        f"re-extract this video or drop it from the annotations", path, vid, int(len(bad)))


def load_feature_array(path: str | Path) -> np.ndarray:
    """One video's [T, D] features from a ``.npy`` file, checked like a store's."""
    path = Path(path)
    if not path.is_file():
        raise DataError("feature file not found", path)
    try:
        raw = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"cannot read features ({e})", path) from None
    return _as_features(raw, path, None)


@runtime_checkable
class FeatureStore(Protocol):
    """What every feature store offers."""

    path: Path

    def __getitem__(self, vid: str) -> np.ndarray: ...
    def __contains__(self, vid: object) -> bool: ...
    def video_ids(self) -> list[str]: ...
    @property
    def dim(self) -> int: ...
    def duration(self, vid: str) -> float | None: ...
    def close(self) -> None: ...
    def __enter__(self) -> FeatureStore: ...
    def __exit__(self, *exc: Any) -> None: ...


def _as_features(raw: Any, path: Path, vid: str | None) -> np.ndarray:
    arr = np.asarray(raw, dtype=np.float32)
    if arr.ndim != 2:
        raise DataError(f"expected a [T, D] feature array, found shape {arr.shape}", path, record=vid)
    return check_finite_features(arr, path, vid)


def _read_durations(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg})", path, e.lineno) from None
    if not isinstance(data, dict):
        raise DataError("expected a JSON object {video_id: seconds}", path)
    return {str(k): float(v) for k, v in data.items()}


class _StoreBase:
    """Context-manager plumbing and the durations.json fallback shared by all stores."""

    path: Path
    _durations_file: Path

    def __enter__(self) -> _StoreBase:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release file handles (the store reopens lazily if used again)."""

    def _durations_json(self) -> dict[str, float]:
        if not hasattr(self, "_durations_cache"):
            self._durations_cache = _read_durations(self._durations_file)
        return self._durations_cache

    def _missing(self, vid: str) -> MissingVideoError:
        return MissingVideoError("video id not in the feature store", self.path, record=vid)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


@FEATURE_STORES.register("hdf5")
class HDF5FeatureStore(_StoreBase):
    """Any HDF5 file with one [T, D] dataset per video at ``key_pattern`` (``{vid}`` by default;
    ``{vid}/c3d_features`` for the ActivityNet C3D release). Durations come from a dataset attr
    ``duration`` when present, else from ``durations.json`` in the same folder."""

    def __init__(self, path: str | Path, key_pattern: str = "{vid}") -> None:
        self.path = Path(path)
        if "{vid}" not in key_pattern:
            raise DataError(f"key pattern {key_pattern!r} must contain '{{vid}}'", self.path)
        if not self.path.is_file():
            raise DataError("feature file not found", self.path)
        self.key_pattern = key_pattern
        self._durations_file = durations_path(self.path)
        self._file: Any = None
        self._pid: int | None = None
        self._ids: list[str] | None = None
        self._dim: int | None = None

    @property
    def h5(self) -> Any:
        """The open h5py file, (re)opened lazily in each process so DataLoader workers never
        share a handle."""
        if self._file is None or self._pid != os.getpid():
            import h5py

            try:
                self._file = h5py.File(self.path, "r")
            except OSError as e:
                raise DataError(f"cannot open as HDF5 ({e})", self.path) from None
            self._pid = os.getpid()
        return self._file

    def _key(self, vid: str) -> str:
        return self.key_pattern.replace("{vid}", vid)

    def _dataset(self, vid: str) -> Any:
        import h5py

        node = self.h5.get(self._key(vid)) if vid else None
        if not isinstance(node, h5py.Dataset):
            raise self._missing(vid)
        return node

    def __getitem__(self, vid: str) -> np.ndarray:
        return _as_features(self._dataset(vid)[()], self.path, vid)

    def __contains__(self, vid: object) -> bool:
        import h5py

        return isinstance(vid, str) and bool(vid) and isinstance(self.h5.get(self._key(vid)), h5py.Dataset)

    def video_ids(self) -> list[str]:
        """Ids of every video at the key pattern (names under the pattern's parent group)."""
        if self._ids is None:
            prefix, _ = self.key_pattern.split("{vid}", 1)
            group = self.h5[prefix.rstrip("/")] if prefix.strip("/") else self.h5
            self._ids = sorted(name for name in group.keys() if name in self)
        return list(self._ids)

    @property
    def dim(self) -> int:
        """Feature dimension (root attr ``feature_dim`` if present, else the first video's)."""
        if self._dim is None:
            if "feature_dim" in self.h5.attrs:
                self._dim = int(self.h5.attrs["feature_dim"])
            else:
                ids = self.video_ids()
                if not ids:
                    raise DataError(f"no video found at key pattern {self.key_pattern!r}", self.path)
                shape = self._dataset(ids[0]).shape
                if len(shape) != 2:
                    raise DataError(f"expected a [T, D] feature array, found shape {shape}",
                                    self.path, record=ids[0])
                self._dim = int(shape[1])
        return self._dim

    def num_clips(self, vid: str) -> int:
        """T of one video, read from the dataset's shape without loading it."""
        return int(self._dataset(vid).shape[0])

    def duration(self, vid: str) -> float | None:
        ds = self._dataset(vid)
        if "duration" in ds.attrs:
            return float(ds.attrs["duration"])
        return self._durations_json().get(vid)

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = None  # an h5py handle cannot cross processes
        return state


@FEATURE_STORES.register("canonical")
class CanonicalFeatureStore(HDF5FeatureStore):
    """The canonical vidlang feature file (see :mod:`vidlang.data.features.canonical`)."""

    def __init__(self, path: str | Path, key_pattern: str = "{vid}") -> None:
        super().__init__(path, "{vid}")
        if key_pattern != "{vid}":
            raise DataError(f"a canonical feature file takes no key pattern (got {key_pattern!r})",
                            self.path)
        if not is_canonical(self.h5.attrs):
            raise DataError("not a canonical vidlang feature file (root attr vidlang_format "
                            "is not 'features')", self.path)

    @property
    def clip_seconds(self) -> float:
        """Seconds per clip (NaN when unknown)."""
        return float(self.h5.attrs.get("clip_seconds", math.nan))


@FEATURE_STORES.register("npy_folder")
class NpyFolderStore(_StoreBase):
    """A folder of ``<vid>.npy`` (memory-mapped) or ``<vid>.npz`` files (array ``features``, or
    the only array in it); durations from ``durations.json`` in the folder when present."""

    SUFFIXES = (".npy", ".npz")

    def __init__(self, path: str | Path, key_pattern: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError("feature folder not found", self.path)
        if key_pattern not in (None, "{vid}"):
            raise DataError(f"an npy folder takes no key pattern (got {key_pattern!r})", self.path)
        self._durations_file = self.path / DURATIONS_FILE
        self._ids: list[str] | None = None
        self._dim: int | None = None

    def _file_of(self, vid: str) -> Path | None:
        if not vid or "/" in vid or vid.startswith("."):
            return None
        for suffix in self.SUFFIXES:
            candidate = self.path / f"{vid}{suffix}"
            if candidate.is_file():
                return candidate
        return None

    def _load(self, vid: str, mmap: bool) -> np.ndarray:
        file = self._file_of(vid)
        if file is None:
            raise self._missing(vid)
        try:
            if file.suffix == ".npy":
                return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
            with np.load(file, allow_pickle=False) as npz:
                names = list(npz.files)
                if "features" in names:
                    return npz["features"]
                if len(names) == 1:
                    return npz[names[0]]
                raise DataError(f"npz holds {names}; expected an array 'features' or one array", file)
        except (ValueError, OSError) as e:
            raise DataError(f"cannot read features ({e})", file) from None

    def __getitem__(self, vid: str) -> np.ndarray:
        return _as_features(self._load(vid, mmap=False), self.path, vid)

    def __contains__(self, vid: object) -> bool:
        return isinstance(vid, str) and self._file_of(vid) is not None

    def video_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = sorted({p.stem for p in self.path.iterdir()
                                if p.suffix in self.SUFFIXES and p.is_file()})
        return list(self._ids)

    @property
    def dim(self) -> int:
        if self._dim is None:
            ids = self.video_ids()
            if not ids:
                raise DataError("no .npy or .npz feature file in the folder", self.path)
            arr = self._load(ids[0], mmap=True)
            if arr.ndim != 2:
                raise DataError(f"expected a [T, D] feature array, found shape {arr.shape}",
                                self.path, record=ids[0])
            self._dim = int(arr.shape[1])
        return self._dim

    def num_clips(self, vid: str) -> int:
        return int(self._load(vid, mmap=True).shape[0])

    def duration(self, vid: str) -> float | None:
        if vid not in self:
            raise self._missing(vid)
        return self._durations_json().get(vid)


def detect_store_kind(path: str | Path) -> str:
    """``npy_folder`` for a folder, ``canonical`` for a canonical HDF5 file, else ``hdf5``."""
    path = Path(path)
    if path.is_dir():
        return "npy_folder"
    if not path.is_file():
        raise DataError("feature store not found (expected an HDF5 file or a folder of .npy)", path)
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "canonical" if is_canonical(f.attrs) else "hdf5"
    except OSError as e:
        raise DataError(f"cannot open as HDF5 ({e})", path) from None


def open_feature_store(path: str | Path, key_pattern: str | None = None,
                       kind: str | None = None) -> FeatureStore:
    """Open the right store for ``path`` (``kind`` names a ``FEATURE_STORES`` entry to force one).

    A canonical file ignores ``key_pattern`` only when it is None or ``{vid}``.
    """
    kind = kind or detect_store_kind(path)
    store_cls = FEATURE_STORES.get(kind)
    if key_pattern is None:
        return store_cls(path)
    return store_cls(path, key_pattern)
