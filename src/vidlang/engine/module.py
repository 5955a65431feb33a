"""The LightningModule that wraps any :class:`~vidlang.models.base.VidlangModel`.

It calls ``training_losses`` and logs every named term, calls ``on_train_epoch_start`` with a
:class:`TrainState`, builds the optimiser from ``model.param_groups(lr)`` and the configured
schedule, evaluates through the task pipeline, and stores RNG states in its checkpoints.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from vidlang.engine.distributed import all_gather_objects
from vidlang.engine.optim import build_optimizer, build_scheduler
from vidlang.engine.pipelines.base import TaskPipeline, flatten_metrics
from vidlang.engine.rng import capture_rng, restore_rng
from vidlang.engine.schema import ExperimentConfig
from vidlang.errors import VidlangError
from vidlang.models.base import TrainState, VidlangModel

RNG_KEY = "vidlang_rng"


class VidlangLightningModule(L.LightningModule):
    """Engine wrapper: one instance per run; ``model`` is the user-facing module."""

    def __init__(self, model: VidlangModel, cfg: ExperimentConfig, pipeline: TaskPipeline) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.pipeline = pipeline
        self._eval_outputs: list[Any] = []
        self._pending_rng: dict[str, Any] | None = None
        self.last_metrics: dict[str, Any] = {}

    # ---- state handed to the model -------------------------------------------------------
    def train_state(self) -> TrainState:
        return TrainState(epoch=self.current_epoch + 1, step=self.global_step,
                          max_epochs=int(self.trainer.max_epochs or 1),
                          gather_negatives=self.cfg.trainer.gather_negatives)

    # ---- data ---------------------------------------------------------------------------
    def train_dataloader(self) -> Any:
        return self.pipeline.train_loader(self.global_rank, self.trainer.world_size)

    def val_dataloader(self) -> Any:
        split = self.cfg.data.select_split or self.cfg.data.train_split  # None: never iterated
        return self.pipeline.eval_loader(split, self.global_rank, self.trainer.world_size)

    # ---- training -----------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        if self._pending_rng is not None:  # resumed: continue the interrupted run's RNG stream
            restore_rng(self._pending_rng)
            self._pending_rng = None
        self.model.on_train_epoch_start(self.train_state())

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.model.training_losses(batch, self.train_state())
        if "loss" not in losses:
            raise VidlangError(f"{type(self.model).__name__}.training_losses returned no 'loss' "
                               f"(got {sorted(losses)})")
        size = len(batch["qids"]) if "qids" in batch else None
        self.log_dict({f"train/{k}": v.detach().float() for k, v in losses.items()},
                      on_step=True, on_epoch=True, batch_size=size, prog_bar=False,
                      sync_dist=self.trainer.world_size > 1)
        return losses["loss"]

    def configure_optimizers(self) -> Any:
        optim_cfg = self.cfg.optim
        optimizer = build_optimizer(self.model.param_groups(optim_cfg.lr), optim_cfg)
        spec = build_scheduler(optimizer, optim_cfg)
        if spec is None:
            return optimizer
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": spec.scheduler, "interval": spec.interval, "frequency": 1}}

    # ---- evaluation ---------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._eval_outputs = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_outputs.append(self.pipeline.eval_step(self.model, batch))

    def on_validation_epoch_end(self) -> None:
        split = self.cfg.data.select_split
        if split is None or self.trainer.sanity_checking:
            return
        outputs = [o for part in all_gather_objects(self._eval_outputs) for o in part]
        self._eval_outputs = []
        metrics = self.pipeline.evaluate(outputs, split)
        self.last_metrics = metrics
        flat = flatten_metrics(metrics)
        # every process computed the same numbers from the gathered outputs: no sync needed
        self.log_dict({f"val/{k}": v for k, v in flat.items()}, on_epoch=True, sync_dist=False)

    # ---- checkpoints --------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = capture_rng()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get(RNG_KEY)
