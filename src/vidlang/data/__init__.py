"""Data: the canonical records, annotation readers, feature stores and the SynthVL benchmark."""

from vidlang.data.records import (
    ClampPolicy,
    GroundingRecord,
    LoadReport,
    Paragraph,
    RecordIssue,
    VideoCaptions,
)

__all__ = [
    "ClampPolicy",
    "GroundingRecord",
    "LoadReport",
    "Paragraph",
    "RecordIssue",
    "VideoCaptions",
]
