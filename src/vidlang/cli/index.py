"""``vidlang index build|add`` and ``vidlang search``: sentence -> videos (-> moments)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer

index_app = typer.Typer(help="Build and extend FAISS indexes of video embeddings.", no_args_is_help=True)


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


def _video_ids(store, ids_file: Optional[Path]) -> list[str]:
    from vidlang.errors import DataError

    if ids_file is None:
        return sorted(store.video_ids())
    ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    missing = [v for v in ids if v not in store]
    if missing:
        raise DataError(f"{len(missing)} listed videos are not in the feature store, e.g. {missing[:5]}", ids_file)
    return ids


def _embed_store(ckpt: Path, features: Path, key_pattern: Optional[str], ids_file: Optional[Path],
                 batch_size: int, skip: set[str] | None = None):
    from vidlang.data.features import open_feature_store
    from vidlang.index.embed import embed_videos, load_retrieval_model

    model, identity = load_retrieval_model(ckpt)
    with open_feature_store(features, key_pattern=key_pattern) as store:
        ids = [v for v in _video_ids(store, ids_file) if not skip or v not in skip]
        progress, advance = _progress(len(ids), "embedding videos")
        with progress:
            emb = embed_videos(model, store, ids, batch_size=batch_size, progress=advance)
    return emb, ids, identity


@index_app.command("build")
def build(
    ckpt: Path = typer.Option(..., help="Retrieval model folder (from `vidlang train`)."),
    features: Path = typer.Option(..., help="Feature store of the collection (HDF5 file or npy folder)."),
    out: Path = typer.Option(..., help="Index folder to write."),
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
    """Embed a video collection with a retrieval model and save a FAISS index."""
    from vidlang.index import IndexParams, VideoIndex

    emb, ids, identity = _embed_store(ckpt, features, key_pattern, video_ids, batch_size)
    params = IndexParams(kind=kind, nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_search=ef_search)
    source = {"features": str(features.resolve()), "key_pattern": key_pattern}
    index = VideoIndex.build(emb, ids, params, model=identity, seed=seed, source=source)
    index.save(out)
    # the model's resolved config travels with the index, so it documents what it holds
    shutil.copyfile(Path(identity["ckpt"]) / "config.yaml", out / "model_config.yaml")
    typer.echo(f"indexed {len(index)} videos ({kind}, dim {index.meta.dim}) -> {out}")


@index_app.command("add")
def add(
    index_dir: Path = typer.Argument(..., help="Existing index folder."),
    features: Path = typer.Option(..., help="Feature store holding the new videos."),
    ckpt: Optional[Path] = typer.Option(None, help="Model folder (default: the one that built the index)."),
    key_pattern: Optional[str] = typer.Option(None),
    video_ids: Optional[Path] = typer.Option(None, help="Text file with the ids to add (default: all new ones)."),
    batch_size: int = typer.Option(64),
) -> None:
    """Add videos to an index without rebuilding it (ids already indexed are skipped)."""
    from vidlang.index import VideoIndex

    index = VideoIndex.load(index_dir)
    model_dir = ckpt or Path(index.meta.model.get("ckpt", ""))
    emb, ids, identity = _embed_store(model_dir, features, key_pattern, video_ids, batch_size,
                                      skip=set(index.video_ids))
    index.check_model(identity)
    if ids:
        index.add(emb, ids)
        index.save(index_dir)
    typer.echo(f"added {len(ids)} videos; the index now holds {len(index)}")


def search(
    index_dir: Path = typer.Argument(..., help="Index folder from `vidlang index build`."),
    query: str = typer.Argument(..., help="A sentence describing the video you look for."),
    k: int = typer.Option(10, "-k", "--top-k", help="Number of videos to return."),
    ckpt: Optional[Path] = typer.Option(None, help="Model folder (default: the one that built the index)."),
    grounding_ckpt: Optional[Path] = typer.Option(
        None, help="A grounding model folder: also localise the moment inside each returned video."),
    features: Optional[Path] = typer.Option(None, help="Feature store for grounding (default: the indexed one)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Rank the indexed videos for a sentence (and, with --grounding-ckpt, the moments in them)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from vidlang.index import VideoIndex
    from vidlang.index.embed import embed_queries, load_retrieval_model

    index = VideoIndex.load(index_dir)
    model, identity = load_retrieval_model(ckpt or Path(index.meta.model.get("ckpt", "")))
    index.check_model(identity)
    hits = index.search(embed_queries(model, [query]), k)[0]
    rows = [{"rank": h.rank + 1, "video_id": h.video_id, "score": round(h.score, 4)} for h in hits]
    if grounding_ckpt is not None:
        from vidlang.predictor import GroundingPredictor

        predictor = GroundingPredictor.from_pretrained(grounding_ckpt)
        store_path = features or Path(index.meta.source.get("features", ""))
        key = index.meta.source.get("key_pattern") if features is None else None
        for h, row in zip(hits, rows):
            best = predictor.predict_from_store(store_path, h.video_id, query, key_pattern=key, top_k=1)[0][0]
            row["start"], row["end"], row["moment_score"] = (round(best[0], 2), round(best[1], 2), round(best[2], 4))
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
