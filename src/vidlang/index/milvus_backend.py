"""The Milvus backend: the same records in a Milvus collection, through pymilvus ``MilvusClient``.

``uri`` is either a local path ending in ``.db`` (Milvus Lite, embedded in this process: tests,
a laptop) or ``http(s)://host:19530`` (a Milvus server or cluster); the code is the same for
both. One collection per index::

    pk (INT64, auto id) | video_id (VARCHAR) | start_s, end_s, duration (DOUBLE, -1 = unknown)
    | store (INT32, position in the index folder's meta.sources) | vector (FLOAT_VECTOR, IP)

``kind`` maps to a Milvus index type: ``flat`` -> FLAT (exact), ``ivf`` -> IVF_FLAT (``nlist``,
``nprobe``), ``hnsw`` -> HNSW (``M`` = ``hnsw_m``, ``efConstruction``, ``ef`` = ``ef_search``).
Milvus builds approximate indexes on *sealed* segments; rows not yet flushed are searched by
brute force. :meth:`MilvusBackend.commit` (called by ``VideoIndex.save``) flushes and reloads
the collection, so searches after a save use the index that was asked for.

pymilvus is optional (``pip install vidlang[milvus]``); it is imported only here.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.index.params import IndexParams
from vidlang.index.records import RawHit, Records, SearchFilter, VideoIndexError

#: seconds to wait for a Milvus server before saying it is unreachable
CONNECT_TIMEOUT_S = 5.0
#: the most results one Milvus query may return
MAX_K = 16384
_FIELDS = ("video_id", "start_s", "end_s", "duration", "store")
_INDEX_TYPES = {"flat": "FLAT", "ivf": "IVF_FLAT", "hnsw": "HNSW"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
_INSERT_BATCH = 10_000
_ID_CHUNK = 1_000


def is_server_uri(uri: str) -> bool:
    """True for ``http://``, ``https://`` or ``tcp://`` URIs (a Milvus server), False for a path."""
    return uri.split("://", 1)[0].lower() in ("http", "https", "tcp") and "://" in uri


def collection_name(text: str) -> str:
    """A valid Milvus collection name derived from ``text`` (e.g. the index folder's name)."""
    name = "vidlang_" + re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name[:255]


def _pymilvus() -> Any:
    try:
        import pymilvus
    except ImportError:
        raise VideoIndexError(
            "the Milvus backend needs pymilvus (and milvus-lite for a local .db path): "
            "pip install 'vidlang[milvus]'") from None
    # pymilvus logs every failed RPC with a traceback on stderr at its default level (WARNING);
    # vidlang turns those failures into one-line errors, so it quiets that default (a level
    # the user chose is kept)
    logger = logging.getLogger("pymilvus")
    if logger.level in (logging.NOTSET, logging.WARNING):
        logger.setLevel(logging.CRITICAL)
    return pymilvus


def _message(e: Exception) -> str:
    msg = getattr(e, "message", None) or str(e)
    return " ".join(str(msg).split())[:300]


def connect(uri: str, timeout: float = CONNECT_TIMEOUT_S) -> Any:
    """A ``MilvusClient`` for ``uri``, or a one-line error when it cannot be reached."""
    pymilvus = _pymilvus()
    if not is_server_uri(uri):
        if not uri.endswith(".db"):
            raise VideoIndexError(
                f"Milvus Lite path {uri!r} must end with .db (or give an http://host:19530 URI)")
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    token = os.environ.get("VIDLANG_MILVUS_TOKEN", "")  # credentials never go into meta.json
    try:
        return pymilvus.MilvusClient(uri=uri, timeout=timeout, token=token)
    except Exception as e:  # pymilvus raises MilvusException, grpc errors, or ValueError on bad URIs
        if is_server_uri(uri):
            raise VideoIndexError(
                f"cannot reach the Milvus server at {uri} within {timeout:g} s ({_message(e)})") from None
        raise VideoIndexError(
            f"cannot open Milvus Lite at {uri} ({_message(e)}); is another process using it? Milvus "
            "Lite serves one process at a time: use a Milvus server for shared access") from None


class MilvusBackend:
    """Vectors and records in one Milvus collection."""

    name = "milvus"

    def __init__(self, client: Any, uri: str, collection: str, dim: int, params: IndexParams) -> None:
        self._client = client
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.params = params

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        exc = _pymilvus().exceptions.MilvusException
        try:
            yield
        except exc as e:
            raise VideoIndexError(
                f"Milvus at {self.uri}, collection {self.collection!r}: {what} failed ({_message(e)})"
            ) from None

    # construction ---------------------------------------------------------------------------
    @classmethod
    def create(cls, uri: str, collection: str, dim: int, params: IndexParams,
               overwrite: bool = True) -> MilvusBackend:
        """A new empty collection (an existing one of that name is dropped when ``overwrite``)."""
        if not _NAME.match(collection):
            raise VideoIndexError(
                f"invalid Milvus collection name {collection!r}: letters, digits and _ only, "
                "not starting with a digit")
        pymilvus = _pymilvus()
        self = cls(connect(uri), uri, collection, dim, params)
        client, DataType = self._client, pymilvus.DataType
        with self._errors("creating the collection"):
            if client.has_collection(collection):
                missing = _missing_fields(client.describe_collection(collection))
                if not overwrite or missing:
                    raise VideoIndexError(
                        f"collection {collection!r} already exists at {uri}"
                        + (" and is not a vidlang index" if missing else "")
                        + "; choose another --collection")
                client.drop_collection(collection)  # rebuilding a vidlang index replaces it
            schema = client.create_schema(auto_id=True, enable_dynamic_field=False,
                                          description="vidlang video index")
            schema.add_field("pk", DataType.INT64, is_primary=True)
            schema.add_field("video_id", DataType.VARCHAR, max_length=1024)
            for f in ("start_s", "end_s", "duration"):
                schema.add_field(f, DataType.DOUBLE)
            schema.add_field("store", DataType.INT32)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index_params = client.prepare_index_params()
            # build knobs both flat (how pymilvus sends them to a server) and as the JSON
            # "params" entry (the only form Milvus Lite 3.x reads; a server merges the two)
            build = self._build_params()
            index_params.add_index(field_name="vector", index_type=_INDEX_TYPES[params.kind],
                                   metric_type="IP", params={**build, "params": build} if build else {})
            client.create_collection(collection, schema=schema, index_params=index_params)
        return self

    @classmethod
    def open(cls, uri: str, collection: str, dim: int, params: IndexParams) -> MilvusBackend:
        """The existing collection, checked: present, vidlang's fields, the expected dimension."""
        self = cls(connect(uri), uri, collection, dim, params)
        with self._errors("opening the collection"):
            if not self._client.has_collection(collection):
                raise VideoIndexError(
                    f"Milvus at {uri} has no collection {collection!r} (dropped, or the index "
                    "folder points at another server); rebuild it with `vidlang index build --backend milvus`")
            info = self._client.describe_collection(collection)
            fields = {f["name"]: f for f in info.get("fields", [])}
            missing = _missing_fields(info)
            if missing:
                raise VideoIndexError(
                    f"collection {collection!r} at {uri} is not a vidlang video index "
                    f"(no field {', '.join(missing)})")
            params_of = fields["vector"].get("params", {})
            got = int(params_of.get("dim", dim))
            if got != dim:
                raise VideoIndexError(
                    f"collection {collection!r} at {uri} holds {got}-d vectors but the index folder "
                    f"says dim {dim}: the folder and the collection do not belong together")
            self._client.load_collection(collection)
        return self

    def _build_params(self) -> dict[str, Any]:
        p = self.params
        if p.kind == "ivf":
            return {"nlist": p.nlist}
        if p.kind == "hnsw":
            return {"M": p.hnsw_m, "efConstruction": p.ef_construction}
        return {}

    def _search_params(self, k: int) -> dict[str, Any]:
        p = self.params
        if p.kind == "ivf":
            return {"nprobe": p.nprobe}
        if p.kind == "hnsw":
            return {"ef": max(p.ef_search, k)}
        return {}

    def apply_params(self) -> None:
        """Query-time knobs are sent with each search; nothing to do here."""

    # data -------------------------------------------------------------------------------------
    def add(self, emb: np.ndarray, records: Records) -> None:
        with self._errors("inserting vectors"):
            for s in range(0, len(records), _INSERT_BATCH):
                e = min(len(records), s + _INSERT_BATCH)
                rows = [{"video_id": records.video_ids[i], "start_s": float(records.start[i]),
                         "end_s": float(records.end[i]), "duration": float(records.duration[i]),
                         "store": int(records.store[i]), "vector": emb[i]} for i in range(s, e)]
                self._client.insert(self.collection, rows)

    def _in(self, video_ids: Sequence[str]) -> Iterator[str]:
        for s in range(0, len(video_ids), _ID_CHUNK):
            yield "video_id in " + _json_list(video_ids[s:s + _ID_CHUNK])

    def _count(self, expr: str = "") -> int:
        rows = self._client.query(self.collection, filter=expr, output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def __len__(self) -> int:
        with self._errors("counting rows"):
            return self._count()

    def contains(self, video_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(video_ids))
        found: set[str] = set()
        with self._errors("looking up video ids"):
            for expr in self._in(ids):
                found.update(r["video_id"] for r in self._client.query(
                    self.collection, filter=expr, output_fields=["video_id"]))
        return found

    @property
    def video_ids(self) -> list[str]:
        """Every indexed video id, once per record (order: the server's)."""
        out: list[str] = []
        with self._errors("listing video ids"):
            it = self._client.query_iterator(self.collection, batch_size=10_000, filter="",
                                             output_fields=["video_id"])
            while batch := it.next():
                out.extend(r["video_id"] for r in batch)
            it.close()
        return out

    def delete(self, video_ids: set[str]) -> int:
        n = 0
        with self._errors("deleting videos"):
            for expr in self._in(sorted(video_ids)):
                hit = self._count(expr)
                if hit:
                    self._client.delete(self.collection, filter=expr)
                    n += hit
        return n

    def search(self, q: np.ndarray, k: int, flt: SearchFilter) -> list[list[RawHit]]:
        if k > MAX_K:
            raise VideoIndexError(f"Milvus returns at most {MAX_K} results per query, asked for {k}")
        with self._errors("searching"):
            res = self._client.search(
                self.collection, data=[row for row in q], limit=k, filter=flt.milvus_expr(),
                output_fields=list(_FIELDS), search_params={"metric_type": "IP",
                                                            "params": self._search_params(k)})
        out: list[list[RawHit]] = []
        for row in res:
            hits = []
            for h in row:
                e = h["entity"]
                hits.append((float(h["distance"]), str(e["video_id"]), float(e["start_s"]),
                             float(e["end_s"]), float(e["duration"]), int(e["store"])))
            out.append(hits)
        return out

    # persistence ------------------------------------------------------------------------------
    def commit(self) -> None:
        """Seal the inserted rows and reload, so the approximate index covers them (Milvus builds
        indexes on sealed segments only; Milvus Lite builds them when a collection is loaded)."""
        with self._errors("flushing"):
            # released first, so Milvus Lite starts no background index build on the flushed
            # segments; load() then builds every missing index itself, synchronously
            self._client.release_collection(self.collection)
            self._client.flush(self.collection)
            self._load()

    def _load(self, patience_s: float = 300.0) -> None:
        """``load_collection``, retried while Milvus Lite is still writing an index file that a
        background build started before the release (it reports "not fully written")."""
        exc = _pymilvus().exceptions.MilvusException
        deadline, wait = time.monotonic() + patience_s, 0.2
        while True:
            try:
                self._client.load_collection(self.collection)
                return
            except exc as e:
                if "fully written" not in _message(e) or time.monotonic() > deadline:
                    raise
                time.sleep(wait)
                wait = min(2.0, wait * 2)

    def drop(self) -> None:
        """Delete the collection (for tests and benchmarks)."""
        with self._errors("dropping the collection"):
            self._client.drop_collection(self.collection)

    def close(self) -> None:
        self._client.close()


def _missing_fields(info: dict[str, Any]) -> list[str]:
    """vidlang's fields that a described collection lacks (none: it is a vidlang index)."""
    names = {f["name"] for f in info.get("fields", [])}
    return [f for f in (*_FIELDS, "vector") if f not in names]


def _json_list(values: Sequence[str]) -> str:
    import json

    return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"
