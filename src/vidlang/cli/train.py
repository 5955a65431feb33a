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
        from vidlang.engine.run import evaluate

        cfg = load_config(config, set_ or [])
        report = evaluate(cfg, ckpt, split=split, out_dir=out)
        typer.echo(json.dumps(report, indent=2, default=float))

    @app.command("predict")
    def predict_cmd(
        ckpt: Path = typer.Option(..., "--ckpt", help="Grounding model folder."),
        features: Optional[Path] = typer.Option(None, "--features", help="A [T, D] .npy file, or a feature store (HDF5 / npy folder) with --video-id."),
        query: list[str] = typer.Option(..., "--query", help="Query text (repeatable)."),
        duration: Optional[float] = typer.Option(None, "--duration", help="Video length in seconds (default: from the store)."),
        video_id: Optional[str] = typer.Option(None, "--video-id", help="Video to read from a feature store."),
        key_pattern: Optional[str] = typer.Option(None, "--key-pattern", help="HDF5 key per video, e.g. '{vid}/c3d_features'."),
        top_k: int = typer.Option(5, "--top-k", help="Windows per query (0 = all)."),
        video: Optional[Path] = typer.Option(None, "--video", help="A video file to extract features from (docs/video.md)."),
        extractor: Optional[str] = typer.Option(None, "--extractor", help="With --video: extractor (default: the one recorded in the training features)."),
        extractor_model: Optional[str] = typer.Option(None, "--extractor-model", help="With --video: checkpoint of the clip extractor."),
    ) -> None:
        """Ranked (start, end, score) windows per query, one JSON line each."""
        from vidlang.errors import ConfigError
        from vidlang.predictor import GroundingPredictor

        predictor = GroundingPredictor.from_pretrained(ckpt)
        if video is not None:
            from vidlang.video.features import features_for_checkpoint

            feats, video_seconds = features_for_checkpoint(ckpt, video, extractor, extractor_model)
            results = predictor.predict(feats, query, duration or video_seconds, top_k)
        elif features is None:
            raise ConfigError("--features or --video: say what to predict on")
        elif video_id is not None:
            results = predictor.predict_from_store(features, video_id, query, duration, key_pattern, top_k)
        elif features.suffix == ".npy":
            if duration is None:
                raise ConfigError("--duration: required with a .npy feature file")
            from vidlang.data.features import load_feature_array

            results = predictor.predict(load_feature_array(features), query, duration, top_k)
        else:
            raise ConfigError(f"--video-id: required to read a video from feature store {features}")
        for q, windows in zip(query, results):
            typer.echo(json.dumps({"query": q, "pred_relevant_windows": windows}))
