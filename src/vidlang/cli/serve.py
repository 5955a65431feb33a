"""``vidlang serve``: a web page and JSON API over an index (docs/serve.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def serve(
    index_dir: Path = typer.Argument(..., help="Index folder from `vidlang index build`."),
    grounding_ckpt: Optional[Path] = typer.Option(
        None, help="A grounding model folder: show the best moments inside each result."),
    videos: Optional[Path] = typer.Option(
        None, help="Folder of the video files (<id>.<ext>, searched recursively); default: videos/ "
                   "beside the indexed feature file, when it exists."),
    ckpt: Optional[Path] = typer.Option(None, help="Retrieval model folder (default: the one that built the index)."),
    features: Optional[Path] = typer.Option(None, help="Feature store of the collection (default: the indexed one)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0 exposes the service to the network)."),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0: any free port)."),
    max_query_chars: int = typer.Option(300, min=1, help="Longest accepted query."),
    max_batch: int = typer.Option(16, min=1, help="Most waiting searches answered by one model pass (1: one at a time)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve a video collection: search by text, play the moment (page at /, API docs at /docs)."""
    import uvicorn

    from vidlang.serve import Collection, ServeSettings, create_app

    collection = Collection.load(index_dir, grounding_ckpt, videos, ckpt, features,
                                 ServeSettings(max_query_chars=max_query_chars, max_batch=max_batch))
    info = collection.summary()
    typer.echo(f"loaded {info['videos']} videos ({info['playable']} with a playable file, "
               f"{info['refused']} refused), model {info['model']}, "
               f"grounding {'on' if info['grounding'] else 'off'}")
    try:
        uvicorn.run(create_app(collection), host=host, port=port, log_level=log_level)
    finally:
        collection.close()


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
