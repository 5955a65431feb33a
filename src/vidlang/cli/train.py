"""``vidlang train``, ``vidlang eval`` and ``vidlang predict``: the engine on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

SET_HELP = "Override a config key, e.g. --set optim.lr=1e-3 (repeatable)."


def _default_out(config: str) -> Path:
    stem = Path(config).with_suffix("").as_posix() if config.endswith((".yaml", ".yml")) else config
    return Path("runs") / stem.strip("/").replace("/", "_").replace("..", "_")


# --duration more than this factor away from what the features cover is refused
DURATION_TOLERANCE = 1.5


def check_duration(duration: float | None, implied: float | None, what: str) -> None:
    """Refuse ``--duration`` when it is not positive, or is far (beyond a factor
    :data:`DURATION_TOLERANCE`) from the ``implied`` length the features cover: the windows
    would be spread over seconds the features never saw."""
    import math

    from vidlang.errors import ConfigError

    if duration is None:
        return
    if not math.isfinite(duration) or duration <= 0:
        raise ConfigError(f"--duration: must be a positive number of seconds, got {duration}")
    if implied is None or not math.isfinite(implied) or implied <= 0:
        return
    if duration > implied * DURATION_TOLERANCE or duration < implied / DURATION_TOLERANCE:
        raise ConfigError(f"--duration: {duration:g} s, but the features of {what} cover "
                          f"{implied:.1f} s; pass about {implied:.1f} or leave --duration out")


def store_duration(features: Path, video_id: str, key_pattern: str | None) -> float | None:
    """The duration a feature store records for ``video_id`` (None when it records none)."""
    from vidlang.data.features import open_feature_store

    with open_feature_store(features, key_pattern=key_pattern) as store:
        return store.duration(video_id) if video_id in store else None


def npy_duration(ckpt: Path, feats: object) -> float | None:
    """Seconds a bare [T, D] array covers: T times the clip length recorded in the training
    feature file of ``ckpt`` (None when that file or its ``clip_seconds`` is unavailable)."""
    from vidlang.inference.run_folder import training_clip_seconds

    clip = training_clip_seconds(ckpt)
    rows = len(feats)  # type: ignore[arg-type]
    return rows * clip if clip is not None else None


def register(app: typer.Typer) -> None:
    """Add the train / eval / predict commands."""

    @app.command("train")
    def train_cmd(
        config: str = typer.Argument(..., help="Packaged experiment (e.g. mmn/charades_sta) or a YAML path."),
        set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
        resume: bool = typer.Option(False, "--resume", help="Continue from <out>/checkpoints/last.ckpt."),
        out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/<config>)."),
    ) -> None:
        """Train a model; writes config.yaml, best/ and last/ model folders, logs and curves.png."""
        from vidlang.engine.config import load_config
        from vidlang.engine.run import train
        from vidlang.errors import TrainingInterrupted

        cfg = load_config(config, set_ or [])
        run_dir = out or _default_out(config)
        try:
            result = train(cfg, run_dir, resume=resume)
        except TrainingInterrupted as e:  # state saved: one line, exit 130 like any Ctrl+C
            typer.echo(f"interrupted: {e}", err=True)
            raise typer.Exit(e.exit_code) from None
        typer.echo(f"run folder: {result.out_dir}")
        typer.echo(f"last model: {result.last_dir}")
        if result.best_dir is not None:
            label = " (TEST-SELECTED)" if cfg.data.select_split == cfg.data.test_split else ""
            typer.echo(f"best model: {result.best_dir}  {result.best_metric} = {result.best_score:.4f} "
                       f"on {cfg.data.select_split}{label}")

    @app.command("eval")
    def eval_cmd(
        config: str = typer.Argument(..., help="Experiment config naming the data and the metric preset."),
        ckpt: Path = typer.Option(..., "--ckpt", help="Model folder (or a run folder with best/ or last/)."),
        split: Optional[str] = typer.Option(None, "--split", help="Split to score (default data.test_split)."),
        set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
        out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default <ckpt>/eval_<split>)."),
    ) -> None:
        """Score a trained model; grounding writes predictions.jsonl and metrics.json."""
        from vidlang.engine.config import load_config
        from vidlang.engine.evaluation import evaluate

        cfg = load_config(config, set_ or [])
        report = evaluate(cfg, ckpt, split=split, out_dir=out)
        typer.echo(json.dumps(report, indent=2, default=float))
        written = sorted(p.name for p in Path(report["out_dir"]).iterdir() if p.is_file())
        typer.echo(f"wrote {', '.join(written)} to {report['out_dir']}", err=True)

    @app.command("predict")
    def predict_cmd(
        ckpt: Path = typer.Option(..., "--ckpt", help="Grounding model folder."),
        features: Optional[Path] = typer.Option(None, "--features", help="A [T, D] .npy file, or a feature store (HDF5 / npy folder) with --video-id."),
        query: list[str] = typer.Option(..., "--query", help="Query text (repeatable)."),
        duration: Optional[float] = typer.Option(None, "--duration", help="Video length in seconds (default: from the store)."),
        video_id: Optional[str] = typer.Option(None, "--video-id", help="Video to read from a feature store."),
        key_pattern: Optional[str] = typer.Option(None, "--key-pattern", help="HDF5 key per video, e.g. '{vid}/c3d_features'."),
        top_k: int = typer.Option(5, "--top-k", min=0, help="Windows per query (0 = all)."),
        video: Optional[Path] = typer.Option(None, "--video", help="A video file to extract features from (docs/video.md)."),
        extractor: Optional[str] = typer.Option(None, "--extractor", help="With --video: extractor (default: the one recorded in the training features)."),
        extractor_model: Optional[str] = typer.Option(None, "--extractor-model", help="With --video: checkpoint of the clip extractor."),
    ) -> None:
        """Ranked (start, end, score) windows per query, one JSON line each."""
        from vidlang.errors import ConfigError
        from vidlang.predictor import GroundingPredictor

        predictor = GroundingPredictor.from_pretrained(ckpt)
        if video is not None:
            feats, video_seconds = predictor.featurise(video, extractor, extractor_model)
            check_duration(duration, video_seconds, f"video {video}")
            results = predictor.predict(feats, query, duration or video_seconds, top_k)
        elif features is None:
            raise ConfigError("--features or --video: say what to predict on")
        elif video_id is not None:
            if duration is not None:
                check_duration(duration, store_duration(features, video_id, key_pattern),
                               f"video {video_id!r} in {features}")
            results = predictor.predict_from_store(features, video_id, query, duration, key_pattern, top_k)
        elif features.suffix == ".npy":
            if duration is None:
                raise ConfigError("--duration: required with a .npy feature file")
            from vidlang.data.features import load_feature_array

            arr = load_feature_array(features)
            check_duration(duration, npy_duration(ckpt, arr), f"{features} ({len(arr)} clips)")
            results = predictor.predict(arr, query, duration, top_k)
        else:
            raise ConfigError(f"--video-id: required to read a video from feature store {features}")
        for q, windows in zip(query, results):
            typer.echo(json.dumps({"query": q, "pred_relevant_windows": windows}))
