"""Record-level problems a reader keeps but a user must hear about: duplicate query ids and
empty queries (grounding), videos without captions and empty captions (retrieval), empty
sentences (paragraphs). ``vidlang data stats`` / ``data validate`` report them; the grounding
pipeline refuses duplicate ids and empty queries, which would otherwise be scored silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from vidlang.errors import DataError

# why a file may have no captions at all (MSR-VTT's 9k / 7k training lists name videos only)
NO_CAPTIONS_NOTE = ("the file lists video ids only (MSR-VTT's train_9k / train_7k lists: the "
                    "captions are in MSRVTT_data.json, which is not distributed with them)")


def record_problems(kind: str, records: Sequence[Any]) -> dict[str, list[str]]:
    """Problem name -> the ids (qid or video id) it affects, in file order; empty lists left out."""
    found: dict[str, list[str]] = {}
    if kind == "grounding":
        counts = Counter(r.qid for r in records)
        found["duplicate_qids"] = [q for q, n in counts.items() if n > 1]
        found["empty_queries"] = [r.qid for r in records if not r.query.strip()]
    elif kind == "captions":
        found["videos_without_captions"] = [r.video_id for r in records if not r.captions]
        found["empty_captions"] = [r.video_id for r in records if any(not c.strip() for c in r.captions)]
    else:
        found["empty_sentences"] = [r.video_id for r in records if any(not s.strip() for s in r.sentences)]
    return {k: v for k, v in found.items() if v}


def describe_problems(problems: dict[str, list[str]], kind: str, records: Sequence[Any],
                      max_ids: int = 3) -> list[str]:
    """One readable line per problem (count and the first ids)."""
    lines = []
    for name, ids in problems.items():
        shown = ", ".join(ids[:max_ids]) + (f" ... (+{len(ids) - max_ids})" if len(ids) > max_ids else "")
        text = f"{len(ids)} {name.replace('_', ' ')}: {shown}"
        if name == "videos_without_captions" and len(ids) == len(records):
            text = f"no captions at all ({len(ids)} videos): {NO_CAPTIONS_NOTE}"
        lines.append(text)
    return lines


def require_clean_queries(records: Sequence[Any], source: str, split: str) -> None:
    """DataError when grounding ``records`` repeat a qid (predictions are matched by qid) or
    have an empty query (it would be scored as if it were a query)."""
    problems = record_problems("grounding", records)
    for name in ("duplicate_qids", "empty_queries"):
        ids = problems.get(name)
        if ids:
            raise DataError(f"split {split!r}: {len(ids)} {name.replace('_', ' ')} (first: {ids[0]}); "
                            f"fix or remove them (`vidlang data validate` lists them all)", source)
