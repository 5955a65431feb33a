"""The ``grounding`` pipeline: canonical records + a feature store -> the grounding batch.

Items are whole videos (``batch_unit: video``, all of a video's queries in one batch, as MMN
needs for its same-video negatives) or single queries (``batch_unit: query``, as CPL trains);
``batch_size`` counts items. Features are resampled per the model's ``feature_spec()`` with
``vidlang.data.features.resample`` and padded to the longest video in the batch.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from vidlang.data.features.spec import FeatureSpec
from vidlang.data.records import ClampPolicy, GroundingRecord
from vidlang.engine.pipelines.base import (
    TaskPipeline,
    flatten_metrics,
    make_loader,
    resolve_metric_key,
)
from vidlang.engine.pipelines.features import (  # noqa: F401  (prepare_features re-exported)
    FeatureDataset,
    FeatureMemo,
    FeatureSource,
    feature_memo,
    feature_source,
    prepare_features,
)
from vidlang.engine.schema import DataConfig, ExperimentConfig
from vidlang.errors import ConfigError, DataError, RegistryError
from vidlang.metrics.postprocess import GroundingPostprocess
from vidlang.ops.padding import pad_rows
from vidlang.registry import PIPELINES

log = logging.getLogger(__name__)


@dataclass
class GroundingDataConfig(DataConfig):
    """``data`` keys of grounding experiments (see :class:`DataConfig` for the shared ones)."""

    batch_unit: str = "video"  # "video" (all queries of a video together) or "query"
    clamp: str = "clamp"  # windows outside [0, duration]: "clamp" (counted), "drop" or "error"


BATCH_UNITS = ("video", "query")


@dataclass
class GroundingItem:
    """One dataset item: a video's features and the queries that come with it."""

    video_id: str
    feats: torch.Tensor  # [T, D]
    duration: float
    records: list[GroundingRecord]


def collate_grounding(items: Sequence[GroundingItem]) -> dict[str, Any]:
    """The grounding batch of ``vidlang.models.base``; items of the same video share a row."""
    rows: dict[str, int] = {}
    row_items: list[GroundingItem] = []
    for item in items:
        if item.video_id not in rows:
            rows[item.video_id] = len(row_items)
            row_items.append(item)
    dim = int(row_items[0].feats.shape[1])
    for it in row_items:
        if it.feats.shape[1] != dim:
            raise DataError(f"feature width {it.feats.shape[1]} != {dim} of the batch",
                            record=it.video_id)
    feats, mask = pad_rows([it.feats for it in row_items])
    records = [(rows[it.video_id], r) for it in items for r in it.records]
    windows = [r.windows[0] if r.windows else (math.nan, math.nan) for _, r in records]
    return {
        "video_ids": [it.video_id for it in row_items],
        "feats": feats,
        "feat_mask": mask,
        "durations": torch.tensor([it.duration for it in row_items], dtype=torch.float32),
        "queries": [r.query for _, r in records],
        "qids": [r.qid for _, r in records],
        "query_video": torch.tensor([row for row, _ in records], dtype=torch.long),
        "windows": torch.tensor(windows, dtype=torch.float32).reshape(-1, 2),
    }


class GroundingDataset(FeatureDataset):
    """Items over records grouped by video (``video``) or one per record (``query``).

    ``features`` is any mapping video_id -> [T, D]; a callable returning one is opened lazily
    in each process (so HDF5 handles are not shared across DataLoader workers).
    """

    def __init__(self, records: Sequence[GroundingRecord], features: FeatureSource | Callable[[], FeatureSource],
                 spec: FeatureSpec, batch_unit: str, memo: FeatureMemo | None = None) -> None:
        super().__init__(features, spec, memo)
        by_video: dict[str, list[GroundingRecord]] = {}
        for r in records:
            by_video.setdefault(r.video_id, []).append(r)
        self.groups: list[tuple[str, list[GroundingRecord]]] = (
            list(by_video.items()) if batch_unit == "video" else [(r.video_id, [r]) for r in records])

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> GroundingItem:
        video_id, records = self.groups[index]
        feats = self.video_features(video_id)
        return GroundingItem(video_id, feats, float(records[0].duration), records)


def load_records(data: DataConfig, split: str) -> tuple[list[GroundingRecord], Any]:
    """The canonical records of ``split`` for ``data.dataset`` (a name in the DATASETS
    registry: the catalog's datasets and ``synthvl``) and the reader's LoadReport."""
    from vidlang.data.catalog import load_grounding

    try:
        records, report = load_grounding(data.dataset, split, data.root or None,
                                         clamp=ClampPolicy(getattr(data, "clamp", "clamp")))
    except RegistryError as e:
        raise ConfigError(f"data.dataset: {e}") from None
    if not records:
        raise DataError(f"split {split!r} of dataset {data.dataset!r} has no records", data.root)
    from vidlang.data.checks import require_clean_queries

    require_clean_queries(records, getattr(report, "source", None) or str(data.root), split)
    return list(records), report


def grounding_postprocess(cfg: ExperimentConfig) -> GroundingPostprocess:
    """The one post-processing step (ranking, NMS, top-k cap) of ``cfg``: ``eval.preset``
    with its per-dataset settings for ``data.dataset`` (when the preset has them and
    ``eval.overrides`` names no ``dataset``), then ``eval.overrides``. The pipeline and the
    predictor both apply it. Errors name the ``eval`` key."""
    return GroundingPostprocess.from_eval(cfg.eval.preset, cfg.eval.overrides, cfg.data.dataset)


def score_grounding(predictions: list[dict[str, Any]], ground_truth: list[dict[str, Any]],
                    cfg: ExperimentConfig) -> dict[str, Any]:
    """Grounding metrics of post-processed ``predictions`` (see :func:`grounding_postprocess`)
    under ``cfg``'s convention; suppression already ran, so the metrics do not repeat it."""
    from vidlang.metrics.grounding import score_with_convention

    conv = grounding_postprocess(cfg).scoring_convention()
    return score_with_convention(predictions, ground_truth, conv).metrics


@PIPELINES.register("grounding")
class GroundingPipeline(TaskPipeline):
    """Grounding data + evaluation. ``records``/``features`` may be injected (tests, notebooks);
    otherwise they come from ``data.dataset``/``data.root`` and ``data.features``."""

    task = "grounding"
    data_config_class = GroundingDataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 records: Mapping[str, Sequence[GroundingRecord]] | None = None,
                 features: FeatureSource | None = None) -> None:
        super().__init__(cfg, feature_spec)
        self._records: dict[str, list[GroundingRecord]] = {k: list(v) for k, v in (records or {}).items()}
        self._features: FeatureSource | Callable[[], FeatureSource] = feature_source(cfg.data, features)
        self.memo = feature_memo(cfg.data)
        self.postprocess = grounding_postprocess(cfg)

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        super().check_config(cfg)
        cls.check_splits(cfg, "grounding")
        if cfg.data.batch_unit not in BATCH_UNITS:
            raise ConfigError(f"data.batch_unit: {cfg.data.batch_unit!r} is not one of {BATCH_UNITS}")
        policies = [p.value for p in ClampPolicy]
        if cfg.data.clamp not in policies:
            raise ConfigError(f"data.clamp: {cfg.data.clamp!r} is not one of {policies}")
        keys = list(flatten_metrics(score_grounding(
            [{"qid": "q", "pred_relevant_windows": [[0.0, 1.0, 1.0]]}],
            [{"qid": "q", "duration": 2.0, "relevant_windows": [[0.0, 1.0]]}], cfg)))
        if cfg.data.select_split is not None:
            resolve_metric_key(keys, cfg.eval.metric)

    def records(self, split: str) -> list[GroundingRecord]:
        """Records of ``split`` (read once; the reader's report is kept in ``self.reports``
        and its clamped/dropped counts are logged)."""
        if split not in self._records:
            self._records[split], report = load_records(self.data, split)
            self.reports[split] = report
            if report is not None and (report.clamped or report.dropped):
                log.warning(report.summary())
        return self._records[split]

    def dataset(self, split: str, batch_unit: str) -> GroundingDataset:
        return GroundingDataset(self.records(split), self._features, self.feature_spec, batch_unit,
                                self.memo)

    def train_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        ds = self.dataset(self.data.train_split, self.data.batch_unit)
        return make_loader(ds, collate_grounding, self.data.batch_size, shuffle=True,
                           seed=self.cfg.seed, num_workers=self.data.num_workers,
                           rank=rank, world_size=world_size, pad=True)

    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        ds = self.dataset(split, "video")
        return make_loader(ds, collate_grounding, self.data.eval_batch_size, shuffle=False,
                           seed=self.cfg.seed, num_workers=self.data.num_workers,
                           rank=rank, world_size=world_size, pad=False)

    def eval_step(self, model: Any, batch: dict[str, Any]) -> Any:
        """The model's ranked candidates, post-processed (NMS, cap) by :attr:`postprocess`."""
        return self.postprocess(model.predict(batch))

    def predictions(self, outputs: Sequence[Any], split: str) -> list[dict[str, Any]]:
        """One moment_detr-style prediction per record of ``split``, in record order."""
        by_qid: dict[str, dict[str, Any]] = {}
        for batch_preds in outputs:
            for p in batch_preds:
                by_qid[str(p["qid"])] = p
        out = []
        for r in self.records(split):
            if r.qid not in by_qid:
                raise DataError("the model returned no prediction for this query", record=r.qid)
            windows = [[float(x) for x in w] for w in by_qid[r.qid]["pred_relevant_windows"]]
            out.append({"qid": r.qid, "query": r.query, "vid": r.video_id,
                        "pred_relevant_windows": windows})
        return out

    def evaluate(self, model: Any, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        preds = self.predictions(outputs, split)
        return score_grounding(preds, [r.to_json() for r in self.records(split)], self.cfg)

    def write_outputs(self, outputs: Sequence[Any], metrics: dict[str, Any], split: str,
                      out_dir: str | Path) -> list[Path]:
        """``predictions.jsonl`` (moment_detr format) and ``metrics.json``."""
        paths = super().write_outputs(outputs, metrics, split, out_dir)
        pred_path = Path(out_dir) / "predictions.jsonl"
        with open(pred_path, "w", encoding="utf-8") as f:
            for p in self.predictions(outputs, split):
                f.write(json.dumps(p, ensure_ascii=False) + "\n")
        return [pred_path, *paths]
