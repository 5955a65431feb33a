"""Pieces every reader shares: registration, number parsing, the window policy, record builders.

The window policy (MMN's convention, ``ClampPolicy``): a window is clipped to [0, duration]
(``clamp``, counted as clamped), or its record dropped (``drop``), or an error raised
(``error``); a window left with start >= end is then removed. A record that loses all its
windows is dropped. Every clamp and drop is recorded in the ``LoadReport`` with file:line, or
with the record key for JSON formats.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from vidlang.data.records import (
    ClampPolicy,
    GroundingRecord,
    LoadReport,
    Paragraph,
    VideoCaptions,
    Window,
)
from vidlang.errors import DataError
from vidlang.registry import READERS

F = TypeVar("F", bound=Callable[..., Any])


def reader(name: str, kind: str) -> Callable[[F], F]:
    """Register a reader under ``name``; ``kind`` is the record type it returns
    (``grounding``, ``captions`` or ``paragraphs``), stored as ``fn.record_kind``."""

    def deco(fn: F) -> F:
        fn.record_kind = kind  # type: ignore[attr-defined]
        return READERS.register(name)(fn)

    return deco


def record_kind(reader_fn: Any) -> str:
    """The record type a registered reader returns."""
    return getattr(reader_fn, "record_kind", "grounding")


@dataclass(frozen=True)
class Loc:
    """Where a record is: file and 1-based line, or file and record key (JSON dict formats)."""

    path: Path
    line: int | None = None
    record: str | None = None

    def error(self, message: str) -> DataError:
        return DataError(message, self.path, self.line, self.record)


def require_file(path: str | Path, what: str = "annotation file") -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found", path)
    return path


def load_json(path: str | Path) -> Any:
    """Parse a JSON file; a syntax error names file:line."""
    path = require_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg} at column {e.colno})", path, e.lineno) from None


def expect(value: Any, typ: type | tuple[type, ...], loc: Loc, what: str) -> Any:
    """``value`` if it has type ``typ``, else a DataError saying what was expected."""
    if not isinstance(value, typ) or isinstance(value, bool):
        name = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        raise loc.error(f"{what}: expected {name}, got {type(value).__name__} {value!r:.60}")
    return value


def field_of(obj: dict[str, Any], key: str, loc: Loc) -> Any:
    if key not in obj:
        raise loc.error(f"missing field {key!r}")
    return obj[key]


def to_float(value: Any, loc: Loc, what: str) -> float:
    """A finite number from an int, float or numeric string; anything else names the field."""
    if isinstance(value, bool):
        raise loc.error(f"non-numeric {what} {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise loc.error(f"non-numeric {what} {value!r:.60}") from None
    if not math.isfinite(out):
        raise loc.error(f"{what} is not finite ({value!r})")
    return out


def to_window(pair: Any, loc: Loc, scale: float = 1.0, what: str = "window") -> Window:
    """A [start, end] pair of numbers (times ``scale``) as a float tuple."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise loc.error(f"{what}: expected [start, end], got {pair!r:.60}")
    return (to_float(pair[0], loc, f"{what} start") * scale, to_float(pair[1], loc, f"{what} end") * scale)


def _fmt(x: float) -> str:
    """Shortest exact form, so a clamp by 1e-14 (70.28999999999999 vs 70.29) is visible."""
    return repr(float(x))


@dataclass
class Fitted:
    """Result of fitting one record's windows: those kept, notes on changes, and the reason the
    record must go (``refused``) when it must."""

    kept: list[Window]
    notes: list[str]
    refused: str | None = None


class WindowPolicy:
    """Applies a ClampPolicy to windows, recording what it did in a LoadReport."""

    def __init__(self, clamp: ClampPolicy | str, report: LoadReport) -> None:
        self.clamp = ClampPolicy(clamp)
        self.report = report

    def fit(self, windows: Sequence[Window], duration: float, loc: Loc) -> Fitted:
        """Windows inside [0, duration] with notes on what changed. Raises under ``error``."""
        out = Fitted([], [])
        for start, end in windows:
            span = f"[{_fmt(start)}, {_fmt(end)}]"
            clamped = False
            if start < 0 or end > duration:
                problem = f"window {span} leaves [0, {_fmt(duration)}]"
                if self.clamp is ClampPolicy.ERROR:
                    raise loc.error(problem)
                if self.clamp is ClampPolicy.DROP:
                    out.refused = problem
                    return out
                start, end, clamped = max(start, 0.0), min(end, duration), True
                out.notes.append(f"{problem}: clamped to [{_fmt(start)}, {_fmt(end)}]")
            if start >= end:
                problem = f"window {span} has start >= end" + (" after clamping" if clamped else "")
                if self.clamp is ClampPolicy.ERROR:
                    raise loc.error(problem)
                out.notes.append(f"{problem}: removed")
                continue
            out.kept.append((start, end))
        if windows and not out.kept:
            out.refused = "; ".join(out.notes)
        return out

    def drop(self, reason: str, loc: Loc) -> None:
        """Record a dropped record (raises instead under ``error``)."""
        if self.clamp is ClampPolicy.ERROR:
            raise loc.error(reason)
        self.report.drop(loc.path, loc.line, reason, loc.record)

    def note(self, notes: list[str], loc: Loc) -> None:
        """Record the changes made to a kept record as one clamp entry."""
        if notes:
            self.report.clamp(loc.path, loc.line, "; ".join(notes), loc.record)

    def check_duration(self, duration: float, loc: Loc) -> bool:
        """False (record dropped, or an error under ``error``) for a duration <= 0."""
        if duration > 0:
            return True
        self.drop(f"duration {_fmt(duration)} is not positive", loc)
        return False


class GroundingBuilder:
    """Collects GroundingRecords through the window policy and keeps the report's counts."""

    def __init__(self, source: str | Path, clamp: ClampPolicy | str, split: str | None) -> None:
        self.report = LoadReport(str(source))
        self.policy = WindowPolicy(clamp, self.report)
        self.split = split
        self.records: list[GroundingRecord] = []

    def add(self, loc: Loc, qid: str, video_id: str, duration: float, query: str,
            windows: Sequence[Window], **fields: Any) -> GroundingRecord | None:
        """Add one record (``fields``: other GroundingRecord fields; ``split`` defaults to the
        builder's) unless the window policy drops it."""
        self.report.read += 1
        if not self.policy.check_duration(duration, loc):
            return None
        fitted = self.policy.fit(windows, duration, loc)
        if fitted.refused is not None:
            self.policy.drop(fitted.refused, loc)
            return None
        self.policy.note(fitted.notes, loc)
        fields.setdefault("split", self.split)
        record = GroundingRecord(qid=qid, video_id=video_id, duration=duration, query=query,
                                 windows=tuple(fitted.kept), **fields)
        self.records.append(record)
        self.report.kept += 1
        return record

    def drop(self, loc: Loc, reason: str) -> None:
        """Count a record read but not kept (e.g. its video has no duration)."""
        self.report.read += 1
        self.policy.drop(reason, loc)

    def result(self) -> tuple[list[GroundingRecord], LoadReport]:
        self.report.check()
        return self.records, self.report


@dataclass
class Sentence:
    """One sentence of a video with its window and where it came from (for paragraphs)."""

    text: str
    window: Window
    loc: Loc


def build_paragraph(video_id: str, duration: float, sentences: Sequence[Sentence],
                    policy: WindowPolicy, loc: Loc, split: str | None) -> Paragraph | None:
    """A Paragraph with sentences sorted by start time (stable), windows through ``policy``;
    a sentence whose window is degenerate is left out and noted; ``None`` if none is left."""
    policy.report.read += 1
    if not policy.check_duration(duration, loc):
        return None
    texts: list[str] = []
    windows: list[Window] = []
    notes: list[str] = []
    for k, sent in sorted(enumerate(sentences), key=lambda ks: (ks[1].window[0], ks[0])):
        fitted = policy.fit([sent.window], duration, sent.loc)
        if fitted.refused is not None:
            notes.append(f"sentence {k} removed: {fitted.refused}")
            continue
        notes.extend(f"sentence {k}: {n}" for n in fitted.notes)
        texts.append(sent.text)
        windows.append(fitted.kept[0])
    if not texts:
        policy.drop("no sentence left: " + "; ".join(notes), loc)
        return None
    policy.note(notes, loc)
    policy.report.kept += 1
    return Paragraph(video_id=video_id, duration=duration, sentences=tuple(texts),
                     windows=tuple(windows), split=split)


def captions_result(source: str | Path, items: Sequence[VideoCaptions], read: int | None = None,
                    report: LoadReport | None = None) -> tuple[list[VideoCaptions], LoadReport]:
    """Wrap caption sets in a checked report (``read`` defaults to the number kept)."""
    report = report or LoadReport(str(source))
    report.read += len(items) if read is None else read
    report.kept += len(items)
    report.check()
    return list(items), report
