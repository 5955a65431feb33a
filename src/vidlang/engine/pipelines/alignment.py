"""The ``alignment`` pipeline (TempCLR): paragraphs + per-second features -> clip-caption
sequences, and paragraph-to-video retrieval / step localisation scores.

Training items are videos; each gets a sequence of non-overlapping clip-caption pairs chosen as
in the release (tempclr.md section 4): pairs sorted by time, a greedy pass keeping pairs that
do not overlap the last kept one, videos with fewer than ``min_pairs`` skipped (and counted),
then ``seq_len`` pairs picked by linspace. A pair's clip is its caption window of features
(at most ``max_clip_frames`` frames, evenly picked). Evaluation uses every sentence of each
paragraph, its window as its clip ("background removed"); with ``eval.overrides.background:
kept`` (or ``both``) or ``v2v`` each video is also cut into fixed windows (``window`` /
``stride`` seconds). The scores come from the metric objects that ``eval.overrides`` selects
(:meth:`AlignmentPipeline.build_metrics`): paragraph-to-video retrieval
(``vidlang.metrics.alignment``), few-shot video-to-video accuracy where the dataset has video
class labels (``vidlang.metrics.video_to_video``, labels from
``vidlang.data.readers.labels``) and step localisation (``vidlang.metrics.step_decoding``).
Evaluation options: :class:`AlignmentEvalOptions` (``eval.overrides``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidlang.data.features.spec import FeatureSpec
from vidlang.data.readers.labels import video_labels
from vidlang.data.records import Paragraph
from vidlang.engine.pipelines.bank import FeatureBank, shared_bank
from vidlang.engine.pipelines.base import BoundCollate, TaskPipeline, make_loader
from vidlang.engine.pipelines.features import (
    FeatureDataset,
    FeatureMemo,
    FeatureSource,
    feature_memo,
    feature_source,
    flat_rows,
    gather_flat,
    gather_rows,
    segment_lengths,
)
from vidlang.engine.schema import DataConfig, ExperimentConfig
from vidlang.errors import ConfigError, DataError
from vidlang.metrics.alignment import BACKGROUND_MODES, ParagraphToVideoMetric
from vidlang.metrics.classes import BaseMetric
from vidlang.metrics.step_decoding import StepLocalisationMetric
from vidlang.metrics.video_to_video import VideoToVideoMetric
from vidlang.ops.padding import pad_rows
from vidlang.registry import PIPELINES

log = logging.getLogger(__name__)
Window = tuple[float, float]


@dataclass
class AlignmentDataConfig(DataConfig):
    """``data`` keys of alignment experiments (see :class:`DataConfig` for the shared ones)."""

    seq_len: int = 5  # clip-caption pairs per training sequence (release: 5)
    min_pairs: int = 5  # training videos with fewer non-overlapping pairs are skipped (release: 5)
    max_clip_frames: int = 32  # frames per clip (release: 32 s at one feature per second)


@dataclass
class AlignmentEvalOptions:
    """``eval.overrides`` keys of alignment experiments (validated like every config section)."""

    background: str = "removed"  # removed | kept | both (paragraph-to-video scoring)
    window: float = 16.0  # background kept / v2v: window length in seconds (release: 16)
    stride: float = 16.0  # background kept / v2v: window stride in seconds (release: 16)
    keep_ratio: float = 1.3  # background kept, dtw / otam: keep int(ratio * #captions) windows
    reproduce_upstream_quirks: bool = False  # the release's eval cost and bugs (tempclr.md §3)
    v2v: bool = True  # few-shot video-to-video accuracy (needs video class labels)
    v2v_shots: int = 1  # support videos per class
    v2v_seed: int = 0  # seed of the support / query split


def eval_options(cfg: ExperimentConfig) -> AlignmentEvalOptions:
    """The typed ``eval.overrides`` of an alignment experiment (ConfigError names the key)."""
    from vidlang.engine.config import validate_section

    opts: AlignmentEvalOptions = validate_section(AlignmentEvalOptions, dict(cfg.eval.overrides),
                                                  "eval.overrides")
    if opts.background not in BACKGROUND_MODES:
        raise ConfigError(f"eval.overrides.background: {opts.background!r} is not one of "
                          f"{BACKGROUND_MODES}")
    for key in ("window", "stride", "keep_ratio"):
        if not getattr(opts, key) > 0:
            raise ConfigError(f"eval.overrides.{key}: must be > 0, got {getattr(opts, key)}")
    if opts.v2v_shots < 1:
        raise ConfigError(f"eval.overrides.v2v_shots: must be >= 1, got {opts.v2v_shots}")
    return opts


def cut_windows(duration: float, window: float, stride: float) -> list[Window]:
    """Fixed windows over [0, duration]: starts 0, stride, 2 stride, ...; each ``window`` long,
    the last one clipped at ``duration``; stops after the first window reaching the end (so
    overlapping strides add no tail windows inside earlier ones). At least one window."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be > 0, got {window}, {stride}")
    out: list[Window] = []
    start = 0.0
    while True:
        end = float(min(start + window, duration))
        out.append((round(start, 6), round(end, 6)))
        start += stride
        if end >= duration - 1e-9 or start >= duration - 1e-9:
            return out


def select_pairs(windows: Sequence[Window], seq_len: int, min_pairs: int) -> list[int] | None:
    """Indices of the pairs forming a training sequence, in time order, or None (too few).

    Sorted by (start, end); greedily keep a pair when it starts at or after the end of the
    last kept one; then ``seq_len`` of the kept ones by linspace (all when fewer)."""
    order = sorted(range(len(windows)), key=lambda i: (windows[i][0], windows[i][1], i))
    kept: list[int] = []
    for i in order:
        if not kept or windows[i][0] >= windows[kept[-1]][1]:
            kept.append(i)
    if len(kept) < min_pairs:
        return None
    picks = np.linspace(0, len(kept) - 1, min(seq_len, len(kept))).round().astype(int)
    return [kept[int(p)] for p in dict.fromkeys(picks.tolist())]


def window_frames(window: Window, num_frames: int, duration: float, max_frames: int,
                  video_id: str) -> list[int]:
    """Feature rows covering ``window`` (seconds) for T = ``num_frames`` rows spanning
    ``duration``; at least one row, at most ``max_frames`` (evenly picked)."""
    rate = num_frames / duration
    start = int(math.floor(window[0] * rate))
    end = max(start + 1, int(math.ceil(window[1] * rate)))
    if start >= num_frames or start < 0:
        raise DataError(f"window {list(window)} starts outside the {num_frames} feature rows "
                        f"({duration:.2f} s)", record=video_id)
    rows = list(range(start, min(end, num_frames)))
    if len(rows) > max_frames:
        picks = np.linspace(0, len(rows) - 1, max_frames).round().astype(int)
        rows = [rows[int(p)] for p in picks]
    return rows


@dataclass
class AlignmentItem:
    """One video: features, and the sentences / windows / feature rows of its pairs."""

    video_id: str
    feats: torch.Tensor  # [T, D]
    duration: float
    sentences: list[str]
    windows: list[Window]
    frames: list[list[int]]
    bg_windows: list[Window] = field(default_factory=list)  # fixed windows (background kept)
    bg_frames: list[list[int]] = field(default_factory=list)
    # frames / bg_frames concatenated (built once per item, for the collate's single gather)
    frames_flat: torch.Tensor | None = field(default=None, repr=False, compare=False)
    bg_flat: torch.Tensor | None = field(default=None, repr=False, compare=False)
    # the dataset's pre-padded features (the collate's gathers read it) and the rows there
    bank: FeatureBank | None = field(default=None, repr=False, compare=False)
    bank_row: int = -1


class AlignmentDataset(FeatureDataset):
    """Videos with their pair sequences (training: selected pairs; eval: every sentence), and
    with ``background`` = (window, stride) seconds also the video cut into fixed windows."""

    def __init__(self, paragraphs: Sequence[Paragraph], features: FeatureSource | Callable[[], FeatureSource],
                 spec: FeatureSpec, data: AlignmentDataConfig, train: bool,
                 background: tuple[float, float] | None = None,
                 memo: FeatureMemo | None = None) -> None:
        super().__init__(features, spec, memo)
        self.data = data
        self.background = background
        self.items: list[tuple[Paragraph, list[int]]] = []
        self.built: dict[int, AlignmentItem] = {}  # items whose features the memo holds
        self.skipped: list[str] = []
        for p in paragraphs:
            if not p.sentences:
                self.skipped.append(p.video_id)
                continue
            picks = (select_pairs(p.windows, data.seq_len, data.min_pairs) if train
                     else sorted(range(len(p.windows)), key=lambda i: (p.windows[i], i)))
            if picks is None:
                self.skipped.append(p.video_id)
            else:
                self.items.append((p, picks))

    def __len__(self) -> int:
        return len(self.items)

    def video_ids(self) -> list[str]:
        return [p.video_id for p, _ in self.items]

    def build_bank(self) -> FeatureBank | None:
        self.built.clear()  # items built before hold the ragged tensors, not the bank's
        return super().build_bank()

    def __getitem__(self, index: int) -> AlignmentItem:
        item = self.built.get(index)
        if item is None:
            item = self._build(index)
            if self.memo is not None and self.memo.get(item.video_id) is not None:
                self.built[index] = item  # same features, windows and rows every epoch
        return item

    def _build(self, index: int) -> AlignmentItem:
        p, picks = self.items[index]
        feats = self.video_features(p.video_id)
        windows: list[Window] = [(float(p.windows[i][0]), float(p.windows[i][1])) for i in picks]
        frames = [window_frames(w, feats.shape[0], float(p.duration), self.data.max_clip_frames,
                                p.video_id) for w in windows]
        item = AlignmentItem(p.video_id, feats, float(p.duration),
                             [p.sentences[i] for i in picks], windows, frames,
                             frames_flat=flat_rows(frames))
        if self.background is not None:
            item.bg_windows = cut_windows(float(p.duration), *self.background)
            item.bg_frames = [window_frames(w, feats.shape[0], float(p.duration),
                                            self.data.max_clip_frames, p.video_id)
                              for w in item.bg_windows]
            item.bg_flat = flat_rows(item.bg_frames)
        if self.bank is not None:
            item.bank, item.bank_row = self.bank, self.bank.row_of[p.video_id]
        return item


def _sequence_index(counts: Sequence[int]) -> torch.Tensor:
    """[B, max count] rows of a flat segment list per video, -1 past each video's count."""
    sizes = torch.tensor(list(counts), dtype=torch.long)
    starts = torch.cumsum(sizes, 0) - sizes
    cols = torch.arange(int(sizes.max()))[None, :]
    return torch.where(cols < sizes[:, None], starts[:, None] + cols, torch.tensor(-1))


def _flats(flats: Sequence[torch.Tensor | None]) -> list[torch.Tensor] | None:
    return None if any(f is None for f in flats) else list(flats)  # type: ignore[arg-type]


def _segments(items: Sequence[AlignmentItem], background: bool,
              rows: tuple[torch.Tensor, list[int]] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded features + mask of every item's pair clips (``background``: fixed windows).
    ``rows``: ``[R, D]`` feature rows ending in a zero row (the bank's :attr:`FeatureBank.rows`)
    and where each item's video starts in them, gathered from directly; else the items' ragged
    tensors are concatenated first (:func:`gather_rows`)."""
    groups = [it.bg_frames if background else it.frames for it in items]
    flat = _flats([it.bg_flat if background else it.frames_flat for it in items])
    if rows is None or flat is None:
        return gather_rows([it.feats for it in items], groups, flat)
    base, starts = rows
    return gather_flat(base, starts, flat, segment_lengths(groups))


def collate_alignment(items: Sequence[AlignmentItem], whole_videos: bool = True) -> dict[str, Any]:
    """The alignment batch documented in :mod:`vidlang.models.tempclr` (``win_*`` /
    ``bg_windows`` only when the items carry fixed windows). ``whole_videos`` false (training
    batches: TempCLR's losses read only the clip segments) leaves out ``feats`` / ``feat_mask``.
    Items of one :class:`FeatureBank` are gathered from it (the same tensors as padding their
    features)."""
    bank = shared_bank(items)
    rows = None if bank is None else (bank.rows, [bank.first_row(it.bank_row) for it in items])
    whole: dict[str, torch.Tensor] = {}
    if whole_videos:
        feats, feat_mask = (pad_rows([it.feats for it in items]) if bank is None else
                            bank.gather_videos(torch.tensor([it.bank_row for it in items])))
        whole = {"feats": feats, "feat_mask": feat_mask}
    seg_feats, seg_mask = _segments(items, False, rows)
    seq_index = _sequence_index([len(it.sentences) for it in items])
    batch: dict[str, Any] = {
        "video_ids": [it.video_id for it in items],
        **whole,
        "durations": torch.tensor([it.duration for it in items], dtype=torch.float32),
        "seg_feats": seg_feats,
        "seg_mask": seg_mask,
        "seg_texts": [s for it in items for s in it.sentences],
        "seq_index": seq_index,
        "seq_mask": seq_index >= 0,
        "windows": [list(it.windows) for it in items],
    }
    if all(it.bg_frames for it in items):
        win_feats, win_mask = _segments(items, True, rows)
        win_index = _sequence_index([len(it.bg_frames) for it in items])
        batch.update(win_feats=win_feats, win_mask=win_mask, win_index=win_index,
                     bg_windows=[list(it.bg_windows) for it in items])
    return batch


@PIPELINES.register("alignment")
class AlignmentPipeline(TaskPipeline):
    """Alignment data + evaluation. ``paragraphs``/``features``/``labels`` (split -> video id
    -> class) may be injected (tests); otherwise they come from ``data.dataset``."""

    task = "alignment"
    data_config_class = AlignmentDataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 paragraphs: Mapping[str, Sequence[Paragraph]] | None = None,
                 features: FeatureSource | None = None,
                 labels: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(cfg, feature_spec)
        self._paragraphs = {k: list(v) for k, v in (paragraphs or {}).items()}
        self._features: FeatureSource | Callable[[], FeatureSource] = feature_source(cfg.data, features)
        self._labels = {k: dict(v) for k, v in (labels or {}).items()}
        self.memo = feature_memo(cfg.data)
        self.skipped: dict[str, list[str]] = {}
        self.options = eval_options(cfg)

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        super().check_config(cfg)
        for key in ("seq_len", "min_pairs", "max_clip_frames"):
            if getattr(cfg.data, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(cfg.data, key)}")
        opts = eval_options(cfg)
        for mode in ("removed", "kept"):
            if cfg.eval.metric.startswith(f"p2v/bg_{mode}/") and opts.background not in (mode, "both"):
                raise ConfigError(f"eval.metric: {cfg.eval.metric!r} needs "
                                  f"eval.overrides.background {mode} or both, got {opts.background!r}")

    def paragraphs(self, split: str) -> list[Paragraph]:
        if split not in self._paragraphs:
            from vidlang.data import catalog

            paragraphs, _ = catalog.load_paragraphs(self.data.dataset, split, self.data.root or None)
            if not paragraphs:
                raise DataError(f"split {split!r} of dataset {self.data.dataset!r} has no "
                                "paragraphs", self.data.root or None)
            self._paragraphs[split] = list(paragraphs)
        return self._paragraphs[split]

    def training_records(self) -> list[Paragraph]:
        return self.paragraphs(self.data.train_split)

    def video_labels(self, split: str) -> dict[str, Any] | None:
        """Video id -> class for the few-shot video-to-video metric, or None when the dataset
        has no labels (``vidlang.data.readers.labels.VIDEO_LABELS``)."""
        if split not in self._labels:
            labels = video_labels(self.data.dataset, self.data.root or None, split)
            if labels is None:
                return None
            self._labels[split] = labels
        return self._labels[split]

    def _needs_windows(self) -> bool:
        return self.options.background != "removed" or self.options.v2v

    def dataset(self, split: str, train: bool) -> AlignmentDataset:
        background = None if train or not self._needs_windows() else \
            (self.options.window, self.options.stride)
        ds = AlignmentDataset(self.paragraphs(split), self._features, self.feature_spec,
                              self.data, train, background, self.memo)
        self.skipped[split] = ds.skipped
        if not len(ds):
            raise DataError(f"split {split!r}: no video has {self.data.min_pairs} non-overlapping "
                            "clip-caption pairs (lower data.min_pairs)", self.data.root or None)
        return ds

    def train_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        ds = self.dataset(self.data.train_split, True)
        ds.build_bank()
        return make_loader(ds, BoundCollate(collate_alignment, whole_videos=False),
                           self.data.batch_size, shuffle=True, seed=self.cfg.seed,
                           num_workers=self.data.num_workers, rank=rank, world_size=world_size)

    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        return make_loader(self.dataset(split, False), collate_alignment,
                           self.data.eval_batch_size, shuffle=False, seed=self.cfg.seed,
                           num_workers=self.data.num_workers, rank=rank, world_size=world_size,
                           pad=False)

    @property
    def quirks(self) -> bool:
        """``eval.overrides.reproduce_upstream_quirks`` (or its older name on the model,
        ``model.tempclr_faithful_eval``)."""
        return self.options.reproduce_upstream_quirks or \
            bool(getattr(self.cfg.model, "tempclr_faithful_eval", False))

    def build_metrics(self, split: str) -> list[BaseMetric]:
        """The metric objects ``eval.overrides`` selects: paragraph-to-video retrieval for
        ``background``, video-to-video accuracy when ``v2v``, and step localisation."""
        quirks = self.quirks
        eval_normalise = getattr(self.cfg.model, "eval_normalise", "path")
        metrics: list[BaseMetric] = [ParagraphToVideoMetric(
            self.options.background, "area" if quirks else eval_normalise,
            self.options.keep_ratio, quirks)]
        if self.options.v2v:
            metrics.append(VideoToVideoMetric(self.video_labels(split), self.options.v2v_shots,
                                              self.options.v2v_seed, eval_normalise,
                                              source=self.data.dataset, split=split))
        metrics.append(StepLocalisationMetric(self.data.dataset))
        return metrics

    def evaluate(self, model: Any, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        """``p2v/bg_{removed,kept}/{cap_avg,dtw,otam}/R@{1,5,10}`` (+ MdR) per
        ``eval.overrides.background``, ``v2v/{dtw,otam,mean_pool}/acc``, ``steps/recall`` and
        counts (the outputs alone are scored: ``model`` is not used)."""
        quirks = self.quirks
        metrics: dict[str, Any] = {}
        for metric in self.build_metrics(split):
            for out in outputs:
                metric.process(out)
            metrics.update(metric.compute_metrics())
        metrics["videos"] = float(len({it["video_id"] for out in outputs for it in out}))
        metrics["skipped"] = float(len(self.skipped.get(split, [])))
        metrics["normalise"] = "area" if quirks else getattr(self.cfg.model, "eval_normalise", "path")
        metrics["background"] = self.options.background
        metrics["reproduce_upstream_quirks"] = quirks
        return metrics
