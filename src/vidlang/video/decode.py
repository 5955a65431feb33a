"""Streaming video decoding with PyAV: sampled frames grouped into fixed-length clips.

Conventions (docs/video.md):

* A frame's time is ``(pts - stream.start_time) * time_base`` seconds, never ``index / fps``,
  so variable-frame-rate files get correct times. A frame is *shown* from its time until the
  next frame's time; the video lasts until the last frame's time plus its duration.
* Sampling picks, for every sample time ``s``, the frame shown at ``s``. Sample times are
  ``k / fps`` (``fps`` mode) or ``(k + 0.5) * duration / num_frames`` (``num_frames`` mode).
* Clip ``i`` covers ``[i * clip_seconds, (i + 1) * clip_seconds)`` (the last one ends at the
  video's end); a video has ``ceil(duration / clip_seconds)`` clips. A clip that no sample time
  falls in takes the frame shown at its midpoint, so every clip has at least one frame.
* Decoding is a generator: one clip of frames is in memory at a time, so an hour-long video
  costs the same memory as a minute-long one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.errors import ConfigError, DataError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv",
                  ".wmv", ".3gp", ".ts", ".gif")
_EPS = 1e-6


class VideoError(DataError):
    """A video file that cannot be used; names the file."""


class UnreadableVideoError(VideoError):
    """Missing, not a media file, or a container FFmpeg cannot open."""


class NoVideoStreamError(VideoError):
    """A media file without a video stream (e.g. audio only)."""


class EmptyVideoError(VideoError):
    """A video stream without a single decodable frame."""


class CorruptVideoError(VideoError):
    """Decoding failed part-way through the stream."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video's first video stream (duration may be None)."""

    path: str
    duration: float | None
    average_fps: float | None
    width: int
    height: int
    codec: str


@dataclass(frozen=True)
class Sampling:
    """Which frames to take: ``fps`` sample times per second, or ``num_frames`` over the video."""

    fps: float | None = 1.0
    num_frames: int | None = None

    def __post_init__(self) -> None:
        if (self.fps is None) == (self.num_frames is None):
            raise ConfigError("sampling: give exactly one of fps and num_frames")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"sampling.fps: must be > 0, got {self.fps}")
        if self.num_frames is not None and self.num_frames < 1:
            raise ConfigError(f"sampling.num_frames: must be >= 1, got {self.num_frames}")


@dataclass(frozen=True)
class FrameSize:
    """How sampled frames are resized: ``resize`` to exactly ``width`` x ``height``, or
    ``short_side_crop``: short side to ``height`` (= ``width``) then a centred square crop
    (CLIP preprocessing). ``None`` sizes keep the decoded size."""

    width: int | None = None
    height: int | None = None
    mode: str = "resize"

    def __post_init__(self) -> None:
        if self.mode not in _RESIZERS:
            raise ConfigError(f"frame size mode: unknown {self.mode!r}; known: {', '.join(sorted(_RESIZERS))}")


@dataclass
class Clip:
    """One clip: its index, [start, end) in seconds, and its sampled frames [N, H, W, 3] uint8
    with their sample times [N] (seconds)."""

    index: int
    start: float
    end: float
    frames: np.ndarray
    times: np.ndarray


def _rgb_resized(frame: Any, width: int, height: int) -> np.ndarray:
    return frame.to_ndarray(format="rgb24", width=width, height=height)


def _resize(frame: Any, size: FrameSize) -> np.ndarray:
    if size.width is None or size.height is None:
        return frame.to_ndarray(format="rgb24")
    return _rgb_resized(frame, size.width, size.height)


def _short_side_crop(frame: Any, size: FrameSize) -> np.ndarray:
    side = size.height or size.width
    if side is None:
        return frame.to_ndarray(format="rgb24")
    scale = side / min(frame.width, frame.height)
    w = max(side, round(frame.width * scale))
    h = max(side, round(frame.height * scale))
    img = _rgb_resized(frame, w, h)
    top, left = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(img[top:top + side, left:left + side])


_RESIZERS: dict[str, Callable[[Any, FrameSize], np.ndarray]] = {
    "resize": _resize,
    "short_side_crop": _short_side_crop,
}


def _open(path: str | Path) -> Any:
    import av

    p = Path(path)
    if not p.is_file():
        raise UnreadableVideoError("video file not found", p)
    if p.stat().st_size == 0:
        raise UnreadableVideoError("empty file (0 bytes)", p)
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise UnreadableVideoError(f"cannot open as a video ({e.strerror or e})", p) from None
    if not container.streams.video:
        kinds = sorted({str(s.type) for s in container.streams}) or ["none"]
        container.close()
        raise NoVideoStreamError(f"no video stream (streams: {', '.join(kinds)})", p)
    return container


def _container_duration(container: Any) -> float | None:
    """The video stream's recorded duration in seconds, else the container's, else None."""
    stream = container.streams.video[0]
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def probe_video(path: str | Path) -> VideoInfo:
    """Container metadata of ``path`` without decoding (raises a :class:`VideoError`)."""
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate
        return VideoInfo(str(path), _container_duration(container), float(rate) if rate else None,
                         stream.codec_context.width, stream.codec_context.height,
                         stream.codec_context.name)
    finally:
        container.close()


def clip_count(duration: float, clip_seconds: float) -> int:
    """Clips of a video: ``ceil(duration / clip_seconds)`` (at least 1)."""
    return max(1, math.ceil(round(duration / clip_seconds, 6)))


def _clip_of(t: float, clip_seconds: float) -> int:
    return int(math.floor(t / clip_seconds + _EPS))


def _sample_times(sampling: Sampling, clip_seconds: float, duration_hint: float | None) -> Iterator[float]:
    """Increasing sample times (endless for ``fps``; ``num_frames`` needs the duration), with
    one extra time at the midpoint of each clip that would otherwise get no sample."""
    if sampling.fps is not None:
        regular: Iterator[float] = (k / sampling.fps for k in itertools.count())
    else:
        if not duration_hint or duration_hint <= 0:
            raise ConfigError("sampling.num_frames: the container records no duration; use fps sampling")
        n = int(sampling.num_frames or 1)
        regular = iter([(k + 0.5) * duration_hint / n for k in range(n)])
    next_clip = 0  # first clip not yet given a sample time
    for t in regular:
        c = _clip_of(t, clip_seconds)
        while next_clip < c:
            yield (next_clip + 0.5) * clip_seconds
            next_clip += 1
        yield t
        next_clip = max(next_clip, c + 1)
    while True:  # num_frames exhausted: midpoints of later clips until the video ends
        yield (next_clip + 0.5) * clip_seconds
        next_clip += 1


class ClipReader:
    """Iterate a video's clips (see the module docstring); ``duration`` is known once the
    iteration has finished. Raises :class:`VideoError` subclasses naming the file."""

    def __init__(self, path: str | Path, sampling: Sampling | None = None, clip_seconds: float = 2.0,
                 size: FrameSize | None = None) -> None:
        if not clip_seconds > 0:
            raise ConfigError(f"clip_seconds: must be > 0, got {clip_seconds}")
        self.path = Path(path)
        self.sampling = sampling or Sampling()
        self.clip_seconds = float(clip_seconds)
        self.size = size or FrameSize()
        self.duration: float | None = None
        self.num_clips = 0

    def _frames(self, container: Any) -> Iterator[tuple[float, float | None, Any]]:
        """(time s, duration s or None, av frame) of every decoded frame, in stream order;
        a frame whose time does not increase is skipped (the first one wins)."""
        import av

        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = stream.start_time or 0
        nominal = 1.0 / float(stream.average_rate or 25)
        last = None
        try:
            for frame in container.decode(stream):
                tb = frame.time_base or stream.time_base
                pts = frame.pts if frame.pts is not None else frame.dts
                t = float((pts - start) * tb) if pts is not None else (0.0 if last is None else last + nominal)
                if last is not None and t <= last:
                    continue
                last = t
                yield t, (float(frame.duration * tb) if frame.duration else None), frame
        except av.error.FFmpegError as e:
            raise CorruptVideoError(f"decoding failed after {last or 0:.3f} s ({e.strerror or e})",
                                    self.path) from None

    def __iter__(self) -> Iterator[Clip]:
        container = _open(self.path)
        try:
            yield from self._clips(container, _container_duration(container))
        finally:
            container.close()

    def _clips(self, container: Any, duration_hint: float | None) -> Iterator[Clip]:
        grouper = _ClipGrouper(self.clip_seconds, _RESIZERS[self.size.mode], self.size)
        times = _sample_times(self.sampling, self.clip_seconds, duration_hint)
        pending = next(times)
        prev: tuple[int, float, float | None, Any] | None = None  # (seq, time, duration, frame)
        step = None  # time between the last two frames
        for seq, (t, dur, frame) in enumerate(self._frames(container)):
            while pending < t - _EPS:  # `pending` shows the previous frame (this one before the first)
                shown = (prev[0], prev[3]) if prev is not None else (seq, frame)
                yield from grouper.add(pending, *shown)
                pending = next(times)
            step = t - prev[1] if prev is not None else None
            prev = (seq, t, dur, frame)
        if prev is None:
            raise EmptyVideoError("no decodable video frame", self.path)
        end = prev[1] + (prev[2] or step or 1.0 / float(container.streams.video[0].average_rate or 25))
        while pending < end - _EPS:
            yield from grouper.add(pending, prev[0], prev[3])
            pending = next(times)
        total = clip_count(end, self.clip_seconds)
        yield from grouper.finish(end, total, prev[0], prev[3])
        self.duration = end
        self.num_clips = total


class _ClipGrouper:
    """Collects (sample time, frame) pairs into clips; converts each decoded frame at most once."""

    def __init__(self, clip_seconds: float, resize: Callable[[Any, FrameSize], np.ndarray],
                 size: FrameSize) -> None:
        self.clip_seconds = clip_seconds
        self.resize = resize
        self.size = size
        self.index = 0
        self.items: list[tuple[float, np.ndarray]] = []
        self._cached: tuple[int, np.ndarray] | None = None

    def _image(self, seq: int, frame: Any) -> np.ndarray:
        if self._cached is None or self._cached[0] != seq:
            self._cached = (seq, self.resize(frame, self.size))
        return self._cached[1]

    def _flush(self, end: float) -> Clip:
        frames = np.stack([img for _, img in self.items])
        times = np.array([s for s, _ in self.items], dtype=np.float64)
        clip = Clip(self.index, self.index * self.clip_seconds, end, frames, times)
        self.items = []
        return clip

    def add(self, t: float, seq: int, frame: Any) -> Iterator[Clip]:
        c = _clip_of(t, self.clip_seconds)
        if c != self.index and self.items:
            yield self._flush((self.index + 1) * self.clip_seconds)
        self.index = c
        self.items.append((t, self._image(seq, frame)))

    def finish(self, end: float, total: int, seq: int, frame: Any) -> Iterator[Clip]:
        """The last collected clip, then any clip no sample reached (given the last frame)."""
        if self.items:
            yield self._flush(min((self.index + 1) * self.clip_seconds, end))
        for c in range(self.index + 1, total):
            self.index = c
            self.items.append((min((c + 0.5) * self.clip_seconds, end), self._image(seq, frame)))
            yield self._flush(min((c + 1) * self.clip_seconds, end))


def iter_clips(path: str | Path, fps: float | None = 1.0, num_frames: int | None = None,
               clip_seconds: float = 2.0, size: FrameSize | None = None) -> Iterator[Clip]:
    """Convenience generator over :class:`ClipReader` (``num_frames`` replaces ``fps``)."""
    sampling = Sampling(fps=None, num_frames=num_frames) if num_frames else Sampling(fps=fps)
    yield from ClipReader(path, sampling, clip_seconds, size)
