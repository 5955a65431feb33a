"""YouCook2's original ``youcookii_annotations_trainval.json``:
``{"database": {vid: {duration, subset, recipe_type, annotations: [{segment, id, sentence}]}}}``
with segments in seconds. ``split`` selects the subset (``train`` = ``training``, ``val`` =
``validation``; ``None`` = all). Gives grounding records (qid ``{vid}_{k}``, k = the annotation index, equal to its ``id``), paragraphs
(segments sorted by start) and caption sets (the segment sentences, in order).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vidlang.data.readers._common import (
    Loc,
    Sentence,
    expect,
    field_of,
    load_json,
    reader,
    to_float,
    to_window,
)
from vidlang.data.readers.timestamps_json import (
    VideoEntry,
    captions_from,
    grounding_from,
    paragraphs_from,
)
from vidlang.data.records import ClampPolicy, GroundingRecord, LoadReport, Paragraph, VideoCaptions
from vidlang.errors import ConfigError

SUBSETS = {"train": "training", "val": "validation", "test": "testing"}


def iter_youcook2(path: str | Path, split: str | None) -> Iterator[VideoEntry]:
    """Videos of the chosen subset, as timestamp entries (qids use the annotation ``id``)."""
    path = Path(path)
    if split is not None and split not in SUBSETS:
        raise ConfigError(f"youcook2: unknown split {split!r}; known: {', '.join(SUBSETS)}")
    top = expect(load_json(path), dict, Loc(path), "top level")
    database = expect(field_of(top, "database", Loc(path)), dict, Loc(path), "database")
    for vid, entry in database.items():
        loc = Loc(path, record=vid)
        expect(entry, dict, loc, "video entry")
        if split is not None and entry.get("subset") != SUBSETS[split]:
            continue
        duration = to_float(field_of(entry, "duration", loc), loc, "duration")
        sentences = []
        for k, ann in enumerate(expect(field_of(entry, "annotations", loc), list, loc, "annotations")):
            aloc = Loc(path, record=f"{vid}[{k}]")
            expect(ann, dict, aloc, "annotation")
            sentences.append(Sentence(expect(field_of(ann, "sentence", aloc), str, aloc, "sentence"),
                                      to_window(field_of(ann, "segment", aloc), aloc, what="segment"), aloc))
        yield VideoEntry(vid, duration, sentences, loc)


@reader("youcook2_grounding", kind="grounding")
def read_youcook2_grounding(path: str | Path, *, split: str | None = None,
                            clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """One record per annotated segment."""
    return grounding_from(iter_youcook2(path, split), Path(path), clamp, split)


@reader("youcook2_paragraphs", kind="paragraphs")
def read_youcook2_paragraphs(path: str | Path, *, split: str | None = None,
                             clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[Paragraph], LoadReport]:
    """One paragraph per video, segments sorted by start time."""
    return paragraphs_from(iter_youcook2(path, split), Path(path), clamp, split)


@reader("youcook2_captions", kind="captions")
def read_youcook2_captions(path: str | Path, *, split: str | None = None) -> tuple[list[VideoCaptions], LoadReport]:
    """One caption set per video (its segment sentences)."""
    return captions_from(iter_youcook2(path, split), Path(path), split)
