"""TempCLR's sequence-level contrastive loss and its shuffled negatives (tempclr.md section 4).

The positive is the true (sentence sequence, clip sequence) pair; negatives are the same pair
with the sentence order permuted (``unit`` level) or, for step localisation, with whole step
segments of clips permuted and optionally the clips shuffled inside each step (``segment``
level). Logits are negative sequence distances (soft-DTW or soft-OTAM with smoothing gamma);
the loss is the cross-entropy with the positive at index 0, averaged over the videos that
have at least one negative. :func:`clip_info_nce` is the project's InfoNCE
(``vidlang.losses.contrastive``) with TempCLR's choice of direction reduction.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vidlang.losses.alignment import COSTS, sequence_distance
from vidlang.losses.contrastive import info_nce, info_nce_rows
from vidlang.registry import LOSSES

MAX_EXHAUSTIVE = 7  # lengths up to 7 (5,040 orders) are enumerated exhaustively


@functools.lru_cache(maxsize=2 * MAX_EXHAUSTIVE)
def _all_orders(length: int, exclude_identity: bool) -> torch.Tensor:
    """Every order of ``range(length)`` in lexicographic order [P, length] (without the
    identity when asked), built once per length: listing 120 tuples per video per step
    was most of a TempCLR step's Python time."""
    identity = tuple(range(length))
    perms = [p for p in itertools.permutations(range(length))
             if not (exclude_identity and p == identity)]
    return torch.tensor(perms, dtype=torch.long).reshape(len(perms), length)


def _draw_listed(length: int, num: int, generator: torch.Generator | None,
                 exclude_identity: bool) -> torch.Tensor:
    """Rows of :func:`_all_orders` drawn for one video (lengths up to MAX_EXHAUSTIVE): the
    first ``num`` of a random permutation of the table's rows."""
    return torch.randperm(_all_orders(length, exclude_identity).shape[0], generator=generator)[:num]


def permutation_negatives(length: int, num: int = 31, generator: torch.Generator | None = None,
                          exclude_identity: bool = True) -> torch.Tensor:
    """Up to ``num`` distinct orders [K, length] of ``range(length)``, seeded by ``generator``.

    Short sequences (length <= 7) list every permutation, drop the identity and keep a seeded
    random ``num`` of them (the release does this for length 5: 120 -> 119 -> 31); longer ones
    draw random permutations, rejecting duplicates and the identity. Fewer than ``num`` come
    back when fewer exist (length 3 has 5)."""
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    identity = tuple(range(length))
    if length <= MAX_EXHAUSTIVE:
        return _all_orders(length, exclude_identity)[
            _draw_listed(length, num, generator, exclude_identity)]
    available = math.factorial(length) - int(exclude_identity)
    seen: set[tuple[int, ...]] = set()
    chosen: list[tuple[int, ...]] = []
    while len(chosen) < min(num, available):
        p = tuple(torch.randperm(length, generator=generator).tolist())
        if p in seen or (exclude_identity and p == identity):
            continue
        seen.add(p)
        chosen.append(p)
    return torch.tensor(chosen, dtype=torch.long).reshape(len(chosen), length)


def segment_shuffle_negatives(segments: Sequence[int], num: int = 31,
                              generator: torch.Generator | None = None,
                              inner_shuffle: bool = False) -> torch.Tensor:
    """Clip orders [K, T] made by permuting whole step segments (and, with ``inner_shuffle``,
    the clips inside each segment). ``segments[t]`` is the step id of clip t; clips of one step
    must be contiguous. Orders equal to the original are never returned."""
    seg = list(segments)
    bounds = [0] + [t for t in range(1, len(seg)) if seg[t] != seg[t - 1]] + [len(seg)]
    blocks = [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]
    if len({seg[b[0]] for b in blocks}) != len(blocks):
        raise ValueError("segment_shuffle_negatives: clips of one step must be contiguous")
    orders = permutation_negatives(len(blocks), num, generator,
                                   exclude_identity=not inner_shuffle)
    out: list[list[int]] = []
    identity = list(range(len(seg)))
    for order in orders.tolist():
        clips: list[int] = []
        for b in order:
            block = blocks[b]
            if inner_shuffle:
                block = [block[i] for i in torch.randperm(len(block), generator=generator).tolist()]
            clips.extend(block)
        if clips != identity:
            out.append(clips)
    return torch.tensor(out, dtype=torch.long).reshape(len(out), len(seg))


def batch_permutations(lengths: Sequence[int], num: int, generator: torch.Generator | None,
                       max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-video sentence orders [B, K, max_len] (positions past a video's length stay in
    place) and a mask [B, K] of which of the K slots hold a real negative.

    The generator is drawn video by video exactly as :func:`permutation_negatives` would be;
    short videos' orders are then looked up for all videos of one length at once."""
    perms = torch.arange(max_len).repeat(len(lengths), num, 1)
    valid = torch.zeros(len(lengths), num, dtype=torch.bool)
    drawn: dict[int, tuple[list[int], list[torch.Tensor]]] = {}
    for b, n in enumerate(lengths):
        n = int(n)
        if n < 1 or n > MAX_EXHAUSTIVE:
            p = permutation_negatives(n, num, generator)
            perms[b, :p.shape[0], :n] = p
            valid[b, :p.shape[0]] = True
            continue
        rows, orders = drawn.setdefault(n, ([], []))
        rows.append(b)
        orders.append(_draw_listed(n, num, generator, True))
    for n, (rows, orders) in drawn.items():
        chosen = _all_orders(n, True)[torch.stack(orders)]  # [G, k, n]
        index = torch.tensor(rows)
        k = chosen.shape[1]
        perms[index[:, None, None], torch.arange(k)[None, :, None],
              torch.arange(n)[None, None, :]] = chosen
        valid[index, :k] = True
    return perms, valid


def _orders(perms: torch.Tensor) -> torch.Tensor:
    """[B, K, L] -> [B, K + 1, L]: the true order (identity) first, then the K orders."""
    batch, _, length = perms.shape
    identity = torch.arange(length, device=perms.device).expand(batch, 1, length)
    return torch.cat([identity, perms], dim=1)


def _with_orders(x: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """[B, L, D] -> [B * (K + 1), L, D]: the true order, then each of the K orders [B, K, L]."""
    batch, num, length = perms.shape
    orders = _orders(perms)
    gathered = x.gather(1, orders.reshape(batch, -1, 1).expand(-1, -1, x.shape[-1]))
    return gathered.reshape(batch * (num + 1), length, x.shape[-1])


def permuted_costs(base: torch.Tensor, perms: torch.Tensor, permute: str = "text") -> torch.Tensor:
    """Cost matrices of every order [B * (K + 1), N, M] from the true-order costs [B, N, M].

    A pairwise cost of a re-ordered sequence is the same cost matrix with its rows (text) or
    columns (video) re-ordered, so the K + 1 matrices are one gather of [B, N, M] instead of
    K + 1 cost computations over [B * (K + 1), L, D] embeddings (most of a TempCLR step's
    time before). Equal to computing the costs of :func:`_with_orders` sequences up to the
    rounding of the cost's own matmul (pinned by tests/losses/test_tempclr_loss.py)."""
    batch, n, m = base.shape
    slots = perms.shape[1] + 1
    orders = _orders(perms)
    if permute == "text":
        index = orders.reshape(batch, slots * n, 1).expand(-1, -1, m)
        return base.gather(1, index).reshape(batch * slots, n, m)
    index = orders[:, :, None, :].expand(batch, slots, n, m).reshape(batch, slots * n, m)
    return _repeat(base, slots).reshape(batch, slots * n, m).gather(2, index).reshape(
        batch * slots, n, m)


def _repeat(x: torch.Tensor, times: int) -> torch.Tensor:
    """[B, ...] -> [B * times, ...], each row repeated ``times`` times in place."""
    return x[:, None].expand(x.shape[0], times, *x.shape[1:]).reshape(-1, *x.shape[1:])


PERMUTED_SIDES = ("text", "video")


def order_costs(text: torch.Tensor, video: torch.Tensor, perms: torch.Tensor, permute: str,
                cost: str) -> torch.Tensor:
    """[B * (K + 1), N, M] costs of the true order and each shuffled order: the true-order
    cost matrix, re-ordered (:func:`permuted_costs`)."""
    return permuted_costs(COSTS.get(cost)(text, video), perms, permute)


def order_costs_reference(text: torch.Tensor, video: torch.Tensor, perms: torch.Tensor,
                          permute: str, cost: str) -> torch.Tensor:
    """The same costs computed the direct way, one cost matrix per re-ordered sequence (the
    code before issue 16): the oracle of the tests and the "before" of ``bench_dtw.py``."""
    slots = perms.shape[1] + 1
    if permute == "text":
        seqs, vids = _with_orders(text, perms), _repeat(video, slots)
    else:
        seqs, vids = _repeat(text, slots), _with_orders(video, perms)
    return COSTS.get(cost)(seqs, vids)


def sequence_contrastive_loss(text: torch.Tensor, text_mask: torch.Tensor, video: torch.Tensor,
                              video_mask: torch.Tensor, perms: torch.Tensor,
                              perm_valid: torch.Tensor, kind: str = "softdtw",
                              gamma: float = 0.1, cost: str = "cosine",
                              symmetric_otam: bool = True, permute: str = "text") -> torch.Tensor:
    """CE over logits [-d(true order), -d(shuffled orders)] per video, positive at index 0.

    text [B, N, D] sentence embeddings in true order, video [B, M, D] clip embeddings; masks
    are prefix masks. ``perms`` [B, K, N] (or [B, K, M] with ``permute="video"``) re-orders
    the permuted side for each negative and ``perm_valid`` [B, K] marks real ones. Videos
    without any negative are left out of the mean; with none at all the loss is 0 (still
    attached to the graph)."""
    if permute not in PERMUTED_SIDES:
        raise ValueError(f"permute must be one of {PERMUTED_SIDES}, got {permute!r}")
    slots = perms.shape[1] + 1
    costs = order_costs(text, video, perms, permute, cost)
    rmask, cmask = _repeat(text_mask, slots), _repeat(video_mask, slots)
    dist = sequence_distance(costs, rmask, cmask, kind=kind, gamma=gamma)
    if symmetric_otam and "otam" in kind:  # the release trains on OTAM(D) + OTAM(D^T)
        dist = dist + sequence_distance(costs.transpose(1, 2), cmask, rmask, kind=kind, gamma=gamma)
    logits = (-dist).reshape(-1, slots)
    slot_ok = torch.cat([torch.ones(logits.shape[0], 1, dtype=torch.bool, device=logits.device),
                         perm_valid.to(logits.device)], dim=1)
    logits = logits.masked_fill(~slot_ok, float("-inf"))
    has_negative = perm_valid.any(dim=1).to(logits.device)
    if not bool(has_negative.any()):
        return 0.0 * logits[:, 0].sum()
    target = torch.zeros(int(has_negative.sum()), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits[has_negative], target)


REDUCTIONS = ("mean", "sum")


def clip_info_nce(logits: torch.Tensor, valid: torch.Tensor | None = None,
                  reduction: str = "mean") -> torch.Tensor:
    """Symmetric clip-level InfoNCE; ``mean`` averages the two directions (project default),
    ``sum`` adds them as the TempCLR / VideoCLIP release does."""
    if reduction == "mean":
        return info_nce(logits, valid)
    if reduction == "sum":
        return info_nce_rows(logits, valid) + info_nce_rows(logits.t(), None if valid is None else valid.t())
    raise ValueError(f"InfoNCE reduction must be one of {REDUCTIONS}, got {reduction!r}")


LOSSES.register("tempclr_sequence")(sequence_contrastive_loss)
