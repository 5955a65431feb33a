"""TACoS in its two releases; both count time in frames.

* ``tacos_2dtan`` (2D-TAN / MMN): ``{"s17-d69.avi": {num_frames, fps, timestamps, sentences}}``;
  seconds = frames / fps and duration = num_frames / fps.
* ``tacos_scdm`` (SCDM): ``{"s17-d69.avi": {duration, timestamps, sentences}}`` where
  ``duration`` holds the number of frames; fps is 29.4 (the TACoS frame rate, argument ``fps``).

Video ids drop the ``.avi`` extension (``s17-d69``), as the TALL C3D feature files and the
lighthouse release name them; query ids are ``{vid}_{k}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidlang.data.readers._common import Loc, field_of, reader, to_float
from vidlang.data.readers.timestamps_json import grounding_from, iter_timestamp_videos
from vidlang.data.records import ClampPolicy, GroundingRecord, LoadReport

TACOS_FPS = 29.4


def video_id_of(key: str) -> str:
    """``s17-d69.avi`` -> ``s17-d69``."""
    return key[:-4] if key.endswith(".avi") else key


def _positive(value: float, loc: Loc, what: str) -> float:
    if value <= 0:
        raise loc.error(f"{what} must be positive, got {value}")
    return value


def _time_base_2dtan(entry: dict[str, Any], loc: Loc) -> tuple[float, float]:
    fps = _positive(to_float(field_of(entry, "fps", loc), loc, "fps"), loc, "fps")
    frames = to_float(field_of(entry, "num_frames", loc), loc, "num_frames")
    return frames / fps, 1.0 / fps


@reader("tacos_2dtan", kind="grounding")
def read_tacos_2dtan(path: str | Path, *, split: str | None = None,
                     clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """2D-TAN TACoS JSON (frames + fps) -> records in seconds."""
    entries = iter_timestamp_videos(path, _time_base_2dtan, video_id_of)
    return grounding_from(entries, Path(path), clamp, split)


@reader("tacos_scdm", kind="grounding")
def read_tacos_scdm(path: str | Path, *, split: str | None = None,
                    clamp: ClampPolicy | str = ClampPolicy.CLAMP,
                    fps: float = TACOS_FPS) -> tuple[list[GroundingRecord], LoadReport]:
    """SCDM TACoS JSON (``duration`` = num_frames, timestamps in frames) -> seconds at ``fps``."""
    _positive(fps, Loc(Path(path)), "fps")

    def time_base(entry: dict[str, Any], loc: Loc) -> tuple[float, float]:
        return to_float(field_of(entry, "duration", loc), loc, "duration (frames)") / fps, 1.0 / fps

    entries = iter_timestamp_videos(path, time_base, video_id_of)
    return grounding_from(entries, Path(path), clamp, split)
