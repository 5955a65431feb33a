"""The sparse 2D (start, end) proposal map of 2D-TAN / MMN.

Cell (i, j), j >= i, is the moment covering clips i..j of an N-clip video, i.e. the normalised
span [i/N, (j+1)/N]. Which cells exist is set by ``pooling_counts`` (see :func:`sparse_mask`);
each valid cell holds the max of the clip features i..j, filled by cascaded 1D max pooling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from vidlang.errors import ConfigError
from vidlang.ops.windows import window_iou


def _pooling_plan(num_clips: int, pooling_counts: Sequence[int]) -> list[tuple[int, int, int]]:
    """(kernel, offset, stride) of each cascaded pooling step; cell (i, i + offset) for
    i = 0, stride, 2 * stride, ... while i + offset < N is filled by that step."""
    if num_clips < 1:
        raise ConfigError(f"num_clips must be >= 1, got {num_clips}")
    if not pooling_counts or any(int(c) < 1 for c in pooling_counts):
        raise ConfigError(f"pooling_counts must be positive integers, got {list(pooling_counts)}")
    plan: list[tuple[int, int, int]] = []
    offset, stride = 0, 1
    for group, count in enumerate(pooling_counts):
        for step in range(int(count)):
            offset += stride
            # every group after the first starts with a stride-2 pool of width 3
            kernel = 3 if (group > 0 and step == 0) else 2
            plan.append((kernel, offset, stride))
        stride *= 2
    if offset >= num_clips:
        raise ConfigError(
            f"pooling_counts {list(pooling_counts)} reach offset {offset}, which needs more than "
            f"num_clips={num_clips} clips"
        )
    return plan


def sparse_mask(num_clips: int, pooling_counts: Sequence[int]) -> torch.Tensor:
    """Bool [N, N] map of the valid proposal cells.

    The diagonal is always valid. A running offset (from 0) and stride (from 1): inside a group
    of count c, repeat c times ``offset += stride`` and mark (i, i + offset) for
    i = 0, stride, ... while i + offset < N; after each group the stride doubles.
    """
    mask = torch.zeros(num_clips, num_clips, dtype=torch.bool)
    idx = torch.arange(num_clips)
    mask[idx, idx] = True
    for _kernel, offset, stride in _pooling_plan(num_clips, pooling_counts):
        starts = torch.arange(0, num_clips - offset, stride)
        mask[starts, starts + offset] = True
    return mask


def cell_spans(num_clips: int) -> torch.Tensor:
    """[N, N, 2] normalised span [i/N, (j+1)/N] of every cell (lower triangle included)."""
    idx = torch.arange(num_clips, dtype=torch.float64)
    start = (idx / num_clips)[:, None].expand(num_clips, num_clips)
    end = ((idx + 1) / num_clips)[None, :].expand(num_clips, num_clips)
    return torch.stack([start, end], dim=-1)


def iou_target_map(windows: torch.Tensor, durations: torch.Tensor, num_clips: int) -> torch.Tensor:
    """[Q, N, N] IoU of every cell's span with each query's ground truth.

    windows: [Q, 2] seconds; durations: [Q] seconds. The GT is clamped to [0, D] first (the
    evaluation convention); the caller is responsible for rejecting start >= end.
    """
    dur = durations.to(torch.float64).clamp(min=1e-12)[:, None]
    gt = (windows.to(torch.float64) / dur).clamp(0.0, 1.0)
    spans = cell_spans(num_clips).to(windows.device)
    iou = window_iou(spans[None], gt[:, None, None, :], guard="positive")
    return iou.to(windows.dtype if windows.is_floating_point() else torch.float32)


def cell_index_to_seconds(i: torch.Tensor, j: torch.Tensor, num_clips: int,
                          duration: float) -> torch.Tensor:
    """[K, 2] seconds [i * D / N, (j + 1) * D / N] of cells (i, j)."""
    scale = duration / num_clips
    return torch.stack([i.to(torch.float64) * scale, (j.to(torch.float64) + 1) * scale], dim=-1)


class SparseMaxPool2DMap(nn.Module):
    """Clip features [B, C, N] -> proposal map [B, C, N, N]; cell (i, j) = max over clips i..j
    at valid cells, 0 elsewhere. Cascaded pooling shares work: each step pools the previous
    step's output (max-pool 2/1 inside a group, 3/2 at a group's start)."""

    def __init__(self, num_clips: int, pooling_counts: Sequence[int]) -> None:
        super().__init__()
        self.num_clips = num_clips
        self.plan = _pooling_plan(num_clips, pooling_counts)
        self.register_buffer("mask", sparse_mask(num_clips, pooling_counts), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n = x.shape
        if n != self.num_clips:
            raise ValueError(f"expected {self.num_clips} clips, got {n}")
        out = x.new_zeros(b, c, n, n)
        idx = torch.arange(n, device=x.device)
        out[:, :, idx, idx] = x
        for kernel, offset, stride in self.plan:
            x = F.max_pool1d(x, kernel, 1 if kernel == 2 else 2)
            starts = torch.arange(0, n - offset, stride, device=x.device)
            out[:, :, starts, starts + offset] = x[:, :, : starts.numel()]
        return out
