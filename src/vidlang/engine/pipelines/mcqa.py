"""The ``mcqa`` pipeline: multiple-choice questions about videos + a feature store -> the batch
of ``vidlang.models.mcqa`` (contract documented there).

Questions come from ``vidlang.data.readers.questions`` (``data.dataset``: ``jsonl`` or
``synthvl``). Training batches add segment pairs (``data.segments``): each question's QA span
with "question ⊕ answer", and each video's time-stamped sentences once. Evaluation scores every
candidate and reports accuracy in percent (``vidlang.metrics.mc_accuracy``, tied top scores
share the credit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidlang.data.features.spec import FeatureSpec
from vidlang.data.readers.questions import QuestionEntry, load_questions
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
from vidlang.errors import DataError
from vidlang.registry import PIPELINES


@dataclass
class MCQADataConfig(DataConfig):
    """``data`` keys of multiple-choice QA experiments. ``dataset: jsonl`` reads
    ``<root>/<split>.mcqa.jsonl`` with ``{"qid", "vid", "duration", "question", "candidates",
    "answer", "window"?}`` per line; ``synthvl`` reads SynthVL's questions."""

    segments: bool = True  # segment pairs: the QA span and the video's time-stamped sentences


@dataclass
class QuestionItem:
    entry: QuestionEntry
    feats: torch.Tensor
    centres: torch.Tensor | None = None


class QuestionDataset(CentresMixin, FeatureDataset):
    """One item per question: its video's features and clip centre times."""

    def __init__(self, entries: Sequence[QuestionEntry],
                 features: FeatureSource | Callable[[], FeatureSource], spec: FeatureSpec,
                 memo: FeatureMemo | None = None) -> None:
        super().__init__(features, spec, memo)
        self.entries = list(entries)

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
        add_centres(batch, items)
    return batch


@PIPELINES.register("mcqa")
class MCQAPipeline(TaskPipeline):
    """Multiple-choice QA data + accuracy in percent. ``questions``/``features`` may be
    injected (tests); otherwise they come from ``data.dataset`` / ``data.root``."""

    task = "mcqa"
    data_config_class = MCQADataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 questions: Mapping[str, Sequence[QuestionEntry]] | None = None,
                 features: FeatureSource | None = None) -> None:
        super().__init__(cfg, feature_spec)
        self._features: FeatureSource | Callable[[], FeatureSource] = feature_source(cfg.data, features)
        self.memo = feature_memo(cfg.data)
        self._questions = {k: list(v) for k, v in (questions or {}).items()}

    def questions(self, split: str) -> list[QuestionEntry]:
        if split not in self._questions:
            self._questions[split] = load_questions(self.data.dataset, self.data.root, split)
        return self._questions[split]

    def training_records(self) -> list[QuestionEntry]:
        return self.questions(self.data.train_split)

    def _dataset(self, split: str) -> QuestionDataset:
        return QuestionDataset(self.questions(split), self._features, self.feature_spec, self.memo)

    def train_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        return make_loader(self._dataset(self.data.train_split),
                           BoundCollate(collate_mcqa, segments=self.data.segments),
                           self.data.batch_size, shuffle=True, seed=self.cfg.seed,
                           num_workers=self.data.num_workers, rank=rank, world_size=world_size)

    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        return make_loader(self._dataset(split), BoundCollate(collate_mcqa, segments=False),
                           self.data.eval_batch_size, shuffle=False, seed=self.cfg.seed,
                           num_workers=self.data.num_workers, rank=rank, world_size=world_size,
                           pad=False)

    def evaluate(self, model: Any, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        """``accuracy`` (%) over the split's questions from each one's candidate scores."""
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
