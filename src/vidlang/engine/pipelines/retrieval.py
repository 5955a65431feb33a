"""The ``retrieval`` and ``mcqa`` pipelines: caption / paragraph sets + a feature store -> the
batches of ``vidlang.models.retrieval`` and ``vidlang.models.mcqa`` (contracts documented there).

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

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidlang.engine.pipelines.base import EpochSampler, TaskPipeline, new_loader
from vidlang.engine.pipelines.features import (
    FeatureDataset,
    FeatureMemo,
    FeatureSource,
    feature_memo,
    feature_source,
)
from vidlang.engine.schema import DataConfig, ExperimentConfig
from vidlang.errors import ConfigError, DataError
from vidlang.models.base import FeatureSpec
from vidlang.ops.padding import pad_rows
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


def clip_centre_times(num_raw: int, duration: float, spec: FeatureSpec) -> torch.Tensor | None:
    """Centre time (s) of each clip after resampling, for the modes that keep raw clips
    (``none``, ``uniform``); None for averaging modes (the model then assumes even tiling)."""
    if not math.isfinite(duration) or num_raw < 1:
        return None
    step = duration / num_raw
    if spec.mode == "none":
        rows = torch.arange(num_raw, dtype=torch.float32)
    elif spec.mode == "uniform" and spec.num_clips:
        from vidlang.data.features import uniform_pick_indices

        rows = torch.as_tensor(uniform_pick_indices(num_raw, spec.num_clips), dtype=torch.float32)
    else:
        return None
    return (rows + 0.5) * step


class _CentresMixin:
    """Clip centre times computed once per video (they depend only on its length)."""

    spec: FeatureSpec

    def centres(self, video_id: str, num_raw: int, duration: float) -> torch.Tensor | None:
        cache: dict[tuple[str, int, float], torch.Tensor | None] = self.__dict__.setdefault(
            "_centres", {})
        key = (video_id, num_raw, duration)
        if key not in cache:
            cache[key] = clip_centre_times(num_raw, duration, self.spec)
        return cache[key]


class RetrievalDataset(_CentresMixin, FeatureDataset):
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
        return RetrievalItem(entry, feats, tuple(entry.texts[c] for c in picks),
                             tuple(f"{entry.video_id}#{c}" for c in picks),
                             self.centres(entry.video_id, num_raw, entry.duration))


def collate_videos(items: Sequence[Any]) -> dict[str, Any]:
    """The video half of every batch: ids, padded features, mask, durations."""
    dim = int(items[0].feats.shape[1])
    for it in items:
        if it.feats.shape[1] != dim:
            raise DataError(f"feature width {it.feats.shape[1]} != {dim} of the batch",
                            record=it.entry.video_id)
    feats, mask = pad_rows([it.feats for it in items])
    return {"video_ids": [it.entry.video_id for it in items], "feats": feats, "feat_mask": mask,
            "durations": torch.tensor([it.entry.duration for it in items], dtype=torch.float32)}


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
        _add_centres(batch, items)
    return batch


def _add_centres(batch: dict[str, Any], items: Sequence[Any]) -> None:
    """``clip_centres`` [B, T] when every item knows its clip times (padding: +inf)."""
    centres: list[torch.Tensor] = []
    for it in items:
        c = getattr(it, "centres", None)
        if c is None:
            return
        centres.append(c)
    out = torch.full(batch["feat_mask"].shape, float("inf"))
    for i, c in enumerate(centres):
        out[i, : c.shape[0]] = c
    batch["clip_centres"] = out


class _EpochDatasetSampler(EpochSampler):
    """:class:`EpochSampler` that also tells the dataset the epoch (per-epoch caption draw)."""

    def __init__(self, dataset: RetrievalDataset | QuestionDataset, *args: Any, **kwargs: Any) -> None:
        super().__init__(len(dataset), *args, **kwargs)
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.epoch = epoch


def _loader(ds: RetrievalDataset | QuestionDataset, collate: Callable[[list[Any]], Any], batch_size: int,
            shuffle: bool, seed: int, num_workers: int, rank: int, world_size: int,
            pad: bool) -> DataLoader:
    sampler = _EpochDatasetSampler(ds, seed, shuffle, rank, world_size, pad)
    return new_loader(ds, sampler, collate, batch_size, seed, num_workers)


class _Collate:
    """Picklable collate with the ``segments`` option bound."""

    def __init__(self, fn: Callable[..., dict[str, Any]], **kwargs: Any) -> None:
        self.fn, self.kwargs = fn, kwargs

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        return self.fn(items, **self.kwargs)


def _check_choice(data: Any, key: str, choices: Sequence[str]) -> None:
    if getattr(data, key) not in choices:
        raise ConfigError(f"data.{key}: {getattr(data, key)!r} is not one of {tuple(choices)}")


class _FeaturePipeline(TaskPipeline):
    """Shared set-up of the retrieval-family pipelines: features and the scoring model."""

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 features: FeatureSource | None = None) -> None:
        super().__init__(cfg, feature_spec)
        self._features: FeatureSource | Callable[[], FeatureSource] = feature_source(cfg.data, features)
        self.memo = feature_memo(cfg.data)
        self._model: Any = None

    def eval_step(self, model: Any, batch: dict[str, Any]) -> Any:
        self._model = model  # evaluate() scores texts against the whole gallery with it
        return model.predict(batch)


@PIPELINES.register("retrieval")
class RetrievalPipeline(_FeaturePipeline):
    """Text-video retrieval data + evaluation. ``entries``/``features`` may be injected."""

    task = "retrieval"
    data_config_class = RetrievalDataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 entries: Mapping[str, Sequence[RetrievalEntry]] | None = None,
                 features: FeatureSource | None = None) -> None:
        super().__init__(cfg, feature_spec, features)
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
        return _loader(ds, _Collate(collate_retrieval, segments=self.data.segments),
                       self.data.batch_size, True, self.cfg.seed, self.data.num_workers,
                       rank, world_size, pad=True)

    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        ds = RetrievalDataset(self.entries(split), self._features, self.feature_spec, "eval",
                              memo=self.memo)
        return _loader(ds, _Collate(collate_retrieval), self.data.eval_batch_size, False,
                       self.cfg.seed, self.data.num_workers, rank, world_size, pad=False)

    def similarity_matrix(self, outputs: Sequence[Any], split: str
                          ) -> tuple[torch.Tensor, list[int], list[str]]:
        """Scores [texts, videos] of the split, each text's video column, the video ids."""
        from vidlang.models.retrieval import stack_videos

        if self._model is None:
            raise DataError("retrieval evaluation needs eval_step to have run with the model")
        by_id = {item["video_id"]: item for out in outputs for item in out}
        entries = self.entries(split)
        missing = [e.video_id for e in entries if e.video_id not in by_id]
        if missing:
            raise DataError("the model returned no embedding for this video", record=missing[0])
        gallery = stack_videos([by_id[e.video_id] for e in entries])
        device = next(iter(self._model.parameters())).device
        gallery = type(gallery)(gallery.clips.to(device), gallery.mask.to(device),
                                gallery.pooled.to(device))
        texts = [t for e in entries for t in e.texts]
        owner = [i for i, e in enumerate(entries) for _ in e.texts]
        sim = self._model.score(texts, gallery, chunk=self.data.eval_chunk)
        fuse = getattr(self._model, "multilevel", None)
        if fuse is not None and fuse.cfg.fuse_segment_score and self.data.text_kind == "paragraphs":
            sim = sim + fuse.segment_score(self._model, [e.sentences for e in entries], gallery)
        return sim.cpu(), owner, [e.video_id for e in entries]

    def evaluate(self, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        from vidlang.metrics import retrieval_metrics

        sim, owner, _ = self.similarity_matrix(outputs, split)
        return retrieval_metrics(sim.numpy(), owner, v2t_mode=self.data.v2t_mode, ks=RANK_KS)


# ---- multiple-choice video QA -----------------------------------------------------------------


@dataclass
class MCQADataConfig(DataConfig):
    """``data`` keys of multiple-choice QA experiments. ``dataset: jsonl`` reads
    ``<root>/<split>.mcqa.jsonl`` with ``{"qid", "vid", "duration", "question", "candidates",
    "answer", "window"?}`` per line; ``synthvl`` reads SynthVL's questions."""

    segments: bool = True  # segment pairs: the QA span and the video's time-stamped sentences


@dataclass(frozen=True)
class QuestionEntry:
    """One multiple-choice question about one video. ``window``: its QA span, if annotated;
    ``sentences``/``windows``: the video's time-stamped text (subtitles, event sentences)."""

    qid: str
    video_id: str
    duration: float
    question: str
    candidates: tuple[str, ...]
    answer: int
    window: tuple[float, float] | None = None
    sentences: tuple[str, ...] = ()
    windows: tuple[tuple[float, float], ...] = ()


@dataclass
class QuestionItem:
    entry: QuestionEntry
    feats: torch.Tensor
    centres: torch.Tensor | None = None


def _jsonl_questions(data: DataConfig, split: str) -> list[QuestionEntry]:
    """``<root>/<split>.mcqa.jsonl``; optional ``window`` (QA span), ``sentences`` + ``windows``."""
    from pathlib import Path

    from vidlang.data.records import iter_jsonl

    if data.root is None:
        raise ConfigError("data.root: the jsonl question source needs the folder holding "
                          "<split>.mcqa.jsonl")
    path = Path(data.root) / f"{split}.mcqa.jsonl"
    out = []
    for line, obj in iter_jsonl(path):
        try:
            window = obj.get("window")
            entry = QuestionEntry(str(obj["qid"]), str(obj["vid"]), float(obj["duration"]),
                                  str(obj["question"]), tuple(str(c) for c in obj["candidates"]),
                                  int(obj["answer"]),
                                  None if window is None else (float(window[0]), float(window[1])),
                                  tuple(str(x) for x in obj.get("sentences", ())),
                                  tuple((float(a), float(b)) for a, b in obj.get("windows", ())))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise DataError(f"not a multiple-choice question record ({e})", path, line) from None
        if not 0 <= entry.answer < len(entry.candidates):
            raise DataError(f"answer {entry.answer} is not an index of the "
                            f"{len(entry.candidates)} candidates", path, line, entry.qid)
        out.append(entry)
    return out


def _synthvl_questions(data: DataConfig, split: str) -> list[QuestionEntry]:
    """SynthVL's questions; each video's event sentences are its time-stamped text."""
    from vidlang.data import synthvl

    if data.root is None:
        raise ConfigError("data.root: the synthvl dataset needs the folder written by `vidlang synth`")
    loaded = synthvl.load(data.root, split)
    paragraphs = {p.video_id: p for p in loaded.paragraphs}
    out = []
    for q in loaded.questions:
        p = paragraphs.get(q.video_id)
        if p is None:
            raise DataError("question about a video without a paragraph", data.root, record=q.qid)
        out.append(QuestionEntry(q.qid, q.video_id, float(p.duration), q.question,
                                 tuple(q.candidates), int(q.answer), None, tuple(p.sentences),
                                 tuple(p.windows)))
    return out


QUESTION_SOURCES: dict[str, Callable[[DataConfig, str], list[QuestionEntry]]] = {
    "jsonl": _jsonl_questions, "synthvl": _synthvl_questions}


class QuestionDataset(_CentresMixin, FeatureDataset):
    def __init__(self, entries: Sequence[QuestionEntry],
                 features: FeatureSource | Callable[[], FeatureSource], spec: FeatureSpec,
                 memo: FeatureMemo | None = None) -> None:
        super().__init__(features, spec, memo)
        self.entries = list(entries)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> QuestionItem:
        e = self.entries[index]
        feats, num_raw = self.prepared(e.video_id)
        return QuestionItem(e, feats, self.centres(e.video_id, num_raw, e.duration))


def collate_mcqa(items: Sequence[QuestionItem], segments: bool = True) -> dict[str, Any]:
    """The MCQA batch of ``vidlang.models.mcqa`` (segment pairs: QA span, question ⊕ answer)."""
    from vidlang.models.mcqa import join_qa

    batch = collate_videos(items)
    es = [it.entry for it in items]
    batch.update(qids=[e.qid for e in es], questions=[e.question for e in es],
                 candidates=[list(e.candidates) for e in es],
                 answers=torch.tensor([e.answer for e in es], dtype=torch.long))
    if not segments:
        return batch
    pairs = [(r, join_qa(e.question, e.candidates[e.answer]), e.window)
             for r, e in enumerate(es) if e.window is not None]
    seen: set[str] = set()
    for r, e in enumerate(es):  # several questions of one video share its sentences: add once
        if e.video_id not in seen:
            seen.add(e.video_id)
            pairs += [(r, s, w) for s, w in zip(e.sentences, e.windows)]
    if pairs:
        batch["seg_video"] = torch.tensor([r for r, _, _ in pairs], dtype=torch.long)
        batch["seg_windows"] = torch.tensor([w for _, _, w in pairs], dtype=torch.float32)
        batch["seg_texts"] = [t for _, t, _ in pairs]
        _add_centres(batch, items)
    return batch


@PIPELINES.register("mcqa")
class MCQAPipeline(_FeaturePipeline):
    """Multiple-choice QA data + accuracy in percent (``vidlang.metrics.mc_accuracy``, tied
    top scores share the credit)."""

    task = "mcqa"
    data_config_class = MCQADataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 questions: Mapping[str, Sequence[QuestionEntry]] | None = None,
                 features: FeatureSource | None = None) -> None:
        super().__init__(cfg, feature_spec, features)
        self._questions = {k: list(v) for k, v in (questions or {}).items()}

    def questions(self, split: str) -> list[QuestionEntry]:
        if split not in self._questions:
            source = QUESTION_SOURCES.get(self.data.dataset)
            if source is None:
                raise ConfigError(f"data.dataset: no multiple-choice questions for "
                                  f"{self.data.dataset!r}; known: {sorted(QUESTION_SOURCES)}")
            self._questions[split] = source(self.data, split)
            if not self._questions[split]:
                raise DataError(f"split {split!r} has no questions", self.data.root)
        return self._questions[split]

    def training_records(self) -> list[QuestionEntry]:
        return self.questions(self.data.train_split)

    def _dataset(self, split: str) -> QuestionDataset:
        return QuestionDataset(self.questions(split), self._features, self.feature_spec, self.memo)

    def train_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        return _loader(self._dataset(self.data.train_split),
                       _Collate(collate_mcqa, segments=self.data.segments), self.data.batch_size,
                       True, self.cfg.seed, self.data.num_workers, rank, world_size, pad=True)

    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        return _loader(self._dataset(split), _Collate(collate_mcqa, segments=False),
                       self.data.eval_batch_size, False, self.cfg.seed, self.data.num_workers,
                       rank, world_size, pad=False)

    def evaluate(self, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        from vidlang.metrics import mc_accuracy

        preds = {p["qid"]: p for out in outputs for p in out}
        qs = self.questions(split)
        missing = [q.qid for q in qs if q.qid not in preds]
        if missing:
            raise DataError("the model returned no answer for this question", record=missing[0])
        k_max = max(len(preds[q.qid]["scores"]) for q in qs)
        scores = np.full((len(qs), k_max), -np.inf)
        for i, q in enumerate(qs):
            row = preds[q.qid]["scores"]
            scores[i, : len(row)] = row
        return {"accuracy": mc_accuracy(scores, np.array([q.answer for q in qs]))}
