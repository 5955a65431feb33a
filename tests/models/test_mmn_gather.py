"""MMN with ``trainer.gather_negatives``: two gloo processes, each holding part of a batch,
must reproduce the single-process mutual-matching loss on the whole batch (and its gradients
under DDP's averaging); with gathering off each process sees only its own part."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from two_process import run_two_processes
from vidlang.losses.mmn import gathered_mutual_matching_loss, mutual_matching_loss
from vidlang.models.base import TrainState
from vidlang.models.mmn import MMN, MMNConfig
from vidlang.text.config import TextEncoderConfig

W = 2  # world size of the harness
KW: dict[str, Any] = dict(tau_video=0.1, tau_sent=0.1, margin=0.4, top_k=2, sent_removal_iou=0.5,
                          negative_video_iou=0.5)
D, M = 5, 6
# videos 0, 1 on rank 0 (sentences 0-2), video 2 on rank 1 (sentences 3-4): unequal sizes
QUERY_VIDEO = torch.tensor([0, 0, 1, 2, 2])
SPLIT = {0: (slice(0, 3), slice(0, 2)), 1: (slice(3, 5), slice(2, 3))}   # (sentences, videos)


def _loss_inputs() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    # sentences 0 and 1 overlap (IoU 0.8: removed from each other's negatives); 3 and 4 do not
    gt = torch.tensor([[0.0, 0.5], [0.1, 0.5], [0.2, 0.9], [0.0, 0.3], [0.5, 1.0]])
    return dict(sent=torch.randn(5, D, generator=g), cells=torch.randn(3, M, D, generator=g),
                iou_cells=torch.rand(5, M, generator=g), gt=gt)


def _duplicate_inputs() -> dict[str, torch.Tensor]:
    """Videos 0, 1, 2 with sentences [0, 0, 1, 1, 2, 2]; sentence 3 (video 1) overlaps 2."""
    x = _loss_inputs()
    g = torch.Generator().manual_seed(3)
    return dict(sent=torch.cat([x["sent"][:3], torch.randn(1, D, generator=g), x["sent"][3:]]),
                cells=x["cells"],
                iou_cells=torch.cat([x["iou_cells"][:3], torch.rand(1, M, generator=g),
                                     x["iou_cells"][3:]]),
                gt=torch.cat([x["gt"][:3], torch.tensor([[0.25, 0.9]]), x["gt"][3:]]))


def _proj() -> torch.nn.Linear:
    """A parameter shared by the ranks, to check what DDP's gradient averaging produces."""
    torch.manual_seed(1)
    return torch.nn.Linear(D, D)


def _run_loss(x: dict[str, torch.Tensor], query_video: torch.Tensor, quirks: bool,
              gathered: bool) -> dict[str, np.ndarray]:
    proj = _proj()
    sent = x["sent"].clone().requires_grad_()
    cells = x["cells"].clone().requires_grad_()
    fn = gathered_mutual_matching_loss if gathered else mutual_matching_loss
    t = fn(proj(sent), proj(cells), query_video, x["iou_cells"], x["gt"], **KW,
           reproduce_upstream_quirks=quirks)
    (t.proposal_to_sentence + 0.7 * t.sentence_to_proposal).backward()
    return {k: v.detach().numpy().copy() for k, v in dict(
        a=t.proposal_to_sentence, b=t.sentence_to_proposal, sent_grad=sent.grad,
        cells_grad=cells.grad, proj_grad=proj.weight.grad).items()}


def _half(x: dict[str, torch.Tensor], rank: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    q, v = SPLIT[rank]
    half = dict(sent=x["sent"][q], cells=x["cells"][v], iou_cells=x["iou_cells"][q], gt=x["gt"][q])
    return half, QUERY_VIDEO[q] - v.start


# -- a tiny MMN (eval mode: BatchNorm uses running stats, so it is per-sample like the loss) ----
TINY = dict(input_dim=8, featpool_hidden=8, conv_hidden=8, conv_layers=2, joint_dim=8,
            text=TextEncoderConfig(name="word", dim=16, vocab_size=64))
MODEL_PARAMS = ("fusion.conv1x1_contrastive.weight", "fusion.text_contrastive.weight")


def _model() -> MMN:
    torch.manual_seed(0)
    return MMN(MMNConfig(**TINY)).eval()


def _model_batch(videos: slice | None = None) -> dict[str, Any]:
    g = torch.Generator().manual_seed(2)
    full: dict[str, Any] = dict(
        video_ids=["a", "b", "c"], feats=torch.randn(3, 32, 8, generator=g),
        feat_mask=torch.ones(3, 32, dtype=torch.bool), durations=torch.tensor([30.0, 20.0, 25.0]),
        queries=["a man runs", "he sits down", "a dog barks", "she opens it", "rain falls"],
        qids=["q1", "q2", "q3", "q4", "q5"], query_video=QUERY_VIDEO.clone(),
        windows=torch.tensor([[1.0, 10.0], [12.0, 25.0], [3.0, 8.0], [0.0, 9.0], [10.0, 24.0]]))
    if videos is None:
        return full
    q = next(s for s, v in SPLIT.values() if v == videos)
    return dict(video_ids=full["video_ids"][videos], feats=full["feats"][videos],
                feat_mask=full["feat_mask"][videos], durations=full["durations"][videos],
                queries=full["queries"][q], qids=full["qids"][q],
                query_video=full["query_video"][q] - videos.start, windows=full["windows"][q])


def _run_model(model: MMN, batch: dict[str, Any], gather: bool) -> dict[str, np.ndarray]:
    model.zero_grad()
    losses = model.training_losses(batch, TrainState(epoch=1, gather_negatives=gather))
    (losses["loss_mm_video"] + losses["loss_mm_sent"]).backward()
    params = dict(model.named_parameters())
    out = {k: losses[k].detach().numpy().copy() for k in ("loss_iou", "loss_mm_video",
                                                         "loss_mm_sent")}
    out.update({k: params[k].grad.numpy().copy() for k in MODEL_PARAMS})
    return out


def _worker(rank: int, model: MMN) -> dict[str, Any]:
    x = _loss_inputs()
    half, qv = _half(x, rank)
    out: dict[str, Any] = {f"loss_{quirks}": _run_loss(half, qv, quirks, gathered=True)
                           for quirks in (False, True)}
    # a video on both ranks (padded shards / query batching): rank 1 holds a copy of video 1
    # with one more sentence, which overlaps sentence 2 and must stay out of its negatives
    if rank == 0:
        args = (half["sent"], half["cells"], qv, half["iou_cells"], half["gt"])
        ids = ["v0", "v1"]
    else:
        d = _duplicate_inputs()
        args = (d["sent"][3:], d["cells"][1:], torch.tensor([0, 1, 1]), d["iou_cells"][3:],
                d["gt"][3:])
        ids = ["v1", "v2"]
    out["dup_named"] = float(gathered_mutual_matching_loss(*args, video_ids=ids, **KW)
                             .proposal_to_sentence)
    out["dup_unnamed"] = float(gathered_mutual_matching_loss(*args, **KW).proposal_to_sentence)
    videos = SPLIT[rank][1]
    out["model_on"] = _run_model(model, _model_batch(videos), gather=True)
    out["model_off"] = _run_model(model, _model_batch(videos), gather=False)
    return out


@pytest.fixture(scope="module")
def two_ranks() -> dict[int, dict[str, Any]]:
    return run_two_processes(_worker, _model())


def _close(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("quirks", [False, True])
def test_gathered_loss_equals_the_single_process_loss_on_the_whole_batch(
        two_ranks: dict, quirks: bool) -> None:
    x = _loss_inputs()
    single = _run_loss(x, QUERY_VIDEO, quirks, gathered=False)
    for rank in (0, 1):
        got = two_ranks[rank][f"loss_{quirks}"]
        # every rank reports the global mean over (sentence, positive) pairs
        assert abs(float(got["a"]) - float(single["a"])) < 1e-5
        assert abs(float(got["b"]) - float(single["b"])) < 1e-5
        q, v = SPLIT[rank]
        # scaling: the loss's gradient is W x (local pair sum) / (global pairs), so each rank's
        # local inputs get W x the single-process gradient ...
        _close(got["sent_grad"], W * single["sent_grad"][q])
        _close(got["cells_grad"], W * single["cells_grad"][v])
    # ... and DDP's average over the W ranks gives shared parameters the single-process one
    _close((two_ranks[0][f"loss_{quirks}"]["proj_grad"] + two_ranks[1][f"loss_{quirks}"]
            ["proj_grad"]) / W, single["proj_grad"])
    # the per-rank batch alone gives a different loss: the negatives really came from both ranks
    half, qv = _half(x, 0)
    alone = _run_loss(half, qv, quirks, gathered=False)
    assert abs(float(alone["a"]) - float(single["a"])) > 1e-3


def test_a_video_on_two_ranks_is_one_video_when_named(two_ranks: dict) -> None:
    d = _duplicate_inputs()
    single = mutual_matching_loss(d["sent"], d["cells"], torch.tensor([0, 0, 1, 1, 2, 2]),
                                  d["iou_cells"], d["gt"], **KW).proposal_to_sentence
    for rank in (0, 1):
        assert abs(two_ranks[rank]["dup_named"] - float(single)) < 1e-5
        # unnamed, the copies count as different videos and the overlapping sentence stays in
        assert abs(two_ranks[rank]["dup_unnamed"] - float(single)) > 1e-3


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The ranks run with one intra-op thread; bit-for-bit comparisons need the same here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_model_gathers_negatives_only_when_asked(two_ranks: dict, one_thread: None) -> None:
    model = _model()
    single = _run_model(model, _model_batch(), gather=False)
    for rank in (0, 1):
        on, off = two_ranks[rank]["model_on"], two_ranks[rank]["model_off"]
        alone = _run_model(model, _model_batch(SPLIT[rank][1]), gather=True)  # one process
        for key in ("loss_mm_video", "loss_mm_sent"):
            assert abs(float(on[key]) - float(single[key])) < 1e-5
            assert float(off[key]) == float(alone[key]), "gather off: the rank's half alone"
        # the IoU BCE stays local in both modes
        assert float(on["loss_iou"]) == float(off["loss_iou"]) == float(alone["loss_iou"])
        for name in MODEL_PARAMS:
            np.testing.assert_array_equal(off[name], alone[name])
    for name in MODEL_PARAMS:
        _close((two_ranks[0]["model_on"][name] + two_ranks[1]["model_on"][name]) / W,
               single[name])


def test_one_process_gather_is_the_plain_loss_bit_for_bit() -> None:
    x = _loss_inputs()
    for quirks in (False, True):
        a = _run_loss(x, QUERY_VIDEO, quirks, gathered=True)
        b = _run_loss(x, QUERY_VIDEO, quirks, gathered=False)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
