"""Statistics of a written SynthVL folder (printed by ``vidlang synth``, quoted in the docs)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vidlang.data.synthvl.config import SPLITS
from vidlang.data.synthvl.loader import SynthVLSplit, load


def conditional_entropy(pairs: Iterable[tuple[str, str]]) -> float:
    """H(second | first) in bits of an empirical distribution of (verb, object) pairs."""
    joint = Counter(pairs)
    total = sum(joint.values())
    if total == 0:
        return 0.0
    first: Counter[str] = Counter()
    for (a, _), n in joint.items():
        first[a] += n
    return -sum(n / total * math.log2(n / first[a]) for (a, _), n in joint.items())


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def split_stats(data: SynthVLSplit) -> dict[str, Any]:
    """Counts and distribution summaries of one split."""
    durations = [float(v["duration"]) for v in data.videos]
    events = [e for v in data.videos for e in v["events"]]
    lengths = [e["end"] - e["start"] for e in events]
    fractions = [(e["end"] - e["start"]) / float(v["duration"]) for v in data.videos for e in v["events"]]
    relations = Counter(v.get("relation") for v in data.videos)
    return {
        "split": data.split,
        "videos": len(data.videos),
        "queries": len(data.grounding),
        "context_queries": sum(1 for r in data.grounding if r.extra.get("context")),
        "questions": len(data.questions),
        "duration_mean": _mean(durations),
        "duration_min": min(durations, default=float("nan")),
        "duration_max": max(durations, default=float("nan")),
        "moment_mean": _mean(lengths),
        "moment_fraction_mean": _mean(fractions),
        "events_per_video": len(events) / max(1, len(data.videos)),
        "compositions": len({(e["verb"], e["object"]) for e in events}),
        "object_given_verb_entropy_bits": conditional_entropy((e["verb"], e["object"]) for e in events),
        "hard_negative_videos": 2 * relations.get("hard_negative", 0),
        "shuffled_order_videos": 2 * relations.get("shuffled_order", 0),
    }


def folder_stats(root: str | Path) -> list[dict[str, Any]]:
    """:func:`split_stats` of every split of the SynthVL folder ``root``."""
    return [split_stats(load(root, split)) for split in SPLITS]


COLUMNS = (  # (key, header, format)
    ("split", "split", "{}"),
    ("videos", "videos", "{}"),
    ("queries", "queries", "{}"),
    ("context_queries", "ctx q", "{}"),
    ("questions", "MC q", "{}"),
    ("duration_mean", "dur s", "{:.1f}"),
    ("moment_mean", "moment s", "{:.1f}"),
    ("moment_fraction_mean", "moment/dur", "{:.2f}"),
    ("events_per_video", "ev/video", "{:.2f}"),
    ("compositions", "comps", "{}"),
    ("object_given_verb_entropy_bits", "H(obj given verb) bits", "{:.2f}"),
    ("hard_negative_videos", "hard-neg", "{}"),
    ("shuffled_order_videos", "shuffled", "{}"),
)


def stats_rows(stats: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(headers, formatted rows) for a table of :func:`folder_stats`."""
    headers = [h for _, h, _ in COLUMNS]
    rows = [[fmt.format(s[key]) for key, _, fmt in COLUMNS] for s in stats]
    return headers, rows


def markdown_table(stats: list[dict[str, Any]]) -> str:
    headers, rows = stats_rows(stats)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
