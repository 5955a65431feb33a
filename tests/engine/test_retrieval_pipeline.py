"""Retrieval / MCQA pipelines: per-epoch caption draw, segment pairs, clip times, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vidlang.data.features.spec import FeatureSpec
from vidlang.data.readers.questions import QuestionEntry, read_jsonl_questions
from vidlang.engine.pipelines.mcqa import QuestionItem, collate_mcqa
from vidlang.engine.pipelines.retrieval import RetrievalDataset, RetrievalEntry, collate_retrieval
from vidlang.engine.pipelines.videos import clip_centre_times
from vidlang.errors import DataError

ENTRIES = [RetrievalEntry(f"v{i}", 10.0, tuple(f"caption {j} of v{i}" for j in range(5)),
                          ("a dog runs", "a dog sits"), ((0.0, 4.0), (5.0, 10.0)))
           for i in range(6)]
FEATS = {f"v{i}": np.random.default_rng(i).normal(size=(10, 4)).astype(np.float32)
         for i in range(6)}


def _draws(ds: RetrievalDataset, epoch: int) -> list[str]:
    ds.epoch = epoch
    return [ds[i].texts[0] for i in range(len(ds))]


def test_random_caption_draw_depends_only_on_seed_and_epoch() -> None:
    a = RetrievalDataset(ENTRIES, FEATS, FeatureSpec(), "random", seed=3)
    b = RetrievalDataset(ENTRIES, FEATS, FeatureSpec(), "random", seed=3)
    assert _draws(a, 1) == _draws(b, 1)
    assert _draws(a, 1) != _draws(a, 2)  # 6 videos x 5 captions: a new draw per epoch
    every = RetrievalDataset(ENTRIES, FEATS, FeatureSpec(), "all")
    assert len(every) == 30 and len({it.texts[0] for it in every}) == 30  # type: ignore[attr-defined]


def test_collate_retrieval_segments_and_clip_centres() -> None:
    ds = RetrievalDataset(ENTRIES[:2], FEATS, FeatureSpec(), "random")
    batch = collate_retrieval([ds[0], ds[1]], segments=True)
    assert batch["feats"].shape == (2, 10, 4) and bool(batch["feat_mask"].all())
    assert batch["seg_video"].tolist() == [0, 0, 1, 1]
    assert batch["seg_windows"][1].tolist() == [5.0, 10.0]
    assert batch["clip_centres"][0, :3].tolist() == pytest.approx([0.5, 1.5, 2.5])
    assert len(batch["texts"]) == 2 and batch["qids"][0].startswith("v0#")


def test_clip_centre_times_follow_uniform_sampling() -> None:
    c = clip_centre_times(10, 20.0, FeatureSpec(mode="uniform", num_rows=4))
    # rows round(linspace(0, 9, 4)) = 0, 3, 6, 9; 2 s per raw clip
    assert c is not None and c.tolist() == pytest.approx([1.0, 7.0, 13.0, 19.0])
    assert clip_centre_times(10, 20.0, FeatureSpec(mode="segment_mean", num_rows=4)) is None


def test_collate_mcqa_adds_each_videos_sentences_once() -> None:
    e = QuestionEntry("q1", "v0", 10.0, "what first?", ("runs", "sits"), 0, None,
                      ("a dog runs", "a dog sits"), ((0.0, 4.0), (5.0, 10.0)))
    e2 = QuestionEntry("q2", "v0", 10.0, "what last?", ("runs", "sits"), 1, (5.0, 10.0),
                       e.sentences, e.windows)
    items = [QuestionItem(e, torch.zeros(10, 4)), QuestionItem(e2, torch.zeros(10, 4))]
    batch = collate_mcqa(items)
    assert batch["answers"].tolist() == [0, 1]
    # the QA span of q2 plus v0's two sentences, once
    assert batch["seg_texts"] == ["what last? sits", "a dog runs", "a dog sits"]
    assert "seg_texts" not in collate_mcqa(items, segments=False)


def test_jsonl_questions_errors_name_file_and_line(tmp_path: Path) -> None:
    good = {"qid": "q", "vid": "v", "duration": 5, "question": "?", "candidates": ["a", "b"],
            "answer": 1}
    bad = dict(good, answer=2)
    (tmp_path / "test.mcqa.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"test\.mcqa\.jsonl:2.*answer 2"):
        read_jsonl_questions(str(tmp_path), "test")
