"""Optimisers and learning-rate schedules, registered by name (``optim.name``,
``optim.scheduler.name``).

Schedulers return a :class:`ScheduleSpec`, which tells the engine whether to step after every
optimiser update (``step``) or every epoch (``epoch``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vidlang.engine.schema import OptimConfig, SchedulerConfig
from vidlang.errors import ConfigError
from vidlang.registry import Registry

OptimizerFactory = Callable[[list[dict[str, Any]], OptimConfig], torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")


@dataclass
class ScheduleSpec:
    scheduler: torch.optim.lr_scheduler.LRScheduler
    interval: str  # "step" or "epoch"


SchedulerFactory = Callable[[torch.optim.Optimizer, OptimConfig], "ScheduleSpec | None"]
SCHEDULERS: Registry[SchedulerFactory] = Registry("lr scheduler")


def _adam_kwargs(cfg: OptimConfig) -> dict[str, Any]:
    if len(cfg.betas) != 2:
        raise ConfigError(f"optim.betas: expected two numbers, got {list(cfg.betas)}")
    return {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps, "weight_decay": cfg.weight_decay}


@OPTIMIZERS.register("adamw")
def _adamw(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, **_adam_kwargs(cfg))


@OPTIMIZERS.register("adam")
def _adam(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, **_adam_kwargs(cfg))


@SCHEDULERS.register("none")
def _constant(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> ScheduleSpec | None:
    return None


@SCHEDULERS.register("multistep")
def _multistep(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> ScheduleSpec:
    s = cfg.scheduler
    if list(s.milestones) != sorted(s.milestones):
        raise ConfigError(f"optim.scheduler.milestones: must be increasing, got {list(s.milestones)}")
    sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(s.milestones), gamma=s.gamma)
    return ScheduleSpec(sched, "epoch")


def inverse_sqrt_factor(step: int, base_lr: float, s: SchedulerConfig) -> float:
    """fairseq-style inverse-sqrt, as a multiplier of ``base_lr``: linear warm-up from
    ``warmup_init_lr`` to ``base_lr`` over ``warmup_updates`` updates, then
    ``base_lr * sqrt(warmup_updates) / sqrt(step)``."""
    warm = s.warmup_updates
    if step < warm:
        init = s.warmup_init_lr / base_lr
        return init + (1.0 - init) * step / warm
    return math.sqrt(warm) / math.sqrt(step)


@SCHEDULERS.register("inverse_sqrt")
def _inverse_sqrt(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> ScheduleSpec:
    if cfg.scheduler.warmup_updates < 1:
        raise ConfigError("optim.scheduler.warmup_updates: must be >= 1 for inverse_sqrt")
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: inverse_sqrt_factor(step, cfg.lr, cfg.scheduler))
    return ScheduleSpec(sched, "step")


def build_optimizer(groups: list[dict[str, Any]], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``optim.name`` over the model's parameter groups."""
    groups = [g for g in groups if list(g["params"])]
    if not groups:
        raise ConfigError("model has no trainable parameters (param_groups returned none)")
    try:
        factory = OPTIMIZERS.get(cfg.name)
    except Exception as e:
        raise ConfigError(f"optim.name: {e}") from None
    return factory(groups, cfg)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> ScheduleSpec | None:
    """The schedule named by ``optim.scheduler.name`` (``None`` for a constant lr)."""
    try:
        factory = SCHEDULERS.get(cfg.scheduler.name)
    except Exception as e:
        raise ConfigError(f"optim.scheduler.name: {e}") from None
    return factory(optimizer, cfg)
