"""CPL losses (cpl_ccr.md section 3): label-smoothed token CE, the ranking hinges against the
reference and the two hard negatives, and the diversity loss ``||lambda I - G G^T||^2``."""

from __future__ import annotations

import torch


def label_smoothed_ce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                      eps: float = 0.1) -> torch.Tensor:
    """Per-sample CE with label smoothing, averaged over the sample's valid tokens.

    logits ``[N, T, V]``, target ``[N, T]`` ids, mask ``[N, T]`` bool -> ``[N]``. The smoothed
    loss is ``(1 - eps) * nll + eps / V * sum_v(-log p_v)`` (fairseq's form).
    """
    logp = logits.log_softmax(dim=-1)
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    smooth = -logp.sum(dim=-1)
    tok = (1.0 - eps) * nll + eps / logits.shape[-1] * smooth
    m = mask.to(tok.dtype)
    return (tok * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)


def hinge(positive: torch.Tensor, negative: torch.Tensor, margin: float, pairwise: bool = False) -> torch.Tensor:
    """Mean of ``max(0, positive - negative + margin)`` (losses: lower is better).

    ``pairwise`` reproduces CCR's broadcast of a ``[B, 1]`` against a ``[B]`` tensor: the mean
    over all B x B pairs of samples instead of per sample (defect 4 of cpl_ccr.md section 7).
    """
    if pairwise:
        return (positive.unsqueeze(1) - negative.unsqueeze(0) + margin).clamp(min=0).mean()
    return (positive - negative + margin).clamp(min=0).mean()


def ranking_loss(ce_pos: torch.Tensor, ce_ref: torch.Tensor, ce_left: torch.Tensor, ce_right: torch.Tensor,
                 margin_ref: float, margin_neg: float, pairwise: bool = False) -> torch.Tensor:
    """The proposal must reconstruct better than the whole video (``margin_ref``) and than
    both hard negatives (``margin_neg``); gradients flow through both sides."""
    return (hinge(ce_pos, ce_ref, margin_ref, pairwise) + hinge(ce_pos, ce_left, margin_neg, pairwise)
            + hinge(ce_pos, ce_right, margin_neg, pairwise))


def diversity_loss(gaussians: torch.Tensor, lam: float) -> torch.Tensor:
    """``mean_b ||lam I - G_b G_b^T||_F^2`` with each Gaussian of ``[B, K, N]`` scaled to sum 1.

    Off-diagonal terms push proposals apart; the diagonal target ``||g||^2 = lam`` sets the
    preferred width.
    """
    g = gaussians / gaussians.sum(dim=-1, keepdim=True)
    eye = torch.eye(g.shape[1], device=g.device, dtype=g.dtype)
    return ((lam * eye - g @ g.transpose(1, 2)) ** 2).sum(dim=(1, 2)).mean()


def pick(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[b, index[b]]`` for ``[B, K]`` values."""
    return values.gather(1, index.unsqueeze(1)).squeeze(1)
