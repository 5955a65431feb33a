"""CCR's counterfactual terms (cpl_ccr.md section 4), a port of CF-VQA's RUBi variant.

With factual word logits ``v`` and query-only logits ``q``: TE = F(v, q) = v * sigmoid(q),
NDE = F(c, q) = c * sigmoid(q) for a learnable scalar c, and TIE = TE - NDE.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

KL_REDUCTIONS = ("masked", "legacy")


def rubi_fusion(logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """RUBi fusion F(a, q) = a * sigmoid(q), element-wise over the vocabulary."""
    return logits * torch.sigmoid(q_logits)


class Effects(NamedTuple):
    te: torch.Tensor   # total effect F(v, q)
    nde: torch.Tensor  # natural direct effect of the query F(c, q)
    tie: torch.Tensor  # total indirect effect TE - NDE = (v - c) * sigmoid(q)


def counterfactual_effects(logits: torch.Tensor, q_logits: torch.Tensor, c: torch.Tensor) -> Effects:
    te = rubi_fusion(logits, q_logits)
    nde = rubi_fusion(c.expand_as(q_logits), q_logits)
    return Effects(te, nde, te - nde)


def kl_counterfactual(te: torch.Tensor, q_logits: torch.Tensor, c: torch.Tensor, mask: torch.Tensor,
                      reduction: str = "masked") -> torch.Tensor:
    """Per-sample ``-sum_v softmax(TE).detach() * log_softmax(c * sigmoid(q.detach()))``; only c
    learns from it. ``masked``: mean over valid tokens. ``legacy`` (defect 5): summed over all
    positions, padding included, and divided by the vocabulary size."""
    target = te.detach().softmax(dim=-1)
    logq = rubi_fusion(c.expand_as(q_logits), q_logits.detach()).log_softmax(dim=-1)
    per_token = -(target * logq).sum(dim=-1)  # [N, T]
    if reduction == "legacy":
        return per_token.sum(dim=-1) / te.shape[-1]
    if reduction != "masked":
        raise ValueError(f"KL reduction {reduction!r} is not one of {KL_REDUCTIONS}")
    m = mask.to(per_token.dtype)
    return (per_token * m).sum(dim=-1) / m.sum(dim=-1).clamp(min=1.0)

