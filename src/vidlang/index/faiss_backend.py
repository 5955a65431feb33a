"""The embedded FAISS backend: one index file + the records, in the index folder.

Files: ``index.faiss`` (inner product on L2-normalised vectors = cosine), ``ids.json`` (row ->
video id) and ``records.npz`` (window, duration, feature store per row). ``kind`` is ``flat``
(exact), ``ivf`` (``nlist`` cells, ``nprobe`` probed) or ``hnsw`` (``hnsw_m`` links,
``ef_search``). Filters use a FAISS ID selector, so a filtered flat search is still exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.index.params import IndexParams
from vidlang.index.records import RawHit, Records, SearchFilter, VideoIndexError


def _faiss() -> Any:
    import faiss

    return faiss


def _flat(dim: int, p: IndexParams) -> Any:
    return _faiss().IndexFlatIP(dim)


def _ivf(dim: int, p: IndexParams) -> Any:
    f = _faiss()
    quantizer = f.IndexFlatIP(dim)
    return f.IndexIVFFlat(quantizer, dim, p.nlist, f.METRIC_INNER_PRODUCT)


def _hnsw(dim: int, p: IndexParams) -> Any:
    f = _faiss()
    index = f.IndexHNSWFlat(dim, p.hnsw_m, f.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = p.ef_construction
    return index


BUILDERS: dict[str, Callable[[int, IndexParams], Any]] = {"flat": _flat, "ivf": _ivf, "hnsw": _hnsw}
FILES = ("index.faiss", "ids.json", "meta.json")


class FaissBackend:
    """Vectors in a FAISS index, records in memory; saved as files in the index folder."""

    name = "faiss"

    def __init__(self, index: Any, records: Records, params: IndexParams) -> None:
        self._index = index
        self.records = records
        self.params = params
        self.apply_params()

    @classmethod
    def create(cls, dim: int, params: IndexParams, train: np.ndarray, seed: int) -> FaissBackend:
        """An empty index; an ivf one is trained on (a sample of) ``train``."""
        index = BUILDERS[params.kind](dim, params)
        if params.kind == "ivf":
            if len(train) < params.nlist:
                raise VideoIndexError(
                    f"an ivf index with nlist={params.nlist} needs at least {params.nlist} vectors to "
                    f"train, got {len(train)}; lower nlist or use kind='flat'"
                )
            rng = np.random.default_rng(seed)
            n_train = min(len(train), max(params.train_size, 39 * params.nlist))
            sample = train[np.sort(rng.choice(len(train), n_train, replace=False))]
            index.cp.seed = seed
            index.train(sample)
        return cls(index, Records.empty(), params)

    # data -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    @property
    def video_ids(self) -> list[str]:
        return self.records.video_ids

    def contains(self, video_ids: Iterable[str]) -> set[str]:
        mine = set(self.records.video_ids)
        return {v for v in video_ids if v in mine}

    def add(self, emb: np.ndarray, records: Records) -> None:
        self._index.add(emb)
        self.records.extend(records)

    def delete(self, video_ids: set[str]) -> int:
        """Remove every row of these videos. The remaining vectors are re-added in order (HNSW
        cannot remove nodes; an IVF index keeps its trained cells), so rows stay dense."""
        drop = np.fromiter((v in video_ids for v in self.records.video_ids), dtype=bool,
                           count=len(self.records))
        if not drop.any():
            return 0
        vectors = self._vectors()
        self._index.reset()
        self._index.add(np.ascontiguousarray(vectors[~drop]))
        self.records.keep(~drop)
        return int(drop.sum())

    def _vectors(self) -> np.ndarray:
        n = self._index.ntotal
        if self.params.kind == "ivf":
            self._index.make_direct_map()
            out = self._index.reconstruct_n(0, n)
            self._index.set_direct_map_type(_faiss().DirectMap.NoMap)
            return out
        return self._index.reconstruct_n(0, n)

    # queries ----------------------------------------------------------------------------------
    def apply_params(self) -> None:
        p = self.params
        if p.kind == "ivf":
            self._index.nprobe = p.nprobe
        elif p.kind == "hnsw":
            self._index.hnsw.efSearch = p.ef_search

    def search(self, q: np.ndarray, k: int, flt: SearchFilter) -> list[list[RawHit]]:
        f = _faiss()
        if flt.active:
            rows = np.flatnonzero(self.records.mask(flt)).astype(np.int64)
            if len(rows) == 0:
                return [[] for _ in range(len(q))]
            sel = f.IDSelectorBatch(rows)
            if self.params.kind == "ivf":
                sp: Any = f.SearchParametersIVF(sel=sel, nprobe=self.params.nprobe)
            elif self.params.kind == "hnsw":
                sp = f.SearchParametersHNSW(sel=sel, efSearch=self.params.ef_search)
            else:
                sp = f.SearchParameters(sel=sel)
            scores, idx = self._index.search(q, min(k, len(rows)), params=sp)
        else:
            scores, idx = self._index.search(q, min(k, len(self)))
        rec = self.records
        return [[(float(s), rec.video_ids[r], float(rec.start[r]), float(rec.end[r]), float(rec.duration[r]),
                  int(rec.store[r])) for s, r in zip(srow, rrow) if r >= 0]
                for srow, rrow in zip(scores, idx)]

    # persistence ------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        _faiss().write_index(self._index, str(directory / "index.faiss"))
        self.records.save(directory)

    @classmethod
    def load(cls, directory: Path, dim: int, params: IndexParams) -> FaissBackend:
        missing = [n for n in FILES if not (directory / n).is_file()]
        if missing:
            raise VideoIndexError(f"{directory} is not a vidlang video index (missing {', '.join(missing)})")
        path = directory / "index.faiss"
        try:
            index = _faiss().read_index(str(path))
        except RuntimeError:  # FAISS's message is a C++ assertion, not for users
            raise VideoIndexError(
                f"{path}: not a readable FAISS index (truncated or corrupted); rebuild it with "
                "`vidlang index build`") from None
        records = Records.load(directory)
        if index.ntotal != len(records) or index.d != dim:
            raise VideoIndexError(
                f"{directory}: index.faiss holds {index.ntotal} vectors of dim {index.d} but ids.json has "
                f"{len(records)} ids and meta.json says dim {dim}"
            )
        return cls(index, records, params)

    def nbytes(self) -> int:
        """Serialised size of the FAISS index (for benchmarks)."""
        return int(_faiss().serialize_index(self._index).nbytes)
