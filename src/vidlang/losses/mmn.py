"""MMN's two training losses: 2D-TAN's scaled-IoU BCE and the mutual-matching contrastive loss.

Both work on the valid cells of the sparse proposal map only. The contrastive loss has two
directions (spec ``mmn.md`` section 5.2):

(a) proposal -> sentences: each top-k positive cell p of sentence i against sentence i (margin m)
    and every other sentence of the batch, minus same-video sentences whose GT overlaps GT_i
    with IoU >= ``sent_removal_iou``.
(b) sentence -> proposals: sentence i against its positive p (margin m), the cells of its own
    video whose IoU with GT_i is < ``negative_video_iou``, and every cell of every other video.

``reproduce_upstream_quirks=True`` reproduces the released code's version of (b): removed
own-video cells stay in the denominator with similarity 0 (adding e^0 each), every own-video
cell, the positive included, is listed again, and 1e-6 is added inside the log of (b) only.

"The batch" is the per-device batch (the release's pool). With ``trainer.gather_negatives``
:func:`gathered_mutual_matching_loss` draws the negatives of both directions from the
sentences and cells of every process (the anchors stay local).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch.nn import functional as F

from vidlang.errors import ConfigError
from vidlang.ops import distributed as dist_
from vidlang.ops.windows import window_iou

UPSTREAM_EPS = 1e-6


def scale_iou(iou: torch.Tensor, min_iou: float, max_iou: float) -> torch.Tensor:
    """2D-TAN's soft target y = clamp((o - t_min) / (t_max - t_min), 0, 1)."""
    if not max_iou > min_iou:
        raise ConfigError(f"max_iou ({max_iou}) must exceed min_iou ({min_iou})")
    return ((iou - min_iou) / (max_iou - min_iou)).clamp(0.0, 1.0)


def scaled_iou_bce(logits: torch.Tensor, iou: torch.Tensor, mask2d: torch.Tensor,
                   min_iou: float, max_iou: float) -> torch.Tensor:
    """Mean BCE over every valid cell of every query between sigmoid(logits) and the scaled IoU.

    logits, iou: [Q, N, N]; mask2d: bool [N, N]. MMN's score is sigmoid(10 * cos), so its
    logits are 10 * cos; 2D-TAN's are the 1x1 head's output.
    """
    target = scale_iou(iou, min_iou, max_iou)
    return F.binary_cross_entropy_with_logits(logits[:, mask2d], target[:, mask2d].to(logits))


@dataclass(frozen=True)
class MutualMatchingTerms:
    """The two directions of the mutual-matching loss (each a mean over (positive, sentence))."""

    proposal_to_sentence: torch.Tensor
    sentence_to_proposal: torch.Tensor


def positive_cells(iou_cells: torch.Tensor, top_k: int) -> torch.Tensor:
    """[Q, k] indices (into the valid-cell list) of each sentence's top-k cells by IoU."""
    return torch.topk(iou_cells, top_k, dim=1).indices


def sentence_negative_mask(gt: torch.Tensor, query_video: torch.Tensor,
                           sent_removal_iou: float, rows: Optional[slice] = None,
                           video_key: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Bool [R, Q]: True where sentence j is a negative for anchor sentence i in direction (a).

    Sentences of other videos are always negatives; same-video sentences only when
    IoU(GT_i, GT_j) < ``sent_removal_iou``; a sentence is never its own negative. ``rows``
    (default: all Q) are the anchors; ``video_key[b]`` names the video of row b of the cells
    (default: every row is a different video).
    """
    video = query_video if video_key is None else video_key[query_video]
    if rows is None:
        same_video = video[:, None] == video[None, :]
        overlap = window_iou(gt[:, None, :], gt[None, :, :], guard="positive")
        keep = ~same_video | (overlap < sent_removal_iou)
        keep.fill_diagonal_(False)
        return keep
    same_video = video[rows, None] == video[None, :]
    overlap = window_iou(gt[rows, None, :], gt[None, :, :], guard="positive")
    keep = ~same_video | (overlap < sent_removal_iou)
    anchors = torch.arange(keep.shape[0], device=keep.device)
    keep[anchors, anchors + (rows.start or 0)] = False
    return keep


def own_video_mask(query_video: torch.Tensor, num_videos: int,
                   video_key: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Bool [Q, B]: True where row b of the cells is sentence i's own video.

    ``query_video`` [Q] are rows of the cells; with ``video_key`` [B] every row with the same
    key as the sentence's row counts as its own video (the same video on another device).
    """
    if video_key is None:
        return F.one_hot(query_video, num_videos).bool()
    return video_key[query_video][:, None] == video_key[None, :]


def proposal_negative_mask(iou_cells: torch.Tensor, query_video: torch.Tensor, num_videos: int,
                           positives: torch.Tensor, negative_video_iou: float,
                           video_key: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Bool [Q, B, M]: True where cell m of video b is a negative for sentence i in direction (b).

    Every cell of another video is a negative; a cell of the sentence's own video only when its
    IoU with GT_i is < ``negative_video_iou`` and it is not one of the sentence's positives.
    """
    q, m = iou_cells.shape
    own = own_video_mask(query_video, num_videos, video_key)[:, :, None].expand(q, num_videos, m)
    own_low = (iou_cells < negative_video_iou).clone()
    own_low.scatter_(1, positives, False)
    return torch.where(own, own_low[:, None, :].expand(q, num_videos, m), torch.ones_like(own))


@dataclass(frozen=True)
class NegativePool:
    """Everything the mutual-matching loss draws negatives from (the global batch when gathered).

    sent [Q_all, D], cells [B_all, M, D] (raw, normalised by the loss), query_video [Q_all]
    (row of ``cells`` of each sentence), gt [Q_all, 2]; the anchor sentences are rows
    ``query_offset : query_offset + Q`` of the pool. ``video_key`` [B_all] gives rows that are
    the same video the same key (None: every row is a different video).
    """

    sent: torch.Tensor
    cells: torch.Tensor
    query_video: torch.Tensor
    gt: torch.Tensor
    query_offset: int = 0
    video_key: Optional[torch.Tensor] = None


def mutual_matching_pair_losses(iou_cells: torch.Tensor, pool: NegativePool, *,
                                tau_video: float, tau_sent: float, margin: float, top_k: int,
                                sent_removal_iou: float, negative_video_iou: float,
                                reproduce_upstream_quirks: bool = False
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(sentence, positive) losses [Q, k] of directions (a) and (b) for the anchors.

    iou_cells [Q, M]: IoU of each valid cell with the anchor's GT (the anchors are
    ``pool.sent[pool.query_offset:][:Q]``); negatives are drawn from the whole ``pool``.
    """
    sent_all = F.normalize(pool.sent, dim=-1)
    cells = F.normalize(pool.cells, dim=-1)
    num_videos = cells.shape[0]
    rows = slice(pool.query_offset, pool.query_offset + iou_cells.shape[0])
    local = pool.query_offset == 0 and rows.stop == sent_all.shape[0]
    sent = sent_all if local else sent_all[rows]
    query_video = pool.query_video if local else pool.query_video[rows]
    pos_idx = positive_cells(iou_cells, top_k)                               # [Q, k]
    pos_feat = cells[query_video[:, None], pos_idx]                           # [Q, k, D]
    pos_sim = (pos_feat * sent[:, None, :]).sum(-1)                           # [Q, k]
    pos_logit_v = (pos_sim - margin) / tau_video
    pos_logit_s = (pos_sim - margin) / tau_sent

    # (a) proposal -> sentences: logits of each positive cell against every sentence
    sent_sim = pos_feat @ sent_all.t()                                         # [Q, k, Q_all]
    neg_sent = sentence_negative_mask(pool.gt, pool.query_video, sent_removal_iou,
                                      None if local else rows, pool.video_key)  # [Q, Q_all]
    neg_logits_a = (sent_sim / tau_video).masked_fill(~neg_sent[:, None, :], float("-inf"))
    denom_a = torch.logsumexp(torch.cat([pos_logit_v[..., None], neg_logits_a], dim=-1), dim=-1)
    loss_a = denom_a - pos_logit_v

    # (b) sentence -> proposals: each sentence against every cell of every video in the pool
    cell_sim = torch.einsum("qd,bmd->qbm", sent, cells)                        # [Q, B, M]
    if reproduce_upstream_quirks:
        own = own_video_mask(query_video, num_videos, pool.video_key)[:, :, None]
        zeroed = own & (iou_cells >= negative_video_iou)[:, None, :]
        neg_logits_b = (cell_sim.masked_fill(zeroed, 0.0) / tau_sent).flatten(1)   # [Q, B*M]
        neg_logits_b = neg_logits_b[:, None, :].expand(-1, top_k, -1)
        all_b = torch.cat([pos_logit_s[..., None], neg_logits_b], dim=-1)
        denom_b = torch.log(torch.exp(all_b).sum(-1) + UPSTREAM_EPS)
    else:
        neg_cells = proposal_negative_mask(iou_cells, query_video, num_videos, pos_idx,
                                           negative_video_iou, pool.video_key)
        neg_logits_b = (cell_sim / tau_sent).masked_fill(~neg_cells, float("-inf")).flatten(1)
        neg_logits_b = neg_logits_b[:, None, :].expand(-1, top_k, -1)
        denom_b = torch.logsumexp(torch.cat([pos_logit_s[..., None], neg_logits_b], dim=-1), -1)
    return loss_a, denom_b - pos_logit_s


def mutual_matching_loss(sent: torch.Tensor, cells: torch.Tensor, query_video: torch.Tensor,
                         iou_cells: torch.Tensor, gt: torch.Tensor, *, tau_video: float,
                         tau_sent: float, margin: float, top_k: int, sent_removal_iou: float,
                         negative_video_iou: float,
                         reproduce_upstream_quirks: bool = False) -> MutualMatchingTerms:
    """MMN's mutual-matching contrastive loss with the local (per-device) batch as negatives.

    sent: [Q, D] sentence embeddings; cells: [B, M, D] embeddings of the M valid cells of each
    video (both are L2-normalised here); query_video: [Q] row of ``cells`` of each sentence;
    iou_cells: [Q, M] IoU of each valid cell with the sentence's GT; gt: [Q, 2] GT windows
    (any unit shared by all sentences of a video, e.g. normalised).
    """
    loss_a, loss_b = mutual_matching_pair_losses(
        iou_cells, NegativePool(sent, cells, query_video, gt), tau_video=tau_video,
        tau_sent=tau_sent, margin=margin, top_k=top_k, sent_removal_iou=sent_removal_iou,
        negative_video_iou=negative_video_iou, reproduce_upstream_quirks=reproduce_upstream_quirks)
    return MutualMatchingTerms(loss_a.mean(), loss_b.mean())


def gathered_mutual_matching_loss(sent: torch.Tensor, cells: torch.Tensor,
                                  query_video: torch.Tensor, iou_cells: torch.Tensor,
                                  gt: torch.Tensor, *, video_ids: Optional[Sequence[str]] = None,
                                  **kwargs: Any) -> MutualMatchingTerms:
    """:func:`mutual_matching_loss` with the sentences and cells of every process as negatives.

    Arguments as in :func:`mutual_matching_loss` (local tensors). On one process it *is*
    :func:`mutual_matching_loss`. With world size W > 1: row counts are exchanged first (batches
    may differ in size), then ``sent``, ``cells`` (with gradients), ``query_video`` (offset by
    the videos of earlier ranks) and ``gt`` are gathered; each process's own sentences are the
    anchors. Same-video removal uses ``video_ids`` (gathered) so a video present on two ranks
    (padded shards, query batching) is still one video; without them every rank's videos are
    taken as distinct (a named copy's low-IoU cells still enter (b) once per copy).
    ``iou_cells`` stays local (only the anchors' rows are used).

    Scaling: the value returned on every rank is the mean over the global (sentence, positive)
    pairs, i.e. the single-process loss of the concatenated batch. Its gradient is that of
    ``W * (sum of the local pair losses) / global pair count``: the gather's backward sums the
    ranks' gradients, so each process's inputs get W x the single-process gradient, and DDP's
    average over W ranks gives the parameters exactly the single-process gradient.
    """
    if not dist_.is_distributed():
        return mutual_matching_loss(sent, cells, query_video, iou_cells, gt, **kwargs)
    counts = dist_.gather_counts(sent.shape[0], cells.shape[0], device=sent.device)
    q_counts = [c[0] for c in counts]
    v_counts = [c[1] for c in counts]
    r = dist_.rank()
    video_key: Optional[torch.Tensor] = None
    if video_ids is not None:
        names = [v for part in dist_.all_gather_objects(list(video_ids)) for v in part]
        index: dict[str, int] = {}
        video_key = torch.tensor([index.setdefault(v, len(index)) for v in names],
                                 device=query_video.device)
    pool = NegativePool(
        sent=dist_.gather_rows(sent, q_counts),
        cells=dist_.gather_rows(cells, v_counts),
        query_video=dist_.gather_rows(query_video + sum(v_counts[:r]), q_counts),
        gt=dist_.gather_rows(gt, q_counts),
        query_offset=sum(q_counts[:r]),
        video_key=video_key)
    loss_a, loss_b = mutual_matching_pair_losses(iou_cells, pool, **kwargs)
    pairs = sum(q_counts) * loss_a.shape[1]
    local = torch.stack([loss_a.sum(), loss_b.sum()]) * (dist_.world_size() / pairs)
    value = dist_.all_reduce_sum(torch.stack([loss_a.sum(), loss_b.sum()])) / pairs
    out = value + (local - local.detach())   # value of the global mean, gradient of ``local``
    return MutualMatchingTerms(out[0], out[1])
