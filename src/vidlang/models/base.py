"""The contract between models and the engine.

A vidlang model is a ``torch.nn.Module`` subclass of :class:`VidlangModel`, registered by name in
``vidlang.registry.MODELS``, whose hyperparameters are one dataclass (``config_class``). The
engine (``vidlang.engine``) owns devices, optimisers, schedules, checkpoints and logging; the
model only maps a batch to named losses and to predictions. Loading a saved model folder is the
engine's (``vidlang.engine.load_model(dir, expect=ModelClass)``), so this module imports nothing
above the models.

Grounding batches (``task = "grounding"``; built by the engine from canonical records and a
feature store, features already resampled as the model's :meth:`feature_spec` asks)::

    video_ids    list[str]              B videos
    feats        FloatTensor [B, T, D]  clip features
    feat_mask    BoolTensor  [B, T]     True at real clips
    durations    FloatTensor [B]        seconds
    queries      list[str]              Q queries (Q >= B when whole videos are batched)
    qids         list[str]              Q
    query_video  LongTensor  [Q]        row of ``feats`` each query belongs to
    windows      FloatTensor [Q, 2]     first ground-truth window, seconds. Weakly supervised
                                        models must never read it (a test checks this).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

# FeatureSpec is owned by the data layer (it describes inputs); re-exported here so
# ``from vidlang.models.base import FeatureSpec`` keeps working.
from vidlang.data.features.spec import FeatureSpec

__all__ = ["FeatureSpec", "TrainState", "VidlangModel"]


@dataclass
class TrainState:
    """Where training is: 1-based epoch, global optimiser step, and the planned epoch count.

    ``gather_negatives`` mirrors ``trainer.gather_negatives``: when True, contrastive models
    should pass their embeddings through ``vidlang.ops.distributed.gather_with_grad`` so
    negatives come from every device (identity on one process).
    """

    epoch: int = 1
    step: int = 0
    max_epochs: int = 1
    gather_negatives: bool = False


class VidlangModel(nn.Module):
    """Base class of every model. Subclasses set ``task`` and ``config_class``."""

    task: ClassVar[str] = ""
    config_class: ClassVar[type] = object

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.cfg = cfg

    def feature_spec(self) -> FeatureSpec:
        """How input features must be resampled (default: unchanged, padded)."""
        return FeatureSpec()

    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        """Named loss terms for one batch; ``"loss"`` is the total the engine back-propagates."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Task-specific predictions, one dict per query (grounding: ``qid`` and
        ``pred_relevant_windows`` = [[start_s, end_s, score], ...] ranked best first)."""
        raise NotImplementedError

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups (override for per-module learning-rate multipliers)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": base_lr}]

    def on_train_epoch_start(self, state: TrainState) -> None:
        """Hook for schedules that depend on the epoch (e.g. freezing the text encoder)."""

    def prepare(self, train_records: Sequence[Any]) -> None:
        """Hook the engine calls once before training with the training split's records, for
        models that derive state from the data (CPL/CCR build their word vocabulary here and
        keep it in buffers, so it is saved with the weights). Default: nothing."""
