"""DiDeMo (LocalizingMoments ``{val,test}_data.json``): a list of queries, each with several
annotators' windows in 5-second segment indices.

Segment k covers [5k, 5(k+1)] seconds and the end index is inclusive, so ``[a, b]`` becomes
``[5a, 5(b+1)]``. A video's duration is ``5 * num_segments`` (the annotation's own time base;
the real clip may end a little earlier). Every annotator's window is kept, in file order
(duplicates included), so consensus metrics can be computed. Query ids are ``annotation_id``.

Paragraphs (CLIP4Clip's paragraph-to-video protocol) join a video's descriptions ordered by each
query's consensus window (the window most annotators chose; ties -> the earliest), then by
annotation id; that window is the sentence's window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vidlang.data.readers._common import (
    GroundingBuilder,
    Loc,
    Sentence,
    WindowPolicy,
    build_paragraph,
    expect,
    field_of,
    load_json,
    reader,
    to_float,
    to_window,
)
from vidlang.data.records import ClampPolicy, GroundingRecord, LoadReport, Paragraph, Window

SEGMENT_SECONDS = 5.0


@dataclass
class DidemoQuery:
    qid: str
    video_id: str
    duration: float
    description: str
    windows: list[Window]
    loc: Loc


def segments_to_seconds(first: float, last: float) -> Window:
    """Inclusive segment indices -> seconds: [5 first, 5 (last + 1)]."""
    return first * SEGMENT_SECONDS, (last + 1) * SEGMENT_SECONDS


def iter_didemo(path: str | Path) -> Iterator[DidemoQuery]:
    path = Path(path)
    data = expect(load_json(path), list, Loc(path), "top level")
    for i, obj in enumerate(data):
        loc = Loc(path, record=f"#{i}")
        expect(obj, dict, loc, "query")
        qid = str(field_of(obj, "annotation_id", loc))
        loc = Loc(path, record=f"#{i} annotation_id={qid}")
        num_segments = to_float(field_of(obj, "num_segments", loc), loc, "num_segments")
        times = expect(field_of(obj, "times", loc), list, loc, "times")
        windows = [segments_to_seconds(*to_window(t, loc, what="times")) for t in times]
        yield DidemoQuery(qid, expect(field_of(obj, "video", loc), str, loc, "video"),
                          num_segments * SEGMENT_SECONDS,
                          expect(field_of(obj, "description", loc), str, loc, "description"),
                          windows, loc)


def consensus_window(windows: list[Window]) -> Window:
    """The window most annotators chose; ties go to the earliest."""
    counts = Counter(windows)
    return min(counts, key=lambda w: (-counts[w], w))


@reader("didemo_json", kind="grounding")
def read_didemo_json(path: str | Path, *, split: str | None = None,
                     clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """DiDeMo queries -> records with every annotator's window in seconds."""
    builder = GroundingBuilder(path, clamp, split)
    for q in iter_didemo(path):
        builder.add(q.loc, q.qid, q.video_id, q.duration, q.description, q.windows)
    return builder.result()


@reader("didemo_paragraphs", kind="paragraphs")
def read_didemo_paragraphs(path: str | Path, *, split: str | None = None,
                           clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[Paragraph], LoadReport]:
    """DiDeMo queries grouped per video -> one Paragraph per video (see the module docstring)."""
    by_video: dict[str, list[DidemoQuery]] = {}
    for q in iter_didemo(path):
        by_video.setdefault(q.video_id, []).append(q)
    report = LoadReport(str(path))
    policy = WindowPolicy(clamp, report)
    out = []
    for vid, queries in by_video.items():
        if not all(q.windows for q in queries):
            raise next(q.loc for q in queries if not q.windows).error("query has no times")
        ordered = sorted(queries, key=lambda q: (consensus_window(q.windows), int(q.qid) if q.qid.isdigit() else q.qid))
        sentences = [Sentence(q.description, consensus_window(q.windows), q.loc) for q in ordered]
        para = build_paragraph(vid, max(q.duration for q in queries), sentences, policy,
                               Loc(Path(path), record=f"video {vid}"), split)
        if para is not None:
            out.append(para)
    report.check()
    return out, report
