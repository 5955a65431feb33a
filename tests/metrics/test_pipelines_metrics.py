"""The pipelines / metrics split (issue 13): alignment metric objects score what they are
given in any batch order, metrics import neither engine nor models, and the one loader
builder tells a dataset its epoch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.pipelines.base import make_loader
from vidlang.engine.pipelines.retrieval import RetrievalDataset, RetrievalEntry, collate_retrieval
from vidlang.metrics.alignment import ParagraphToVideoMetric, paragraph_to_video
from vidlang.metrics.step_decoding import StepLocalisationMetric
from vidlang.metrics.video_to_video import VideoToVideoMetric


def _outputs(n: int = 6, seed: int = 0) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        k, t, w = 2 + i % 3, 8 + i, 3 + i % 2
        out.append({"video_id": f"v{i}", "text": F.normalize(torch.randn(k, 4, generator=gen), dim=-1),
                    "clips": F.normalize(torch.randn(k, 4, generator=gen), dim=-1),
                    "frames": F.normalize(torch.randn(t, 4, generator=gen), dim=-1),
                    "bg_clips": F.normalize(torch.randn(w, 4, generator=gen), dim=-1),
                    "windows": [(float(j), float(j + 1)) for j in range(k)], "duration": float(t)})
    return out


def test_alignment_metrics_score_videos_in_id_order_whatever_the_batches() -> None:
    items = _outputs()
    direct = paragraph_to_video(items, "both", "path", 1.3, False)
    metric = ParagraphToVideoMetric("both", "path", 1.3, False)
    for batch in (items[3:], items[:3], items[1:2]):  # shuffled batches, one video seen twice
        metric.process(batch)
    assert metric.compute_metrics() == direct
    assert set(direct) >= {"p2v/bg_removed/dtw/R@1", "p2v/bg_kept/otam/MdR"}
    steps = StepLocalisationMetric("synthvl")
    steps.process(items[::-1])
    again = StepLocalisationMetric("synthvl")
    again.process(items)
    assert steps.compute_metrics() == again.compute_metrics()
    assert 0.0 <= steps.compute_metrics()["steps/recall"] <= 100.0


def test_video_to_video_metric_reports_or_skips() -> None:
    items = _outputs()
    labels = {f"v{i}": "ab"[i % 2] for i in range(6)}
    metric = VideoToVideoMetric(labels, shots=1, seed=0)
    metric.process(items)
    out = metric.compute_metrics()
    assert out["v2v/classes"] == 2.0 and out["v2v/queries"] == 4.0
    assert all(0.0 <= out[f"v2v/{k}/acc"] <= 100.0 for k in ("dtw", "otam", "mean_pool"))
    none = VideoToVideoMetric(None, source="didemo")
    none.process(items)
    assert none.compute_metrics() == {"v2v/skipped": "dataset 'didemo' has no video class labels"}


def test_metrics_import_neither_engine_nor_models() -> None:
    code = ("import sys, vidlang.metrics, vidlang.metrics.alignment, vidlang.metrics.video_to_video, "
            "vidlang.metrics.step_decoding; "
            "print(sorted(m for m in sys.modules if m.startswith(('vidlang.engine', 'vidlang.models'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_make_loader_tells_the_dataset_its_epoch() -> None:
    entries = [RetrievalEntry(f"v{i}", 10.0, tuple(f"caption {j} of v{i}" for j in range(5)))
               for i in range(6)]
    feats = {f"v{i}": np.zeros((4, 2), dtype=np.float32) for i in range(6)}
    ds = RetrievalDataset(entries, feats, FeatureSpec(), "random", seed=3)
    loader = make_loader(ds, collate_retrieval, 6, shuffle=False, seed=3, num_workers=0)
    draws = []
    for epoch in (1, 2, 1):
        loader.sampler.set_epoch(epoch)  # what Lightning does before each epoch
        draws.append(next(iter(loader))["texts"])
    assert ds.epoch == 1 and draws[0] == draws[2] and draws[0] != draws[1]
