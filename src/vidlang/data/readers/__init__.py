"""Annotation readers for the real dataset formats; importing this package registers every
reader in ``vidlang.registry.READERS`` and the standard datasets in ``DATASETS``.

A reader is ``fn(path, *, split=None, [clamp=ClampPolicy.CLAMP], **files) -> (records,
LoadReport)`` with attribute ``record_kind`` (``grounding``, ``captions`` or ``paragraphs``).
"""

from vidlang.data.readers import (  # noqa: F401  (imported to register)
    charades,
    didemo,
    moment_detr,
    retrieval,
    tacos,
    timestamps_json,
    youcook2,
)
from vidlang.data.readers._common import record_kind

__all__ = ["record_kind"]

import vidlang.data.catalog  # noqa: E402,F401  (registers the standard datasets)
