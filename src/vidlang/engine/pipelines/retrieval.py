"""The ``retrieval`` pipeline: caption / paragraph sets + a feature store -> the batches of
``vidlang.models.retrieval`` (contract documented there).

Retrieval training items are videos with one caption drawn per (seed, epoch, video)
(``train_captions: random``, CLIP4Clip's default) or every (video, caption) pair (``all``,
``--expand_msrvtt_sentences``). Paragraph datasets (``text_kind: paragraphs``) join a video's
sentences into one text (CLIP4Clip's DiDeMo / ActivityNet protocol) and, with ``segments:
true``, add each sentence with its window as a segment pair for multi-level alignment.

Evaluation encodes every video of the split, scores every text against the whole gallery with
the model's own similarity, and ranks through ``vidlang.metrics.retrieval_metrics`` (t2v and
v2t R@1/5/10, MdR, MnR; average tie ranks; multi-caption v2t mode ``v2t_mode``).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader

from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.pipelines.bank import FeatureBank
from vidlang.engine.pipelines.base import BoundCollate, TaskPipeline, make_loader
from vidlang.engine.pipelines.features import (
    FeatureDataset,
    FeatureMemo,
    FeatureSource,
    feature_memo,
    feature_source,
)
from vidlang.engine.pipelines.videos import CentresMixin, add_centres, collate_videos
from vidlang.engine.schema import DataConfig, ExperimentConfig
from vidlang.errors import ConfigError, DataError
from vidlang.registry import PIPELINES

TEXT_KINDS = ("captions", "paragraphs")
TRAIN_CAPTIONS = ("random", "all")
V2T_MODES = ("groups", "best")
RANK_KS = (1, 5, 10)

log = logging.getLogger(__name__)


@dataclass
class RetrievalDataConfig(DataConfig):
    """``data`` keys of retrieval experiments (shared keys: :class:`DataConfig`)."""

    text_kind: str = "captions"  # captions (one or many per video) | paragraphs (joined)
    train_captions: str = "random"  # random: one caption per video per epoch | all: every pair
    segments: bool = False  # paragraphs: add (sentence, window) segment pairs (multi-level)
    paragraph_sep: str = " "
    v2t_mode: str = "groups"  # multi-caption v2t: groups (CLIP4Clip) | best (CE / QB-Norm)
    eval_chunk: int = 64  # queries scored at once (DMAE's token-wise similarity is [Q, B, L, T])


@dataclass(frozen=True)
class RetrievalEntry:
    """One video and its texts (captions, or one joined paragraph + its sentences)."""

    video_id: str
    duration: float
    texts: tuple[str, ...]
    sentences: tuple[str, ...] = ()
    windows: tuple[tuple[float, float], ...] = ()


def load_entries(data: RetrievalDataConfig, split: str) -> list[RetrievalEntry]:
    """The split's videos with their texts, through the dataset catalog."""
    from vidlang.data import catalog

    listed = 0
    if data.text_kind == "paragraphs":
        paragraphs, _ = catalog.load_paragraphs(data.dataset, split, data.root or None)
        entries = [RetrievalEntry(p.video_id, float(p.duration), (p.text(data.paragraph_sep),),
                                  tuple(p.sentences), tuple(p.windows)) for p in paragraphs]
    else:
        captions, _ = catalog.load_captions(data.dataset, split, data.root or None)
        listed = len(captions)
        entries = [RetrievalEntry(c.video_id, math.nan if c.duration is None else float(c.duration),
                                  tuple(c.captions))
                   for c in captions if c.captions]
    if not entries:
        from vidlang.data.checks import NO_CAPTIONS_NOTE

        why = f": {listed} videos listed, none with a caption; {NO_CAPTIONS_NOTE}" if listed else ""
        raise DataError(f"split {split!r} of dataset {data.dataset!r} has no {data.text_kind}{why}",
                        data.root or None)
    if listed > len(entries):
        log.warning("split %r of %r: %d of %d videos have no caption and are left out", split,
                    data.dataset, listed - len(entries), listed)
    return entries


@dataclass
class RetrievalItem:
    """A video's features with the text(s) this item carries (``centres``: clip centre times)."""

    entry: RetrievalEntry
    feats: torch.Tensor
    texts: tuple[str, ...]
    text_ids: tuple[str, ...]
    centres: torch.Tensor | None = None
    bank: FeatureBank | None = None  # the dataset's pre-padded features (collate: one gather)
    bank_row: int = -1


class RetrievalDataset(CentresMixin, FeatureDataset):
    """Items: (video, chosen caption) for training, (video, all texts) for evaluation."""

    def __init__(self, entries: Sequence[RetrievalEntry],
                 features: FeatureSource | Callable[[], FeatureSource], spec: FeatureSpec,
                 mode: str, seed: int = 0, memo: FeatureMemo | None = None) -> None:
        super().__init__(features, spec, memo)
        self.entries = list(entries)
        self.mode, self.seed, self.epoch = mode, seed, 0
        self.index = ([(i, c) for i, e in enumerate(self.entries) for c in range(len(e.texts))]
                      if mode == "all" else [(i, -1) for i in range(len(self.entries))])

    def __len__(self) -> int:
        return len(self.index)

    def video_ids(self) -> list[str]:
        return [e.video_id for e in self.entries]

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the per-epoch caption draw (``train_captions: random``)."""
        self.epoch = epoch

    def _pick(self, entry: RetrievalEntry, caption: int) -> list[int]:
        if self.mode == "eval":
            return list(range(len(entry.texts)))
        if self.mode == "all":
            return [caption]
        key = zlib.crc32(f"{self.seed}/{self.epoch}/{entry.video_id}".encode())
        return [key % len(entry.texts)]

    def __getitem__(self, index: int) -> RetrievalItem:
        i, caption = self.index[index]
        entry = self.entries[i]
        feats, num_raw = self.prepared(entry.video_id)
        picks = self._pick(entry, caption)
        bank = self.bank
        return RetrievalItem(entry, feats, tuple(entry.texts[c] for c in picks),
                             tuple(f"{entry.video_id}#{c}" for c in picks),
                             self.centres(entry.video_id, num_raw, entry.duration), bank,
                             -1 if bank is None else bank.row_of[entry.video_id])


def collate_retrieval(items: Sequence[RetrievalItem], segments: bool = False) -> dict[str, Any]:
    """Training batch: one text per row (+ segment pairs); eval: ``texts_per_video``."""
    batch = collate_videos(items)
    if all(len(it.texts) == 1 for it in items):
        batch["texts"] = [it.texts[0] for it in items]
        batch["text_ids"] = batch["qids"] = [it.text_ids[0] for it in items]
    batch["texts_per_video"] = [list(it.texts) for it in items]
    batch["sentences_per_video"] = [list(it.entry.sentences) for it in items]
    if segments:
        rows = [(r, s, w) for r, it in enumerate(items)
                for s, w in zip(it.entry.sentences, it.entry.windows)]
        batch["seg_video"] = torch.tensor([r for r, _, _ in rows], dtype=torch.long)
        batch["seg_windows"] = torch.tensor([w for _, _, w in rows],
                                            dtype=torch.float32).reshape(-1, 2)
        batch["seg_texts"] = [s for _, s, _ in rows]
        add_centres(batch, items)
    return batch


def _check_choice(data: Any, key: str, choices: Sequence[str]) -> None:
    if getattr(data, key) not in choices:
        raise ConfigError(f"data.{key}: {getattr(data, key)!r} is not one of {tuple(choices)}")


@PIPELINES.register("retrieval")
class RetrievalPipeline(TaskPipeline):
    """Text-video retrieval data + evaluation. ``entries``/``features`` may be injected."""

    task = "retrieval"
    data_config_class = RetrievalDataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 entries: Mapping[str, Sequence[RetrievalEntry]] | None = None,
                 features: FeatureSource | None = None) -> None:
        super().__init__(cfg, feature_spec)
        self._features: FeatureSource | Callable[[], FeatureSource] = feature_source(cfg.data, features)
        self.memo = feature_memo(cfg.data)
        self._entries = {k: list(v) for k, v in (entries or {}).items()}

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        super().check_config(cfg)
        _check_choice(cfg.data, "text_kind", TEXT_KINDS)
        _check_choice(cfg.data, "train_captions", TRAIN_CAPTIONS)
        _check_choice(cfg.data, "v2t_mode", V2T_MODES)
        if cfg.data.segments and cfg.data.text_kind != "paragraphs":
            raise ConfigError("data.segments: needs data.text_kind=paragraphs (sentence windows)")
        if cfg.data.eval_chunk < 1:
            raise ConfigError(f"data.eval_chunk: must be >= 1, got {cfg.data.eval_chunk}")

    def entries(self, split: str) -> list[RetrievalEntry]:
        if split not in self._entries:
            self._entries[split] = load_entries(self.data, split)
        return self._entries[split]

    def training_records(self) -> list[RetrievalEntry]:
        return self.entries(self.data.train_split)

    def train_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        ds = RetrievalDataset(self.entries(self.data.train_split), self._features,
                              self.feature_spec, self.data.train_captions, self.cfg.seed, self.memo)
        ds.build_bank()
        return make_loader(ds, BoundCollate(collate_retrieval, segments=self.data.segments),
                           self.data.batch_size, shuffle=True, seed=self.cfg.seed,
                           num_workers=self.data.num_workers, rank=rank, world_size=world_size)

    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        ds = RetrievalDataset(self.entries(split), self._features, self.feature_spec, "eval",
                              memo=self.memo)
        return make_loader(ds, collate_retrieval, self.data.eval_batch_size, shuffle=False,
                           seed=self.cfg.seed, num_workers=self.data.num_workers, rank=rank,
                           world_size=world_size, pad=False)

    def similarity_matrix(self, model: Any, outputs: Sequence[Any], split: str
                          ) -> tuple[torch.Tensor, list[int], list[str]]:
        """Scores [texts, videos] of the split by ``model`` (its own similarity, plus the
        multi-level segment score when it fuses one), each text's video column, the video ids."""
        from vidlang.models.retrieval import stack_videos

        by_id = {item["video_id"]: item for out in outputs for item in out}
        entries = self.entries(split)
        missing = [e.video_id for e in entries if e.video_id not in by_id]
        if missing:
            raise DataError("the model returned no embedding for this video", record=missing[0])
        gallery = stack_videos([by_id[e.video_id] for e in entries])
        device = next(iter(model.parameters())).device
        gallery = type(gallery)(gallery.clips.to(device), gallery.mask.to(device),
                                gallery.pooled.to(device))
        texts = [t for e in entries for t in e.texts]
        owner = [i for i, e in enumerate(entries) for _ in e.texts]
        sim = model.score(texts, gallery, chunk=self.data.eval_chunk)
        fuse = getattr(model, "multilevel", None)
        if fuse is not None and fuse.cfg.fuse_segment_score and self.data.text_kind == "paragraphs":
            sim = sim + fuse.segment_score(model, [e.sentences for e in entries], gallery)
        return sim.cpu(), owner, [e.video_id for e in entries]

    def evaluate(self, model: Any, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        """t2v / v2t R@1/5/10, MdR, MnR (``vidlang.metrics.retrieval_metrics``)."""
        from vidlang.metrics import retrieval_metrics

        sim, owner, _ = self.similarity_matrix(model, outputs, split)
        return retrieval_metrics(sim.numpy(), owner, v2t_mode=self.data.v2t_mode, ks=RANK_KS)
