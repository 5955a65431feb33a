"""What ``vidlang serve`` holds in memory: the index, the models and the registered video
files, loaded once at start-up and shared by every request."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidlang.errors import ConfigError, DataError

log = logging.getLogger("vidlang.serve")


@dataclass
class ServeSettings:
    """Limits applied to every request (validated before any model runs)."""

    max_query_chars: int = 300
    max_k: int = 100
    max_moments: int = 20
    #: windows drawn on a video's timeline strip in the page
    timeline_windows: int = 10
    thumbnail_cache: int = 4096


@dataclass
class Collection:
    """An index with its query encoder, an optional grounding model and the video files."""

    index: Any  # vidlang.index.VideoIndex (public API: video_ids, meta, search, __len__)
    retrieval: Any  # vidlang.inference.RetrievalPredictor
    grounding: Any | None  # vidlang.inference.GroundingPredictor
    store: Any | None  # feature store of the indexed videos (durations, grounding features)
    videos: dict[str, Path]
    refused: dict[str, str] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    settings: ServeSettings = field(default_factory=ServeSettings)

    def __post_init__(self) -> None:
        self._known = set(self.index.video_ids)
        # one lock around the models and the feature file: torch inference and h5py reads are
        # serialised; everything else (HTML, streaming, thumbnails) runs concurrently
        self._compute = threading.Lock()
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()
        self._thumb_lock = threading.Lock()

    # ---------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, index_dir: str | Path, grounding_ckpt: str | Path | None = None,
             videos_dir: str | Path | None = None, ckpt: str | Path | None = None,
             features: str | Path | None = None, settings: ServeSettings | None = None) -> Collection:
        """Load everything once. ``ckpt`` defaults to the model that built the index,
        ``features`` to the store it was built from, ``videos_dir`` to ``videos/`` beside
        that store (SynthVL-video's layout), when it exists."""
        from vidlang.data.features import open_feature_store
        from vidlang.index import VideoIndex
        from vidlang.inference import GroundingPredictor, RetrievalPredictor
        from vidlang.serve.media import register_videos

        index = VideoIndex.load(index_dir)
        model_dir = ckpt or index.meta.model.get("ckpt")
        if not model_dir:
            raise ConfigError(f"{index_dir}: the index names no model; pass --ckpt")
        retrieval = RetrievalPredictor.from_pretrained(model_dir)
        index.check_model(retrieval.identity)
        grounding = GroundingPredictor.from_pretrained(grounding_ckpt) if grounding_ckpt else None
        store_path = Path(features) if features else (
            Path(index.meta.source["features"]) if index.meta.source.get("features") else None)
        store = None
        durations: dict[str, float] = {}
        if store_path is not None:
            key = index.meta.source.get("key_pattern") if features is None else None
            store = open_feature_store(store_path, key_pattern=key)
            for vid in index.video_ids:
                d = store.duration(vid) if vid in store else None
                if d:
                    durations[vid] = float(d)
        elif grounding is not None:
            raise ConfigError("--grounding-ckpt needs the collection's features: the index records none; "
                              "pass --features")
        if videos_dir is None and store_path is not None and (store_path.parent / "videos").is_dir():
            videos_dir = store_path.parent / "videos"
        served, refused = register_videos(videos_dir, index.video_ids) if videos_dir else ({}, {})
        for vid, why in refused.items():
            log.warning("not serving video %s: %s", vid, why)
        return cls(index, retrieval, grounding, store, served, refused, durations, settings or ServeSettings())

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    # ---------------------------------------------------------------------------- queries
    def knows(self, video_id: str) -> bool:
        return video_id in self._known

    def summary(self) -> dict[str, Any]:
        return {"videos": len(self.index), "playable": len(self.videos), "refused": len(self.refused),
                "model": self.index.meta.model.get("name"), "grounding": self.grounding is not None}

    def video_info(self, video_id: str) -> dict[str, Any]:
        """Metadata of one indexed video (the caller checked :meth:`knows`)."""
        playable = video_id in self.videos
        return {"video_id": video_id, "duration": self.durations.get(video_id),
                "playable": playable,
                "video_url": f"/media/{video_id}" if playable else None,
                "thumbnail_url": f"/thumbs/{video_id}.jpg" if playable else None}

    def search(self, query: str, k: int, moments: int = 3, windows: int = 0) -> list[dict[str, Any]]:
        """Top-``k`` videos for ``query``, each with its metadata, score and (with a grounding
        model) its ``moments`` best windows; ``windows`` more of them go to ``timeline``."""
        with self._compute:
            hits = self.index.search(self.retrieval.embed_text([query]), k)[0]
            located: list[list[list[float]]] = [[] for _ in hits]
            want = max(moments, windows)
            if self.grounding is not None and want > 0:
                usable = [i for i, h in enumerate(hits) if h.video_id in self.durations]
                items = [(self._features(hits[i].video_id), self.durations[hits[i].video_id]) for i in usable]
                for i, wins in zip(usable, self.grounding.predict_many(items, query, top_k=want)):
                    located[i] = wins
        results = []
        for h, wins in zip(hits, located):
            row = self.video_info(h.video_id)
            row.update(rank=h.rank + 1, score=round(h.score, 6),
                       moments=[_rounded(w) for w in wins[:moments]])
            if windows:
                row["timeline"] = [_rounded(w) for w in wins[:windows]]
            results.append(row)
        return results

    def moments(self, video_id: str, query: str, k: int) -> list[list[float]]:
        """The ``k`` best windows for ``query`` in one video."""
        if self.grounding is None:
            raise ConfigError("this server has no grounding model (start it with --grounding-ckpt)")
        duration = self.durations.get(video_id)
        if not duration:
            raise DataError("no duration recorded for this video", record=video_id)
        with self._compute:
            wins = self.grounding.predict_many([(self._features(video_id), duration)], query, top_k=k)[0]
        return [_rounded(w) for w in wins]

    def _features(self, video_id: str) -> Any:
        if self.store is None:
            raise DataError("no feature store", record=video_id)
        return self.store[video_id]

    def thumbnail(self, video_id: str) -> bytes:
        """The cached keyframe JPEG of a registered video (made with PyAV on first use)."""
        from vidlang.serve.media import keyframe_jpeg

        with self._thumb_lock:
            if video_id in self._thumbs:
                self._thumbs.move_to_end(video_id)
                return self._thumbs[video_id]
        data = keyframe_jpeg(self.videos[video_id])
        with self._thumb_lock:
            self._thumbs[video_id] = data
            while len(self._thumbs) > self.settings.thumbnail_cache:
                self._thumbs.popitem(last=False)
        return data


def _rounded(window: list[float]) -> list[float]:
    return [round(float(window[0]), 3), round(float(window[1]), 3), round(float(window[2]), 6)]
