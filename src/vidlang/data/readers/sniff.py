"""Which registered reader an annotation file needs, from its content (not its suffix).

``sniff_readers(path)`` looks at the shape of the file (the top-level JSON type, the keys of
the first record, the first line of a text or CSV file) and returns the matching readers,
best first: the grounding reader of the format, then its other record kinds. It reads
small files whole and only the head of large ones where the format allows (JSONL, text,
CSV); JSON needs a full parse. An empty list means no known format matched.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from vidlang.errors import DataError

# "VID start end##sentence" (Charades-STA, 2D-TAN / VSLNet lists)
_STA_LINE = re.compile(r"^\S+ +-?[\d.]+ +-?[\d.]+ *##")


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                return line.strip()
    return ""


def _sniff_json_value(data: Any) -> list[str]:
    if isinstance(data, list):
        first = next(iter(data), None)
        if isinstance(first, list) and len(first) == 4 and isinstance(first[0], str) \
                and isinstance(first[2], list):
            return ["cpl_list_json"]
        if isinstance(first, dict) and {"description", "times", "video"} <= set(first):
            return ["didemo_json", "didemo_paragraphs"]
        return []
    if not isinstance(data, dict):
        return []
    if isinstance(data.get("database"), dict):
        return ["youcook2_grounding", "youcook2_paragraphs", "youcook2_captions"]
    key, value = next(iter(data.items()), (None, None))
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return ["msvd_captions"]
    if not isinstance(value, dict) or not {"timestamps", "sentences"} <= set(value):
        return []
    if {"fps", "num_frames"} <= set(value):
        return ["tacos_2dtan"]
    if "duration" in value and str(key).endswith(".avi"):
        return ["tacos_scdm"]  # SCDM TACoS: duration and timestamps in frames
    if "duration" in value:
        return ["timestamps_json", "timestamps_json_paragraphs", "timestamps_json_captions"]
    return []


def sniff_readers(path: str | Path) -> list[str]:
    """Registered reader names that can read ``path``, best first ([] if none is known)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("annotation file not found", path)
    head = _first_line(path)
    if not head:
        return []
    if head.startswith(("{", "[")):
        try:
            first = json.loads(head)
            if isinstance(first, dict) and "qid" in first and "query" in first:
                return ["vidlang_jsonl"]  # one JSON record per line (moment_detr / lighthouse)
        except json.JSONDecodeError:
            pass  # a (multi-line) JSON document, parsed whole below
        try:
            with open(path, encoding="utf-8") as f:
                return _sniff_json_value(json.load(f))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return []
    if _STA_LINE.match(head):
        return ["charades_sta_txt"]
    header = next(csv.reader([head]), [])
    if header == ["video_id"]:
        return ["msrvtt_ids_csv"]
    if {"video_id", "sentence"} <= set(header):
        return ["msrvtt_jsfusion_csv"]
    return []
