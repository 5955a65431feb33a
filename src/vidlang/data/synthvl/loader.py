"""Read a SynthVL folder back as vidlang's canonical records, and the ``synthvl`` dataset.

Grounding records go through the same ``vidlang_jsonl`` reader as real data; captions,
paragraphs and multiple-choice questions come from ``videos_{split}.jsonl``. A malformed video
line raises :class:`DataError` naming file:line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidlang.data.records import (
    ClampPolicy,
    GroundingRecord,
    LoadReport,
    Paragraph,
    VideoCaptions,
    iter_jsonl,
)
from vidlang.data.synthvl.config import SPLITS
from vidlang.data.synthvl.generate import (
    FEATURES_FILE,
    FORMAT,
    META_FILE,
    grounding_path,
    videos_path,
)
from vidlang.data.synthvl.language import MCQuestion
from vidlang.errors import ConfigError, DataError
from vidlang.registry import DATASETS, READERS


@dataclass(frozen=True)
class SynthVLSplit:
    """Everything of one split: records of each task, the questions, and where features are."""

    split: str
    grounding: list[GroundingRecord]
    captions: list[VideoCaptions]
    paragraphs: list[Paragraph]
    questions: list[MCQuestion]
    videos: list[dict[str, Any]]  # the raw per-video objects (events with verb / object / times)
    features_path: Path
    meta: dict[str, Any]


def read_meta(root: str | Path) -> dict[str, Any]:
    """``meta.json`` of a SynthVL folder (DataError if it is missing or not SynthVL)."""
    path = Path(root) / META_FILE
    if not path.is_file():
        raise DataError("not a SynthVL folder (no meta.json); create one with `vidlang synth`", path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg})", path, e.lineno) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataError(f"meta.json has format {meta.get('format') if isinstance(meta, dict) else None!r},"
                        f" expected {FORMAT!r}", path)
    return meta


def _check_split(split: str, meta: dict[str, Any]) -> None:
    """``split`` must be one of the folder's splits (``meta.json: splits``; SynthVL-video
    folders have no test_novel)."""
    known = list(meta.get("splits", SPLITS))
    if split not in known:
        raise ConfigError(f"synthvl: unknown split {split!r}; known: {', '.join(known)}")


def _root(root: str | Path | None) -> Path:
    """``data.root`` of the synthvl dataset; a folder without meta.json is an error naming the
    key and the fix (the default root ``synthvl_data`` rarely exists in the current folder)."""
    if root is None:
        raise ConfigError("data.root: the synthvl dataset needs the folder written by `vidlang synth`")
    if not (Path(root) / META_FILE).is_file():
        raise ConfigError(f"data.root: {root} is not a SynthVL folder (no {META_FILE}); write one with "
                          f"`vidlang synth --preset tiny --out DIR` and pass --set data.root=DIR")
    return Path(root)


def _windows(value: Any, path: Path, line: int) -> tuple[tuple[float, float], ...]:
    try:
        return tuple((float(s), float(e)) for s, e in value)
    except (TypeError, ValueError):
        raise DataError(f"bad windows {value!r}", path, line) from None


def _question(obj: dict[str, Any], vid: str, path: Path, line: int) -> MCQuestion:
    try:
        q = MCQuestion(str(obj["qid"]), vid, str(obj["kind"]), str(obj["question"]),
                       tuple(str(c) for c in obj["candidates"]), int(obj["answer"]))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"bad question ({e!r})", path, line, record=vid) from None
    if not 0 <= q.answer < len(q.candidates):
        raise DataError(f"answer index {q.answer} outside {len(q.candidates)} candidates", path, line, record=q.qid)
    return q


def read_videos(root: str | Path, split: str) -> tuple[list[dict[str, Any]], list[VideoCaptions],
                                                       list[Paragraph], list[MCQuestion], LoadReport]:
    """Parse ``videos_{split}.jsonl`` into captions, paragraphs and questions."""
    path = videos_path(root, split)
    if not path.is_file():
        raise DataError("SynthVL split file missing", path)
    report = LoadReport(str(path))
    videos: list[dict[str, Any]] = []
    captions: list[VideoCaptions] = []
    paragraphs: list[Paragraph] = []
    qs: list[MCQuestion] = []
    for line, obj in iter_jsonl(path):
        report.read += 1
        try:
            vid, duration = str(obj["vid"]), float(obj["duration"])
            caps = tuple(str(c) for c in obj["captions"])
            para = obj["paragraph"]
            sentences = tuple(str(s) for s in para["sentences"])
            windows = _windows(para["windows"], path, line)
            raw_questions = list(obj["questions"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"missing or bad field ({e!r})", path, line) from None
        if len(sentences) != len(windows):
            raise DataError(f"{len(sentences)} sentences but {len(windows)} windows", path, line, record=vid)
        videos.append(obj)
        captions.append(VideoCaptions(vid, caps, duration, split))
        paragraphs.append(Paragraph(vid, duration, sentences, windows, split))
        qs.extend(_question(q, vid, path, line) for q in raw_questions)
        report.kept += 1
    return videos, captions, paragraphs, qs, report


def load_grounding(root: str | Path, split: str,
                   clamp: ClampPolicy | str = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
    """Grounding records of a split through the canonical ``vidlang_jsonl`` reader."""
    _check_split(split, read_meta(root))
    return READERS.get("vidlang_jsonl")(grounding_path(root, split), split=split, clamp=clamp)


def load(root: str | Path, split: str) -> SynthVLSplit:
    """All records of ``split`` of the SynthVL folder ``root``."""
    meta = read_meta(root)
    _check_split(split, meta)
    grounding, _ = load_grounding(root, split)
    videos, captions, paragraphs, qs, _ = read_videos(root, split)
    return SynthVLSplit(split, grounding, captions, paragraphs, qs, videos,
                        Path(root) / FEATURES_FILE, meta)


class SynthVLDataset:
    """The ``synthvl`` entry of ``DATASETS``: ``root`` is a folder written by ``vidlang synth``."""

    name = "synthvl"

    def splits(self, kind: str) -> list[str]:
        return list(SPLITS)

    def load_grounding(self, split: str, root: str | Path | None = None,
                       clamp: ClampPolicy = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
        return load_grounding(_root(root), split, clamp)

    def load_captions(self, split: str, root: str | Path | None = None) -> tuple[list[VideoCaptions], LoadReport]:
        _check_split(split, read_meta(_root(root)))
        _, captions, _, _, report = read_videos(_root(root), split)
        return captions, report

    def load_paragraphs(self, split: str, root: str | Path | None = None) -> tuple[list[Paragraph], LoadReport]:
        _check_split(split, read_meta(_root(root)))
        _, _, paragraphs, _, report = read_videos(_root(root), split)
        return paragraphs, report


DATASETS.register("synthvl")(SynthVLDataset())
