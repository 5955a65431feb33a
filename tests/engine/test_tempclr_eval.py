"""TempCLR evaluation: fixed windows and the background-kept selection, few-shot
video-to-video accuracy in the pipeline, and the release's evaluation quirks (tempclr.md §3, §5)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.config import load_config
from vidlang.engine.pipelines.alignment import AlignmentPipeline, cut_windows
from vidlang.errors import ConfigError
from vidlang.losses.alignment import (
    reference_distance,
    release_eval_distance,
    release_hard_dp,
    release_pad,
    release_pairwise_distance,
    sequence_distance,
)
from vidlang.metrics.alignment import (
    background_kept_scores,
    keep_nearest_windows,
    sequence_scores,
)
from vidlang.metrics.video_to_video import few_shot_split, video_to_video_accuracy

INF = float("inf")


# ---- fixed windows and the keep-1.3x selection -------------------------------------------------
def test_cut_windows() -> None:
    assert cut_windows(10.0, 4.0, 4.0) == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    assert cut_windows(8.0, 4.0, 4.0) == [(0.0, 4.0), (4.0, 8.0)]  # no empty tail window
    assert cut_windows(3.0, 16.0, 16.0) == [(0.0, 3.0)]  # shorter than one window
    # overlapping stride: stop at the first window that reaches the end
    assert cut_windows(7.0, 4.0, 2.0) == [(0.0, 4.0), (2.0, 6.0), (4.0, 7.0)]
    with pytest.raises(ValueError):
        cut_windows(10.0, 0.0, 4.0)


def test_keep_nearest_windows_keeps_best_in_temporal_order() -> None:
    # one paragraph of 2 captions (+1 padded), one video of 5 windows (+1 padded)
    sim = torch.tensor([[[[0.1, 0.9, 0.2, 0.0, 0.3, 5.0],
                          [0.8, 0.0, 0.1, 0.7, 0.2, 5.0],
                          [9.0, 9.0, 9.0, 9.0, 9.0, 9.0]]]])
    text_mask = torch.tensor([[True, True, False]])
    win_mask = torch.tensor([[True, True, True, True, False, False]])
    index, valid = keep_nearest_windows(sim, text_mask, win_mask, keep_ratio=1.3)
    # best per window over the real captions: [0.8, 0.9, 0.2, 0.7]; int(1.3 * 2) = 2 kept:
    # windows 1 (0.9) and 0 (0.8), returned in temporal order; padded entries never chosen
    assert index[0, 0].tolist() == [0, 1] and valid[0, 0].tolist() == [True, True]
    index, valid = keep_nearest_windows(sim, text_mask, win_mask, keep_ratio=2.0)
    assert index[0, 0].tolist() == [0, 1, 2, 3] and valid[0, 0].tolist() == [True] * 4
    index, valid = keep_nearest_windows(sim, text_mask, win_mask, keep_ratio=1.6)
    assert index[0, 0].tolist() == [0, 1, 3]  # windows 1, 0, 3 by similarity; time order
    # a video with fewer windows than int(1.3 n): all of them, the rest masked
    short = torch.tensor([[True, True, False, False, False, False]])
    index, valid = keep_nearest_windows(sim, text_mask, short, keep_ratio=2.0)
    assert index[0, 0].tolist() == [0, 1] and valid[0, 0].tolist() == [True, True]


def test_background_kept_dtw_uses_the_kept_windows_only() -> None:
    gen = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(3, 3, 6, generator=gen), dim=-1)
    wins = F.normalize(torch.randn(2, 7, 6, generator=gen), dim=-1)
    tmask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    wmask = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    for kind in ("dtw", "otam"):
        got = background_kept_scores(text, tmask, wins, wmask, kind, "none", chunk_cells=50)
        for p in range(3):
            for v in range(2):
                n, m = int(tmask[p].sum()), int(wmask[v].sum())
                sim = text[p, :n] @ wins[v, :m].t()
                keep = min(int(1.3 * n), m)
                picked = sorted(sim.amax(dim=0).argsort(descending=True)[:keep].tolist())
                cost = 1 - sim[:, picked]
                want = reference_distance(cost, kind)
                if kind == "otam":
                    want = want + reference_distance(cost.t(), kind)
                assert abs(float(got[p, v]) + float(want)) < 1e-5
    cap = background_kept_scores(text, tmask, wins, wmask, "cap_avg", "none")
    want = (text[0] @ wins[1, :4].t()).amax(dim=1).mean()
    assert abs(float(cap[0, 1]) - float(want)) < 1e-6  # cap_avg uses every window


# ---- few-shot video-to-video ---------------------------------------------------------------
def test_few_shot_split_is_seeded_and_drops_singletons() -> None:
    labels = {"a1": "x", "a2": "x", "a3": "x", "b1": "y", "b2": "y", "c1": "z"}
    support, query = few_shot_split(labels, shots=1, seed=0)
    assert len(support) == 2 and len(query) == 3 and "c1" not in support + query
    assert {labels[v] for v in support} == {"x", "y"}
    assert set(support + query) == {"a1", "a2", "a3", "b1", "b2"}
    assert few_shot_split(labels, 1, 0) == (support, query)
    assert few_shot_split(dict(reversed(labels.items())), 1, 0) == (support, query)
    seeds = {tuple(few_shot_split(labels, 1, s)[0]) for s in range(10)}
    assert len(seeds) > 1  # the seed changes the support
    assert few_shot_split(labels, shots=2, seed=0)[0].count("b1") == 0  # y has only 2: dropped


def _seq(*names: str) -> torch.Tensor:
    basis = {"a": torch.tensor([1.0, 0.0, 0.0]), "b": torch.tensor([0.0, 1.0, 0.0])}
    return torch.stack([basis[n] for n in names])


def test_video_to_video_order_matters_hand_case() -> None:
    queries = [_seq("a", "a", "b", "b"), _seq("b", "b", "a", "a")]
    support = [_seq("a", "b"), _seq("b", "a")]
    for kind in ("dtw", "otam"):
        assert video_to_video_accuracy(queries, ["ab", "ba"], support, ["ab", "ba"], kind) == 1.0
        assert video_to_video_accuracy(queries, ["ba", "ab"], support, ["ab", "ba"], kind) == 0.0
    # the order-blind reference cannot tell them apart: every mean is (a + b) / 2, the tie goes
    # to the first support video, so exactly one of the two queries is right
    assert video_to_video_accuracy(queries, ["ab", "ba"], support, ["ab", "ba"], "mean_pool") == 0.5
    with pytest.raises(ValueError, match="kind"):
        video_to_video_accuracy(queries, ["ab", "ba"], support, ["ab", "ba"], "cap_avg")


def _hand_outputs() -> list[list[dict[str, Any]]]:
    """Four videos: two of class "a -> b" and two of "b -> a", each with the same events (so
    mean pooling is blind to the class); text = clips = fixed windows."""
    seqs = {"v0": _seq("a", "b"), "v1": _seq("a", "a", "b", "b"),
            "v2": _seq("b", "a"), "v3": _seq("b", "b", "a", "a")}
    items = []
    for vid, seq in seqs.items():
        n = seq.shape[0]
        items.append({"video_id": vid, "text": seq, "clips": seq, "frames": seq,
                      "windows": [(float(i), float(i + 1)) for i in range(n)],
                      "duration": float(n), "bg_clips": seq,
                      "bg_windows": [(float(i), float(i + 1)) for i in range(n)]})
    return [items[:2], items[2:]]


def _pipeline(tmp_path: Path, extra: tuple[str, ...] = (),
              labels: dict[str, dict[str, str]] | None = None) -> AlignmentPipeline:
    cfg = load_config("tempclr/synthvl_cpu", [f"data.root={tmp_path}", *extra])
    return AlignmentPipeline(cfg, FeatureSpec(), features={}, labels=labels)


def test_pipeline_reports_video_to_video_accuracy(tmp_path: Path) -> None:
    labels = {"test": {"v0": "a -> b", "v1": "a -> b", "v2": "b -> a", "v3": "b -> a"}}
    metrics = _pipeline(tmp_path, labels=labels).evaluate(None, _hand_outputs(), "test")
    assert metrics["v2v/dtw/acc"] == 100.0 and metrics["v2v/otam/acc"] == 100.0
    assert metrics["v2v/mean_pool/acc"] == 50.0
    assert metrics["v2v/queries"] == 2.0 and metrics["v2v/classes"] == 2.0
    for bg in ("bg_removed", "bg_kept"):
        for scorer in ("cap_avg", "dtw", "otam"):
            assert f"p2v/{bg}/{scorer}/R@1" in metrics
    assert metrics["background"] == "both" and metrics["reproduce_upstream_quirks"] is False
    removed = _pipeline(tmp_path, ("eval.overrides.background=removed", "eval.overrides.v2v=false"),
                        labels).evaluate(None, _hand_outputs(), "test")
    assert not any(k.startswith(("p2v/bg_kept", "v2v/")) for k in removed)


def test_pipeline_skips_video_to_video_with_a_logged_reason(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        metrics = _pipeline(tmp_path, ("data.dataset=didemo",)).evaluate(None, _hand_outputs(), "test")
    assert "no video class labels" in metrics["v2v/skipped"]
    assert "v2v/dtw/acc" not in metrics
    assert any("video-to-video accuracy skipped" in r.getMessage() for r in caplog.records)
    one_class = {"test": {"v0": "a", "v1": "a", "v2": "a"}}
    metrics = _pipeline(tmp_path, labels=one_class).evaluate(None, _hand_outputs(), "test")
    assert "need 2" in metrics["v2v/skipped"]


def test_eval_options_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="eval.overrides.background"):
        _pipeline(tmp_path, ("eval.overrides.background=sometimes",))
    with pytest.raises(ConfigError, match="eval.overrides.stride"):
        _pipeline(tmp_path, ("eval.overrides.stride=0",))
    with pytest.raises(ConfigError, match="eval.overrides.nonsense"):
        _pipeline(tmp_path, ("eval.overrides.nonsense=1",))
    with pytest.raises(ConfigError, match="eval.metric"):
        _pipeline(tmp_path, ("eval.overrides.background=kept",))  # metric is bg_removed


# ---- the release's evaluation quirks ---------------------------------------------------------
def test_quirk1_raw_dot_cost() -> None:
    text = torch.tensor([[[2.0, 0.0]]])  # norm 2: dot 2, cosine 1
    video = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
    tmask = torch.ones(1, 1, dtype=torch.bool)
    vmask = torch.tensor([[True, False], [True, True]])  # video 1 is longer: no quirk 3 on 0
    got = release_pairwise_distance(text, tmask, video, vmask, "dtw")
    assert float(got[0, 0]) == -4.0  # (1 - 2) scaled by 2 * 2 / (1 * 1); then the corridor
    clean = -sequence_scores(text, tmask, video, vmask, "dtw", "none")
    assert float(clean[0, 0]) == 0.0  # 1 - cos


def test_quirk2_area_scaling_and_zero_cost_corridor() -> None:
    rows, cols = torch.tensor([2, 2]), torch.tensor([2, 2])
    blocks = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.0, 0.0], [5.0, 5.0]]])
    padded = release_pad(blocks, 3, 3, otam=False)
    assert padded[0].tolist() == [[1, 1, INF], [1, 1, 0], [INF, INF, 0]]  # corridor after the block
    got = release_eval_distance(blocks, rows, cols, 3, 3, "dtw")
    # block 0: every path has 2 cells, each scaled by 3*3 / (2*2) -> 4.5 (clean area: 2 / 4)
    # block 1: the corridor lets the path leave row 0 diagonally, skipping the costly last row
    assert got.tolist() == [4.5, 0.0]
    clean = sequence_distance(blocks, kind="dtw", normalise="area")
    assert clean.tolist() == [0.5, 5.0 / 4]


def test_quirk3_last_row_zeroed_when_the_video_is_longest() -> None:
    block = torch.tensor([[[1.0, 1.0, 1.0], [5.0, 5.0, 5.0]]])  # 2 sentences x 3 clips
    padded = release_pad(block, 3, 3, otam=False)
    assert padded[0, 1].tolist() == [0.0, 0.0, 0.0]  # the real last row is gone
    got = release_eval_distance(block, torch.tensor([2]), torch.tensor([3]), 3, 3, "dtw")
    assert float(got) == 1.5  # only cell (0, 0) is paid: 1 * 9 / 6
    # a shorter video keeps its last row (only the padding columns form the corridor)
    short = release_pad(block[:, :, :2], 3, 3, otam=False)
    assert short[0, 1].tolist() == [5.0, 5.0, 0.0]


def test_quirk4_otam_subtracts_at_the_first_real_column() -> None:
    negative = torch.tensor([[[0.0, -1.0, 0.0], [0.0, -2.0, 0.0]]])  # padded OTAM grid
    assert float(release_hard_dp(negative, "otam", otam_subtract_bug=False)) == -3.0
    assert float(release_hard_dp(negative, "otam")) == -1.0  # -2 - min(0, -1, 0)
    positive = negative.abs()  # with costs >= 0 the minimum there is 0: no effect
    assert float(release_hard_dp(positive, "otam")) == float(
        release_hard_dp(positive, "otam", otam_subtract_bug=False)) == 1.0


def test_release_dp_without_padding_is_plain_hard_dp() -> None:
    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(4, 3, 5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(release_hard_dp(cost, "dtw"), reference_distance(cost, "dtw"))
    otam = release_hard_dp(F.pad(cost, (1, 1)), "otam", otam_subtract_bug=False)
    # the release also allows vertical moves into its first real column (docs/models.md)
    assert bool((otam <= reference_distance(cost, "otam") + 1e-12).all())


def test_default_evaluation_is_unaffected_by_the_quirks() -> None:
    gen = torch.Generator().manual_seed(1)
    text = 2.0 * torch.randn(2, 2, 4, generator=gen)  # unnormalised: raw dot != cosine
    video = 2.0 * torch.randn(2, 3, 4, generator=gen)
    tmask = torch.ones(2, 2, dtype=torch.bool)
    vmask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)  # video 1 is the longest
    got = -sequence_scores(text, tmask, video, vmask, "dtw", "none")
    quirky = release_pairwise_distance(text, tmask, video, vmask, "dtw")
    for p in range(2):
        for v in range(2):
            m = int(vmask[v].sum())
            cost = 1 - F.normalize(text[p], dim=-1) @ F.normalize(video[v, :m], dim=-1).t()
            assert abs(float(got[p, v]) - float(reference_distance(cost, "dtw"))) < 1e-5
    assert not torch.allclose(got, quirky)


@pytest.mark.parametrize("kind", ["dtw", "otam"])
def test_pairwise_distances_do_not_depend_on_chunking(kind: str) -> None:
    """Clean and release pairwise distances: 3 pairs per chunk (partial last chunk) equal one
    chunk over everything, with masked (shorter) paragraphs and videos."""
    from vidlang.losses.alignment import pairwise_sequence_distance, release_pairwise_distance

    torch.manual_seed(0)
    text = F.normalize(torch.randn(7, 5, 8), dim=-1)
    video = F.normalize(torch.randn(4, 6, 8), dim=-1)
    tmask, vmask = torch.ones(7, 5, dtype=torch.bool), torch.ones(4, 6, dtype=torch.bool)
    tmask[0, 3:] = False
    vmask[1, 4:] = False
    for fn in (pairwise_sequence_distance, release_pairwise_distance):
        small = fn(text, tmask, video, vmask, kind=kind, chunk_pairs=3)
        whole = fn(text, tmask, video, vmask, kind=kind, chunk_pairs=10**6)
        assert small.shape == (7, 4) and torch.isfinite(small).all()
        assert torch.equal(small, whole)
