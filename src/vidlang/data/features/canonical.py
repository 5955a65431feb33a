"""The canonical vidlang feature file: one HDF5 file plus ``durations.json`` beside it.

Layout: root attrs ``vidlang_format="features"``, ``version=1``, ``feature_dim`` (int) and
``clip_seconds`` (float, seconds per clip; NaN when unknown); one float32 dataset ``/{vid}`` of
shape [T, D] per video with attr ``duration`` (seconds). Datasets are written with
``track_times=False`` so the same content always gives a byte-identical file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from vidlang.errors import DataError

FORMAT_NAME = "features"
FORMAT_VERSION = 1
DURATIONS_FILE = "durations.json"


def durations_path(h5_path: str | Path) -> Path:
    """Where the ``durations.json`` of a canonical feature file lives (same folder)."""
    return Path(h5_path).parent / DURATIONS_FILE


def is_canonical(attrs: Any) -> bool:
    """True when an HDF5 root's attrs mark a canonical vidlang feature file."""
    fmt = attrs.get("vidlang_format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    return fmt == FORMAT_NAME


def write_durations_json(path: str | Path, durations: dict[str, float]) -> Path:
    """Write ``{vid: seconds}`` sorted by id, atomically (temp file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(durations.items())), indent=0) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


class CanonicalH5Writer:
    """Write a canonical feature file video by video (context manager).

    ``resume=True`` reopens an existing file (its ``feature_dim`` and ``clip_seconds`` must
    match) so an interrupted extraction can skip the videos already there (``vid in writer``).
    ``durations.json`` is written on :meth:`close` from every video in the file.
    """

    def __init__(self, path: str | Path, clip_seconds: float, feature_dim: int | None = None,
                 resume: bool = False) -> None:
        import h5py

        self.path = Path(path)
        self.clip_seconds = float(clip_seconds)
        self.feature_dim = feature_dim
        existing = resume and self.path.exists()
        self._file = h5py.File(self.path, "a" if existing else "w", track_order=False)
        if existing:
            self._check_resumable()
        else:
            self._file.attrs["vidlang_format"] = FORMAT_NAME
            self._file.attrs["version"] = FORMAT_VERSION
            self._file.attrs["clip_seconds"] = self.clip_seconds
            if feature_dim is not None:
                self._file.attrs["feature_dim"] = int(feature_dim)

    def _check_resumable(self) -> None:
        attrs = self._file.attrs
        if not is_canonical(attrs):
            self._file.close()
            raise DataError("cannot resume: not a canonical vidlang feature file", self.path)
        old_dim = int(attrs["feature_dim"]) if "feature_dim" in attrs else None
        old_clip = float(attrs["clip_seconds"])
        same_clip = (math.isnan(old_clip) and math.isnan(self.clip_seconds)) or old_clip == self.clip_seconds
        if not same_clip or (self.feature_dim is not None and old_dim not in (None, self.feature_dim)):
            self._file.close()
            raise DataError(
                f"cannot resume: file has feature_dim={old_dim}, clip_seconds={old_clip}; asked for "
                f"feature_dim={self.feature_dim}, clip_seconds={self.clip_seconds}", self.path)
        self.feature_dim = old_dim if self.feature_dim is None else self.feature_dim

    def __contains__(self, vid: object) -> bool:
        return isinstance(vid, str) and vid in self._file

    def add(self, vid: str, feats: np.ndarray, duration: float) -> None:
        """Store one video's [T, D] features (cast to float32) and its duration in seconds."""
        if not vid or "/" in vid:
            raise DataError("video id must be non-empty and contain no '/'", self.path, record=vid)
        if vid in self._file:
            raise DataError("video id written twice", self.path, record=vid)
        arr = np.asarray(feats, dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] == 0:
            raise DataError(f"features must be a non-empty [T, D] array, got shape {arr.shape}",
                            self.path, record=vid)
        if self.feature_dim is None:
            self.feature_dim = int(arr.shape[1])
            self._file.attrs["feature_dim"] = self.feature_dim
        if arr.shape[1] != self.feature_dim:
            raise DataError(f"feature dim {arr.shape[1]} != file's feature_dim {self.feature_dim}",
                            self.path, record=vid)
        if not np.isfinite(arr).all():
            raise DataError("features contain NaN or inf", self.path, record=vid)
        duration = float(duration)
        if not math.isfinite(duration) or duration <= 0:
            raise DataError(f"duration must be a positive number of seconds, got {duration}",
                            self.path, record=vid)
        ds = self._file.create_dataset(vid, data=arr, track_times=False)
        ds.attrs["duration"] = duration

    def flush(self) -> None:
        """Push what is written to disk, so a killed run leaves a resumable file."""
        if self._file:
            self._file.flush()

    def durations(self) -> dict[str, float]:
        """{vid: seconds} of every video in the file so far."""
        return {vid: float(ds.attrs["duration"]) for vid, ds in self._file.items()}

    def close(self) -> None:
        """Flush the HDF5 file and write ``durations.json`` beside it."""
        if not self._file:
            return
        if "feature_dim" not in self._file.attrs:
            raise DataError("no video was written, so feature_dim is unknown", self.path)
        durations = self.durations()
        self._file.close()
        write_durations_json(durations_path(self.path), durations)

    def __enter__(self) -> CanonicalH5Writer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None and self._file:
            self._file.close()  # keep what was written (resumable) but do not mask the error
            return
        self.close()


def write_canonical_h5(path: str | Path, items: Iterable[tuple[str, np.ndarray, float]],
                       clip_seconds: float, feature_dim: int | None = None) -> Path:
    """Write ``(vid, [T, D] features, duration_s)`` items to a canonical feature file."""
    with CanonicalH5Writer(path, clip_seconds, feature_dim) as writer:
        for vid, feats, duration in items:
            writer.add(vid, feats, duration)
    return Path(path)
