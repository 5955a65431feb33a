"""The LightningModule that wraps any :class:`~vidlang.models.base.VidlangModel`.

It calls ``training_losses`` and logs every named term, calls ``on_train_epoch_start`` with a
:class:`TrainState`, builds the optimiser from ``model.param_groups(lr)`` and the configured
schedule, evaluates through the task pipeline, and stores in its checkpoints what an exact
resume needs beyond Lightning's own state: the RNG states, where in the epoch the state was
saved (a mid-epoch resume skips the batches already trained) and the running epoch means of
the loss terms (so the resumed epoch logs the same ``train/<term>_epoch`` value).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from vidlang.engine.optim import build_optimizer, build_scheduler
from vidlang.engine.pipelines.base import TaskPipeline, flatten_metrics
from vidlang.engine.rng import capture_rng, restore_rng
from vidlang.engine.schema import ExperimentConfig
from vidlang.errors import NonFiniteError, VidlangError
from vidlang.models.base import TrainState, VidlangModel
from vidlang.ops.distributed import all_gather_objects, all_reduce_sum

RNG_KEY = "vidlang_rng"
POSITION_KEY = "vidlang_position"  # {"epoch": 0-based, "batches_done": int, "loss_sums": {...}}


class VidlangLightningModule(L.LightningModule):
    """Engine wrapper: one instance per run; ``model`` is the user-facing module."""

    def __init__(self, model: VidlangModel, cfg: ExperimentConfig, pipeline: TaskPipeline) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.pipeline = pipeline
        self._eval_outputs: list[Any] = []
        self._pending_rng: dict[str, Any] | None = None
        self._resume_mid_epoch: dict[str, Any] | None = None  # position of a mid-epoch checkpoint
        self._loss_sums: dict[str, torch.Tensor] = {}  # epoch running sums (x batch size) + "__n__"
        self.last_metrics: dict[str, Any] = {}

    # ---- state handed to the model -------------------------------------------------------
    def train_state(self) -> TrainState:
        return TrainState(epoch=self.current_epoch + 1, step=self.global_step,
                          max_epochs=int(self.trainer.max_epochs or 1),
                          gather_negatives=self.cfg.trainer.gather_negatives)

    # ---- data ---------------------------------------------------------------------------
    def train_dataloader(self) -> Any:
        loader = self.pipeline.train_loader(self.global_rank, self.trainer.world_size)
        pos = self._resume_mid_epoch
        if pos is not None:  # skip what the interrupted run already trained on in this epoch
            from vidlang.engine.pipelines.base import EpochSampler

            sampler = getattr(loader, "sampler", None)
            if not isinstance(sampler, EpochSampler) or not loader.batch_size:
                raise VidlangError(f"{type(self.pipeline).__name__}.train_loader: a mid-epoch resume "
                                   "needs a loader from make_loader (EpochSampler, fixed batch size)")
            sampler.skip_once(int(pos["epoch"]), int(pos["batches_done"]) * int(loader.batch_size))
        return loader

    def val_dataloader(self) -> Any:
        split = self.cfg.data.select_split or self.cfg.data.train_split  # None: never iterated
        return self.pipeline.eval_loader(split, self.global_rank, self.trainer.world_size)

    # ---- training -----------------------------------------------------------------------
    def on_train_start(self) -> None:
        if self._resume_mid_epoch is None:
            return
        # Lightning does not call on_train_epoch_start when it resumes inside an epoch (it does
        # replay the step schedulers' update that followed the save): replay the hook, the
        # epoch's running loss sums and the RNG stream
        self.model.on_train_epoch_start(self.train_state())
        self._loss_sums = {k: v.to(self.device) for k, v in self._resume_mid_epoch["loss_sums"].items()}
        if self._pending_rng is not None:
            restore_rng(self._pending_rng)
            self._pending_rng = None
        self._resume_mid_epoch = None

    def on_train_epoch_start(self) -> None:
        self._loss_sums = {}
        if self._pending_rng is not None:  # resumed: continue the interrupted run's RNG stream
            restore_rng(self._pending_rng)
            self._pending_rng = None
        self.model.on_train_epoch_start(self.train_state())

    def _check_finite_loss(self, loss: torch.Tensor, batch: dict[str, Any]) -> None:
        """Stop on a NaN/inf loss before it reaches the weights (every process agrees)."""
        bad = ~torch.isfinite(loss.detach()).all()
        if self.trainer.world_size > 1:
            bad = all_reduce_sum(bad.float().reshape(1)) > 0
        if bool(bad):
            vids = list(dict.fromkeys(batch.get("video_ids", [])))
            shown = ", ".join(map(str, vids[:8])) + (f" and {len(vids) - 8} more" if len(vids) > 8 else "")
            value = loss.detach().float().reshape(-1)[0].item()
            raise NonFiniteError(
                f"training loss is {value} at epoch {self.current_epoch + 1}, step "
                f"{self.global_step + 1} (batch {self.trainer.fit_loop.epoch_loop.batch_idx + 1} "
                f"of the epoch; videos: {shown or 'unknown'}); training stopped before updating "
                f"the weights - lower optim.lr, set optim.grad_clip, or check these videos' features")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.model.training_losses(batch, self.train_state())
        if "loss" not in losses:
            raise VidlangError(f"{type(self.model).__name__}.training_losses returned no 'loss' "
                               f"(got {sorted(losses)})")
        self._check_finite_loss(losses["loss"], batch)
        size = len(batch["qids"]) if "qids" in batch else None
        terms = {k: v.detach().float() for k, v in losses.items()}
        self.log_dict({f"train/{k}_step": v for k, v in terms.items()}, on_step=True, on_epoch=False,
                      batch_size=size, prog_bar=False, sync_dist=self.trainer.world_size > 1)
        weight = float(size or 1)
        for k, v in terms.items():  # epoch means kept here (not by Lightning) so they survive a resume
            self._loss_sums[k] = self._loss_sums.get(k, 0.0) + v.double() * weight
        self._loss_sums["__n__"] = self._loss_sums.get("__n__", 0.0) + torch.tensor(weight, dtype=torch.float64)
        return losses["loss"]

    def on_train_epoch_end(self) -> None:
        sums = self._loss_sums
        if not sums:
            return
        names = [k for k in sums if k != "__n__"]
        stacked = torch.stack([torch.as_tensor(sums[k], dtype=torch.float64, device=self.device)
                               for k in [*names, "__n__"]])
        if self.trainer.world_size > 1:
            stacked = all_reduce_sum(stacked)
        means = (stacked[:-1] / stacked[-1]).float()
        self.log_dict({f"train/{k}_epoch": means[i] for i, k in enumerate(names)},
                      on_step=False, on_epoch=True, sync_dist=False)

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
        metrics = self.pipeline.evaluate(self.model, outputs, split)
        self.last_metrics = metrics
        flat = flatten_metrics(metrics)
        # every process computed the same numbers from the gathered outputs: no sync needed
        self.log_dict({f"val/{k}": v for k, v in flat.items()}, on_epoch=True, sync_dist=False)

    # ---- checkpoints --------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[RNG_KEY] = capture_rng()
        from vidlang.engine.resume import batches_done_in_epoch

        done = batches_done_in_epoch(self.trainer)
        mid_epoch = done < self.trainer.num_training_batches
        checkpoint[POSITION_KEY] = {
            "epoch": self.current_epoch, "batches_done": done if mid_epoch else 0,
            "loss_sums": {k: torch.as_tensor(v, dtype=torch.float64).cpu()
                          for k, v in self._loss_sums.items()} if mid_epoch else {}}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng = checkpoint.get(RNG_KEY)
        pos = checkpoint.get(POSITION_KEY)
        self._resume_mid_epoch = pos if pos and pos.get("batches_done") else None
