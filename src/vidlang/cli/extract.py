"""``vidlang extract``: clip features of video files into a canonical feature file (resumable,
shardable), and ``vidlang extract merge OUT SHARD...`` to join shard outputs (docs/video.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def _merge(paths: list[str]) -> None:
    from vidlang.errors import ConfigError
    from vidlang.video.collection import merge_feature_files

    if len(paths) < 2:
        raise ConfigError("extract merge: usage `vidlang extract merge OUT SHARD1 [SHARD2 ...]`")
    report = merge_feature_files(paths[0], paths[1:])
    shards = ", ".join(f"{Path(p).parent.name}/{Path(p).name}: {n}" for p, n in report.per_shard.items())
    typer.echo(f"merged {report.videos} videos into {report.output} ({shards}); "
               f"{report.identical_duplicates} identical duplicates skipped; "
               f"{len(report.failed)} failed videos carried over")


def register(app: typer.Typer) -> None:
    """Add the ``extract`` command."""

    @app.command("extract")
    def extract_cmd(
        inputs: list[str] = typer.Argument(..., help="Video folders (searched recursively), video files or "
                                           ".txt lists of paths; or `merge OUT SHARD...`."),
        extractor: str = typer.Option("basic", "--extractor", help="Registered extractor: basic or clip."),
        model: Optional[str] = typer.Option(None, "--model", help="clip: local checkpoint folder or cached hub name."),
        out: Optional[Path] = typer.Option(None, "--out", help="Canonical HDF5 feature file to write."),
        fps: Optional[float] = typer.Option(None, "--fps", help="Sample times per second (default: the extractor's)."),
        num_frames: Optional[int] = typer.Option(None, "--num-frames", help="Sample this many frames per video instead of --fps."),
        clip_seconds: float = typer.Option(2.0, "--clip-seconds", help="Seconds per feature row."),
        batch_size: int = typer.Option(16, "--batch-size", help="Clips per extractor batch."),
        device: Optional[str] = typer.Option(None, "--device", help="clip: torch device (default cpu)."),
        shard: Optional[str] = typer.Option(None, "--shard", help="i/n: this process's share (0-based; "
                                            "writes <out stem>.shard<i>-of-<n>/<out name>)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Start a new file instead of resuming."),
    ) -> None:
        """Extract one feature row per clip from every video; skips videos already in --out.

        Unreadable videos are listed in <out stem>.failures.json and do not stop the run.
        """
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from vidlang.errors import ConfigError, DataError
        from vidlang.video.collection import (
            extract_collection,
            failures_path,
            list_videos,
            parse_shard,
            select_shard,
            shard_output,
        )
        from vidlang.video.extractors import build_extractor

        if inputs[0] == "merge" and not Path("merge").exists():
            _merge(inputs[1:])
            return
        if out is None:
            raise ConfigError("--out: name the feature file to write, e.g. --out features.h5")
        entries = list_videos(inputs)
        if shard is not None:
            index, count = parse_shard(shard)
            entries = select_shard(entries, index, count)
            out = shard_output(out, index, count)
        ext = build_extractor(extractor, model=model, fps=fps, num_frames=num_frames,
                              clip_seconds=clip_seconds, batch_size=batch_size, device=device)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("{task.fields[current]}"), transient=True) as bar:
            task = bar.add_task(f"extract {extractor}", total=len(entries), current="")
            report = extract_collection(entries, ext, out, resume=not overwrite,
                                        progress=lambda e, status: bar.update(task, advance=1, current=e.vid))
        typer.echo(report.summary())
        for item in report.failed[:5]:
            typer.echo(f"  failed: {item['path']}: {item['error']}")
        if report.failed and not report.extracted and not report.skipped_existing:
            first = report.failed[0]
            raise DataError(f"every video failed ({len(report.failed)} of {report.total}; listed in "
                            f"{failures_path(report.output)}); first: {first['error']}", first["path"])
