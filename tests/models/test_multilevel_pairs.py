"""Multi-level alignment: segment pooling, IoU-based and duplicate negative masking, losses."""

from __future__ import annotations

import pytest
import torch

from retrieval_toy import HashWordEncoder, is_content  # noqa: E402
from vidlang.errors import ConfigError
from vidlang.losses.multilevel import (
    clip_centres,
    duplicate_mask,
    global_valid_mask,
    segment_clip_mask,
    segment_pool,
    segment_valid_mask,
)
from vidlang.models.base import TrainState
from vidlang.models.multilevel import MultiLevelConfig
from vidlang.ops.windows import pairwise_window_iou


def test_clip_centres_tile_the_duration() -> None:
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    c = clip_centres(torch.tensor([8.0, 4.0]), mask)
    assert c[0].tolist() == pytest.approx([1, 3, 5, 7])
    assert c[1, :2].tolist() == pytest.approx([1, 3])


def test_segment_clip_mask_inside_and_nearest_fallback() -> None:
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    centres = torch.tensor([[1.0, 3.0, 5.0, 7.0], [1.0, 3.0, 5.0, 7.0]])
    seg_video = torch.tensor([0, 0, 1])
    windows = torch.tensor([[2.0, 6.0], [6.2, 6.4], [5.5, 9.0]])
    m = segment_clip_mask(centres, mask, seg_video, windows)
    assert m[0].tolist() == [False, True, True, False]
    assert m[1].tolist() == [False, False, False, True]  # too short: nearest clip (7.0)
    # video 1's clip 3 is padding: never used; nearest valid clip is 5.0
    assert m[2].tolist() == [False, False, True, False]
    clips = torch.arange(4.0)[None, :, None].expand(3, 4, 1)
    assert segment_pool(clips, m)[:, 0].tolist() == pytest.approx([1.5, 3.0, 2.0])


def test_iou_and_segment_negative_mask() -> None:
    w = torch.tensor([[0.0, 4.0], [1.0, 4.0], [10.0, 12.0], [0.0, 4.0]])
    iou = pairwise_window_iou(w, w, eps=1e-9)
    assert float(iou[0, 1]) == pytest.approx(0.75)
    assert float(iou[0, 2]) == 0.0
    ids = ["a", "a", "a", "b"]
    texts = ["x", "y", "z", "w"]
    valid = segment_valid_mask(ids, w, texts, iou_threshold=0.5)
    assert not bool(valid[0, 1]) and not bool(valid[1, 0])  # same video, IoU 0.75
    assert bool(valid[0, 2])  # same video, no overlap: a negative
    assert bool(valid[0, 3])  # other video, same window: a negative
    assert bool(valid.diagonal().all())
    dup = segment_valid_mask(ids, w, ["x", "y", "z", "x"], iou_threshold=0.5)
    assert not bool(dup[0, 3]) and not bool(dup[3, 0])  # identical sentence


def test_duplicate_and_global_masks() -> None:
    d = duplicate_mask(["a", "b", "a"])
    assert d.tolist() == [[False, False, True], [False, False, False], [True, False, False]]
    g = global_valid_mask(["a", "b", "c"], ["s", "t", "s"])
    assert not bool(g[0, 2]) and bool(g[0, 1]) and bool(g.diagonal().all())


def _model(multi: MultiLevelConfig):
    from vidlang.models.retrieval import DualEncoder, DualEncoderConfig

    torch.manual_seed(0)
    cfg = DualEncoderConfig(video_dim=6, embed_dim=16, multilevel=multi)
    return DualEncoder(cfg, HashWordEncoder(dim=8), is_content)


def _batch() -> dict:
    torch.manual_seed(1)
    return {
        "video_ids": ["a", "b"], "feats": torch.randn(2, 4, 6),
        "feat_mask": torch.ones(2, 4, dtype=torch.bool), "durations": torch.tensor([8.0, 8.0]),
        "texts": ["dog runs then sits", "cat jumps then sleeps"],
        "seg_video": torch.tensor([0, 0, 1, 1]),
        "seg_windows": torch.tensor([[0.0, 4.0], [4.0, 8.0], [0.0, 4.0], [4.0, 8.0]]),
        "seg_texts": ["dog runs", "dog sits", "cat jumps", "cat sleeps"],
    }


def test_multilevel_terms_added_to_task_loss() -> None:
    batch = _batch()
    out = _model(MultiLevelConfig(enabled=True, lambda_global=1.0, lambda_segment=0.5)
                 ).training_losses(batch, TrainState())
    assert set(out) >= {"contrastive", "align_global", "align_segment", "loss"}
    total = out["contrastive"] + out["align_global"] + out["align_segment"]
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-6)
    off = _model(MultiLevelConfig(enabled=True, lambda_global=0.0, lambda_segment=0.0)
                 ).training_losses(batch, TrainState())
    assert "align_segment" not in off and "align_global" not in off
    out["loss"].backward()


def test_multilevel_segment_gradient_reaches_temporal_encoder() -> None:
    model = _model(MultiLevelConfig(enabled=True, lambda_segment=1.0))
    seg = model.multilevel.losses(model, _batch(), model.video_repr(_batch()["feats"],
                                  _batch()["feat_mask"]), model.text_repr(_batch()["texts"]))
    seg["align_segment"].backward()
    assert model.video_proj.weight.grad is not None
    assert float(model.video_proj.weight.grad.abs().sum()) > 0


def test_multilevel_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="paragraph_pool"):
        _model(MultiLevelConfig(enabled=True, paragraph_pool="max"))
