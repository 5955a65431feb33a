"""Charades-STA's TALL text format and the CPL list JSON (Charades-STA and ActivityNet).

``charades_sta_txt``: lines ``vid start end##sentence`` (seconds); durations come from the
``length`` column of ``Charades_v1_{train,test}.csv`` (argument ``durations``: one or several
CSV files, or a ``{vid: seconds}`` JSON). By default the two CSVs next to the text file are used.
Query ids are ``{vid}_{k}`` (k-th line of that video). A video with no duration is dropped and
counted (an error under ``ClampPolicy.ERROR``).

``cpl_list_json``: a JSON list of ``[vid, duration, [start, end], sentence]``; query ids
``{vid}_{k}`` likewise; records are located by list index (``#i``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from vidlang.data.readers._common import (
    GroundingBuilder,
    Loc,
    expect,
    load_json,
    reader,
    require_file,
    to_float,
    to_window,
)
from vidlang.data.records import ClampPolicy, GroundingRecord, LoadReport
from vidlang.errors import DataError

DEFAULT_DURATION_FILES = ("Charades_v1_train.csv", "Charades_v1_test.csv")


def read_charades_csv_durations(path: str | Path) -> dict[str, float]:
    """``{id: length}`` from a Charades_v1 CSV; a bad row names file:line."""
    path = require_file(path, "durations file")
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f)
        header = next(rows, None)
        if not header or "id" not in header or "length" not in header:
            raise DataError(f"expected columns 'id' and 'length', found {header}", path, 1)
        id_col, len_col = header.index("id"), header.index("length")
        out: dict[str, float] = {}
        for row in rows:
            loc = Loc(path, rows.line_num)
            if not row:
                continue
            if len(row) != len(header):
                raise loc.error(f"expected {len(header)} columns, found {len(row)}")
            out[row[id_col]] = to_float(row[len_col], loc, "length")
    return out


def read_durations(paths: str | Path | Sequence[str | Path]) -> dict[str, float]:
    """Durations from Charades CSVs or ``{vid: seconds}`` JSON files, merged in order."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: dict[str, float] = {}
    for p in paths:
        p = Path(p)
        if p.suffix == ".json":
            data = expect(load_json(p), dict, Loc(p), "durations")
            out.update({str(k): to_float(v, Loc(p, record=str(k)), "duration") for k, v in data.items()})
        else:
            out.update(read_charades_csv_durations(p))
    return out


def parse_sta_line(raw: str, loc: Loc) -> tuple[str, float, float, str]:
    """``vid start end##sentence`` -> its four fields; a malformed line names file:line."""
    head, sep, sentence = raw.partition("##")
    parts = head.split()
    if not sep or len(parts) != 3:
        raise loc.error(f"expected 'vid start end##sentence', got {raw.strip()!r:.80}")
    vid, start, end = parts
    return vid, to_float(start, loc, "start time"), to_float(end, loc, "end time"), sentence.strip()


@reader("charades_sta_txt", kind="grounding")
def read_charades_sta_txt(path: str | Path, *, split: str | None = None,
                          clamp: ClampPolicy | str = ClampPolicy.CLAMP,
                          durations: str | Path | Sequence[str | Path] | None = None,
                          ) -> tuple[list[GroundingRecord], LoadReport]:
    """TALL-format Charades-STA lines -> records; ends beyond the video length are clamped."""
    path = require_file(path)
    if durations is None:
        durations = [path.parent / name for name in DEFAULT_DURATION_FILES]
    lengths = read_durations(durations)
    builder = GroundingBuilder(path, clamp, split)
    per_video: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            loc = Loc(path, lineno)
            vid, start, end, sentence = parse_sta_line(raw, loc)
            k = per_video.get(vid, 0)
            per_video[vid] = k + 1
            if vid not in lengths:
                builder.drop(loc, f"no duration for video {vid!r} in the durations file(s)")
                continue
            builder.add(loc, f"{vid}_{k}", vid, lengths[vid], sentence, [(start, end)])
    return builder.result()


@reader("cpl_list_json", kind="grounding")
def read_cpl_list_json(path: str | Path, *, split: str | None = None,
                       clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """CPL's ``[[vid, duration, [start, end], sentence], ...]`` -> records."""
    path = Path(path)
    data = expect(load_json(path), list, Loc(path), "top level")
    builder = GroundingBuilder(path, clamp, split)
    per_video: dict[str, int] = {}
    for i, item in enumerate(data):
        loc = Loc(path, record=f"#{i}")
        if not isinstance(item, list) or len(item) != 4:
            raise loc.error(f"expected [vid, duration, [start, end], sentence], got {json.dumps(item)[:80]}")
        vid = expect(item[0], str, loc, "video id")
        sentence = expect(item[3], str, loc, "sentence")
        k = per_video.get(vid, 0)
        per_video[vid] = k + 1
        builder.add(loc, f"{vid}_{k}", vid, to_float(item[1], loc, "duration"), sentence,
                    [to_window(item[2], loc)])
    return builder.result()
