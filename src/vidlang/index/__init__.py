"""Search a video collection by sentence: indexes of video embeddings (exact or approximate),
embedded FAISS by default or a Milvus collection (Milvus Lite file or a Milvus cluster)."""

from vidlang.index.params import IndexParams
from vidlang.index.video_index import (
    BACKENDS,
    SearchFilter,
    SearchHit,
    VideoIndex,
    VideoIndexError,
)

__all__ = ["BACKENDS", "IndexParams", "SearchFilter", "SearchHit", "VideoIndex", "VideoIndexError"]
