"""What every indexed vector carries besides its values, and the metadata filters over it.

Both backends hold the same record per vector: the video id, the window it covers (``start`` /
``end`` seconds; the whole video for a video-level vector), the video's ``duration`` and
``store``, the position of its feature store in the index's ``meta.sources`` (so a video added
from a second feature file is localised in that file, not the first one). Unknown times are
stored as ``-1`` (Milvus has no NULL floats) and read back as ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from vidlang.errors import VidlangError

UNKNOWN = -1.0

#: one search hit as a backend returns it: (score, video_id, start, end, duration, store)
RawHit = tuple[float, str, float, float, float, int]


class VideoIndexError(VidlangError):
    """A problem with a video index: empty, mismatched model or dimension, unreadable files."""


def known(value: float) -> float | None:
    """``None`` for the ``-1`` sentinel of an unknown time, else the value as a float."""
    return None if value is None or value < 0 or not np.isfinite(value) else float(value)


@dataclass(frozen=True)
class SearchFilter:
    """Restrict a search to records whose video id starts with ``video_id_prefix`` and whose
    duration lies in ``[min_duration, max_duration]`` seconds (records of unknown duration are
    excluded as soon as a duration bound is given)."""

    video_id_prefix: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_duration", "max_duration"):
            value = getattr(self, name)
            if value is not None and (not np.isfinite(value) or value < 0):
                raise VideoIndexError(f"{name} must be a finite number >= 0, got {value}")
        if (self.min_duration is not None and self.max_duration is not None
                and self.min_duration > self.max_duration):
            raise VideoIndexError(
                f"min_duration {self.min_duration} is larger than max_duration {self.max_duration}")

    @property
    def active(self) -> bool:
        return bool(self.video_id_prefix) or self.min_duration is not None or self.max_duration is not None

    def milvus_expr(self) -> str:
        """The same filter as a Milvus boolean expression (empty when inactive). A prefix is a
        string range, ``p <= id < p + U+10FFFF``: LIKE would treat ``_`` in ids as a wildcard."""
        parts = []
        if self.video_id_prefix:
            lo = json.dumps(self.video_id_prefix, ensure_ascii=False)
            hi = json.dumps(self.video_id_prefix + "\U0010ffff", ensure_ascii=False)
            parts.append(f"video_id >= {lo} and video_id < {hi}")
        if self.min_duration is not None:
            parts.append(f"duration >= {float(self.min_duration)!r}")
        if self.max_duration is not None:
            parts.append(f"duration >= 0 and duration <= {float(self.max_duration)!r}")
        return " and ".join(f"({p})" for p in parts)


@dataclass
class Records:
    """Column store of the records of a FAISS index, row ``i`` = vector ``i``."""

    video_ids: list[str]
    start: np.ndarray
    end: np.ndarray
    duration: np.ndarray
    store: np.ndarray

    @classmethod
    def empty(cls) -> Records:
        f = np.zeros(0, dtype=np.float64)
        return cls([], f, f.copy(), f.copy(), np.zeros(0, dtype=np.int32))

    @classmethod
    def of(cls, video_ids: Sequence[str], start: ArrayLike, end: ArrayLike, duration: ArrayLike,
           store: ArrayLike) -> Records:
        return cls(list(video_ids), np.asarray(start, np.float64), np.asarray(end, np.float64),
                   np.asarray(duration, np.float64), np.asarray(store, np.int32))

    def __len__(self) -> int:
        return len(self.video_ids)

    def extend(self, other: Records) -> None:
        self.video_ids.extend(other.video_ids)
        self.start = np.concatenate([self.start, other.start])
        self.end = np.concatenate([self.end, other.end])
        self.duration = np.concatenate([self.duration, other.duration])
        self.store = np.concatenate([self.store, other.store])

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False (order of the others kept)."""
        self.video_ids = [v for v, m in zip(self.video_ids, mask) if m]
        self.start, self.end = self.start[mask], self.end[mask]
        self.duration, self.store = self.duration[mask], self.store[mask]

    def mask(self, flt: SearchFilter) -> np.ndarray:
        """Rows that pass ``flt``."""
        ok = np.ones(len(self), dtype=bool)
        if flt.video_id_prefix:
            p = flt.video_id_prefix
            ok &= np.fromiter((v.startswith(p) for v in self.video_ids), dtype=bool, count=len(self))
        if flt.min_duration is not None:
            ok &= self.duration >= flt.min_duration
        if flt.max_duration is not None:
            ok &= (self.duration >= 0) & (self.duration <= flt.max_duration)
        return ok

    def save(self, directory: Path) -> None:
        (directory / "ids.json").write_text(json.dumps(self.video_ids))
        np.savez(directory / "records.npz", start=self.start, end=self.end, duration=self.duration,
                 store=self.store)

    @classmethod
    def load(cls, directory: Path) -> Records:
        """``ids.json`` + ``records.npz``; an index from before records existed gets unknown
        times and store 0 (the one feature store it was built from)."""
        ids = json.loads((directory / "ids.json").read_text())
        path = directory / "records.npz"
        if not path.is_file():
            n = len(ids)
            unknown = np.full(n, UNKNOWN)
            return cls.of(ids, np.zeros(n), unknown, unknown, np.zeros(n, dtype=np.int32))
        try:
            with np.load(path, allow_pickle=False) as z:
                rec = cls.of(ids, z["start"], z["end"], z["duration"], z["store"])
        except (OSError, ValueError, KeyError) as e:
            raise VideoIndexError(f"{path}: unreadable index records ({e}); rebuild the index") from None
        if not (len(rec.start) == len(rec.end) == len(rec.duration) == len(rec.store) == len(ids)):
            raise VideoIndexError(f"{path}: {len(rec.start)} records but ids.json has {len(ids)} ids")
        return rec
