"""``vidlang index build|add|delete`` and ``vidlang search``: sentence -> videos (-> moments).

The index folder records its backend (FAISS files in the folder, or a Milvus collection and its
URI), so ``index add``, ``index delete`` and ``search`` take the folder only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

index_app = typer.Typer(help="Build, extend and prune indexes of video embeddings (FAISS or Milvus).",
                        no_args_is_help=True)


def _progress(total: int, label: str):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    task = progress.add_task(label, total=total)
    return progress, lambda n: progress.advance(task, n)


def _read_ids(ids_file: Path) -> list[str]:
    from vidlang.errors import DataError

    if not ids_file.is_file():
        raise DataError("video id list not found", ids_file)
    return [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]


def _video_ids(store, ids_file: Optional[Path]) -> list[str]:
    from vidlang.errors import DataError

    if ids_file is None:
        return sorted(store.video_ids())
    ids = _read_ids(ids_file)
    missing = [v for v in ids if v not in store]
    if missing:
        raise DataError(f"{len(missing)} listed videos are not in the feature store, e.g. {missing[:5]}", ids_file)
    return ids


def _embed_store(ckpt: Path, features: Path, key_pattern: Optional[str], ids_file: Optional[Path],
                 batch_size: int, index: Any = None):
    """Embed the store's videos (those not in ``index`` yet): vectors, ids, durations, model identity."""
    from vidlang.inference.retrieval import embed_collection

    return embed_collection(ckpt, features, key_pattern, lambda store: _video_ids(store, ids_file), batch_size,
                       index, lambda total: _progress(total, "embedding videos"))


def _source(features: Path, key_pattern: Optional[str]) -> dict:
    from vidlang.index.folder import store_source

    return store_source(features, key_pattern)


@index_app.command("build")
def build(
    ckpt: Path = typer.Option(..., help="Retrieval model folder (from `vidlang train`)."),
    features: Path = typer.Option(..., help="Feature store of the collection (HDF5 file or npy folder)."),
    out: Path = typer.Option(..., help="Index folder to write."),
    backend: str = typer.Option("faiss", help="faiss (embedded, files in --out) | milvus (a Milvus collection)."),
    uri: Optional[str] = typer.Option(
        None, help="milvus: a Milvus Lite file ending in .db (default OUT/milvus.db) or "
                   "http://host:19530 for a Milvus server or cluster."),
    collection: Optional[str] = typer.Option(None, help="milvus: collection name (default vidlang_<OUT name>)."),
    kind: str = typer.Option("flat", help="flat (exact) | ivf | hnsw (approximate, for large collections)."),
    nlist: int = typer.Option(1024, help="ivf: number of cells."),
    nprobe: int = typer.Option(16, help="ivf: cells visited per query."),
    hnsw_m: int = typer.Option(32, help="hnsw: links per node."),
    ef_search: int = typer.Option(64, help="hnsw: candidate list size at query time."),
    key_pattern: Optional[str] = typer.Option(None, help="HDF5 key pattern, e.g. '{vid}/c3d_features'."),
    video_ids: Optional[Path] = typer.Option(None, help="Text file with the video ids to index (default: all)."),
    batch_size: int = typer.Option(64),
    seed: int = typer.Option(0, help="Seed of the ivf training sample."),
) -> None:
    """Embed a video collection with a retrieval model and save an index (FAISS or Milvus)."""
    from vidlang.index import BACKENDS, IndexParams, VideoIndexError
    from vidlang.index.folder import write_index_folder
    from vidlang.index.video_index import read_meta

    if backend not in BACKENDS:
        raise VideoIndexError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "faiss" and (uri is not None or collection is not None):
        raise VideoIndexError("--uri / --collection are for --backend milvus; a faiss index lives in --out")
    if (out / "meta.json").is_file() and read_meta(out).backend != backend:
        raise VideoIndexError(f"{out} already holds a {read_meta(out).backend} index; choose another --out "
                              f"or delete it to build a {backend} index there")
    params = IndexParams(kind=kind, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_search=ef_search)
    params.validate()
    extra: dict[str, Any] = {}
    if backend == "milvus":
        from vidlang.index.milvus_backend import collection_name, connect

        extra["uri"] = uri or str((out / "milvus.db").resolve())
        extra["collection"] = collection or collection_name(out.resolve().name)
        connect(extra["uri"]).close()  # an unreachable server fails now, not after embedding
    emb, ids, durations, identity = _embed_store(ckpt, features, key_pattern, video_ids, batch_size)
    # the model's resolved config travels with the index, so it documents what it holds
    index = write_index_folder(out, emb, ids, durations, identity, _source(features, key_pattern), params,
                               seed=seed, backend=backend, **extra)
    where = f", Milvus {index.meta.uri} collection {index.meta.collection}" if backend == "milvus" else ""
    typer.echo(f"indexed {len(index)} videos ({backend} {kind}, dim {index.meta.dim}{where}) -> {out}")


@index_app.command("add")
def add(
    index_dir: Path = typer.Argument(..., help="Existing index folder."),
    features: Path = typer.Option(..., help="Feature store holding the new videos."),
    ckpt: Optional[Path] = typer.Option(None, help="Model folder (default: the one that built the index)."),
    key_pattern: Optional[str] = typer.Option(None),
    video_ids: Optional[Path] = typer.Option(None, help="Text file with the ids to add (default: all new ones)."),
    batch_size: int = typer.Option(64),
) -> None:
    """Add videos to an index without rebuilding it (ids already indexed are skipped). The index
    remembers this feature store for the added videos (`search --grounding-ckpt` reads it)."""
    from vidlang.index import VideoIndex

    index = VideoIndex.load(index_dir)
    model_dir = ckpt or Path(index.meta.model.get("ckpt", ""))
    emb, ids, durations, identity = _embed_store(model_dir, features, key_pattern, video_ids, batch_size,
                                                 index=index)
    index.check_model(identity)
    if ids:
        index.add(emb, ids, durations=durations, source=_source(features, key_pattern))
        index.save(index_dir)
    typer.echo(f"added {len(ids)} videos; the index now holds {len(index)}")


@index_app.command("delete")
def delete(
    index_dir: Path = typer.Argument(..., help="Existing index folder."),
    ids: list[str] = typer.Argument(None, help="Video ids to remove."),
    video_ids: Optional[Path] = typer.Option(None, help="Text file with more ids to remove, one per line."),
) -> None:
    """Remove videos from an index (every record of each id); unknown ids are counted, not an error."""
    from vidlang.errors import ConfigError
    from vidlang.index import VideoIndex

    wanted = list(ids or []) + (_read_ids(video_ids) if video_ids else [])
    if not wanted:
        raise ConfigError("give the video ids to delete as arguments or with --video-ids FILE")
    index = VideoIndex.load(index_dir)
    removed = index.delete(wanted)
    index.save(index_dir)
    typer.echo(f"removed {removed} records ({len(set(wanted))} ids asked); the index now holds {len(index)}")


def _positive_k(value: int) -> int:
    from vidlang.errors import ConfigError

    if value < 1:
        raise ConfigError(f"-k/--top-k must be >= 1, got {value}")
    return value


def _non_empty_query(value: str) -> str:
    from vidlang.errors import ConfigError

    if not value.strip():
        raise ConfigError("QUERY is empty: give a sentence describing the video, e.g. "
                          "vidlang search my_index \"a person pours water\"")
    return value


def _localise(hits: list, rows: list[dict], query: str, grounding_ckpt: Path, features: Optional[Path]) -> None:
    """Add the best moment of each hit, read from the feature store that video was indexed from
    (or ``features`` for all when given)."""
    from vidlang.data.features import open_feature_store
    from vidlang.errors import DataError
    from vidlang.inference import GroundingPredictor

    predictor = GroundingPredictor.from_pretrained(grounding_ckpt)
    by_store: dict[tuple[str, Optional[str]], list[int]] = {}
    for i, h in enumerate(hits):
        key = (str(features), None) if features is not None else (h.features or "", h.key_pattern)
        by_store.setdefault(key, []).append(i)
    for (path, key_pattern), members in by_store.items():
        if not path:
            raise DataError("the index records no feature store for these videos; pass --features")
        with open_feature_store(Path(path), key_pattern=key_pattern) as store:
            for i in members:
                vid = hits[i].video_id
                feats = store[vid]  # the store refuses NaN/inf, naming file and video
                duration = store.duration(vid) or hits[i].duration
                if not duration:
                    raise DataError(f"no duration recorded for video {vid!r}", path)
                best = predictor.predict(feats, query, float(duration), top_k=1)[0][0]
                rows[i]["start"], rows[i]["end"] = round(best[0], 2), round(best[1], 2)
                rows[i]["moment_score"] = round(best[2], 4)


def search(
    index_dir: Path = typer.Argument(..., help="Index folder from `vidlang index build`."),
    query: str = typer.Argument(..., help="A sentence describing the video you look for.",
                                callback=_non_empty_query),
    k: int = typer.Option(10, "-k", "--top-k", help="Number of videos to return (>= 1).", callback=_positive_k),
    ckpt: Optional[Path] = typer.Option(None, help="Model folder (default: the one that built the index)."),
    grounding_ckpt: Optional[Path] = typer.Option(
        None, help="A grounding model folder: also localise the moment inside each returned video."),
    features: Optional[Path] = typer.Option(
        None, help="Feature store for grounding (default: the one each video was indexed from)."),
    video_prefix: Optional[str] = typer.Option(None, help="Only videos whose id starts with this."),
    min_duration: Optional[float] = typer.Option(None, help="Only videos at least this long (seconds)."),
    max_duration: Optional[float] = typer.Option(None, help="Only videos at most this long (seconds)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Rank the indexed videos for a sentence (and, with --grounding-ckpt, the moments in them)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from vidlang.index import VideoIndex
    from vidlang.inference import RetrievalPredictor

    index = VideoIndex.load(index_dir)
    retrieval = RetrievalPredictor.from_pretrained(ckpt or Path(index.meta.model.get("ckpt", "")))
    index.check_model(retrieval.identity)
    hits = index.search(retrieval.embed_text([query]), k, video_id_prefix=video_prefix,
                        min_duration=min_duration, max_duration=max_duration)[0]
    rows: list[dict[str, Any]] = [{"rank": h.rank + 1, "video_id": h.video_id, "score": round(h.score, 4)}
                                  for h in hits]
    if grounding_ckpt is not None:
        _localise(hits, rows, query, grounding_ckpt, features)
    if json_out:
        typer.echo(json.dumps({"query": query, "results": rows}))
        return
    table = Table(title=f"\u201c{query}\u201d")
    for col in rows[0] if rows else ["rank", "video_id", "score"]:
        table.add_column(col, justify="right" if col != "video_id" else "left")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
    app.command("search")(search)
