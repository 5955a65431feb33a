"""Freeze-then-fine-tune schedule for pretrained parts, as MMN does for DistilBERT.

A model keeps its text encoder in every optimiser group from the start (with
:func:`param_groups_with_multipliers`) and calls :func:`apply_freeze` at the start of each
epoch: the encoder is frozen (``requires_grad=False``, so the optimiser skips it) while
``epoch <= freeze_epochs`` and trained at ``lr_mult`` x the base learning rate afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn


def set_trainable(module: nn.Module, trainable: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(trainable)


def apply_freeze(module: nn.Module, epoch: int, freeze_epochs: int) -> bool:
    """Freeze ``module`` while the 1-based ``epoch`` <= ``freeze_epochs``; returns whether it
    is trainable now."""
    trainable = epoch > freeze_epochs
    set_trainable(module, trainable)
    return trainable


def param_groups_with_multipliers(model: nn.Module, base_lr: float,
                                  multipliers: Mapping[nn.Module, float]) -> list[dict[str, Any]]:
    """One group at ``base_lr`` for every parameter outside ``multipliers`` and one group per
    listed sub-module at ``base_lr * mult``. All parameters are included (frozen ones too,
    since freezing changes by epoch); each parameter appears once."""
    seen: set[int] = set()
    groups: list[dict[str, Any]] = []
    for sub, mult in multipliers.items():
        params = [p for p in sub.parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        groups.append({"params": params, "lr": base_lr * mult})
    rest = [p for p in model.parameters() if id(p) not in seen]
    return [{"params": rest, "lr": base_lr}, *[g for g in groups if g["params"]]]
