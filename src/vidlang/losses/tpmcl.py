"""TPM-CL, DMAE's triplet partial-margin loss (retrieval.md section 2.3). Training only.

A cross-modal :class:`TokenImportance` predictor scores each token given a query from the
other modality; the most important tokens (those whose cumulative sorted weight stays below
``mask_fraction`` = 0.6) are removed to build a *partial* sample that keeps only the less
salient tokens - a fine-grained hard negative. On matched pairs only, margin ranking terms
(margin 0.6) ask the full sample to beat the partial one:

1. s(t_cls, v) > s(t_cls, v') + m       2. s(t_g, v) > s(t_g, v') + m
3. s(t_g, v) > s(t_g', v) + m

``partial_type`` picks the terms: 4 -> 1, 2, 3; 2 -> 1, 2; 3 -> 3 only; -1 -> off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidlang.errors import ConfigError

TERMS_BY_PARTIAL_TYPE: dict[int, tuple[int, ...]] = {-1: (), 2: (1, 2), 3: (3,), 4: (1, 2, 3)}


class TokenImportance(nn.Module):
    """LayerNorm -> Linear(2d, d/2, no bias) -> GELU -> Linear(d/2, 1, no bias) -> sigmoid,
    on [query mapped to each token ; token]; weights renormalised to sum 1 over valid tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = max(dim // 2, 1)
        self.net = nn.Sequential(nn.LayerNorm(2 * dim), nn.Linear(2 * dim, hidden, bias=False),
                                 nn.GELU(), nn.Linear(hidden, 1, bias=False))

    def forward(self, query: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor
                ) -> torch.Tensor:
        """query [B, N, d] (already aligned to the N tokens), tokens [B, N, d] -> weights [B, N]."""
        score = torch.sigmoid(self.net(torch.cat([query, tokens], dim=-1))).squeeze(-1)
        score = score * mask.to(score.dtype)
        return score / score.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def resample_sequence(x: torch.Tensor, x_mask: torch.Tensor, target_mask: torch.Tensor
                      ) -> torch.Tensor:
    """Map each row's valid entries of x [B, T, d] onto the valid positions of target_mask
    [B, N] by linear interpolation along the sequence axis (how the frames become a query for
    each word). Invalid target positions get zeros."""
    n = target_mask.shape[1]
    n_src = x_mask.sum(dim=1).clamp_min(1).to(x.dtype)  # assumes valid entries come first
    n_tgt = target_mask.sum(dim=1).clamp_min(1).to(x.dtype)
    pos = torch.arange(n, device=x.device, dtype=x.dtype)[None]
    span = (n_tgt - 1).clamp_min(1)[:, None]
    src = (pos * (n_src - 1)[:, None] / span).clamp(max=(n_src - 1)[:, None])
    lo = src.floor().long()
    hi = (lo + 1).clamp(max=(n_src - 1).long()[:, None])
    frac = (src - lo.to(x.dtype)).unsqueeze(-1)
    d = x.shape[-1]
    gather = lambda idx: x.gather(1, idx.unsqueeze(-1).expand(-1, -1, d))  # noqa: E731
    out = gather(lo) * (1 - frac) + gather(hi) * frac
    return out * target_mask.unsqueeze(-1).to(x.dtype)


def partial_keep_mask(weights: torch.Tensor, mask: torch.Tensor, fraction: float = 0.6
                      ) -> torch.Tensor:
    """True at tokens the partial sample keeps: the top tokens whose inclusive cumulative
    sorted weight is < ``fraction`` are removed, together with padding."""
    w = weights.masked_fill(~mask, -1.0)
    order = w.argsort(dim=-1, descending=True)
    sorted_w = weights.gather(-1, order) * mask.gather(-1, order).to(weights.dtype)
    removed_sorted = sorted_w.cumsum(dim=-1) < fraction
    removed = torch.zeros_like(mask).scatter(-1, order, removed_sorted)
    return mask & ~removed


def weighted_pool(tokens: torch.Tensor, weights: torch.Tensor, keep: torch.Tensor
                  ) -> torch.Tensor:
    """L2-normalised Σ w·token over the kept tokens."""
    w = (weights * keep.to(weights.dtype)).unsqueeze(-1)
    return F.normalize((w * tokens).sum(dim=1), dim=-1)


@dataclass
class TPMCLOutput:
    """The loss and the intermediate weights / masks (exposed for tests and diagnostics)."""

    loss: torch.Tensor
    terms: dict[int, torch.Tensor]
    word_weights: torch.Tensor
    frame_weights: torch.Tensor
    word_keep: torch.Tensor
    frame_keep: torch.Tensor


class TPMCL(nn.Module):
    """The two importance predictors plus the triplet partial-margin terms."""

    def __init__(self, dim: int, partial_type: int = 4, margin: float = 0.6,
                 mask_fraction: float = 0.6) -> None:
        super().__init__()
        if partial_type not in TERMS_BY_PARTIAL_TYPE:
            raise ConfigError(f"model.tpmcl_partial_type={partial_type}: expected one of "
                              f"{sorted(TERMS_BY_PARTIAL_TYPE)}")
        if not 0.0 < mask_fraction < 1.0:
            raise ConfigError(f"model.tpmcl_mask_fraction={mask_fraction}: must be in (0, 1)")
        self.terms = TERMS_BY_PARTIAL_TYPE[partial_type]
        self.margin = margin
        self.mask_fraction = mask_fraction
        self.word_importance = TokenImportance(dim)
        self.frame_importance = TokenImportance(dim)

    def forward(self, sentence: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                frames: torch.Tensor, frame_mask: torch.Tensor) -> TPMCLOutput:
        """Matched pairs row by row: sentence [B, d], words [B, L, d], frames [B, T, d]."""
        frame_query = sentence[:, None, :].expand_as(frames)
        word_query = resample_sequence(frames, frame_mask, word_mask)
        fw = self.frame_importance(frame_query, frames, frame_mask)
        ww = self.word_importance(word_query, words, word_mask)
        f_keep = partial_keep_mask(fw, frame_mask, self.mask_fraction)
        w_keep = partial_keep_mask(ww, word_mask, self.mask_fraction)
        v, v_part = weighted_pool(frames, fw, frame_mask), weighted_pool(frames, fw, f_keep)
        t_g, t_part = weighted_pool(words, ww, word_mask), weighted_pool(words, ww, w_keep)
        t_cls = F.normalize(sentence, dim=-1)
        pairs = {1: ((t_cls * v).sum(-1), (t_cls * v_part).sum(-1)),
                 2: ((t_g * v).sum(-1), (t_g * v_part).sum(-1)),
                 3: ((t_g * v).sum(-1), (t_part * v).sum(-1))}
        terms = {k: margin_ranking(*pairs[k], self.margin) for k in self.terms}
        loss = sum(terms.values(), sentence.new_zeros(()))
        return TPMCLOutput(loss, terms, ww, fw, w_keep, f_keep)


def margin_ranking(positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """mean(max(0, margin - (positive - negative)))."""
    return (margin - (positive - negative)).clamp_min(0.0).mean()
