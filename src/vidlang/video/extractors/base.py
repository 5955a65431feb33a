"""The extractor interface: a video's sampled frames -> one feature vector per clip.

An extractor is registered by name in ``vidlang.registry.EXTRACTORS`` and built with
:func:`build_extractor`. It declares its feature ``dim``, its ``clip_seconds``, how frames are
sampled (``sampling``) and sized (``frame_size``), and maps a batch of clips to a [n, dim]
array. :meth:`Extractor.extract` streams a file clip by clip, so memory stays flat.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vidlang.errors import ConfigError, RegistryError
from vidlang.video.decode import Clip, ClipReader, FrameSize, Sampling


class Extractor(ABC):
    """Frames -> one vector per clip. Subclasses set ``name``, ``dim`` and ``frame_size``."""

    name: ClassVar[str] = ""
    dim: int
    frame_size: FrameSize

    def __init__(self, clip_seconds: float = 2.0, fps: float | None = None,
                 num_frames: int | None = None, batch_size: int = 16) -> None:
        if not clip_seconds > 0:
            raise ConfigError(f"extractor.clip_seconds: must be > 0, got {clip_seconds}")
        if batch_size < 1:
            raise ConfigError(f"extractor.batch_size: must be >= 1, got {batch_size}")
        self.clip_seconds = float(clip_seconds)
        self.sampling = Sampling(fps=None, num_frames=num_frames) if num_frames else Sampling(
            fps=fps if fps is not None else self.default_fps)
        self.batch_size = int(batch_size)

    #: sample times per second when neither fps nor num_frames is given
    default_fps: ClassVar[float] = 1.0

    @abstractmethod
    def encode(self, clips: Sequence[Clip]) -> np.ndarray:
        """[len(clips), dim] float32 features of a batch of clips."""

    def options(self) -> dict[str, Any]:
        """Everything that changes the features (recorded in the feature file's attrs)."""
        return {"clip_seconds": self.clip_seconds, "fps": self.sampling.fps,
                "num_frames": self.sampling.num_frames}

    def describe(self) -> str:
        """``options()`` as canonical JSON, so two runs can be compared for equality."""
        return json.dumps(self.options(), sort_keys=True)

    def extract(self, path: str | Path,
                on_clips: Callable[[int], None] | None = None) -> tuple[np.ndarray, float]:
        """([T, dim] features, duration in seconds) of one video file, clip batches at a time.

        Raises a :class:`vidlang.video.decode.VideoError` naming the file when it cannot be read.
        """
        reader = ClipReader(path, self.sampling, self.clip_seconds, self.frame_size)
        rows: list[np.ndarray] = []
        batch: list[Clip] = []
        for clip in reader:
            batch.append(clip)
            if len(batch) == self.batch_size:
                rows.append(self._encode_checked(batch))
                if on_clips is not None:
                    on_clips(len(batch))
                batch = []
        if batch:
            rows.append(self._encode_checked(batch))
            if on_clips is not None:
                on_clips(len(batch))
        assert reader.duration is not None
        return np.concatenate(rows, axis=0), float(reader.duration)

    def _encode_checked(self, batch: Sequence[Clip]) -> np.ndarray:
        out = np.asarray(self.encode(batch), dtype=np.float32)
        if out.shape != (len(batch), self.dim):
            raise AssertionError(f"{self.name}: encode returned {out.shape}, expected ({len(batch)}, {self.dim})")
        return out


def build_extractor(name: str, **options: Any) -> Extractor:
    """The extractor registered as ``name``, built with ``options`` (None values dropped)."""
    from vidlang.registry import EXTRACTORS

    try:
        factory = EXTRACTORS.get(name)
    except RegistryError as e:
        raise ConfigError(f"--extractor: {e}") from None
    try:
        return factory(**{k: v for k, v in options.items() if v is not None})
    except TypeError as e:
        raise ConfigError(f"extractor {name!r}: {e}") from None
