"""Pair construction and the per-level loss of vidlang's multi-level alignment (retrieval.md §3).

This is vidlang's own labelled design (the paper's is unknown): global pairs (whole video vs
whole text) and segment pairs (a moment's clips vs its sentence), each trained with the
symmetric InfoNCE of :mod:`vidlang.losses.contrastive` at a learnable temperature. Negatives
exclude duplicates (same video id, identical sentence) and same-video segments whose temporal
IoU with the positive is >= ``iou_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vidlang.losses.contrastive import info_nce
from vidlang.ops.windows import pairwise_window_iou


def clip_centres(durations: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Centre time (s) of each clip, [B, T], assuming the valid clips tile [0, duration]."""
    n = mask.sum(dim=1).clamp_min(1).to(durations.dtype)
    t = torch.arange(mask.shape[1], device=mask.device, dtype=durations.dtype)[None]
    return (t + 0.5) * (durations / n)[:, None]


def segment_clip_mask(centres: torch.Tensor, mask: torch.Tensor, seg_video: torch.Tensor,
                      seg_windows: torch.Tensor) -> torch.Tensor:
    """[S, T] clips pooled for each segment: valid clips of its video whose centre lies in
    [start, end]; when none does (segment shorter than a clip), the clip nearest its middle."""
    c = centres[seg_video]  # [S, T]
    valid = mask[seg_video]
    start, end = seg_windows[:, :1], seg_windows[:, 1:]
    inside = valid & (c >= start) & (c <= end)
    mid = 0.5 * (start + end)
    nearest = (c - mid).abs().masked_fill(~valid, float("inf")).argmin(dim=1)
    fallback = torch.zeros_like(inside).scatter(1, nearest[:, None], True)
    empty = ~inside.any(dim=1, keepdim=True)
    return torch.where(empty, fallback, inside)


def segment_pool(clips: torch.Tensor, clip_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean [S, D] of clips [S, T, D] (already gathered per segment) over clip_mask."""
    w = clip_mask.to(clips.dtype).unsqueeze(-1)
    return (clips * w).sum(1) / w.sum(1).clamp_min(1.0)


def duplicate_mask(keys: Sequence[object], device: torch.device | None = None) -> torch.Tensor:
    """[N, N] True where items i != j share a key (duplicate video ids or identical strings)."""
    codes: dict[object, int] = {}
    ids = torch.tensor([codes.setdefault(k, len(codes)) for k in keys], device=device)
    same = ids[:, None] == ids[None, :]
    return same & ~torch.eye(len(keys), dtype=torch.bool, device=device)


def global_valid_mask(video_ids: Sequence[str], texts: Sequence[str],
                      device: torch.device | None = None) -> torch.Tensor:
    """Allowed negatives at the global level: no duplicate video id, no identical text."""
    return ~(duplicate_mask(video_ids, device) | duplicate_mask(texts, device))


def segment_valid_mask(seg_video_ids: Sequence[str], seg_windows: torch.Tensor,
                       seg_texts: Sequence[str], iou_threshold: float = 0.5) -> torch.Tensor:
    """Allowed negatives at the segment level [S, S]: every other segment, except same-video
    segments with tIoU >= ``iou_threshold`` and segments with an identical sentence."""
    device = seg_windows.device
    same_video = duplicate_mask(seg_video_ids, device)
    overlap = same_video & (pairwise_window_iou(seg_windows, seg_windows, eps=1e-9) >= iou_threshold)
    return ~(overlap | duplicate_mask(seg_texts, device))


def level_loss(video: torch.Tensor, text: torch.Tensor, log_inv_tau: torch.Tensor,
               valid: torch.Tensor, tau_min: float = 0.01) -> torch.Tensor:
    """½ [CE(S/τ) + CE(Sᵀ/τ)] on normalised embeddings; τ = exp(-log_inv_tau), clamped >= tau_min."""
    scale = log_inv_tau.exp().clamp(max=1.0 / tau_min)
    sim = text @ video.t()
    return info_nce(scale * sim, valid)
