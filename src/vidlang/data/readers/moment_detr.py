"""moment_detr-style JSONL: QVHighlights, the lighthouse releases, and vidlang's own format.

One object per line: ``{qid, query, duration, vid, relevant_windows: [[s, e], ...]}``, plus
``relevant_clip_ids`` and ``saliency_scores`` (QVHighlights) which are kept. Lines without
``relevant_windows`` (unlabelled test files) are kept with no windows. Registered as
``moment_detr_jsonl``, ``lighthouse_jsonl`` and ``vidlang_jsonl`` (the canonical format).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidlang.data.readers._common import (
    GroundingBuilder,
    Loc,
    expect,
    field_of,
    reader,
    require_file,
    to_float,
    to_window,
)
from vidlang.data.records import ClampPolicy, GroundingRecord, LoadReport, iter_jsonl

_KNOWN = {"qid", "query", "duration", "vid", "relevant_windows", "relevant_clip_ids",
          "saliency_scores", "split"}


def _int_tuple(value: Any, loc: Loc, what: str) -> tuple[int, ...]:
    expect(value, list, loc, what)
    return tuple(int(expect(v, int, loc, what)) for v in value)


@reader("moment_detr_jsonl", kind="grounding")
def read_moment_detr_jsonl(path: str | Path, *, split: str | None = None,
                           clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """moment_detr / lighthouse / vidlang JSONL -> records (saliency fields kept)."""
    path = require_file(path)
    builder = GroundingBuilder(path, clamp, split)
    for lineno, obj in iter_jsonl(path):
        loc = Loc(path, lineno)
        qid = field_of(obj, "qid", loc)
        windows = [to_window(w, loc, what="relevant window")
                   for w in expect(obj.get("relevant_windows", []), list, loc, "relevant_windows")]
        clip_ids = obj.get("relevant_clip_ids")
        scores = obj.get("saliency_scores")
        saliency = None if scores is None else tuple(
            _int_tuple(s, loc, "saliency_scores") for s in expect(scores, list, loc, "saliency_scores"))
        if clip_ids is not None and saliency is not None and len(clip_ids) != len(saliency):
            raise loc.error(f"{len(clip_ids)} relevant_clip_ids but {len(saliency)} saliency_scores")
        extra = {k: v for k, v in obj.items() if k not in _KNOWN}
        builder.add(loc, str(qid), str(field_of(obj, "vid", loc)),
                    to_float(field_of(obj, "duration", loc), loc, "duration"),
                    expect(field_of(obj, "query", loc), str, loc, "query"), windows,
                    relevant_clip_ids=None if clip_ids is None else _int_tuple(clip_ids, loc, "relevant_clip_ids"),
                    saliency_scores=saliency, extra=extra,
                    split=split if split is not None else obj.get("split"))
    return builder.result()


READERS_ALIASES = ("lighthouse_jsonl", "vidlang_jsonl")
for _alias in READERS_ALIASES:
    reader(_alias, kind="grounding")(read_moment_detr_jsonl)
