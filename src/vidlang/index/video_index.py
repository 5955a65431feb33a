"""A FAISS-backed index of video embeddings, saved on disk with its id map and model identity.

Layout of an index directory::

    index.faiss   the FAISS index (inner product on L2-normalised vectors = cosine)
    ids.json      row -> video id, in insertion order
    meta.json     dim, kind and its parameters, and the model that produced the vectors
    model_config.yaml   that model's resolved config (written by ``vidlang index build``)

``kind`` is ``flat`` (exact, default), ``ivf`` (inverted lists; ``nlist`` cells, ``nprobe``
probed at query time) or ``hnsw`` (graph; ``hnsw_m`` links, ``ef_search``). Approximate kinds
trade a little recall for much lower latency on large collections; ``benchmarks/bench_search.py``
measures both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.errors import VidlangError


class VideoIndexError(VidlangError):
    """A problem with a video index: empty, mismatched model or dimension, unreadable files."""


@dataclass
class IndexParams:
    """How the FAISS index is built and searched."""

    kind: str = "flat"
    nlist: int = 1024
    nprobe: int = 16
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    train_size: int = 100_000

    def validate(self) -> None:
        if self.kind not in _BUILDERS:
            raise VideoIndexError(f"unknown index kind {self.kind!r}; known: {', '.join(_BUILDERS)}")
        for name in ("nlist", "nprobe", "hnsw_m", "ef_construction", "ef_search", "train_size"):
            if getattr(self, name) < 1:
                raise VideoIndexError(f"index parameter {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class SearchHit:
    """One ranked result: the video id and its cosine similarity to the query."""

    video_id: str
    score: float
    rank: int


@dataclass
class IndexMeta:
    dim: int
    params: IndexParams
    model: dict[str, Any] = field(default_factory=dict)
    #: where the vectors came from (feature store path, key pattern), for moment localisation
    source: dict[str, Any] = field(default_factory=dict)
    format_version: int = 1


def _faiss() -> Any:
    import faiss

    return faiss


def _flat(dim: int, p: IndexParams) -> Any:
    f = _faiss()
    return f.IndexFlatIP(dim)


def _ivf(dim: int, p: IndexParams) -> Any:
    f = _faiss()
    quantizer = f.IndexFlatIP(dim)
    return f.IndexIVFFlat(quantizer, dim, p.nlist, f.METRIC_INNER_PRODUCT)


def _hnsw(dim: int, p: IndexParams) -> Any:
    f = _faiss()
    index = f.IndexHNSWFlat(dim, p.hnsw_m, f.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = p.ef_construction
    return index


_BUILDERS: dict[str, Callable[[int, IndexParams], Any]] = {"flat": _flat, "ivf": _ivf, "hnsw": _hnsw}


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised as contiguous float32 (what FAISS expects); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class VideoIndex:
    """Build, extend, search, save and load a collection of video embeddings."""

    def __init__(self, index: Any, video_ids: list[str], meta: IndexMeta) -> None:
        self._index = index
        self.video_ids = video_ids
        self.meta = meta
        self._apply_search_params()

    # construction ---------------------------------------------------------------------------
    @classmethod
    def build(cls, embeddings: np.ndarray, video_ids: Sequence[str], params: IndexParams | None = None,
              model: dict[str, Any] | None = None, seed: int = 0,
              source: dict[str, Any] | None = None) -> VideoIndex:
        """Index ``embeddings`` [N, D] (normalised here) under ``video_ids``.

        ``model`` identifies the encoder (name, weights fingerprint, checkpoint path) so a query
        from a different model is refused instead of returning meaningless neighbours;
        ``source`` records the feature store the vectors came from.
        """
        params = params or IndexParams()
        params.validate()
        emb = normalise(embeddings)
        if len(emb) != len(video_ids):
            raise VideoIndexError(f"{len(emb)} embeddings but {len(video_ids)} video ids")
        dim = emb.shape[1]
        index = _BUILDERS[params.kind](dim, params)
        if params.kind == "ivf":
            if len(emb) < params.nlist:
                raise VideoIndexError(
                    f"an ivf index with nlist={params.nlist} needs at least {params.nlist} vectors to "
                    f"train, got {len(emb)}; lower nlist or use kind='flat'"
                )
            rng = np.random.default_rng(seed)
            n_train = min(len(emb), max(params.train_size, 39 * params.nlist))
            sample = emb[np.sort(rng.choice(len(emb), n_train, replace=False))]
            index.cp.seed = seed
            index.train(sample)
        meta = IndexMeta(dim=dim, params=params, model=dict(model or {}), source=dict(source or {}))
        self = cls(index, [], meta)
        self.add(emb, video_ids)
        return self

    def add(self, embeddings: np.ndarray, video_ids: Sequence[str]) -> None:
        """Append videos without rebuilding. Duplicate ids are refused."""
        emb = normalise(embeddings)
        if len(emb) != len(video_ids):
            raise VideoIndexError(f"{len(emb)} embeddings but {len(video_ids)} video ids")
        if emb.shape[1] != self.meta.dim:
            raise VideoIndexError(f"embedding dimension {emb.shape[1]} does not match the index ({self.meta.dim})")
        known = set(self.video_ids)
        dup = [v for v in video_ids if v in known]
        if dup or len(set(video_ids)) != len(video_ids):
            dup = dup or [v for v in video_ids if list(video_ids).count(v) > 1]
            raise VideoIndexError(f"video ids already in the index: {', '.join(sorted(set(dup))[:5])}")
        self._index.add(emb)
        self.video_ids.extend(video_ids)

    # queries --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.video_ids)

    def check_model(self, model: dict[str, Any]) -> None:
        """Refuse a query encoder that is not the one that built the index."""
        mine = {k: self.meta.model.get(k) for k in ("name", "fingerprint") if k in self.meta.model}
        theirs = {k: model.get(k) for k in mine}
        if mine != theirs:
            raise VideoIndexError(
                f"the index was built with model {mine} but the query encoder is {theirs}; "
                "rebuild the index with this model or query with the original one"
            )

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[SearchHit]]:
        """The top-``k`` videos for each query vector, best first (cosine similarity)."""
        if len(self) == 0:
            raise VideoIndexError("the index is empty: add videos before searching")
        q = normalise(queries)
        if q.shape[1] != self.meta.dim:
            raise VideoIndexError(f"query dimension {q.shape[1]} does not match the index ({self.meta.dim})")
        k = min(k, len(self))
        scores, rows = self._index.search(q, k)
        return [
            [SearchHit(self.video_ids[r], float(s), rank) for rank, (s, r) in enumerate(zip(srow, rrow))
             if r >= 0]
            for srow, rrow in zip(scores, rows)
        ]

    def _apply_search_params(self) -> None:
        p = self.meta.params
        if p.kind == "ivf":
            self._index.nprobe = p.nprobe
        elif p.kind == "hnsw":
            self._index.hnsw.efSearch = p.ef_search

    def set_search_params(self, **kwargs: int) -> None:
        """Change query-time knobs (``nprobe``, ``ef_search``) without rebuilding."""
        for key, value in kwargs.items():
            if key not in ("nprobe", "ef_search"):
                raise VideoIndexError(f"{key} is not a query-time parameter (nprobe, ef_search)")
            setattr(self.meta.params, key, int(value))
        self._apply_search_params()

    # persistence ----------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        _faiss().write_index(self._index, str(out / "index.faiss"))
        (out / "ids.json").write_text(json.dumps(self.video_ids))
        meta = asdict(self.meta)
        (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return out

    @classmethod
    def load(cls, directory: str | Path) -> VideoIndex:
        d = Path(directory)
        missing = [n for n in ("index.faiss", "ids.json", "meta.json") if not (d / n).is_file()]
        if missing:
            raise VideoIndexError(f"{d} is not a vidlang video index (missing {', '.join(missing)})")
        raw = json.loads((d / "meta.json").read_text())
        meta = IndexMeta(dim=int(raw["dim"]), params=IndexParams(**raw["params"]), model=raw.get("model", {}),
                         source=raw.get("source", {}), format_version=int(raw.get("format_version", 1)))
        ids = json.loads((d / "ids.json").read_text())
        index = _faiss().read_index(str(d / "index.faiss"))
        if index.ntotal != len(ids) or index.d != meta.dim:
            raise VideoIndexError(
                f"{d}: index.faiss holds {index.ntotal} vectors of dim {index.d} but ids.json has "
                f"{len(ids)} ids and meta.json says dim {meta.dim}"
            )
        return cls(index, ids, meta)
