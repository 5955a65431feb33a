"""How an index is built and searched: :class:`IndexParams`, the same knobs for both backends.

It sits below ``video_index`` and the two backends (all three read it), so the backends never
import the module that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidlang.index.records import VideoIndexError

#: index kinds every backend builds: exact ``flat``, inverted lists ``ivf``, graph ``hnsw``
INDEX_KINDS = ("flat", "ivf", "hnsw")


@dataclass
class IndexParams:
    """How the index is built and searched (the same knobs for both backends)."""

    kind: str = "flat"
    nlist: int = 1024
    nprobe: int = 16
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    train_size: int = 100_000

    def validate(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise VideoIndexError(f"unknown index kind {self.kind!r}; known: {', '.join(INDEX_KINDS)}")
        for name in ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search", "train_size"):
            if getattr(self, name) < 1:
                raise VideoIndexError(f"index parameter {name} must be >= 1, got {getattr(self, name)}")
