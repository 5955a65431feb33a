"""Unit tests of CPL's pieces: Gaussians, negatives and their schedule, losses, attention masks,
seeded masking and voting."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vidlang.losses.cpl import diversity_loss, hinge, label_smoothed_ce, ranking_loss
from vidlang.models.blocks.gaussian import (
    gaussian_weights,
    negative_proposals,
    negative_schedule,
    proposal_boxes,
)
from vidlang.models.blocks.transformer import DecoderStack, WeightedAttention, causal_mask
from vidlang.models.cpl import hashed_uniform, query_seed, sample_mask, vote
from vidlang.ops.windows import window_iou


def test_gaussian_is_peak_normalised_with_std_width_over_sigma() -> None:
    n = 1001
    center, width = torch.tensor([0.5, 0.3]), torch.tensor([0.36, 0.18])
    g = gaussian_weights(center, width, n, sigma=9.0)
    assert torch.allclose(g.amax(dim=-1), torch.ones(2))
    x = torch.linspace(0, 1, n)
    for row, (c, w) in enumerate(zip(center.tolist(), width.tolist())):
        std = w / 9.0
        at_std = g[row, int(round((c + std) * (n - 1)))]
        assert at_std == pytest.approx(math.exp(-0.5 * ((x[int(round((c + std) * (n - 1)))] - c) / std) ** 2), rel=1e-4)
        assert at_std == pytest.approx(math.exp(-0.5), abs=0.02)
        assert int(g[row].argmax()) == int(round(c * (n - 1)))


def test_gaussian_width_is_floored() -> None:
    tiny = gaussian_weights(torch.tensor([0.5]), torch.tensor([1e-6]), 101, sigma=9.0)
    floor = gaussian_weights(torch.tensor([0.5]), torch.tensor([0.01]), 101, sigma=9.0)
    assert torch.equal(tiny, floor)


def test_gaussian_stays_finite_between_the_points_of_a_coarse_grid() -> None:
    # regression: width 0.01 (std 0.0011) centred between two of 16 points underflowed every
    # exp to 0 and the peak normalisation gave NaN; the nearest point must get weight 1
    center = torch.tensor([0.5, 0.52], requires_grad=True)
    g = gaussian_weights(center, torch.tensor([0.01, 0.01]), 16, sigma=9.0)
    assert torch.isfinite(g).all()
    assert torch.allclose(g.amax(dim=-1), torch.ones(2))
    assert int(g[1].argmax()) == 8 and g[1].sum().item() == pytest.approx(1.0)
    g.sum().backward()
    assert center.grad is not None and torch.isfinite(center.grad).all()


def test_negative_placement_at_full_schedule() -> None:
    lc, lw, rc, rw = negative_proposals(torch.tensor([0.5]), torch.tensor([0.2]), r=1.0, sigma=9.0)
    # free region left [0, 0.4]: center 0.2, std 0.2 / 4.5 -> width param 9 * std = 0.4
    assert lc.item() == pytest.approx(0.2) and lw.item() == pytest.approx(0.4)
    assert rc.item() == pytest.approx(0.8) and rw.item() == pytest.approx(0.4)
    # the box of each negative spans its free region exactly
    assert proposal_boxes(lc, lw)[0].tolist() == pytest.approx([0.0, 0.4])
    assert proposal_boxes(rc, rw)[0].tolist() == pytest.approx([0.6, 1.0])


def test_negatives_grow_with_schedule_and_vanish_at_the_edges() -> None:
    r = negative_schedule(1, 4, 0.5)
    assert r == pytest.approx(0.5)
    assert negative_schedule(3, 4, 0.0) == 1.0 and negative_schedule(9, 4, 0.5) == 1.0
    lc, _, rc, _ = negative_proposals(torch.tensor([0.5]), torch.tensor([0.2]), r=r)
    assert lc.item() == pytest.approx(0.1) and rc.item() == pytest.approx(0.9)
    lc0, lw0, rc0, rw0 = negative_proposals(torch.tensor([0.05]), torch.tensor([0.4]), r=1.0)
    assert lc0.item() == 0.0 and lw0.item() == 0.0  # no room on the left: width floor applies later
    assert rc0.item() == pytest.approx(1 - 0.5 * 0.75)


def test_diversity_loss_hand_cases() -> None:
    lam = 0.146
    disjoint = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    assert diversity_loss(disjoint, lam).item() == pytest.approx(2 * (lam - 1) ** 2)
    same = torch.tensor([[[2.0, 0.0], [1.0, 0.0]]])  # rows normalised to sum 1 first
    assert diversity_loss(same, lam).item() == pytest.approx(2 * (lam - 1) ** 2 + 2 * 1.0)
    batch = torch.cat([disjoint, same])
    assert diversity_loss(batch, lam).item() == pytest.approx((4 * (lam - 1) ** 2 + 2) / 2)


def test_label_smoothed_ce_matches_torch_and_averages_valid_tokens() -> None:
    torch.manual_seed(0)
    logits, target = torch.randn(3, 5, 11), torch.randint(0, 11, (3, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    got = label_smoothed_ce(logits, target, mask, eps=0.1)
    for i in range(3):
        n = int(mask[i].sum())
        ref = F.cross_entropy(logits[i, :n], target[i, :n], label_smoothing=0.1)
        assert got[i].item() == pytest.approx(ref.item(), rel=1e-5)
    # padded positions do not matter
    logits2 = logits.clone()
    logits2[~mask] = 100.0
    assert torch.equal(label_smoothed_ce(logits2, target, mask), got)


def test_hinge_per_sample_vs_broadcast_quirk() -> None:
    pos, neg = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert hinge(pos, neg, 0.1).item() == pytest.approx((1.1 + 0.0) / 2)
    # B x B: (1-0+.1), (1-1+.1), (0-0+.1), (0-1+.1 -> 0)
    assert hinge(pos, neg, 0.1, pairwise=True).item() == pytest.approx((1.1 + 0.1 + 0.1 + 0.0) / 4)
    total = ranking_loss(pos, neg, neg, neg, 0.1, 0.15)
    assert total.item() == pytest.approx(0.55 + 2 * (1.15 / 2))


def test_causal_mask_and_future_independence() -> None:
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    torch.manual_seed(0)
    stack = DecoderStack(2, 16, 4, 32, 0.0).eval()
    x = torch.randn(2, 6, 16)
    mem = torch.randn(2, 5, 16)
    y = stack(x, None, memory=mem)
    x2 = x.clone()
    x2[:, 4:] = torch.randn(2, 2, 16)
    y2 = stack(x2, None, memory=mem)
    assert torch.allclose(y[:, :4], y2[:, :4], atol=1e-6)
    assert not torch.allclose(y[:, 4:], y2[:, 4:])


def test_gaussian_reweighting_focuses_attention() -> None:
    torch.manual_seed(0)
    attn = WeightedAttention(8, 2, 0.0).eval()
    q, k = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    weights = torch.zeros(1, 5)
    weights[0, 2] = 1.0
    out = attn(q, k, key_weights=weights)
    only = attn.out_proj(attn.v_proj(k[:, 2:3])).expand(1, 3, 8)
    assert torch.allclose(out, only, atol=1e-5)
    uniform = attn(q, k, key_weights=torch.ones(1, 5))
    assert torch.allclose(uniform, attn(q, k), atol=1e-6)


def test_sample_mask_counts_positions_and_seeding() -> None:
    valid = torch.tensor([[False, True, True, True, True, True, True, False],
                          [False, True, True, False, False, False, False, False]])
    counts = torch.tensor([2, 1])
    logits = torch.zeros(2, 8)
    seeds = torch.tensor([query_seed("a"), query_seed("b")])
    u = hashed_uniform(seeds, 8)
    assert ((u > 0) & (u < 1)).all() and torch.equal(u, hashed_uniform(seeds, 8))
    m = sample_mask(logits, valid, counts, u)
    assert m.sum(1).tolist() == [2, 1] and not (m & ~valid).any()
    assert query_seed("a") != query_seed("b") and query_seed("a") == query_seed("a")


def test_sample_mask_prefers_content_words() -> None:
    n = 4000
    valid = torch.ones(n, 2, dtype=torch.bool)
    logits = torch.tensor([[2.0, 1.0]]).expand(n, 2)
    m = sample_mask(logits, valid, torch.ones(n, dtype=torch.long), hashed_uniform(torch.arange(n), 2))
    share = m[:, 0].float().mean().item()
    assert share == pytest.approx(math.e / (1 + math.e), abs=0.03)  # softmax(2, 1)[0] = 0.731


def test_vote_hand_case() -> None:
    boxes = torch.tensor([[[0.0, 0.2], [0.5, 0.7], [0.5, 0.7], [0.55, 0.75]]])
    best = torch.tensor([0])
    assert window_iou(boxes[0, 1], boxes[0, 3]).item() == pytest.approx(0.15 / 0.25)
    uniform = vote(boxes, best, "uniform")
    assert uniform[0].tolist() == pytest.approx([1.0, 2.6, 2.6, 1 + 1.2])
    assert int(uniform.argmax(1)) in (1, 2)
    # Charades weighting: c_j = IoU(best-loss proposal, p_j) keeps the isolated best one
    assert int(vote(boxes, best, "best_iou").argmax(1)) == 0


def test_masked_only_target_scores_the_position_before_each_masked_word() -> None:
    from vidlang.models.cpl import REC_TARGETS

    valid = torch.tensor([[True, True, True, True, True, False]])
    masked = torch.tensor([[False, False, True, False, True, False]])
    assert torch.equal(REC_TARGETS["next_word"](valid, masked), valid)
    # input position t is masked -> the prediction made at t - 1 (whose target is that word)
    assert REC_TARGETS["masked_only"](valid, masked).tolist() == [[False, True, False, True, False, False]]
