"""TempCLR negatives, sequence-level loss, pair sampling and the evaluation scorers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from vidlang.engine.pipelines.alignment import select_pairs, window_frames
from vidlang.errors import DataError
from vidlang.losses.alignment import release_pairwise_distance, sequence_distance
from vidlang.losses.tempclr import (
    batch_permutations,
    clip_info_nce,
    permutation_negatives,
    segment_shuffle_negatives,
    sequence_contrastive_loss,
)
from vidlang.metrics.alignment import caption_average_scores
from vidlang.metrics.step_decoding import order_constrained_decode
from vidlang.metrics.video_to_video import video_to_video_accuracy


def test_permutation_negatives_exhaustive_seeded_and_identity_free() -> None:
    perms = permutation_negatives(5, 31, torch.Generator().manual_seed(0))
    assert perms.shape == (31, 5)
    rows = {tuple(p) for p in perms.tolist()}
    assert len(rows) == 31 and (0, 1, 2, 3, 4) not in rows
    assert all(sorted(p) == list(range(5)) for p in rows)
    again = permutation_negatives(5, 31, torch.Generator().manual_seed(0))
    other = permutation_negatives(5, 31, torch.Generator().manual_seed(1))
    assert torch.equal(perms, again) and not torch.equal(perms, other)
    assert permutation_negatives(3, 31).shape == (5, 3)  # 3! - 1 exist
    assert permutation_negatives(1, 31).shape == (0, 1)
    long = permutation_negatives(9, 31, torch.Generator().manual_seed(0))
    assert len({tuple(p) for p in long.tolist()}) == 31
    assert tuple(range(9)) not in {tuple(p) for p in long.tolist()}


def test_segment_shuffle_keeps_steps_contiguous() -> None:
    segments = [0, 0, 1, 1, 1, 2]
    gen = torch.Generator().manual_seed(0)
    plain = segment_shuffle_negatives(segments, 31, gen)
    assert plain.shape == (5, 6)  # 3 steps -> 5 non-identity orders
    for order in plain.tolist():
        labels = [segments[t] for t in order]
        runs = [k for k, _ in itertools.groupby(labels)]
        assert sorted(runs) == [0, 1, 2] and order != list(range(6))
        assert order == sorted(order, key=lambda t: runs.index(segments[t]))  # inner order kept
    inner = segment_shuffle_negatives(segments, 31, gen, inner_shuffle=True)
    assert len(inner) >= 1
    for order in inner.tolist():
        assert order != list(range(6)) and sorted(order) == list(range(6))
    with pytest.raises(ValueError, match="contiguous"):
        segment_shuffle_negatives([0, 1, 0], 3)


def _aligned_case(n: int = 5, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentence k and clip k share a direction; other pairs are orthogonal."""
    basis = torch.eye(dim, dtype=torch.float64)[:n]
    return basis[None].clone(), (basis + 0.05 * torch.eye(dim, dtype=torch.float64)[1:n + 1])[None]


@pytest.mark.parametrize("kind", ["softdtw", "softotam"])
def test_true_order_beats_every_permutation(kind: str) -> None:
    text, video = _aligned_case()
    mask = torch.ones(1, 5, dtype=torch.bool)
    costs = 1 - F.normalize(text, dim=-1) @ F.normalize(video, dim=-1).transpose(1, 2)
    true = sequence_distance(costs, mask, mask, kind=kind, gamma=0.1)
    for perm in itertools.permutations(range(5)):
        if perm == tuple(range(5)):
            continue
        d = sequence_distance(costs[:, list(perm)], mask, mask, kind=kind, gamma=0.1)
        assert float(true) < float(d)
    # so the loss is below the uniform log(K + 1) and its gradient is finite
    perms, valid = batch_permutations([5], 31, torch.Generator().manual_seed(0), 5)
    t = text.clone().requires_grad_(True)
    loss = sequence_contrastive_loss(t, mask, video, mask, perms, valid, kind=kind)
    assert float(loss.detach()) < math.log(32)
    loss.backward()
    assert torch.isfinite(t.grad).all() and float(t.grad.abs().sum()) > 0


def test_loss_is_cross_entropy_over_negative_distances() -> None:
    gen = torch.Generator().manual_seed(3)
    text = torch.randn(2, 4, 6, generator=gen, dtype=torch.float64)
    video = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64)
    tmask = torch.tensor([[True] * 4, [True, True, False, False]])
    vmask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    perms, valid = batch_permutations([4, 2], 3, torch.Generator().manual_seed(0), 4)
    assert valid.tolist() == [[True] * 3, [True, False, False]]  # 2 sentences: one negative
    loss = sequence_contrastive_loss(text, tmask, video, vmask, perms, valid, gamma=0.2)
    expected = []
    for b in range(2):
        n, m = int(tmask[b].sum()), int(vmask[b].sum())
        orders = [list(range(n))] + [perms[b, k, :n].tolist() for k in range(3) if valid[b, k]]
        logits = []
        for order in orders:
            c = 1 - F.normalize(text[b, order], dim=-1) @ F.normalize(video[b, :m], dim=-1).t()
            logits.append(-sequence_distance(c[None], kind="softdtw", gamma=0.2)[0])
        expected.append(-torch.log_softmax(torch.stack(logits), dim=0)[0])
    torch.testing.assert_close(loss, torch.stack(expected).mean())
    # permuting the video side by the same machinery
    vperms, vvalid = batch_permutations([5, 3], 2, torch.Generator().manual_seed(1), 5)
    vloss = sequence_contrastive_loss(text, tmask, video, vmask, vperms, vvalid, permute="video")
    assert torch.isfinite(vloss)


def test_clip_info_nce_reductions() -> None:
    logits = torch.randn(5, 5, generator=torch.Generator().manual_seed(0))
    mean = clip_info_nce(logits, reduction="mean")
    total = clip_info_nce(logits, reduction="sum")
    torch.testing.assert_close(total, 2 * mean)
    with pytest.raises(ValueError, match="reduction"):
        clip_info_nce(logits, reduction="max")


def test_select_pairs_greedy_non_overlap_then_linspace() -> None:
    windows = [(10.0, 14.0), (0.0, 3.0), (2.0, 5.0), (3.0, 6.0), (6.0, 9.0), (9.5, 10.5),
               (15.0, 16.0), (20.0, 22.0)]
    # sorted: 1 (0-3), 2 (2-5, overlaps), 3 (3-6), 4 (6-9), 5 (9.5-10.5), 0 (10-14 overlaps 5),
    # 6 (15-16), 7 (20-22) -> kept [1, 3, 4, 5, 6, 7] -> linspace picks 5 of 6
    assert select_pairs(windows, 5, 5) == [1, 3, 4, 6, 7]
    assert select_pairs(windows, 10, 2) == [1, 3, 4, 5, 6, 7]
    assert select_pairs(windows[:3], 5, 5) is None


def test_window_frames() -> None:
    assert window_frames((2.0, 4.0), 10, 10.0, 32, "v") == [2, 3]
    assert window_frames((2.2, 2.3), 10, 10.0, 32, "v") == [2]
    assert window_frames((0.0, 10.0), 10, 10.0, 4, "v") == [0, 3, 6, 9]
    with pytest.raises(DataError, match="record v"):
        window_frames((12.0, 13.0), 10, 10.0, 32, "v")


def test_order_constrained_decode_matches_brute_force() -> None:
    gen = torch.Generator().manual_seed(0)
    for k, t in [(3, 6), (4, 4), (2, 7), (4, 3)]:
        scores = torch.randn(k, t, generator=gen)
        got = order_constrained_decode(scores)
        strict = k <= t
        best = max((c for c in itertools.product(range(t), repeat=k)
                    if all((a < b) if strict else (a <= b) for a, b in zip(c, c[1:]))),
                   key=lambda c: float(sum(scores[i, j] for i, j in enumerate(c))))
        assert abs(float(sum(scores[i, j] for i, j in enumerate(got.tolist())))
                   - float(sum(scores[i, j] for i, j in enumerate(best)))) < 1e-5


def test_caption_average_and_video_to_video() -> None:
    gen = torch.Generator().manual_seed(0)
    text = F.normalize(torch.randn(3, 4, 5, generator=gen), dim=-1)
    clips = F.normalize(torch.randn(2, 3, 5, generator=gen), dim=-1)
    tmask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    cmask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    got = caption_average_scores(text, tmask, clips, cmask)
    for p in range(3):
        for v in range(2):
            n, m = int(tmask[p].sum()), int(cmask[v].sum())
            want = (text[p, :n] @ clips[v, :m].t()).amax(dim=1).mean()
            assert abs(float(got[p, v]) - float(want)) < 1e-6
    a, b = torch.eye(4)[:3], torch.eye(4)[[2, 1, 0]]
    queries = [a + 0.1, b + 0.1]
    support = [b, a, torch.eye(4)[[3, 3]]]
    assert video_to_video_accuracy(queries, ["ab", "ba"], support, ["ba", "ab", "x"]) == 1.0
    assert video_to_video_accuracy(queries, ["ba", "ab"], support, ["ba", "ab", "x"]) == 0.0


def test_release_eval_zeroes_last_row_for_longest_videos() -> None:
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    video = torch.randn(2, 4, 4, generator=gen, dtype=torch.float64)
    tmask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=torch.bool)
    vmask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    got = release_pairwise_distance(text, tmask, video, vmask, "dtw")
    for p in range(2):
        for v in range(2):
            n, m = int(tmask[p].sum()), int(vmask[v].sum())
            cost = (1 - text[p, :n] @ video[v, :m].t()) * 16 / (n * m)
            if m == 4:  # the release's degenerate padding slice: the whole last row is zeroed
                cost[n - 1] = 0
                want = sequence_distance(cost[None], kind="dtw")[0]
            else:  # the zero-cost corridor: the path may leave from row n - 2 or n - 1
                rows = [sequence_distance(cost[None, :k], kind="dtw")[0] for k in (n - 1, n)]
                want = min(rows)
            assert abs(float(got[p, v]) - float(want)) < 1e-9


@pytest.mark.parametrize("permute", ["text", "video"])
@pytest.mark.parametrize("cost", ["cosine", "dot"])
def test_permuted_costs_equal_the_costs_of_reordered_sequences(permute: str, cost: str) -> None:
    """One cost matrix re-ordered == a cost matrix per re-ordered sequence, values and grads."""
    from vidlang.losses.tempclr import order_costs, order_costs_reference

    gen = torch.Generator().manual_seed(7)
    text = torch.randn(3, 4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    video = torch.randn(3, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    side = 4 if permute == "text" else 5
    perms, _ = batch_permutations([side, 3, 2], 6, torch.Generator().manual_seed(0), side)
    fast = order_costs(text, video, perms, permute, cost)
    ref = order_costs_reference(text, video, perms, permute, cost)
    assert fast.shape == ref.shape == (3 * 7, 4, 5)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    weights = torch.randn(fast.shape, generator=gen, dtype=torch.float64)
    g_fast = torch.autograd.grad((fast * weights).sum(), (text, video))
    g_ref = torch.autograd.grad((ref * weights).sum(), (text, video))
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # a re-ordered slot really is re-ordered: slot 1 of video 0 differs from the true order
    assert not torch.equal(fast[1], fast[0])


def test_permutation_negatives_draws_the_listed_orders_in_seeded_order() -> None:
    """The cached order table gives what listing the permutations per call gave."""
    from vidlang.losses.tempclr import permutation_negatives

    for length in range(1, 8):
        for exclude in (True, False):
            listed = [p for p in itertools.permutations(range(length))
                      if not (exclude and p == tuple(range(length)))]
            gen_a, gen_b = torch.Generator().manual_seed(length), torch.Generator().manual_seed(length)
            got = permutation_negatives(length, 31, gen_a, exclude_identity=exclude)
            order = torch.randperm(len(listed), generator=gen_b)[:31].tolist()
            assert got.tolist() == [list(listed[i]) for i in order]
            got[:] = -1  # mutating the returned tensor must not touch the cached table
            again = permutation_negatives(length, 31, torch.Generator().manual_seed(length),
                                          exclude_identity=exclude)
            assert again.tolist() == [list(listed[i]) for i in order]


def test_batch_permutations_equal_drawing_video_by_video() -> None:
    """The grouped lookup gives the orders permutation_negatives draws per video in turn."""
    from vidlang.losses.tempclr import permutation_negatives

    lengths = [5, 3, 1, 5, 9, 2, 7, 3]
    perms, valid = batch_permutations(lengths, 31, torch.Generator().manual_seed(11), 9)
    gen = torch.Generator().manual_seed(11)
    for b, n in enumerate(lengths):
        p = permutation_negatives(n, 31, gen)
        k = p.shape[0]
        assert torch.equal(perms[b, :k, :n], p)
        assert valid[b].tolist() == [True] * k + [False] * (31 - k)
        assert torch.equal(perms[b, :k, n:], torch.arange(n, 9).expand(k, -1))
        assert torch.equal(perms[b, k:], torch.arange(9).expand(31 - k, -1))
