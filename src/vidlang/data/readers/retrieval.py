"""Text-video retrieval splits: MSR-VTT CSVs and MSVD captions + split lists.

* ``msrvtt_ids_csv``: a ``video_id`` column (the 9k / 7k training lists). The captions live in
  ``MSRVTT_data.json``, which is not distributed here, so the caption sets are empty.
* ``msrvtt_jsfusion_csv``: the 1k-A test split, ``key,vid_key,video_id,sentence``; one caption
  per video.
* ``msvd_captions``: ``{vid: [caption, ...]}`` plus a split list (one id per line); every
  caption is kept (multi-caption). An id in the list without captions is dropped and counted.
"""

from __future__ import annotations

import csv
from pathlib import Path

from vidlang.data.readers._common import (
    Loc,
    captions_result,
    expect,
    load_json,
    reader,
    require_file,
)
from vidlang.data.records import LoadReport, VideoCaptions
from vidlang.errors import DataError


def _csv_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line, row) pairs of a CSV that must have ``columns``; a short row names file:line."""
    with open(require_file(path), encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        missing = [c for c in columns if c not in (rows.fieldnames or [])]
        if missing:
            raise DataError(f"missing column(s) {missing}; found {rows.fieldnames}", path, 1)
        out = []
        for row in rows:
            if any(row.get(c) in (None, "") for c in columns):
                raise DataError(f"empty or missing value in column(s) {list(columns)}", path, rows.line_num)
            out.append((rows.line_num, row))
    return out


def _unique(ids: list[tuple[int, str]], path: Path) -> None:
    seen: dict[str, int] = {}
    for line, vid in ids:
        if vid in seen:
            raise DataError(f"video {vid!r} listed twice (first at line {seen[vid]})", path, line)
        seen[vid] = line


@reader("msrvtt_ids_csv", kind="captions")
def read_msrvtt_ids_csv(path: str | Path, *, split: str | None = None) -> tuple[list[VideoCaptions], LoadReport]:
    """MSR-VTT training id list -> caption sets without captions (ids only)."""
    path = Path(path)
    rows = [(line, row["video_id"].strip()) for line, row in _csv_rows(path, ("video_id",))]
    _unique(rows, path)
    return captions_result(path, [VideoCaptions(vid, (), None, split) for _, vid in rows])


@reader("msrvtt_jsfusion_csv", kind="captions")
def read_msrvtt_jsfusion_csv(path: str | Path, *, split: str | None = None) -> tuple[list[VideoCaptions], LoadReport]:
    """MSR-VTT 1k-A (JSFusion) test CSV -> one caption per video."""
    path = Path(path)
    rows = _csv_rows(path, ("video_id", "sentence"))
    _unique([(line, row["video_id"]) for line, row in rows], path)
    return captions_result(path, [VideoCaptions(row["video_id"], (row["sentence"].strip(),), None, split)
                                  for _, row in rows])


def read_id_list(path: str | Path) -> list[tuple[int, str]]:
    """(line, id) for each non-empty line of a split list."""
    path = require_file(path, "split list")
    with open(path, encoding="utf-8") as f:
        return [(n, s.strip()) for n, s in enumerate(f, start=1) if s.strip()]


@reader("msvd_captions", kind="captions")
def read_msvd_captions(path: str | Path, *, split: str | None = None,
                       split_list: str | Path | None = None) -> tuple[list[VideoCaptions], LoadReport]:
    """MSVD ``captions_msvd.json`` -> every caption of each video in ``split_list`` (all videos,
    in file order, when no list is given)."""
    path = Path(path)
    data = expect(load_json(path), dict, Loc(path), "top level")
    for vid, caps in data.items():
        loc = Loc(path, record=vid)
        expect(caps, list, loc, "captions")
        for c in caps:
            expect(c, str, loc, "caption")
    report = LoadReport(str(split_list or path))
    if split_list is None:
        items = [VideoCaptions(vid, tuple(caps), None, split) for vid, caps in data.items()]
        return captions_result(path, items, report=report)
    ids = read_id_list(split_list)
    _unique(ids, Path(split_list))
    items = []
    for line, vid in ids:
        if vid not in data:
            report.drop(split_list, line, f"video {vid!r} has no captions in {path.name}")
            continue
        items.append(VideoCaptions(vid, tuple(data[vid]), None, split))
    return captions_result(path, items, read=len(ids), report=report)
