"""The alignment pipeline on the real YouCook2 annotations (shared data; skipped when absent)."""

from __future__ import annotations

from pathlib import Path

from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.config import load_config
from vidlang.engine.pipelines.alignment import AlignmentPipeline, select_pairs
from vidlang.metrics.video_to_video import few_shot_split


def test_youcook2_sequences_follow_the_release_rule(shared_data: Path) -> None:
    cfg = load_config("tempclr/youcook2", [f"data.root={shared_data}"])
    pipeline = AlignmentPipeline(cfg, FeatureSpec(), features={})
    paragraphs = pipeline.paragraphs("val")
    assert len(paragraphs) > 400  # the release evaluates 436 videos with features
    picked = [select_pairs(p.windows, cfg.data.seq_len, cfg.data.min_pairs) for p in paragraphs]
    kept = [(p, s) for p, s in zip(paragraphs, picked) if s is not None]
    assert 0 < len(kept) < len(paragraphs)  # some videos have fewer than 5 usable pairs
    for p, sel in kept:
        assert len(sel) == 5
        windows = [p.windows[i] for i in sel]
        assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:]))  # ordered, disjoint


def test_youcook2_recipe_types_label_the_val_videos(shared_data: Path) -> None:
    cfg = load_config("tempclr/youcook2", [f"data.root={shared_data}"])
    pipeline = AlignmentPipeline(cfg, FeatureSpec(), features={})
    labels = pipeline.video_labels("val")
    assert labels is not None
    val_ids = [p.video_id for p in pipeline.paragraphs("val")]
    assert all(v in labels for v in val_ids)
    support, query = few_shot_split({v: labels[v] for v in val_ids}, shots=1, seed=0)
    assert 50 < len(support) < len(query)  # ~89 recipe types over ~450 videos, one shot each
    assert len({labels[v] for v in support}) == len(support)
