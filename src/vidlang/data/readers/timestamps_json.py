"""The ``{vid: {duration, timestamps, sentences}}`` JSON family (ActivityNet Captions, MMN's
Charades-STA, PDVC's YouCook2) and its frame-based variants (TACoS, via ``tacos.py``).

Query ids are ``{vid}_{k}`` with k the sentence's index in the file's list for that video, so
they are stable whatever is dropped. Sentences are kept verbatim (ActivityNet's leading spaces
included); :meth:`Paragraph.text` strips them when joining.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidlang.data.readers._common import (
    GroundingBuilder,
    Loc,
    Sentence,
    WindowPolicy,
    build_paragraph,
    captions_result,
    expect,
    field_of,
    load_json,
    reader,
    to_float,
    to_window,
)
from vidlang.data.records import (
    ClampPolicy,
    GroundingRecord,
    LoadReport,
    Paragraph,
    VideoCaptions,
)


@dataclass
class VideoEntry:
    """One video of a timestamps JSON: duration (s), sentences with windows (s), location."""

    video_id: str
    duration: float
    sentences: list[Sentence]
    loc: Loc


# (video entry dict, loc) -> (duration seconds, seconds per timestamp unit)
TimeBase = Callable[[dict[str, Any], Loc], tuple[float, float]]


def seconds_time_base(entry: dict[str, Any], loc: Loc) -> tuple[float, float]:
    """Durations and timestamps already in seconds."""
    return to_float(field_of(entry, "duration", loc), loc, "duration"), 1.0


def iter_timestamp_videos(path: str | Path, time_base: TimeBase = seconds_time_base,
                          video_id_of: Callable[[str], str] = str) -> Iterator[VideoEntry]:
    """Every video of a timestamps JSON, with windows converted to seconds by ``time_base``."""
    path = Path(path)
    data = load_json(path)
    expect(data, dict, Loc(path), "top level")
    for key, entry in data.items():
        loc = Loc(path, record=key)
        expect(entry, dict, loc, "video entry")
        duration, scale = time_base(entry, loc)
        stamps = expect(field_of(entry, "timestamps", loc), list, loc, "timestamps")
        texts = expect(field_of(entry, "sentences", loc), list, loc, "sentences")
        if len(stamps) != len(texts):
            raise loc.error(f"{len(stamps)} timestamps but {len(texts)} sentences")
        sentences = []
        for k, (pair, text) in enumerate(zip(stamps, texts)):
            sloc = Loc(path, record=f"{key}[{k}]")
            expect(text, str, sloc, "sentence")
            sentences.append(Sentence(text, to_window(pair, sloc, scale), sloc))
        yield VideoEntry(video_id_of(key), duration, sentences, loc)


def grounding_from(entries: Iterator[VideoEntry], source: Path, clamp: ClampPolicy | str,
                   split: str | None) -> tuple[list[GroundingRecord], LoadReport]:
    """One GroundingRecord per sentence."""
    builder = GroundingBuilder(source, clamp, split)
    for video in entries:
        for k, sent in enumerate(video.sentences):
            builder.add(sent.loc, f"{video.video_id}_{k}", video.video_id, video.duration,
                        sent.text, [sent.window])
    return builder.result()


def paragraphs_from(entries: Iterator[VideoEntry], source: Path, clamp: ClampPolicy | str,
                    split: str | None) -> tuple[list[Paragraph], LoadReport]:
    """One Paragraph per video, sentences sorted by start time."""
    report = LoadReport(str(source))
    policy = WindowPolicy(clamp, report)
    out = [p for v in entries
           if (p := build_paragraph(v.video_id, v.duration, v.sentences, policy, v.loc, split)) is not None]
    report.check()
    return out, report


def captions_from(entries: Iterator[VideoEntry], source: Path,
                  split: str | None) -> tuple[list[VideoCaptions], LoadReport]:
    """One VideoCaptions per video (all its sentences, stripped, in file order)."""
    items = [VideoCaptions(v.video_id, tuple(s.text.strip() for s in v.sentences), v.duration, split)
             for v in entries]
    return captions_result(source, items)


@reader("timestamps_json", kind="grounding")
def read_timestamps_json(path: str | Path, *, split: str | None = None,
                         clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """ActivityNet-style ``{vid: {duration, timestamps, sentences}}`` -> one record per sentence."""
    return grounding_from(iter_timestamp_videos(path), Path(path), clamp, split)


@reader("timestamps_json_paragraphs", kind="paragraphs")
def read_timestamps_json_paragraphs(path: str | Path, *, split: str | None = None,
                                    clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[Paragraph], LoadReport]:
    """ActivityNet-style JSON -> one Paragraph per video, sentences sorted by start time."""
    return paragraphs_from(iter_timestamp_videos(path), Path(path), clamp, split)


@reader("timestamps_json_captions", kind="captions")
def read_timestamps_json_captions(path: str | Path, *, split: str | None = None) -> tuple[list[VideoCaptions], LoadReport]:
    """ActivityNet-style JSON -> one caption set per video."""
    return captions_from(iter_timestamp_videos(path), Path(path), split)
