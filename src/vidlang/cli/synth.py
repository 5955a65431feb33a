"""``vidlang synth``: write the embedded SynthVL benchmark and print its statistics."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add the ``synth`` command."""

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Folder to write (created if missing)."),
        preset: str = typer.Option("small", "--preset", help="tiny, small, charades or activitynet."),
        seed: int = typer.Option(0, "--seed", help="Same seed and settings -> byte-identical files."),
        overrides: list[str] = typer.Option(
            [], "--set", help="Override a parameter, e.g. --set spurious_cooccurrence=0.9 (repeatable)."),
        markdown: bool = typer.Option(False, "--markdown", help="Print the statistics as a Markdown table."),
    ) -> None:
        """Generate SynthVL (annotations + HDF5 features) deterministically into OUT."""
        import time

        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
        from rich.table import Table

        from vidlang.data.synthvl import generate, make_config, parse_overrides
        from vidlang.data.synthvl.generate import total_videos
        from vidlang.data.synthvl.stats import folder_stats, markdown_table, stats_rows

        console = Console()
        if not console.is_terminal:  # pipes and logs: do not squeeze the table into 80 columns
            console = Console(width=160)
        params = parse_overrides(overrides)
        cfg = make_config(preset, **params)
        started = time.perf_counter()
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task(f"synthvl {preset} seed {seed}", total=total_videos(cfg))
            generate(out, preset, seed, progress=lambda n: bar.advance(task, n), **params)
        elapsed = time.perf_counter() - started
        stats = folder_stats(out)
        if markdown:
            console.print(markdown_table(stats), highlight=False, soft_wrap=True)
        else:
            headers, rows = stats_rows(stats)
            table = Table(title=f"SynthVL {preset}, seed {seed}: {out}")
            for header in headers:
                table.add_column(header, justify="left" if header == "split" else "right")
            for row in rows:
                table.add_row(*row)
            console.print(table)
        console.print(f"wrote {out} in {elapsed:.1f} s (feature_dim {cfg.feature_dim}, "
                      f"clip_seconds {cfg.clip_seconds})", highlight=False)
