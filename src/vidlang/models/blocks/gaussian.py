"""Gaussian temporal weights for CPL/CCR proposals and their hard negatives.

A proposal is a (center, width) pair in (0, 1) of the video. Its soft mask over ``n`` points
of ``linspace(0, 1, n)`` is a Gaussian with std ``max(width, min_width) / sigma``, normalised
to peak 1 (cpl_ccr.md section 2). Hard negatives are Gaussians over the free regions left and
right of a proposal, grown by the schedule ``r = min(epoch / max_epoch, 1) ** gamma``.
"""

from __future__ import annotations

import torch


def gaussian_weights(center: torch.Tensor, width: torch.Tensor, num_points: int, sigma: float,
                     min_width: float = 0.01) -> torch.Tensor:
    """Peak-normalised Gaussians ``[..., num_points]`` for ``center``/``width`` of shape ``[...]``.

    The std is ``max(width, min_width) / sigma``; with ``sigma = 9`` the scored box
    ``[c - w/2, c + w/2]`` is 4.5 std wide on each side, so the soft mask is far narrower.
    """
    x = torch.linspace(0.0, 1.0, num_points, device=center.device, dtype=center.dtype)
    std = width.clamp(min=min_width) / sigma
    # peak-normalised in the log domain: exp(a) / max exp(a) = exp(a - max a). Dividing after
    # the exp gave 0 / 0 = NaN when every grid point is many stds from the centre (a narrow
    # Gaussian between the points of a coarse grid, e.g. width 0.01 on 16 points)
    logw = -((x - center.unsqueeze(-1)) ** 2) / (2 * std.unsqueeze(-1) ** 2)
    return torch.exp(logw - logw.amax(dim=-1, keepdim=True))


def negative_schedule(epoch: int, max_epoch: int, gamma: float) -> float:
    """Growth ``r = min(epoch / max_epoch, 1) ** gamma`` of the hard negatives (gamma 0: r = 1)."""
    if max_epoch < 1:
        raise ValueError(f"max_epoch must be >= 1, got {max_epoch}")
    return min(epoch / max_epoch, 1.0) ** gamma


def negative_proposals(center: torch.Tensor, width: torch.Tensor, r: float,
                       sigma: float = 9.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(left_center, left_width, right_center, right_width) of the two hard negatives.

    Left: free length ``l = max(c - w/2, 0)``, center ``0.5 * l * r`` and std ``center / 4.5``.
    Right: ``p = max(1 - c - w/2, 0)``, center ``1 - 0.5 * p * r``, std ``0.5 * p * r / 4.5``.
    Widths are returned in the proposal parametrisation (std = width / sigma), so the same
    :func:`gaussian_weights` (with its width floor) renders them.
    """
    left_free = (center - width / 2).clamp(min=0.0)
    right_free = (1.0 - center - width / 2).clamp(min=0.0)
    left_center = 0.5 * left_free * r
    right_half = 0.5 * right_free * r
    # std = half / 4.5  <=>  width = std * sigma
    left_width = left_center / 4.5 * sigma
    right_width = right_half / 4.5 * sigma
    return left_center, left_width, 1.0 - right_half, right_width


def proposal_boxes(center: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """``[..., 2]`` boxes ``[c - w/2, c + w/2]`` clipped to [0, 1] (how proposals are scored)."""
    return torch.stack([(center - width / 2).clamp(0.0, 1.0), (center + width / 2).clamp(0.0, 1.0)], dim=-1)


def normalised_rows(weights: torch.Tensor) -> torch.Tensor:
    """Each Gaussian divided by its sum (the G of the diversity loss)."""
    return weights / weights.sum(dim=-1, keepdim=True)
