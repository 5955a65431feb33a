"""Train an experiment: the code behind ``vidlang train`` (evaluation, ``vidlang eval``, lives in
:mod:`vidlang.engine.evaluation`, which needs no Lightning).

Run folder layout (``--out``)::

    config.yaml                 resolved config of the run
    checkpoints/last.ckpt       resumable training state (optimiser, scheduler, epoch, RNG)
    best/                       model.safetensors + config.yaml + info.json (selection split)
    last/                       the same after the final epoch
    logs/csv/metrics.csv        per-step and per-epoch logs (resumed runs: logs/csv_resume<k>/)
    logs/tb/                    TensorBoard events
    curves.png                  training curves
    data_reports.json           what the readers read, kept, clamped and dropped per split
"""

from __future__ import annotations

import json
import logging
import signal
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_warn

from vidlang.engine.checkpoint import (
    build_model,
    save_pretrained,
)
from vidlang.engine.config import save_config
from vidlang.engine.dims import resolve_feature_dims
from vidlang.engine.evaluation import build_pipeline
from vidlang.engine.module import VidlangLightningModule
from vidlang.engine.paths import with_absolute_paths
from vidlang.engine.pipelines.base import TaskPipeline, flatten_metrics, resolve_metric_key
from vidlang.engine.plots import plot_training_curves
from vidlang.engine.resume import (
    LAST_CKPT,
    AtomicCheckpointIO,
    StopNow,
    StopRequest,
    TrainingState,
    check_training_state,
    interrupted,
    remove_stale_temporaries,
    trim_logs_after_state,
)
from vidlang.engine.schema import ExperimentConfig
from vidlang.errors import ConfigError, VidlangError
from vidlang.ops.memory import retain_freed_memory


@dataclass
class TrainResult:
    """Where a run wrote its models; ``model`` is the trained module (last epoch)."""

    out_dir: Path
    last_dir: Path
    best_dir: Path | None
    best_score: float | None
    model: Any = None
    best_metric: str | None = None  # the metrics key eval.metric resolved to
    val_metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        """The selected model: ``best/`` when a selection split was evaluated, else ``last/``."""
        return self.best_dir or self.last_dir


class ExportBest(L.Callback):
    """Writes ``best/`` whenever the selection metric improves (higher is better)."""

    def __init__(self, cfg: ExperimentConfig, out_dir: Path, test_selected: bool) -> None:
        self.cfg, self.out_dir, self.test_selected = cfg, out_dir, test_selected
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.best_key: str | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not isinstance(pl_module, VidlangLightningModule):
            return
        flat = flatten_metrics(pl_module.last_metrics)
        key = resolve_metric_key(list(flat), self.cfg.eval.metric)
        score = flat[key]
        if self.best_score is not None and score <= self.best_score:
            return
        self.best_score, self.best_epoch, self.best_key = score, pl_module.current_epoch + 1, key
        if trainer.is_global_zero:
            info = {"epoch": self.best_epoch, "metric": key, "score": score,
                    "selected_on": self.cfg.data.select_split, "test_selected": self.test_selected,
                    "metrics": pl_module.last_metrics}
            save_pretrained(pl_module.model, self.cfg, self.out_dir / "best", info)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "best_key": self.best_key}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score = state_dict.get("best_score")
        self.best_epoch = state_dict.get("best_epoch")
        self.best_key = state_dict.get("best_key")


def write_data_reports(pipe: TaskPipeline, path: Path) -> None:
    """The readers' reports (read / kept / clamped / dropped, with file:line) of every split."""
    reports = {split: r.to_json() for split, r in pipe.reports.items() if hasattr(r, "to_json")}
    if reports:
        path.write_text(json.dumps(reports, indent=2), encoding="utf-8")


class _QuietLightning(logging.Filter):
    """Drops Lightning's advertising tips from the log (everything else passes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage().lower()


def _progress_bar() -> L.Callback:
    from lightning.pytorch.callbacks import RichProgressBar

    class ProgressBar(RichProgressBar):
        """Rich bar without the logger's version number."""

        def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
            metrics = super().get_metrics(trainer, pl_module)
            metrics.pop("v_num", None)
            return metrics

    return ProgressBar()


def _csv_logs(out: Path) -> list[Path]:
    """The run's CSV logs in order: ``logs/csv`` then ``logs/csv_resume1``, ``_resume2`` ..."""
    def order(p: Path) -> int:
        tail = p.parent.name.removeprefix("csv").removeprefix("_resume")
        return int(tail) if tail.isdigit() else 0

    return sorted((out / "logs").glob("csv*/metrics.csv"), key=order)


def _next_csv_version(out: Path) -> str:
    """A fresh CSV log folder, so a resumed run never overwrites the earlier epochs' log."""
    n = len(_csv_logs(out))
    return "csv" if n == 0 else f"csv_resume{n}"


def _trainer(cfg: ExperimentConfig, out: Path, callbacks: Sequence[L.Callback]) -> L.Trainer:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietLightning) for f in logger.filters):
            logger.addFilter(_QuietLightning())
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")  # torch/lightning version chatter
    # a mid-epoch resume skips the trained batches itself (EpochSampler.skip_once)
    warnings.filterwarnings("ignore", message=r".*resuming from a checkpoint that ended before the epoch ended.*")
    t = cfg.trainer
    cbs: list[L.Callback] = []
    if t.progress_bar:
        cbs.append(_progress_bar())
    cbs.extend(callbacks)
    loggers = [CSVLogger(save_dir=out, name="logs", version=_next_csv_version(out)),
               TensorBoardLogger(save_dir=out, name="logs", version="tb", default_hp_metric=False)]
    return L.Trainer(
        max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
        num_nodes=t.num_nodes, precision=t.precision,  # type: ignore[arg-type]
        deterministic=t.deterministic,
        gradient_clip_val=cfg.optim.grad_clip or None, gradient_clip_algorithm="norm",
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar, enable_model_summary=False, callbacks=cbs,
        logger=loggers, default_root_dir=str(out), num_sanity_val_steps=0,
        plugins=[AtomicCheckpointIO()],  # checkpoints: the TrainingState callback
        use_distributed_sampler=False, check_val_every_n_epoch=cfg.eval.every_n_epochs,
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=0 if cfg.data.select_split is None else None,
    )


def prepare_model(model: Any, pipe: TaskPipeline) -> None:
    """Call ``model.prepare(training records)`` when the model overrides the hook (e.g. CPL
    builds its vocabulary); runs before the optimiser is built and, on resume, before the
    checkpoint's weights (and buffers such as a vocabulary) are restored."""
    from vidlang.models.base import VidlangModel

    if type(model).prepare is not VidlangModel.prepare:
        model.prepare(pipe.training_records())


def train(cfg: ExperimentConfig, out_dir: str | Path, *, resume: bool = False,
          pipeline: TaskPipeline | None = None, callbacks: Sequence[L.Callback] = ()) -> TrainResult:
    """Train ``cfg`` into ``out_dir``; ``resume`` continues from ``checkpoints/last.ckpt``.

    The training state is saved at the end of every epoch (and every
    ``trainer.checkpoint_every_n_steps`` steps); SIGINT / SIGTERM save it at the next step
    boundary and raise :class:`~vidlang.errors.TrainingInterrupted` (``vidlang train`` exits
    130). Data paths are stored resolved, so the run's models work from any folder.
    """
    out = Path(out_dir)
    ckpt = out / LAST_CKPT
    if resume and not ckpt.is_file():
        raise ConfigError(f"--resume: no training state at {ckpt}")
    if not resume and ckpt.is_file():
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    resolve_feature_dims(cfg, require_store=pipeline is None)  # `auto` widths, before anything is built
    if resume:
        check_training_state(ckpt)
    if cfg.trainer.checkpoint_every_n_steps < 0:
        raise ConfigError(f"trainer.checkpoint_every_n_steps: must be >= 0 (0 = per epoch only), "
                          f"got {cfg.trainer.checkpoint_every_n_steps}")
    cfg = with_absolute_paths(cfg)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(ckpt.parent)
    if resume and (dropped := trim_logs_after_state(ckpt, _csv_logs(out))):
        rank_zero_warn(f"--resume: dropped {dropped} log row(s) written after the saved state "
                       "(their steps are trained and logged again)")
    save_config(cfg, out / "config.yaml")

    if cfg.trainer.retain_freed_memory:
        retain_freed_memory()  # per-step tensors stop page-faulting (vidlang.ops.memory)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_model(cfg)
    pipe = pipeline if pipeline is not None else build_pipeline(cfg, model)
    prepare_model(model, pipe)
    module = VidlangLightningModule(model, cfg, pipe)
    export = ExportBest(cfg, out, pipe.selection_is_test)
    stop = StopRequest()
    state = TrainingState(out, stop, cfg.trainer.checkpoint_every_n_steps)
    trainer = _trainer(cfg, out, [export, *callbacks, state])
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    try:
        with stop:
            trainer.fit(module, ckpt_path=str(ckpt) if resume else None)
    except (StopNow, SIGTERMException):
        stop.signum = stop.signum or signal.SIGTERM
    finished = trainer.current_epoch >= cfg.trainer.max_epochs
    if stop.requested and not finished:
        if trainer.is_global_zero:
            plot_training_curves(_csv_logs(out), out / "curves.png")
        raise interrupted(state, out, stop.signum)

    last_dir = out / "last"
    if trainer.is_global_zero:
        write_data_reports(pipe, out / "data_reports.json")
        save_pretrained(model, cfg, last_dir, {"epoch": trainer.current_epoch})
        plot_training_curves(_csv_logs(out), out / "curves.png")
    best_dir = out / "best" if export.best_score is not None else None
    return TrainResult(out, last_dir, best_dir, export.best_score, model, export.best_key, module.last_metrics)


__all__ = ["TrainResult", "train", "VidlangError"]
