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
    #: most searches answered by one model pass (searches that arrive while the model is busy
    #: wait and are then run together; a lone search runs at once, alone)
    max_batch: int = 16
    #: most (video, query) pairs in one grounding forward pass
    grounding_chunk: int = 64


@dataclass
class _Search:
    """One waiting search and, once ``done``, its hits and windows (or its error)."""

    query: str
    k: int
    want: int
    done: threading.Event = field(default_factory=threading.Event)
    hits: list[Any] = field(default_factory=list)
    windows: list[list[list[float]]] = field(default_factory=list)
    error: BaseException | None = None


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
        self._queue: list[_Search] = []
        self._queue_lock = threading.Lock()
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
        model) its ``moments`` best windows; ``windows`` more of them go to ``timeline``.

        Searches that arrive while the model is busy are answered together by the next pass
        (one text-encoder call, one index search per distinct k, one grounding batch): the
        same answers, more of them per second under load."""
        want = max(moments, windows) if self.grounding is not None else 0
        job = _Search(query, k, want)
        with self._queue_lock:
            self._queue.append(job)
        while not job.done.is_set():
            with self._compute:
                if job.done.is_set():
                    break
                with self._queue_lock:
                    batch = self._queue[: self.settings.max_batch]
                    del self._queue[: len(batch)]
                self._run(batch)
        if job.error is not None:
            raise job.error
        results = []
        for h, wins in zip(job.hits, job.windows):
            row = self.video_info(h.video_id)
            row.update(rank=h.rank + 1, score=round(h.score, 6),
                       moments=[_rounded(w) for w in wins[:moments]])
            if windows:
                row["timeline"] = [_rounded(w) for w in wins[:windows]]
            results.append(row)
        return results

    def _run(self, batch: list[_Search]) -> None:
        """Answer ``batch`` (caller holds the compute lock); a failure is retried search by
        search so one bad search cannot fail the others."""
        try:
            self._answer(batch)
        except Exception as e:
            if len(batch) == 1:
                batch[0].error = e
            else:
                for job in batch:
                    try:
                        self._answer([job])
                    except Exception as own:
                        job.error = own
        finally:
            for job in batch:
                job.done.set()

    def _answer(self, batch: list[_Search]) -> None:
        vectors = self.retrieval.embed_text([job.query for job in batch])
        for k in sorted({job.k for job in batch}):
            rows = [i for i, job in enumerate(batch) if job.k == k]
            for i, hits in zip(rows, self.index.search(vectors[rows], k)):
                batch[i].hits = hits
        pairs: list[tuple[Any, float, str]] = []
        owners: list[tuple[_Search, int]] = []
        for job in batch:
            job.windows = [[] for _ in job.hits]
            if job.want > 0:
                for pos, h in enumerate(job.hits):
                    if h.video_id in self.durations:
                        pairs.append((self._features(h.video_id), self.durations[h.video_id], job.query))
                        owners.append((job, pos))
        step, grounding = self.settings.grounding_chunk, self.grounding
        for start in range(0, len(pairs), step):
            assert grounding is not None  # pairs exist only with a grounding model
            found = grounding.predict_pairs(pairs[start:start + step])
            for (job, pos), wins in zip(owners[start:start + step], found):
                job.windows[pos] = wins[: job.want]

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
