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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from vidlang.errors import ConfigError

UPSTREAM_EPS = 1e-6


def iou_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of windows a [..., 2] and b [..., 2] (broadcast); 0 where the union is empty."""
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


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
                           sent_removal_iou: float) -> torch.Tensor:
    """Bool [Q, Q]: True where sentence j is a negative for sentence i in direction (a).

    Sentences of other videos are always negatives; same-video sentences only when
    IoU(GT_i, GT_j) < ``sent_removal_iou``; a sentence is never its own negative.
    """
    same_video = query_video[:, None] == query_video[None, :]
    overlap = iou_1d(gt[:, None, :], gt[None, :, :])
    keep = ~same_video | (overlap < sent_removal_iou)
    keep.fill_diagonal_(False)
    return keep


def proposal_negative_mask(iou_cells: torch.Tensor, query_video: torch.Tensor, num_videos: int,
                           positives: torch.Tensor, negative_video_iou: float) -> torch.Tensor:
    """Bool [Q, B, M]: True where cell m of video b is a negative for sentence i in direction (b).

    Every cell of another video is a negative; a cell of the sentence's own video only when its
    IoU with GT_i is < ``negative_video_iou`` and it is not one of the sentence's positives.
    """
    q, m = iou_cells.shape
    own = F.one_hot(query_video, num_videos).bool()[:, :, None].expand(q, num_videos, m)
    own_low = (iou_cells < negative_video_iou).clone()
    own_low.scatter_(1, positives, False)
    return torch.where(own, own_low[:, None, :].expand(q, num_videos, m), torch.ones_like(own))


def mutual_matching_loss(sent: torch.Tensor, cells: torch.Tensor, query_video: torch.Tensor,
                         iou_cells: torch.Tensor, gt: torch.Tensor, *, tau_video: float,
                         tau_sent: float, margin: float, top_k: int, sent_removal_iou: float,
                         negative_video_iou: float,
                         reproduce_upstream_quirks: bool = False) -> MutualMatchingTerms:
    """MMN's mutual-matching contrastive loss.

    sent: [Q, D] sentence embeddings; cells: [B, M, D] embeddings of the M valid cells of each
    video (both are L2-normalised here); query_video: [Q] row of ``cells`` of each sentence;
    iou_cells: [Q, M] IoU of each valid cell with the sentence's GT; gt: [Q, 2] GT windows
    (any unit shared by all sentences of a video, e.g. normalised).
    """
    sent = F.normalize(sent, dim=-1)
    cells = F.normalize(cells, dim=-1)
    num_videos = cells.shape[0]
    pos_idx = positive_cells(iou_cells, top_k)                               # [Q, k]
    pos_feat = cells[query_video[:, None], pos_idx]                           # [Q, k, D]
    pos_sim = (pos_feat * sent[:, None, :]).sum(-1)                           # [Q, k]
    pos_logit_v = (pos_sim - margin) / tau_video
    pos_logit_s = (pos_sim - margin) / tau_sent

    # (a) proposal -> sentences: logits of each positive cell against every sentence
    sent_sim = pos_feat @ sent.t()                                             # [Q, k, Q]
    neg_sent = sentence_negative_mask(gt, query_video, sent_removal_iou)       # [Q, Q]
    neg_logits_a = (sent_sim / tau_video).masked_fill(~neg_sent[:, None, :], float("-inf"))
    denom_a = torch.logsumexp(torch.cat([pos_logit_v[..., None], neg_logits_a], dim=-1), dim=-1)
    loss_a = (denom_a - pos_logit_v).mean()

    # (b) sentence -> proposals: each sentence against every cell of every video in the batch
    cell_sim = torch.einsum("qd,bmd->qbm", sent, cells)                        # [Q, B, M]
    if reproduce_upstream_quirks:
        own = F.one_hot(query_video, num_videos).bool()[:, :, None]
        zeroed = own & (iou_cells >= negative_video_iou)[:, None, :]
        neg_logits_b = (cell_sim.masked_fill(zeroed, 0.0) / tau_sent).flatten(1)   # [Q, B*M]
        neg_logits_b = neg_logits_b[:, None, :].expand(-1, top_k, -1)
        all_b = torch.cat([pos_logit_s[..., None], neg_logits_b], dim=-1)
        denom_b = torch.log(torch.exp(all_b).sum(-1) + UPSTREAM_EPS)
    else:
        neg_cells = proposal_negative_mask(iou_cells, query_video, num_videos, pos_idx,
                                           negative_video_iou)
        neg_logits_b = (cell_sim / tau_sent).masked_fill(~neg_cells, float("-inf")).flatten(1)
        neg_logits_b = neg_logits_b[:, None, :].expand(-1, top_k, -1)
        denom_b = torch.logsumexp(torch.cat([pos_logit_s[..., None], neg_logits_b], dim=-1), -1)
    loss_b = (denom_b - pos_logit_s).mean()
    return MutualMatchingTerms(loss_a, loss_b)
