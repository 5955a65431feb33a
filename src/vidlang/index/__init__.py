"""Search a video collection by sentence: FAISS indexes of video embeddings (exact or approximate)."""

from vidlang.index.video_index import IndexParams, SearchHit, VideoIndex, VideoIndexError

__all__ = ["IndexParams", "SearchHit", "VideoIndex", "VideoIndexError"]
