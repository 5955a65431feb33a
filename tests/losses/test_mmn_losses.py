"""Scaled-IoU BCE and the mutual-matching contrastive loss on tiny hand-checked batches."""

from __future__ import annotations

import math

import pytest
import torch

from vidlang.losses.mmn import (
    mutual_matching_loss,
    proposal_negative_mask,
    scaled_iou_bce,
    sentence_negative_mask,
)

KW = dict(tau_video=0.1, tau_sent=0.1, margin=0.4, top_k=1, sent_removal_iou=0.5,
          negative_video_iou=0.5)


def test_scaled_iou_bce_hand_checked() -> None:
    mask = torch.tensor([[True, True], [False, True]])
    logits = torch.tensor([[[0.0, 2.0], [9.0, -1.0]]])     # (1, 0) is invalid: ignored
    iou = torch.tensor([[[0.75, 1.0], [1.0, 0.2]]])        # targets 0.5, 1, -, 0
    got = scaled_iou_bce(logits, iou, mask, 0.5, 1.0)

    def bce(z: float, y: float) -> float:
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    expected = (bce(0.0, 0.5) + bce(2.0, 1.0) + bce(-1.0, 0.0)) / 3
    assert got.item() == pytest.approx(expected, rel=1e-6)


def _two_videos_one_cell_each() -> dict:
    # video 0: cell c0 = s0 = (1, 0); video 1: cell c1 = s1 = (0, 1); each GT is the whole video
    return dict(sent=torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                cells=torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]]),
                query_video=torch.tensor([0, 1]), iou_cells=torch.tensor([[1.0], [1.0]]),
                gt=torch.tensor([[0.0, 1.0], [0.0, 1.0]]))


def test_mutual_matching_hand_checked() -> None:
    # positive logit (1 - 0.4) / 0.1 = 6; the only negative (other video) has logit 0
    terms = mutual_matching_loss(**_two_videos_one_cell_each(), **KW)
    expected = math.log(1 + math.exp(-6))
    assert terms.proposal_to_sentence.item() == pytest.approx(expected, rel=1e-4)
    assert terms.sentence_to_proposal.item() == pytest.approx(expected, rel=1e-4)


def test_quirk_flag_changes_only_the_sentence_direction_as_specified() -> None:
    batch = _two_videos_one_cell_each()
    quirk = mutual_matching_loss(**batch, **KW, reproduce_upstream_quirks=True)
    clean = mutual_matching_loss(**batch, **KW)
    assert quirk.proposal_to_sentence.item() == pytest.approx(clean.proposal_to_sentence.item())
    # the own cell (the positive, IoU 1 >= 0.5) is zeroed, not removed: + e^0 ; and + 1e-6
    expected = math.log(math.exp(6) + 1 + 1 + 1e-6) - 6
    assert quirk.sentence_to_proposal.item() == pytest.approx(expected, rel=1e-4)
    assert quirk.sentence_to_proposal.item() > clean.sentence_to_proposal.item()


def _random_batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    # video 0 has sentences 0, 1, 2; video 1 has sentence 3; 4 cells per video
    gt = torch.tensor([[0.0, 0.5], [0.1, 0.5], [0.6, 1.0], [0.2, 0.4]])  # IoU(0,1)=0.8, (0,2)=0
    iou_cells = torch.tensor([[0.9, 0.6, 0.2, 0.0],
                              [0.7, 0.8, 0.1, 0.0],
                              [0.0, 0.1, 0.3, 0.95],
                              [0.4, 0.9, 0.55, 0.1]])
    return dict(sent=torch.randn(4, 3, generator=g), cells=torch.randn(2, 4, 3, generator=g),
                query_video=torch.tensor([0, 0, 0, 1]), iou_cells=iou_cells, gt=gt)


def test_sentence_negatives_are_exactly_the_specified_ones() -> None:
    b = _random_batch()
    neg = sentence_negative_mask(b["gt"], b["query_video"], 0.5)
    # sentence 0: sentence 1 overlaps it (IoU 0.8 >= 0.5) -> removed; 2 (IoU 0) kept; 3 other video
    assert neg[0].tolist() == [False, False, True, True]
    assert neg[3].tolist() == [True, True, True, False], "every other-video sentence is a negative"


def test_proposal_negatives_are_exactly_the_specified_ones() -> None:
    b = _random_batch()
    pos = torch.topk(b["iou_cells"], 1, dim=1).indices
    neg = proposal_negative_mask(b["iou_cells"], b["query_video"], 2, pos, 0.5)
    # sentence 0 (video 0): own cells with IoU >= 0.5 (cells 0, 1) removed; cells 2, 3 kept
    assert neg[0, 0].tolist() == [False, False, True, True]
    assert neg[0, 1].all(), "all cells of the other video are negatives"
    # sentence 3 (video 1): own cells 1 (positive) and 2 (IoU 0.55) removed
    assert neg[3, 1].tolist() == [True, False, False, True]
    assert neg[3, 0].all()


def _perturb(batch: dict, key: str, index: tuple) -> dict:
    out = {k: v.clone() for k, v in batch.items()}
    out[key][index] = torch.tensor([5.0, -3.0, 2.0])
    return out


def test_removed_negatives_do_not_affect_the_loss_and_kept_ones_do() -> None:
    b = _random_batch()
    base = mutual_matching_loss(**b, **KW)
    # cell 1 of video 0 is removed for sentences 0 and 1 but is sentence 1's positive and a
    # kept negative of sentence 2 (IoU 0.1): so restrict the check to sentence 0's terms
    only0 = dict(sent=b["sent"][:1], cells=b["cells"], query_video=b["query_video"][:1],
                 iou_cells=b["iou_cells"][:1], gt=b["gt"][:1])
    ref0 = mutual_matching_loss(**only0, **KW).sentence_to_proposal
    moved_removed = mutual_matching_loss(**_perturb(only0, "cells", (0, 1)), **KW)
    assert moved_removed.sentence_to_proposal.item() == pytest.approx(ref0.item(), rel=1e-6)
    moved_kept = mutual_matching_loss(**_perturb(only0, "cells", (0, 2)), **KW)
    assert moved_kept.sentence_to_proposal.item() != pytest.approx(ref0.item(), abs=1e-5)
    moved_other = mutual_matching_loss(**_perturb(only0, "cells", (1, 1)), **KW)
    assert moved_other.sentence_to_proposal.item() != pytest.approx(ref0.item(), abs=1e-5)
    # direction (a): sentence 1 is removed for sentence 0's positive; sentence 3 is kept
    a_ref = base.proposal_to_sentence
    s = b["sent"].clone()
    s[1] = torch.tensor([5.0, -3.0, 2.0])
    a_moved = mutual_matching_loss(**{**b, "sent": s}, **KW).proposal_to_sentence
    assert a_moved.item() != pytest.approx(a_ref.item(), rel=1e-4)  # 1 is 2's and 3's negative


def test_direction_a_matches_an_explicit_sum() -> None:
    b = _random_batch(3)
    got = mutual_matching_loss(**b, **KW).proposal_to_sentence.item()
    sent = torch.nn.functional.normalize(b["sent"], dim=-1)
    cells = torch.nn.functional.normalize(b["cells"], dim=-1)
    neg = sentence_negative_mask(b["gt"], b["query_video"], 0.5)
    total = 0.0
    for i in range(4):
        p = cells[b["query_video"][i], int(b["iou_cells"][i].argmax())]
        pos = (float(p @ sent[i]) - 0.4) / 0.1
        denom = math.exp(pos) + sum(math.exp(float(p @ sent[j]) / 0.1)
                                    for j in range(4) if neg[i, j])
        total += math.log(denom) - pos
    assert got == pytest.approx(total / 4, rel=1e-5)


def test_top_k_positives_average_over_pairs() -> None:
    b = _random_batch(1)
    k2 = mutual_matching_loss(**b, **{**KW, "top_k": 2})
    assert torch.isfinite(k2.proposal_to_sentence) and torch.isfinite(k2.sentence_to_proposal)
    assert k2.sentence_to_proposal.item() != pytest.approx(
        mutual_matching_loss(**b, **KW).sentence_to_proposal.item(), rel=1e-4)
