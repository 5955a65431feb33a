"""``vidlang demo``: the main job end to end on the embedded benchmark, offline.

Generate SynthVL -> train MMN (``mmn/cpu``) -> evaluate on ``test`` and ``test_novel`` and print
the R@n table -> answer three test queries with :class:`vidlang.predictor.GroundingPredictor`
(ground truth vs top predictions) -> draw GT and predicted windows of a few test videos on a
timeline (``timeline.png``). Everything is built from the public APIs (synth, engine,
predictor, metrics); the same seed gives the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

EVAL_SPLITS = ("test", "test_novel")
DEMO_CONFIG = "mmn/cpu"


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for data, run, table and PNG."),
        seed: int = typer.Option(0, "--seed", help="Seed of the benchmark and of training."),
        preset: str = typer.Option("small", "--preset", help="SynthVL preset (small; tiny for a smoke test)."),
        epochs: Optional[int] = typer.Option(None, "--epochs", help="Override trainer.max_epochs of mmn/cpu."),
        set_: Optional[list[str]] = typer.Option(None, "--set", help="Extra config override (repeatable)."),
    ) -> None:
        """Generate SynthVL, train MMN on CPU, print R@n, answer three queries, draw a timeline."""
        run_demo(out, seed, preset, epochs, list(set_ or []))


def run_demo(out: Path, seed: int = 0, preset: str = "small", epochs: Optional[int] = None,
             overrides: Optional[list[str]] = None) -> dict[str, Any]:
    """The demo as a function (tests call it with the tiny preset); returns what it printed."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # logs and pipes: keep the table readable
        console = Console(width=120)
    out = Path(out)
    settings = {"seed": seed, "preset": preset, "epochs": epochs, "overrides": overrides or []}
    reuse = _finished_run(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "synthvl" if reuse else _generate(out / "synthvl", preset, seed, console)
    cfg = _config(data_dir, seed, epochs, overrides or [])
    console.rule(f"[bold]2/4 train MMN ({DEMO_CONFIG}, seed {seed}, {cfg.trainer.max_epochs} epochs)")
    if reuse:
        model_dir = reuse
        console.print(f"reusing the model this demo trained before with the same settings: {model_dir}")
    else:
        from vidlang.engine import train

        result = train(cfg, out / "run")
        model_dir = result.best_dir or result.last_dir
        (out / "demo_settings.json").write_text(json.dumps(settings) + "\n", encoding="utf-8")
    console.print(f"model: {model_dir}")
    console.rule("[bold]3/4 evaluate")
    reports = _evaluate(cfg, model_dir, out, console)
    console.rule("[bold]4/4 three example queries and a timeline")
    examples = _examples(model_dir, data_dir, console)
    png = _timeline(data_dir, out / "eval_test" / "predictions.jsonl", out / "timeline.png")
    console.print(f"timeline of ground truth vs predictions: [bold]{png}[/]")
    summary = {"seed": seed, "preset": preset, "config": DEMO_CONFIG, "model": str(model_dir),
               "metrics": {s: r["metrics"] for s, r in reports.items()}, "examples": examples,
               "timeline": str(png)}
    (out / "demo_summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n",
                                           encoding="utf-8")
    return summary


def _finished_run(out: Path, settings: dict[str, Any]) -> Optional[Path]:
    """The model folder of an earlier demo in ``out`` with the same settings (so a second
    ``make demo`` reuses it); an earlier run with other settings is a clear error."""
    from vidlang.errors import ConfigError

    run = out / "run"
    if not run.exists():
        return None
    saved = out / "demo_settings.json"
    if not saved.is_file() or json.loads(saved.read_text(encoding="utf-8")) != settings:
        raise ConfigError(f"{out} holds another (or an unfinished) demo run; remove it or pass "
                          f"another --out")
    return run / "best" if (run / "best").is_dir() else run / "last"


def _generate(folder: Path, preset: str, seed: int, console: Any) -> Path:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from vidlang.data.synthvl import generate, make_config
    from vidlang.data.synthvl.generate import total_videos

    console.rule(f"[bold]1/4 generate SynthVL {preset} (seed {seed})")
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(f"synthvl {preset}", total=total_videos(make_config(preset)))
        generate(folder, preset, seed, progress=lambda n: bar.advance(task, n))
    console.print(f"wrote {folder}")
    return folder


def _config(data_dir: Path, seed: int, epochs: Optional[int], overrides: list[str]) -> Any:
    from vidlang.data.synthvl import read_meta
    from vidlang.engine import load_config

    dim = int(read_meta(data_dir)["params"]["feature_dim"])
    sets = [f"data.root={data_dir}", f"seed={seed}", f"model.input_dim={dim}"]
    if epochs is not None:
        sets.append(f"trainer.max_epochs={epochs}")
    return load_config(DEMO_CONFIG, sets + overrides)


def _evaluate(cfg: Any, model_dir: Path, out: Path, console: Any) -> dict[str, dict[str, Any]]:
    from rich.table import Table

    from vidlang.engine import evaluate

    reports = {s: evaluate(cfg, model_dir, split=s, out_dir=out / f"eval_{s}") for s in EVAL_SPLITS}
    keys = [k for k in reports[EVAL_SPLITS[0]]["metrics"] if k.startswith(("R@", "mIoU"))]
    table = Table(title=f"MMN on SynthVL ({cfg.eval.preset} convention; percent)")
    table.add_column("split")
    for key in keys:
        table.add_column(_short_key(key), justify="right")
    table.add_column("queries", justify="right")
    for split, report in reports.items():
        m = report["metrics"]
        queries = next((v for k, v in m.items() if k.startswith("queries")), "")
        table.add_row(split, *(f"{m[k]:.2f}" for k in keys), f"{queries:g}" if queries != "" else "")
    console.print(table)
    return reports


def _examples(model_dir: Path, data_dir: Path, console: Any, count: int = 3) -> list[dict[str, Any]]:
    from vidlang.data.synthvl import FEATURES_FILE, load
    from vidlang.predictor import GroundingPredictor

    predictor = GroundingPredictor.from_pretrained(model_dir, device="cpu")
    records = list(load(data_dir, "test").grounding)
    step = max(1, len(records) // count)
    shown = []
    for record in records[::step][:count]:
        windows = predictor.predict_from_store(data_dir / FEATURES_FILE, record.video_id,
                                               [record.query], record.duration, top_k=3)[0]
        gt = ", ".join(f"[{s:.1f}, {e:.1f}]" for s, e in record.windows)
        console.print(f"[bold]{record.query}[/]  ({record.video_id}, {record.duration:.1f} s)")
        console.print(f"  ground truth: {gt}")
        for rank, (s, e, score) in enumerate(windows, start=1):
            console.print(f"  #{rank}: [{s:.1f}, {e:.1f}]  score {score:.3f}")
        shown.append({"qid": record.qid, "query": record.query, "video_id": record.video_id,
                      "ground_truth": [list(w) for w in record.windows], "top3": windows})
    return shown


def _timeline(data_dir: Path, predictions: Path, png: Path, videos: int = 4,
              queries_per_video: int = 3) -> Path:
    """One panel per test video: each query's GT window and its top-3 predicted windows."""
    import matplotlib.pyplot as plt

    from vidlang.data.records import iter_jsonl
    from vidlang.data.synthvl import load

    preds = {str(obj["qid"]): obj["pred_relevant_windows"] for _, obj in iter_jsonl(predictions)}
    by_video: dict[str, list[Any]] = {}
    for record in load(data_dir, "test").grounding:
        by_video.setdefault(record.video_id, []).append(record)
    panels = [(video_id, records[0].duration,
               [(r.query, list(r.windows), preds.get(r.qid, [])[:3]) for r in records[:queries_per_video]])
              for video_id, records in list(by_video.items())[:videos]]
    fig = timeline_figure(panels)
    fig.savefig(png, dpi=110, bbox_inches="tight")  # keep long query labels and the legend whole
    plt.close(fig)
    return png


TimelineQuery = tuple[str, list[Any], list[Any]]  # query, GT windows, ranked [start, end, score]


def timeline_figure(panels: list[tuple[str, float, list[TimelineQuery]]]) -> Any:
    """The timeline: per video a panel, per query a ground-truth lane and one lane per predicted
    rank (so predictions never cover each other), each prediction labelled with its score; the
    legend sits above the panels, outside every plotting area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = {"gt": "tab:green", 0: "tab:orange", 1: "tab:blue", 2: "tab:purple"}
    lanes = 4  # GT + 3 ranks
    height = sum(0.28 * (lanes + 1) * len(queries) + 0.7 for _, _, queries in panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, height), squeeze=False)
    for ax, (video_id, duration, queries) in zip(axes[:, 0], panels):
        ticks, labels = [], []
        for row, (query, gt, ranked) in enumerate(queries):
            base = (len(queries) - 1 - row) * (lanes + 1)
            for s, e in gt:
                ax.barh(base + lanes - 1, e - s, left=s, height=0.8, color=colours["gt"])
            for rank, (s, e, score) in enumerate(ranked[:3]):
                y = base + lanes - 2 - rank
                ax.barh(y, e - s, left=s, height=0.8, color=colours[rank])
                ax.text(min(e, duration) - 0.01 * duration, y, f"#{rank + 1} {score:.3g}", ha="right",
                        va="center", fontsize=6, color="white", fontweight="bold", clip_on=True)
            ticks.append(base + (lanes - 1) / 2)
            labels.append(_short(query))
        ax.set_yticks(ticks)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_ylim(-1, len(queries) * (lanes + 1) - 1)
        ax.set_xlim(0, duration)
        ax.set_title(f"{video_id} ({duration:.1f} s)", fontsize=9)
    axes[-1, 0].set_xlabel("seconds")
    handles = [Patch(color=colours["gt"], label="ground truth")] + [
        Patch(color=colours[r], label=f"prediction #{r + 1} (score on the bar)") for r in range(3)]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, fontsize=7,
               frameon=False)
    fig.tight_layout()
    return fig


def _short_key(key: str) -> str:
    """``R@1,IoU>=0.5 [mmn]`` -> ``R1@0.5``; other keys lose only their tag."""
    import re

    match = re.match(r"R@(\d+),IoU\S*?([\d.]+) \[", key)
    return f"R{match.group(1)}@{match.group(2)}" if match else key.split(" [")[0]


def _short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[: width - 1] + "..."
