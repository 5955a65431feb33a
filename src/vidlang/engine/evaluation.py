"""Evaluate a trained model: the code behind ``vidlang eval``, and the evaluation loop the
trainer and the evidence scripts share. It needs no Lightning, so ``vidlang eval`` and the
predictors start in a few seconds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vidlang.engine.checkpoint import INFO, load_model, resolve_model_dir
from vidlang.engine.pipelines.base import TaskPipeline
from vidlang.engine.schema import ExperimentConfig
from vidlang.errors import ConfigError
from vidlang.ops.device import to_device


def build_pipeline(cfg: ExperimentConfig, model: Any) -> TaskPipeline:
    """The registered pipeline of the model's task."""
    from vidlang.registry import PIPELINES

    return PIPELINES.get(model.task)(cfg, model.feature_spec())


@torch.no_grad()
def run_eval_outputs(model: Any, pipeline: TaskPipeline, split: str, progress: bool = False) -> list[Any]:
    """Every eval step's output over ``split`` (one process); ``progress``: a bar on stderr."""
    from vidlang.engine.progress import progress_iter

    device = next(iter(model.parameters()), torch.empty(0)).device
    model.eval()
    batches = progress_iter(pipeline.eval_loader(split), f"eval {split}", enabled=progress)
    return [pipeline.eval_step(model, to_device(b, device)) for b in batches]


def evaluate(cfg: ExperimentConfig, ckpt: str | Path, *, split: str | None = None,
             out_dir: str | Path | None = None, pipeline: TaskPipeline | None = None,
             device: str | None = None) -> dict[str, Any]:
    """Score the model in ``ckpt`` on ``split`` (default ``data.test_split``) with ``cfg``'s
    data and eval settings; writes the pipeline's files (grounding: ``predictions.jsonl``,
    ``metrics.json``) into ``out_dir`` (default ``<ckpt>/eval_<split>``)."""
    folder = resolve_model_dir(ckpt)
    split = split or cfg.data.test_split
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(folder, map_location=dev)
    if model.task != cfg.task:
        raise ConfigError(f"model.name: checkpoint holds a {model.task} model, config is {cfg.task}")
    pipe = pipeline if pipeline is not None else build_pipeline(cfg, model)
    outputs = run_eval_outputs(model, pipe, split, progress=cfg.trainer.progress_bar)
    metrics = pipe.evaluate(model, outputs, split)
    info_path = folder / INFO
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    out = Path(out_dir) if out_dir is not None else folder / f"eval_{split}"
    # eval.preset is a grounding convention; other tasks name theirs in the metric keys
    preset = {"preset": cfg.eval.preset} if cfg.task == "grounding" else {}
    report = {"split": split, "checkpoint": str(folder), **preset,
              "selected_on": info.get("selected_on"), "test_selected": bool(info.get("test_selected")),
              "out_dir": str(out), "metrics": metrics}
    pipe.write_outputs(outputs, report, split, out)
    return report
