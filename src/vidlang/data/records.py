"""The canonical data model every reader produces and every model, metric and command consumes.

* :class:`GroundingRecord` - one query: ``qid, video_id, duration (s), query, windows [(s, e)]``.
* :class:`VideoCaptions` - one video's caption set (text-video retrieval).
* :class:`Paragraph` - one video's ordered sentences with their windows (paragraph tasks).
* :class:`LoadReport` - what a reader read, kept, clamped and dropped, each with file:line.

Times are always seconds. On disk the canonical grounding format is moment_detr-style JSONL:
``{"qid", "vid", "duration", "query", "relevant_windows": [[s, e], ...]}``, so annotations and
the evaluator's ground-truth files are the same thing.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidlang.errors import DataError

Window = tuple[float, float]


class ClampPolicy(str, enum.Enum):
    """What a reader does with a window that leaves [0, duration].

    ``clamp`` (default) clips it to [0, duration] and counts it as clamped; a window left with
    start >= end is then dropped and counted. ``drop`` drops the record. ``error`` raises.
    """

    CLAMP = "clamp"
    DROP = "drop"
    ERROR = "error"


@dataclass(frozen=True)
class GroundingRecord:
    """One natural-language query about one video, with its ground-truth windows in seconds."""

    qid: str
    video_id: str
    duration: float
    query: str
    windows: tuple[Window, ...]
    split: str | None = None
    # QVHighlights-style saliency: ids of 2 s clips and one score tuple (per annotator) per clip.
    relevant_clip_ids: tuple[int, ...] | None = None
    saliency_scores: tuple[tuple[int, ...], ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        """The moment_detr-style JSON object (the canonical on-disk form)."""
        out: dict[str, Any] = {
            "qid": self.qid,
            "vid": self.video_id,
            "duration": self.duration,
            "query": self.query,
            "relevant_windows": [list(w) for w in self.windows],
        }
        if self.relevant_clip_ids is not None:
            out["relevant_clip_ids"] = list(self.relevant_clip_ids)
        if self.saliency_scores is not None:
            out["saliency_scores"] = [list(s) for s in self.saliency_scores]
        if self.split is not None:
            out["split"] = self.split
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class VideoCaptions:
    """All captions of one video, for text-video retrieval (one or many per video)."""

    video_id: str
    captions: tuple[str, ...]
    duration: float | None = None
    split: str | None = None


@dataclass(frozen=True)
class Paragraph:
    """One video's sentences in temporal order, with each sentence's window in seconds."""

    video_id: str
    duration: float
    sentences: tuple[str, ...]
    windows: tuple[Window, ...]
    split: str | None = None

    def text(self, sep: str = " ") -> str:
        """The sentences joined into one paragraph (CLIP4Clip's paragraph-retrieval protocol)."""
        return sep.join(s.strip() for s in self.sentences)


@dataclass(frozen=True)
class RecordIssue:
    """One clamped or dropped record: where it is and why."""

    path: str
    line: int | None
    reason: str
    record: str | None = None

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line is not None else "")
        rec = f" [{self.record}]" if self.record else ""
        return f"{where}{rec}: {self.reason}"


@dataclass
class LoadReport:
    """Counts of what a reader did, so nothing is silently clamped or lost.

    ``read`` counts input records; ``kept`` those returned; ``clamped`` and ``dropped`` list each
    affected record with file:line and the reason. ``read == kept + len(dropped)`` always holds.
    """

    source: str
    read: int = 0
    kept: int = 0
    clamped: list[RecordIssue] = field(default_factory=list)
    dropped: list[RecordIssue] = field(default_factory=list)

    def clamp(self, path: str | Path, line: int | None, reason: str, record: str | None = None) -> None:
        self.clamped.append(RecordIssue(str(path), line, reason, record))

    def drop(self, path: str | Path, line: int | None, reason: str, record: str | None = None) -> None:
        self.dropped.append(RecordIssue(str(path), line, reason, record))

    def merge(self, other: LoadReport) -> LoadReport:
        """Add another report's counts into this one (for readers that read several files)."""
        self.read += other.read
        self.kept += other.kept
        self.clamped.extend(other.clamped)
        self.dropped.extend(other.dropped)
        return self

    def check(self) -> None:
        if self.read != self.kept + len(self.dropped):
            raise AssertionError(
                f"{self.source}: report does not add up: read {self.read} != kept {self.kept}"
                f" + dropped {len(self.dropped)}"
            )

    def summary(self, max_items: int = 5) -> str:
        """A short human-readable account, listing the first few clamped and dropped records."""
        lines = [
            f"{self.source}: read {self.read}, kept {self.kept}, "
            f"clamped {len(self.clamped)}, dropped {len(self.dropped)}"
        ]
        for title, items in (("dropped", self.dropped), ("clamped", self.clamped)):
            for issue in items[:max_items]:
                lines.append(f"  {title}: {issue}")
            if len(items) > max_items:
                lines.append(f"  ... and {len(items) - max_items} more {title}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "kept": self.kept,
            "clamped": [str(i) for i in self.clamped],
            "dropped": [str(i) for i in self.dropped],
        }


def write_grounding_jsonl(records: Iterable[GroundingRecord], path: str | Path) -> None:
    """Write records in the canonical moment_detr-style JSONL form."""
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-empty line; bad JSON names file:line."""
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataError(f"invalid JSON ({e.msg} at column {e.colno})", path, lineno) from None
            if not isinstance(obj, dict):
                raise DataError(f"expected a JSON object, got {type(obj).__name__}", path, lineno)
            yield lineno, obj
