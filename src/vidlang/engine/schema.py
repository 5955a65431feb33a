"""Typed schemas of the engine's config sections (everything but ``model`` and ``data``).

The ``model`` section is validated against the model's ``config_class`` (looked up from
``model.name`` in ``vidlang.registry.MODELS``) and ``data`` against the task pipeline's
``data_config_class``; see :mod:`vidlang.engine.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SchedulerConfig:
    """Learning-rate schedule. ``name``: ``none``, ``multistep`` or ``inverse_sqrt``."""

    name: str = "none"
    milestones: list[int] = field(default_factory=list)  # multistep: epochs
    gamma: float = 0.1  # multistep: factor at each milestone
    warmup_updates: int = 400  # inverse_sqrt: optimiser updates of linear warm-up
    warmup_init_lr: float = 1e-7  # inverse_sqrt: lr at update 0


@dataclass
class OptimConfig:
    """Optimiser. ``name``: ``adamw`` or ``adam``; ``grad_clip`` is a max L2 norm (0 = off)."""

    name: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    grad_clip: float = 0.0
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


@dataclass
class TrainerConfig:
    """Lightning trainer settings; the same config runs on CPU, one GPU, many GPUs or nodes."""

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = 1  # int, list of ids, or "auto"
    strategy: str = "auto"  # e.g. "ddp"
    num_nodes: int = 1
    precision: str = "32-true"
    gather_negatives: bool = False  # all-gather contrastive negatives across devices
    deterministic: Any = "warn"  # "warn": deterministic kernels where they exist; True: fail otherwise
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    progress_bar: bool = True
    limit_train_batches: Any = None  # int (batches) or float (fraction); None = all
    checkpoint_every_n_steps: int = 0  # also save checkpoints/last.ckpt every N optimiser steps (0 = per epoch only)
    retain_freed_memory: bool = True  # keep freed blocks for the next step (vidlang.ops.memory; glibc only)


@dataclass
class EvalConfig:
    """Evaluation and model selection. ``metric`` is a key of the pipeline's metrics dict."""

    preset: str = "mmn"  # vidlang.metrics preset (grounding)
    metric: str = "R@1,IoU>=0.5"  # model-selection metric key (higher is better; tag optional)
    every_n_epochs: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)  # extra metric options


@dataclass
class RunConfig:
    """The engine-owned top-level keys; ``model`` and ``data`` are validated separately."""

    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    model: Any = None
    data: Any = None


@dataclass
class DataConfig:
    """Data section shared by all task pipelines (pipelines subclass it for their own keys).

    ``dataset`` is a catalog name or ``synthvl``; ``root`` its annotation folder (SynthVL: the
    folder written by ``vidlang synth``). ``select_split`` is evaluated during training and
    picks the best checkpoint; selecting on ``test_split`` needs ``allow_test_selection``.
    """

    dataset: str = "synthvl"
    root: str | None = None  # None: the dataset's default root ($VIDLANG_DATA or ../shared/data)
    features: str | None = None  # feature store path; None = the dataset's default
    key_pattern: str | None = None  # HDF5 key per video, e.g. "{vid}/c3d_features"
    train_split: str = "train"
    select_split: str | None = "val"
    test_split: str = "test"
    allow_test_selection: bool = False
    batch_size: int = 8
    eval_batch_size: int = 16
    num_workers: int = 0
    # prepared (resampled) features kept in memory across epochs, up to this many MiB per
    # pipeline (0 = read and resample every video at every step); see docs/engine.md
    feature_cache_mb: int = 2048
    # retrieval / alignment training: keep the split pre-padded in one tensor when that fits in
    # feature_cache_mb, so a batch is one gather (same tensors); false = pad per step
    feature_bank: bool = True


@dataclass
class ExperimentConfig:
    """A validated experiment: typed sections, with ``model`` the model's own config object."""

    model_name: str
    model: Any
    data: Any
    seed: int = 0
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def task(self) -> str:
        from vidlang.registry import MODELS

        return MODELS.get(self.model_name).task
