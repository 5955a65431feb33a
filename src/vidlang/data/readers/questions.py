"""Multiple-choice video questions (the ``mcqa`` task's input), per question source.

``QUESTION_SOURCES`` maps ``data.dataset`` to ``fn(root, split) -> [QuestionEntry]``:
``jsonl`` reads ``<root>/<split>.mcqa.jsonl`` (``{"qid", "vid", "duration", "question",
"candidates", "answer", "window"?, "sentences"?, "windows"?}`` per line); ``synthvl`` reads
SynthVL's questions with each video's event sentences as its time-stamped text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidlang.data.records import iter_jsonl
from vidlang.errors import ConfigError, DataError


@dataclass(frozen=True)
class QuestionEntry:
    """One multiple-choice question about one video. ``window``: its QA span, if annotated;
    ``sentences``/``windows``: the video's time-stamped text (subtitles, event sentences)."""

    qid: str
    video_id: str
    duration: float
    question: str
    candidates: tuple[str, ...]
    answer: int
    window: tuple[float, float] | None = None
    sentences: tuple[str, ...] = ()
    windows: tuple[tuple[float, float], ...] = ()


def read_jsonl_questions(root: str | None, split: str) -> list[QuestionEntry]:
    """``<root>/<split>.mcqa.jsonl``; optional ``window`` (QA span), ``sentences`` + ``windows``.
    A bad record is a DataError naming the file and line."""
    if root is None:
        raise ConfigError("data.root: the jsonl question source needs the folder holding "
                          "<split>.mcqa.jsonl")
    path = Path(root) / f"{split}.mcqa.jsonl"
    out = []
    for line, obj in iter_jsonl(path):
        try:
            window = obj.get("window")
            entry = QuestionEntry(str(obj["qid"]), str(obj["vid"]), float(obj["duration"]),
                                  str(obj["question"]), tuple(str(c) for c in obj["candidates"]),
                                  int(obj["answer"]),
                                  None if window is None else (float(window[0]), float(window[1])),
                                  tuple(str(x) for x in obj.get("sentences", ())),
                                  tuple((float(a), float(b)) for a, b in obj.get("windows", ())))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DataError(f"not a multiple-choice question record ({e})", path, line) from None
        if not 0 <= entry.answer < len(entry.candidates):
            raise DataError(f"answer {entry.answer} is not an index of the "
                            f"{len(entry.candidates)} candidates", path, line, entry.qid)
        out.append(entry)
    return out


def read_synthvl_questions(root: str | None, split: str) -> list[QuestionEntry]:
    """SynthVL's questions; each video's event sentences are its time-stamped text."""
    from vidlang.data import synthvl

    if root is None:
        raise ConfigError("data.root: the synthvl dataset needs the folder written by `vidlang synth`")
    loaded = synthvl.load(root, split)
    paragraphs = {p.video_id: p for p in loaded.paragraphs}
    out = []
    for q in loaded.questions:
        p = paragraphs.get(q.video_id)
        if p is None:
            raise DataError("question about a video without a paragraph", root, record=q.qid)
        out.append(QuestionEntry(q.qid, q.video_id, float(p.duration), q.question,
                                 tuple(q.candidates), int(q.answer), None, tuple(p.sentences),
                                 tuple(p.windows)))
    return out


QUESTION_SOURCES: dict[str, Callable[[str | None, str], list[QuestionEntry]]] = {
    "jsonl": read_jsonl_questions, "synthvl": read_synthvl_questions}


def load_questions(dataset: str, root: str | None, split: str) -> list[QuestionEntry]:
    """The questions of ``split`` from the ``dataset`` source; an unknown source is a
    ConfigError on ``data.dataset`` listing the known ones, an empty split a DataError."""
    source = QUESTION_SOURCES.get(dataset)
    if source is None:
        raise ConfigError(f"data.dataset: no multiple-choice questions for "
                          f"{dataset!r}; known: {sorted(QUESTION_SOURCES)}")
    questions = source(root, split)
    if not questions:
        raise DataError(f"split {split!r} has no questions", root)
    return questions
