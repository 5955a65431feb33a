"""Decoding: frame timestamps, clip grouping, fps / num_frames sampling, variable frame rate,
and per-file errors for corrupt, empty, audio-only and missing files."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from video_support import write_audio_only, write_undecodable_video, write_video
from vidlang.errors import ConfigError, DataError
from vidlang.video import (
    ClipReader,
    CorruptVideoError,
    EmptyVideoError,
    FrameSize,
    NoVideoStreamError,
    Sampling,
    UnreadableVideoError,
    VideoError,
    clip_count,
    iter_clips,
    probe_video,
)


def _frame_ids(clip_frames: np.ndarray) -> list[int]:
    """Index of each sampled frame from its grey level (frame i was written as 5 * i)."""
    return [int(round(float(f.mean()) / 5.0)) for f in clip_frames]


@pytest.fixture(scope="module")
def cfr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 s at 8 fps, 32 x 32: 40 frames."""
    return write_video(tmp_path_factory.mktemp("cfr") / "cfr.mp4", n_frames=40, fps=8)


def test_probe_reports_stream_metadata(cfr: Path) -> None:
    info = probe_video(cfr)
    assert (info.width, info.height) == (32, 32)
    assert info.average_fps == pytest.approx(8.0)
    assert info.duration == pytest.approx(5.0)


def test_clip_boundaries_and_sample_times(cfr: Path) -> None:
    reader = ClipReader(cfr, Sampling(fps=4), clip_seconds=2.0)
    clips = list(reader)
    assert [c.index for c in clips] == [0, 1, 2]
    assert [(c.start, c.end) for c in clips] == [(0.0, 2.0), (2.0, 4.0), (4.0, 5.0)]
    times = np.concatenate([c.times for c in clips])
    np.testing.assert_allclose(times, np.arange(20) / 4)
    for c in clips:
        assert ((c.times >= c.start) & (c.times < c.end)).all()
    # the frame shown at t is frame floor(t * 8)
    assert sum((_frame_ids(c.frames) for c in clips), []) == [2 * k for k in range(20)]
    assert reader.duration == pytest.approx(5.0)
    assert reader.num_clips == clip_count(5.0, 2.0) == 3


def test_fps_resampling_picks_the_frame_shown(cfr: Path) -> None:
    clips = list(iter_clips(cfr, fps=3, clip_seconds=1.0))
    times = np.concatenate([c.times for c in clips])
    np.testing.assert_allclose(times, np.arange(15) / 3)  # 15 sample times in [0, 5)
    ids = sum((_frame_ids(c.frames) for c in clips), [])
    assert ids == [int(np.floor(k / 3 * 8 + 1e-9)) for k in range(15)]
    assert len(clips) == 5 and all(len(c.frames) == 3 for c in clips)


def test_num_frames_sampling_spreads_over_the_video(cfr: Path) -> None:
    clips = list(iter_clips(cfr, num_frames=4, clip_seconds=5.0))
    assert len(clips) == 1
    np.testing.assert_allclose(clips[0].times, [0.625, 1.875, 3.125, 4.375])
    assert _frame_ids(clips[0].frames) == [5, 15, 25, 35]


def test_clip_without_a_sample_takes_its_midpoint_frame(cfr: Path) -> None:
    # one sample every 4 s leaves clip [2, 4) empty: it gets the frame shown at 3 s
    clips = list(iter_clips(cfr, fps=0.25, clip_seconds=2.0))
    assert [c.times.tolist() for c in clips] == [[0.0], [3.0], [4.0]]
    assert [_frame_ids(c.frames) for c in clips] == [[0], [24], [32]]


def test_variable_frame_rate_uses_presentation_times(tmp_path: Path) -> None:
    pts = [0, 100, 150, 400, 1000, 1100, 1500, 1900]  # ms, irregular
    path = write_video(tmp_path / "vfr.mp4", pts_ms=pts, fps=10)
    clips = list(iter_clips(path, fps=10, clip_seconds=1.0))
    times = np.concatenate([c.times for c in clips])
    ids = sum((_frame_ids(c.frames) for c in clips), [])
    # the frame shown at t is the last one with pts <= t (index / nominal fps would be wrong)
    expected = [max(i for i, p in enumerate(pts) if p <= round(t * 1000)) for t in times]
    assert ids == expected
    assert ids[:6] == [0, 1, 2, 2, 3, 3]
    assert len(clips) == 2


def test_resize_and_short_side_crop(tmp_path: Path) -> None:
    path = write_video(tmp_path / "wide.mp4", n_frames=8, fps=8, size=32)
    clip = next(iter_clips(path, fps=2, size=FrameSize(16, 8)))
    assert clip.frames.shape[1:] == (8, 16, 3)
    clip = next(iter_clips(path, fps=2, size=FrameSize(12, 12, "short_side_crop")))
    assert clip.frames.shape[1:] == (12, 12, 3) and clip.frames.dtype == np.uint8


def test_decoding_streams_clips_lazily(cfr: Path) -> None:
    stream = iter(ClipReader(cfr, Sampling(fps=1), clip_seconds=1.0))
    assert isinstance(stream, types.GeneratorType)
    first = next(stream)
    assert first.index == 0 and len(first.frames) == 1


def test_missing_empty_corrupt_and_audio_only_files_fail_clearly(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    audio = write_audio_only(tmp_path / "audio.m4a")
    cases = {tmp_path / "missing.mp4": UnreadableVideoError, empty: UnreadableVideoError,
             corrupt: UnreadableVideoError, audio: NoVideoStreamError}
    for path, error in cases.items():
        with pytest.raises(error) as info:
            list(iter_clips(path))
        assert isinstance(info.value, DataError) and isinstance(info.value, VideoError)
        assert str(path) in str(info.value)
    with pytest.raises(NoVideoStreamError, match="audio"):
        probe_video(audio)


def test_truncated_file_is_a_video_error(cfr: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(cfr.read_bytes()[: cfr.stat().st_size // 2])
    with pytest.raises(VideoError, match="cut.mp4"):
        list(iter_clips(cut))


def test_video_stream_with_undecodable_packets_is_a_video_error(tmp_path: Path) -> None:
    path = write_undecodable_video(tmp_path / "garbage.mp4")
    assert probe_video(path).codec == "mpeg4"  # the container itself opens
    with pytest.raises((CorruptVideoError, EmptyVideoError), match="garbage.mp4"):
        list(iter_clips(path))


def test_bad_sampling_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Sampling(fps=None, num_frames=None)
    with pytest.raises(ConfigError):
        Sampling(fps=-1)
    with pytest.raises(ConfigError):
        FrameSize(8, 8, "stretch")
