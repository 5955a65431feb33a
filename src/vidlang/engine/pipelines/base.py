"""The task-pipeline contract: how the engine gets loaders and scores for one task.

A pipeline (registered in ``vidlang.registry.PIPELINES`` under the task name that models set in
``VidlangModel.task``) owns the data side of a task: its ``data`` config schema, datasets,
collate functions and loaders (all through :func:`make_loader`) producing the batches
documented in ``vidlang.models.base``, the per-batch eval step, and which ``vidlang.metrics``
score the gathered outputs. Metric code lives in ``vidlang.metrics``, readers in
``vidlang.data``; the engine owns everything else (devices, optimiser, checkpoints, logging).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.schema import DataConfig, ExperimentConfig
from vidlang.errors import ConfigError, RegistryError


class EpochSampler(Sampler[int]):
    """Deterministic, shardable sampler: the order depends only on (seed, epoch).

    Shuffles with a generator seeded by ``seed + epoch`` (Lightning calls :meth:`set_epoch`),
    then gives process ``rank`` every ``world_size``-th index. With ``pad`` the list is padded
    (by repeating its start) to a multiple of ``world_size`` so every process runs the same
    number of steps (training); evaluation uses ``pad=False`` so nothing is scored twice.
    """

    def __init__(self, n: int, seed: int, shuffle: bool, rank: int = 0, world_size: int = 1,
                 pad: bool = True, on_epoch: Callable[[int], None] | None = None) -> None:
        self.n, self.seed, self.shuffle = n, seed, shuffle
        self.rank, self.world_size, self.pad = rank, world_size, pad
        self.on_epoch = on_epoch
        self.epoch = 0
        self._skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this before each epoch; ``on_epoch`` (the dataset's ``set_epoch``)
        hears it too, for datasets that draw per epoch (retrieval's caption draw)."""
        self.epoch = epoch
        if self.on_epoch is not None:
            self.on_epoch(epoch)

    def skip_once(self, epoch: int, n: int) -> None:
        """In ``epoch`` only, leave out the first ``n`` indices (the batches an interrupted run
        already trained on); ``len()`` still counts them, as the resumed loop's counters do."""
        self._skip = (epoch, n)

    def _indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=gen).tolist()
        else:
            order = list(range(self.n))
        if self.pad and self.world_size > 1 and self.n % self.world_size:
            extra = self.world_size - self.n % self.world_size
            order += (order * (extra // max(self.n, 1) + 1))[:extra]
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        indices = self._indices()
        if self._skip is not None and self._skip[0] == self.epoch:
            indices = indices[self._skip[1]:]
            self._skip = None
        return iter(indices)

    def __len__(self) -> int:
        return len(self._indices())


def make_loader(dataset: Dataset, collate: Callable[[list[Any]], Any], batch_size: int, *,
                shuffle: bool, seed: int, num_workers: int, rank: int = 0, world_size: int = 1,
                pad: bool = True) -> DataLoader:
    """The DataLoader of every pipeline: an :class:`EpochSampler` (told to the dataset's
    ``set_epoch`` when it has one) and its own generator, so iterating it never draws from the
    global RNG (needed for bit-identical resume). With workers, a dataset that keeps its
    features in memory (``data.feature_cache_mb``) reads them all first, so the forked workers
    share that copy instead of each reading (and dropping at the epoch's end) their own."""
    on_epoch = getattr(dataset, "set_epoch", None)
    sampler = EpochSampler(len(dataset), seed, shuffle, rank, world_size, pad,  # type: ignore[arg-type]
                           on_epoch=on_epoch if callable(on_epoch) else None)
    preload = getattr(dataset, "preload", None)
    if num_workers > 0 and callable(preload):
        preload()
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate,
                      num_workers=num_workers, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)


class BoundCollate:
    """A picklable collate with keyword options bound (``BoundCollate(collate_retrieval,
    segments=True)``), for DataLoader workers."""

    def __init__(self, fn: Callable[..., dict[str, Any]], **kwargs: Any) -> None:
        self.fn, self.kwargs = fn, kwargs

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        return self.fn(items, **self.kwargs)


class TaskPipeline(ABC):
    """Data, evaluation and outputs of one task. Subclasses set ``task`` and
    ``data_config_class`` (a :class:`DataConfig` subclass) and register in PIPELINES."""

    task: ClassVar[str] = ""
    data_config_class: ClassVar[type] = DataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec) -> None:
        self.cfg = cfg
        self.data = cfg.data
        self.feature_spec = feature_spec
        #: split -> the reader's LoadReport (what was read, kept, clamped, dropped)
        self.reports: dict[str, Any] = {}

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        """Cross-key checks run at validation time (before training starts)."""
        data = cfg.data
        if data.select_split is not None and data.select_split == data.test_split \
                and not data.allow_test_selection:
            raise ConfigError(
                f"data.select_split: {data.select_split!r} is the test split; model selection on "
                "test needs data.allow_test_selection=true (results are then labelled test-selected)")
        for key in ("batch_size", "eval_batch_size"):
            if getattr(data, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(data, key)}")
        if data.num_workers < 0:
            raise ConfigError(f"data.num_workers: must be >= 0, got {data.num_workers}")
        if getattr(data, "feature_cache_mb", 0) < 0:
            raise ConfigError(f"data.feature_cache_mb: must be >= 0, got {data.feature_cache_mb}")

    @staticmethod
    def check_splits(cfg: ExperimentConfig, kind: str) -> None:
        """``data.dataset`` is registered and has the configured ``kind`` splits (when the
        dataset lists its splits), so a typo fails before training, naming the key."""
        from vidlang.registry import DATASETS

        data = cfg.data
        try:
            source = DATASETS.get(data.dataset)
        except RegistryError as e:
            raise ConfigError(f"data.dataset: {e}") from None
        if not hasattr(source, "splits"):
            return
        known = list(source.splits(kind))
        for key in ("train_split", "select_split", "test_split"):
            split = getattr(data, key)
            if split is not None and split not in known:
                raise ConfigError(f"data.{key}: {data.dataset!r} has no {kind} split {split!r} "
                                  f"(splits: {', '.join(known) or 'none'})")

    @property
    def selection_is_test(self) -> bool:
        return self.data.select_split is not None and self.data.select_split == self.data.test_split

    def training_records(self) -> Sequence[Any]:
        """The train split's records, handed to ``VidlangModel.prepare`` before training
        (default: ``self.records(data.train_split)`` when the pipeline has ``records``)."""
        records = getattr(self, "records", None)
        if not callable(records):
            raise NotImplementedError(f"{type(self).__name__} provides no training records for "
                                      "VidlangModel.prepare; implement training_records()")
        return records(self.data.train_split)

    @abstractmethod
    def train_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        """Loader over ``data.train_split``, shuffled per (seed, epoch)."""

    @abstractmethod
    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        """Loader over ``split`` in a fixed order, sharded without padding."""

    def eval_step(self, model: Any, batch: dict[str, Any]) -> Any:
        """What one eval batch contributes (default: ``model.predict(batch)``)."""
        return model.predict(batch)

    @abstractmethod
    def evaluate(self, model: Any, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        """Metrics of ``split`` from every eval step's output (gathered from all processes);
        ``model`` is the evaluated model (retrieval scores texts against the gallery with it)."""

    def write_outputs(self, outputs: Sequence[Any], metrics: dict[str, Any], split: str,
                      out_dir: str | Path) -> list[Path]:
        """Files of ``vidlang eval`` (default: ``metrics.json``)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.json"
        path.write_text(json.dumps(metrics, indent=2, default=float), encoding="utf-8")
        return [path]


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) metrics dict as ``{"a/b": value}``, for logging."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def _loose(key: str) -> str:
    """A metric name without its convention tag, spaces or the ``>=``/``>`` distinction."""
    return key.split(" [", 1)[0].replace(" ", "").replace(">=", ">")


def resolve_metric_key(keys: Sequence[str], wanted: str) -> str:
    """The metrics key that ``eval.metric`` names: an exact key, else the one key equal to it
    without the convention tag (``R@1,IoU>=0.5`` -> ``R@1,IoU>=0.5 [mmn]``), else the one key
    equal up to ``>=`` vs ``>`` (so one selection metric serves the ``mmn`` and ``2dtan``
    conventions). Anything else is a ConfigError listing the keys."""
    if wanted in keys:
        return wanted
    for norm in (lambda k: k.split(" [", 1)[0].strip(), _loose):
        hits = [k for k in keys if norm(k) == norm(wanted)]
        if len(hits) == 1:
            return hits[0]
    raise ConfigError(f"eval.metric: {wanted!r} is not one of the metrics: {', '.join(sorted(keys))}")
