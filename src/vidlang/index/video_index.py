"""A searchable collection of video embeddings behind one API, FAISS (embedded) or Milvus.

An index folder holds ``meta.json`` (dim, backend, kind and its parameters, the model that made
the vectors, the feature stores they came from) and ``model_config.yaml`` (written by ``vidlang
index build``). With the FAISS backend the vectors live in the folder (``index.faiss``,
``ids.json``, ``records.npz``); with the Milvus backend they live in a Milvus collection whose
URI and name ``meta.json`` records, so ``vidlang index add`` / ``vidlang search`` work the same
on both.

``kind`` is ``flat`` (exact, default), ``ivf`` (inverted lists; ``nlist`` cells, ``nprobe``
probed at query time) or ``hnsw`` (graph; ``hnsw_m`` links, ``ef_search``). Approximate kinds
trade a little recall for much lower latency on large collections; ``benchmarks/bench_search.py``
measures both backends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from vidlang.index.faiss_backend import FaissBackend
from vidlang.index.params import IndexParams  # re-exported: vidlang.index.video_index.IndexParams
from vidlang.index.records import UNKNOWN, Records, SearchFilter, VideoIndexError, known

__all__ = ["BACKENDS", "IndexMeta", "IndexParams", "SearchFilter", "SearchHit", "VideoIndex",
           "VideoIndexError", "normalise"]

BACKENDS = ("faiss", "milvus")
FORMAT_VERSION = 2


@dataclass
class SearchHit:
    """One ranked result: the video, its cosine similarity to the query, and its record (the
    window the vector covers, the video's duration, and the feature store it came from; ``None``
    where unknown)."""

    video_id: str
    score: float
    rank: int
    start: float | None = None
    end: float | None = None
    duration: float | None = None
    features: str | None = None
    key_pattern: str | None = None


@dataclass
class IndexMeta:
    dim: int
    params: IndexParams
    model: dict[str, Any] = field(default_factory=dict)
    #: the first feature store (kept for readers of format 1); ``sources`` lists them all
    source: dict[str, Any] = field(default_factory=dict)
    #: every feature store videos were added from; a record's ``store`` is a position here
    sources: list[dict[str, Any]] = field(default_factory=list)
    backend: str = "faiss"
    #: Milvus only: a Milvus Lite ``.db`` path (relative to the index folder when inside it) or
    #: an ``http://host:19530`` URI, and the collection name
    uri: str = ""
    collection: str = ""
    format_version: int = FORMAT_VERSION


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised as contiguous float32 (what FAISS expects); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf rows are refused by the caller
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def _check_finite(x: np.ndarray, names: Sequence[str], what: str) -> None:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        example = ", ".join(str(names[i]) for i in np.flatnonzero(bad)[:5])
        raise VideoIndexError(
            f"{int(bad.sum())} {what} hold NaN/inf (e.g. {example}): the features or the model "
            "weights are not finite; fix them before indexing")


Backend = Union[FaissBackend, Any]  # Any: MilvusBackend, imported only when used


class VideoIndex:
    """Build, extend, delete from, search, save and load a collection of video embeddings."""

    def __init__(self, backend: Backend, meta: IndexMeta) -> None:
        self._backend = backend
        self.meta = meta

    # construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, embeddings: np.ndarray, video_ids: Sequence[str], params: IndexParams | None = None,
              model: dict[str, Any] | None = None, seed: int = 0,
              source: dict[str, Any] | None = None, *, backend: str = "faiss",
              uri: str | Path | None = None, collection: str = "vidlang_index",
              durations: Sequence[float | None] | None = None,
              windows: Sequence[tuple[float, float]] | None = None) -> VideoIndex:
        """Index ``embeddings`` [N, D] (normalised here) under ``video_ids``.

        ``model`` identifies the encoder (name, weights fingerprint, checkpoint path) so a query
        from a different model is refused instead of returning meaningless neighbours;
        ``source`` records the feature store the vectors came from. ``backend="milvus"`` needs
        ``uri`` (a ``.db`` path for Milvus Lite or ``http://host:19530``); an existing collection
        of that name is replaced. ``durations`` / ``windows`` fill the records (see
        :meth:`add`).
        """
        params = params or IndexParams()
        params.validate()
        if backend not in BACKENDS:
            raise VideoIndexError(f"unknown index backend {backend!r}; known: {', '.join(BACKENDS)}")
        emb = normalise(embeddings)
        if len(emb) != len(video_ids):
            raise VideoIndexError(f"{len(emb)} embeddings but {len(video_ids)} video ids")
        _check_finite(emb, video_ids, "embeddings")
        dim = emb.shape[1]
        meta = IndexMeta(dim=dim, params=params, model=dict(model or {}), backend=backend)
        if backend == "faiss":
            if uri is not None:
                raise VideoIndexError("a URI is for the milvus backend; the faiss index lives in its folder")
            store: Backend = FaissBackend.create(dim, params, emb, seed)
        else:
            if uri is None:
                raise VideoIndexError("the milvus backend needs a uri: a Milvus Lite path ending in .db "
                                      "or http://host:19530")
            from vidlang.index.milvus_backend import MilvusBackend

            meta.uri, meta.collection = str(uri), collection
            store = MilvusBackend.create(str(uri), collection, dim, params)
        self = cls(store, meta)
        self.add(emb, video_ids, durations=durations, windows=windows, source=source)
        return self

    def _store_of(self, source: dict[str, Any] | None) -> int:
        """Position of ``source`` in ``meta.sources`` (registered on first use)."""
        if not source:
            return 0
        src = dict(source)
        if src not in self.meta.sources:
            self.meta.sources.append(src)
        if not self.meta.source:
            self.meta.source = dict(self.meta.sources[0])
        return self.meta.sources.index(src)

    def add(self, embeddings: np.ndarray, video_ids: Sequence[str], *,
            durations: Sequence[float | None] | None = None,
            windows: Sequence[tuple[float, float]] | None = None,
            source: dict[str, Any] | None = None) -> None:
        """Append videos without rebuilding. Ids already in the index are refused.

        ``durations`` (seconds, ``None`` = unknown) feed the duration filter; ``windows``
        (start, end) say which part of the video each vector covers (default the whole video);
        ``source`` (``{"features": path, "key_pattern": ...}``) is the feature store these
        videos came from, remembered per video for moment localisation.
        """
        emb = normalise(embeddings)
        ids = [str(v) for v in video_ids]
        n = len(ids)
        if len(emb) != n:
            raise VideoIndexError(f"{len(emb)} embeddings but {n} video ids")
        if n and emb.shape[1] != self.meta.dim:
            raise VideoIndexError(f"embedding dimension {emb.shape[1]} does not match the index ({self.meta.dim})")
        for name, col in (("durations", durations), ("windows", windows)):
            if col is not None and len(col) != n:
                raise VideoIndexError(f"{len(col)} {name} for {n} video ids")
        _check_finite(emb, ids, "embeddings")
        if len(set(ids)) != n and windows is None:
            seen: set[str] = set()
            dup = sorted({v for v in ids if v in seen or seen.add(v)})  # type: ignore[func-returns-value]
            raise VideoIndexError(f"video ids repeated in one add: {', '.join(dup[:5])}")
        dup = sorted(self._backend.contains(ids)) if n else []
        if dup:
            raise VideoIndexError(f"video ids already in the index: {', '.join(dup[:5])}")
        if n == 0:
            return
        dur = np.array([UNKNOWN if d is None or not np.isfinite(d) else float(d)
                        for d in (durations if durations is not None else [None] * n)])
        if windows is not None:
            start = np.array([float(w[0]) for w in windows])
            end = np.array([float(w[1]) for w in windows])
        else:
            start, end = np.zeros(n), dur.copy()
        store = np.full(n, self._store_of(source), dtype=np.int32)
        self._backend.add(emb, Records.of(ids, start, end, dur, store))

    def delete(self, video_ids: Sequence[str]) -> int:
        """Remove every record of these videos; returns how many records went. Unknown ids are
        ignored (the count says what happened)."""
        return int(self._backend.delete({str(v) for v in video_ids}))

    # queries --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._backend)

    @property
    def video_ids(self) -> list[str]:
        """Every indexed video id, once per record."""
        return list(self._backend.video_ids)

    def contains(self, video_ids: Sequence[str]) -> set[str]:
        """The subset of ``video_ids`` that is indexed (one lookup, cheap on Milvus too)."""
        return set(self._backend.contains([str(v) for v in video_ids]))

    def check_model(self, model: dict[str, Any]) -> None:
        """Refuse a query encoder that is not the one that built the index."""
        mine = {k: self.meta.model.get(k) for k in ("name", "fingerprint") if k in self.meta.model}
        theirs = {k: model.get(k) for k in mine}
        if mine != theirs:
            raise VideoIndexError(
                f"the index was built with model {mine} but the query encoder is {theirs}; "
                "rebuild the index with this model or query with the original one"
            )

    def search(self, queries: np.ndarray, k: int = 10, *, video_id_prefix: str | None = None,
               min_duration: float | None = None, max_duration: float | None = None,
               ) -> list[list[SearchHit]]:
        """The top-``k`` records for each query vector, best first (cosine similarity), among
        those whose video id starts with ``video_id_prefix`` and whose duration is within
        ``[min_duration, max_duration]`` seconds (each filter optional)."""
        if isinstance(queries, str) or (isinstance(queries, np.ndarray) and queries.dtype.kind in "USO"):
            raise VideoIndexError("search takes query vectors; embed sentences first "
                                  "(vidlang.inference.RetrievalPredictor.embed_text(sentences))")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise VideoIndexError(f"k must be an integer >= 1, got {k!r}")
        flt = SearchFilter(video_id_prefix, min_duration, max_duration)
        if len(self) == 0:
            raise VideoIndexError("the index is empty: add videos before searching")
        q = normalise(queries)
        if q.shape[1] != self.meta.dim:
            raise VideoIndexError(f"query dimension {q.shape[1]} does not match the index ({self.meta.dim})")
        _check_finite(q, [f"query {i}" for i in range(len(q))], "query vectors")
        raw = self._backend.search(q, int(k), flt)
        return [[self._hit(h, rank) for rank, h in enumerate(row)] for row in raw]

    def _hit(self, h: tuple[float, str, float, float, float, int], rank: int) -> SearchHit:
        score, vid, start, end, duration, store = h
        src = self.meta.sources[store] if 0 <= store < len(self.meta.sources) else self.meta.source
        return SearchHit(vid, score, rank, known(start), known(end), known(duration),
                         src.get("features"), src.get("key_pattern"))

    def set_search_params(self, **kwargs: int) -> None:
        """Change query-time knobs (``nprobe``, ``ef_search``) without rebuilding."""
        for key, value in kwargs.items():
            if key not in ("nprobe", "ef_search"):
                raise VideoIndexError(f"{key} is not a query-time parameter (nprobe, ef_search)")
            setattr(self.meta.params, key, int(value))
        self._backend.apply_params()

    # persistence ----------------------------------------------------------------------------
    def commit(self) -> None:
        """Make added / deleted records durable and covered by the approximate index (Milvus:
        flush and reload the collection; FAISS: nothing until :meth:`save`)."""
        if hasattr(self._backend, "commit"):
            self._backend.commit()

    def save(self, directory: str | Path) -> Path:
        """Write the index folder (FAISS: the vectors too; Milvus: commit the collection)."""
        out = Path(directory)
        meta_path = out / "meta.json"
        if meta_path.is_file():
            other = read_meta(out).backend
            if other != self.meta.backend:
                raise VideoIndexError(
                    f"{out} already holds a {other} index; save the {self.meta.backend} index to "
                    "another folder or delete that one first")
        out.mkdir(parents=True, exist_ok=True)
        meta = asdict(self.meta)
        if self.meta.backend == "faiss":
            self._backend.save(out)
        else:
            self.commit()
            meta["uri"] = _portable_uri(self.meta.uri, out)
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True))
        return out

    @classmethod
    def load(cls, directory: str | Path, backend: str | None = None) -> VideoIndex:
        """Open the index in ``directory`` with the backend that built it (``backend``, when
        given, must match: a FAISS folder is not opened as a Milvus one or the other way)."""
        d = Path(directory)
        if not (d / "meta.json").is_file():
            missing = [n for n in ("index.faiss", "ids.json", "meta.json") if not (d / n).is_file()]
            raise VideoIndexError(f"{d} is not a vidlang video index (missing {', '.join(missing)})")
        meta = read_meta(d)
        if backend is not None and backend != meta.backend:
            raise VideoIndexError(f"{d} was built by the {meta.backend} backend, not {backend}; "
                                  f"open it as {meta.backend} or rebuild it with --backend {backend}")
        if meta.backend == "faiss":
            return cls(FaissBackend.load(d, meta.dim, meta.params), meta)
        from vidlang.index.milvus_backend import MilvusBackend, is_server_uri

        uri = meta.uri if is_server_uri(meta.uri) else str((d / meta.uri).resolve())
        meta.uri = uri
        return cls(MilvusBackend.open(uri, meta.collection, meta.dim, meta.params), meta)

    def close(self) -> None:
        """Release the Milvus connection (no-op for FAISS)."""
        if hasattr(self._backend, "close"):
            self._backend.close()


def _portable_uri(uri: str, folder: Path) -> str:
    """A Milvus Lite path inside the index folder is stored relative to it (the folder can move)."""
    from vidlang.index.milvus_backend import is_server_uri

    if is_server_uri(uri):
        return uri
    path = Path(uri).resolve()
    try:
        return str(path.relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def read_meta(d: Path) -> IndexMeta:
    """The ``meta.json`` of index folder ``d`` (format 1 folders read as FAISS, one store)."""
    path = d / "meta.json"
    try:
        raw = json.loads(path.read_text())
        params = IndexParams(**raw["params"])
        meta = IndexMeta(dim=int(raw["dim"]), params=params, model=raw.get("model", {}),
                         source=raw.get("source", {}), sources=list(raw.get("sources", [])),
                         backend=raw.get("backend", "faiss"), uri=raw.get("uri", ""),
                         collection=raw.get("collection", ""),
                         format_version=int(raw.get("format_version", 1)))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        raise VideoIndexError(f"{path}: unreadable index metadata ({type(e).__name__}: {e})") from None
    if not meta.sources and meta.source:
        meta.sources = [dict(meta.source)]  # format 1: one store for every video
    if meta.backend not in BACKENDS:
        raise VideoIndexError(f"{path}: unknown backend {meta.backend!r}; known: {', '.join(BACKENDS)}")
    return meta
