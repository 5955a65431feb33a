"""``vidlang synth``: write the embedded SynthVL benchmark and print its statistics;
``vidlang synth-probe``: the closed-form probes of a written folder (docs/synthvl.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console


def _console(width: int = 160) -> Console:
    """A rich console that does not squeeze tables into 80 columns in pipes and logs."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=width)


def register(app: typer.Typer) -> None:
    """Add the ``synth`` and ``synth-probe`` commands."""

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Folder to write (created if missing)."),
        preset: str = typer.Option("small", "--preset", help="tiny, small, charades or activitynet."),
        seed: int = typer.Option(0, "--seed", help="Same seed and settings -> byte-identical files."),
        overrides: list[str] = typer.Option(
            [], "--set", help="Override a parameter, e.g. --set spurious_cooccurrence=0.9 (repeatable)."),
        markdown: bool = typer.Option(False, "--markdown", help="Print the statistics as a Markdown table."),
        video: bool = typer.Option(False, "--video", help="Render SynthVL-video (MP4 files + annotations; docs/video.md)."),
    ) -> None:
        """Generate SynthVL (annotations + HDF5 features) deterministically into OUT."""
        if video:
            from vidlang.video.render import synth_video_command

            synth_video_command(out, preset, seed, overrides)
            return
        import time

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
        from rich.table import Table

        from vidlang.data.synthvl import generate, make_config, parse_overrides
        from vidlang.data.synthvl.generate import total_videos
        from vidlang.data.synthvl.stats import folder_stats, markdown_table, stats_rows

        console = _console()
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

    @app.command("synth-probe")
    def synth_probe(
        root: Path = typer.Argument(..., help="A folder written by `vidlang synth`."),
        as_json: bool = typer.Option(False, "--json", help="Print the raw numbers as JSON."),
    ) -> None:
        """Closed-form probes of a SynthVL folder: what is learnable and where naive models fail.

        Bag-of-words grounding vs the prior, the masked-object shortcut, and whether
        order-blind / order-aware matching tells reordered twins apart (docs/synthvl.md).
        """
        import json

        from rich.table import Table

        from vidlang.data.synthvl.probe import run_probes

        result = run_probes(root)
        console = _console()
        if as_json:
            console.print_json(json.dumps(result))
            return
        table = Table(title=f"SynthVL probes (trained on train): {root}")
        for header in ("split", "queries", "probe R1@0.5", "R1@0.7", "mIoU", "prior R1@0.5",
                       "prior mIoU", "repeated-event q", "probe R1@0.5 on them"):
            table.add_column(header, justify="left" if header == "split" else "right")
        for row in result["grounding"]:
            probe, prior, rep = row["probe"], row["prior"], row["probe_repeated"]
            table.add_row(row["split"], str(row["queries"]), f"{probe['R1@0.5']:.3f}",
                          f"{probe['R1@0.7']:.3f}", f"{probe['mIoU']:.3f}", f"{prior['R1@0.5']:.3f}",
                          f"{prior['mIoU']:.3f}", str(row["repeated_queries"]),
                          f"{rep['R1@0.5']:.3f}" if rep else "-")
        console.print(table)
        masked = ", ".join(f"{k} {v:.3f}" for k, v in result["masked_object"].items())
        console.print(f"object guessed from the verb alone (train majority): {masked}", highlight=False)
        mc = ", ".join(f"{k} {v:.3f}" for k, v in result["mc_text_only"].items())
        console.print(f"MC questions answered from the candidates alone (chance 0.200): {mc}",
                      highlight=False)
        sim = ", ".join(f"{k} {v:.2f}" for k, v in result["signature_cosine"].items())
        console.print(f"mean cosine of hidden signatures: {sim}", highlight=False)
        ret = result["retrieval"]
        twins = ", ".join(f"{k[3:]} {v:.3f}" for k, v in ret.items() if k.startswith("vs_") and v is not None)
        console.print(f"caption -> video, mean pooling, test ({ret['videos']} videos): R@1 {ret['R@1']:.3f}; "
                      f"caption prefers its video over: {twins}", highlight=False)
        order = result["order"]
        if order is None:
            console.print("order: no reordered twins in test (shuffled_order_distractors=0)")
        else:
            console.print(f"reordered twins in test ({int(order['pairs'])} pairs) told apart by a "
                          f"paragraph: order-blind {order['order_blind']:.3f}, order-aware "
                          f"{order['order_aware']:.3f}", highlight=False)
