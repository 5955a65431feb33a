"""TPM-CL, DMAE's triplet partial-margin loss (retrieval.md section 2.3). Training only.

A cross-modal :class:`TokenImportance` predictor scores each token given a query from the
other modality; the most important tokens (those whose cumulative sorted weight stays below
``mask_fraction`` = 0.6) are removed to build a *partial* sample that keeps only the less
salient tokens - a fine-grained hard negative. On matched pairs only, margin ranking terms
(margin 0.6) ask the full sample to beat the partial one:

1. s(t_cls, V) > s(t_cls, V') + m       2. s(t_g, V) > s(t_g, V') + m
3. s(t_g, V) > s(t_g', V) + m

``partial_type`` picks the terms: 4 -> 1, 2, 3; 2 -> 1, 2; 3 -> 3 only; -1 -> off.

How s is computed (``scoring``):

* ``tokenwise`` (default, the release, ``dmae_utils.py::_get_partial_output``): s is the
  token-wise interaction of a one-token text (t_cls, or t_g = normalised Σ w·word, or the
  partial t_g' = Σ_kept w·word, *not* re-normalised) against a frame *sequence*: V, the full
  frames, or V', the same frames with the removed ones set to zero (they stay in the frame
  mask, so they count as a 0 similarity in v2t's mean). For one text token this is
  ½ (max_f t·f + mean_f t·f): TPM-CL acts on the frame-level similarity used for ranking.
* ``pooled`` (vidlang before issue 17): cosine of t with the importance-pooled vectors
  v = norm(Σ w·frame) and v' (kept frames only); t_g' re-normalised.

The importance query (``query_map``): ``learned`` (default, the release's
``LinearXWeightPredictor.qk_proj``) maps the query sequence to the token axis with a learned,
bias-free Linear over the *sequence* axis (text [CLS] -> each frame; the frames -> each word);
``interpolate`` (vidlang before issue 17) repeats the sentence over frames and linearly
interpolates the frames onto the words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vidlang.errors import ConfigError, DataError

TERMS_BY_PARTIAL_TYPE: dict[int, tuple[int, ...]] = {-1: (), 2: (1, 2), 3: (3,), 4: (1, 2, 3)}
SCORINGS = ("tokenwise", "pooled")
QUERY_MAPS = ("learned", "interpolate")


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


class SequenceAxisMap(nn.Module):
    """A learned, bias-free Linear over the sequence axis: [B, N_in, d] -> [B, N_out, d],
    out[:, j] = Σ_i W[j, i] · x[:, i] (the release's ``qk_proj``). Inputs are zero-padded (or
    padding zeroed) to ``n_in`` positions; the first ``n_out`` rows of W are used for a
    shorter target. ``key`` names the config option that sets the sizes (for errors)."""

    def __init__(self, n_in: int, n_out: int, key: str) -> None:
        super().__init__()
        self.n_in, self.n_out, self.key = n_in, n_out, key
        self.proj = nn.Linear(n_in, n_out, bias=False)

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, target_mask: torch.Tensor
                ) -> torch.Tensor:
        n_src, n_tgt = x.shape[1], target_mask.shape[1]
        if n_src > self.n_in or n_tgt > self.n_out:
            raise DataError(f"{self.key}: TPM-CL's learned query map covers {self.n_in} -> "
                            f"{self.n_out} positions but the batch has {n_src} -> {n_tgt}; "
                            "raise the option")
        x = x * x_mask.unsqueeze(-1).to(x.dtype)
        out = torch.einsum("oi,bid->bod", self.proj.weight[:n_tgt, :n_src], x)
        return out * target_mask.unsqueeze(-1).to(x.dtype)


def resample_sequence(x: torch.Tensor, x_mask: torch.Tensor, target_mask: torch.Tensor
                      ) -> torch.Tensor:
    """Map each row's valid entries of x [B, T, d] onto the valid positions of target_mask
    [B, N] by linear interpolation along the sequence axis (``query_map: interpolate``).
    Invalid target positions get zeros."""
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


def weighted_sum(tokens: torch.Tensor, weights: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Σ w·token over the kept tokens (not normalised)."""
    return ((weights * keep.to(weights.dtype)).unsqueeze(-1) * tokens).sum(dim=1)


def weighted_pool(tokens: torch.Tensor, weights: torch.Tensor, keep: torch.Tensor
                  ) -> torch.Tensor:
    """L2-normalised Σ w·token over the kept tokens."""
    return F.normalize(weighted_sum(tokens, weights, keep), dim=-1)


def row_tokenwise_similarity(text: torch.Tensor, frames: torch.Tensor, frame_mask: torch.Tensor
                             ) -> torch.Tensor:
    """Token-wise interaction of matched rows, one text token per row: text [B, d], frames
    [B, T, d] -> [B] = ½ (max_f t·f + mean_f t·f) over the valid frames (DRL's ``ti`` with a
    one-token text, no TWM / NFC, as the release's ``wti_interaction_row``)."""
    sim = torch.einsum("bd,btd->bt", text, frames)
    fm = frame_mask.to(sim.dtype)
    t2v = sim.masked_fill(~frame_mask, float("-inf")).max(dim=-1).values
    v2t = (sim * fm).sum(-1) / fm.sum(-1).clamp_min(1)
    return 0.5 * (t2v + v2t)


@dataclass
class TPMCLOutput:
    """The loss and the intermediate weights / masks (exposed for tests and diagnostics);
    ``active[k]`` is the fraction of rows whose hinge k is active (margin not yet met)."""

    loss: torch.Tensor
    terms: dict[int, torch.Tensor]
    word_weights: torch.Tensor
    frame_weights: torch.Tensor
    word_keep: torch.Tensor
    frame_keep: torch.Tensor
    active: dict[int, torch.Tensor]
    pairs: dict[int, tuple[torch.Tensor, torch.Tensor]]


class TPMCL(nn.Module):
    """The two importance predictors, their query maps, and the triplet partial-margin terms."""

    def __init__(self, dim: int, partial_type: int = 4, margin: float = 0.6,
                 mask_fraction: float = 0.6, scoring: str = "tokenwise",
                 query_map: str = "learned", max_frames: int = 128, max_words: int = 64) -> None:
        super().__init__()
        if partial_type not in TERMS_BY_PARTIAL_TYPE:
            raise ConfigError(f"model.tpmcl_partial_type={partial_type}: expected one of "
                              f"{sorted(TERMS_BY_PARTIAL_TYPE)}")
        if not 0.0 < mask_fraction < 1.0:
            raise ConfigError(f"model.tpmcl_mask_fraction={mask_fraction}: must be in (0, 1)")
        if scoring not in SCORINGS:
            raise ConfigError(f"model.tpmcl_scoring={scoring!r}: expected one of {SCORINGS}")
        if query_map not in QUERY_MAPS:
            raise ConfigError(f"model.tpmcl_query_map={query_map!r}: expected one of {QUERY_MAPS}")
        if query_map == "learned" and (max_frames < 1 or max_words < 1):
            raise ConfigError("model.tpmcl_max_frames / model.tpmcl_max_words: must be >= 1 "
                              f"for the learned query map, got {max_frames} / {max_words}")
        self.terms = TERMS_BY_PARTIAL_TYPE[partial_type]
        self.margin = margin
        self.mask_fraction = mask_fraction
        self.scoring = scoring
        self.query_map = query_map
        self.word_importance = TokenImportance(dim)
        self.frame_importance = TokenImportance(dim)
        if query_map == "learned":
            self.text_to_frames = SequenceAxisMap(1, max_frames, "model.tpmcl_max_frames")
            self.frames_to_words = SequenceAxisMap(max_frames, max_words,
                                                   "model.tpmcl_max_frames / tpmcl_max_words")

    def queries(self, sentence: torch.Tensor, word_mask: torch.Tensor, frames: torch.Tensor,
                frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(query for each frame [B, T, d], query for each word [B, L, d])."""
        if self.query_map == "interpolate":
            return (sentence[:, None, :].expand_as(frames),
                    resample_sequence(frames, frame_mask, word_mask))
        one = torch.ones(sentence.shape[0], 1, dtype=torch.bool, device=sentence.device)
        return (self.text_to_frames(sentence[:, None, :], one, frame_mask),
                self.frames_to_words(frames, frame_mask, word_mask))

    def forward(self, sentence: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                frames: torch.Tensor, frame_mask: torch.Tensor) -> TPMCLOutput:
        """Matched pairs row by row: sentence [B, d], words [B, L, d], frames [B, T, d]."""
        frame_query, word_query = self.queries(sentence, word_mask, frames, frame_mask)
        fw = self.frame_importance(frame_query, frames, frame_mask)
        ww = self.word_importance(word_query, words, word_mask)
        f_keep = partial_keep_mask(fw, frame_mask, self.mask_fraction)
        w_keep = partial_keep_mask(ww, word_mask, self.mask_fraction)
        pairs = TRIPLET_SCORINGS[self.scoring](sentence, words, ww, w_keep, word_mask,
                                               frames, fw, f_keep, frame_mask)
        terms = {k: margin_ranking(*pairs[k], self.margin) for k in self.terms}
        active = {k: (self.margin - (pairs[k][0] - pairs[k][1]) > 0).float().mean().detach()
                  for k in self.terms}
        loss = sum(terms.values(), sentence.new_zeros(()))
        return TPMCLOutput(loss, terms, ww, fw, w_keep, f_keep, active,
                           {k: pairs[k] for k in self.terms})


Pairs = dict[int, tuple[torch.Tensor, torch.Tensor]]


def tokenwise_pairs(sentence: torch.Tensor, words: torch.Tensor, ww: torch.Tensor,
                    w_keep: torch.Tensor, word_mask: torch.Tensor, frames: torch.Tensor,
                    fw: torch.Tensor, f_keep: torch.Tensor, frame_mask: torch.Tensor) -> Pairs:
    """The release's triplets: one-token texts against full / partial frame sequences."""
    t_cls = F.normalize(sentence, dim=-1)
    t_g = weighted_pool(words, ww, word_mask)
    t_part = weighted_sum(words, ww, w_keep)  # the release does not re-normalise t_g'
    v_part = frames * f_keep.unsqueeze(-1).to(frames.dtype)  # removed frames zeroed, still valid
    s = row_tokenwise_similarity
    s_g = s(t_g, frames, frame_mask)
    return {1: (s(t_cls, frames, frame_mask), s(t_cls, v_part, frame_mask)),
            2: (s_g, s(t_g, v_part, frame_mask)),
            3: (s_g, s(t_part, frames, frame_mask))}


def pooled_pairs(sentence: torch.Tensor, words: torch.Tensor, ww: torch.Tensor,
                 w_keep: torch.Tensor, word_mask: torch.Tensor, frames: torch.Tensor,
                 fw: torch.Tensor, f_keep: torch.Tensor, frame_mask: torch.Tensor) -> Pairs:
    """vidlang's earlier triplets: cosines of importance-pooled vectors."""
    v, v_part = weighted_pool(frames, fw, frame_mask), weighted_pool(frames, fw, f_keep)
    t_g, t_part = weighted_pool(words, ww, word_mask), weighted_pool(words, ww, w_keep)
    t_cls = F.normalize(sentence, dim=-1)
    return {1: ((t_cls * v).sum(-1), (t_cls * v_part).sum(-1)),
            2: ((t_g * v).sum(-1), (t_g * v_part).sum(-1)),
            3: ((t_g * v).sum(-1), (t_part * v).sum(-1))}


TRIPLET_SCORINGS: dict[str, Callable[..., Pairs]] = {"tokenwise": tokenwise_pairs,
                                                     "pooled": pooled_pairs}


def margin_ranking(positive: torch.Tensor, negative: torch.Tensor, margin: float) -> torch.Tensor:
    """mean(max(0, margin - (positive - negative)))."""
    return (margin - (positive - negative)).clamp_min(0.0).mean()
