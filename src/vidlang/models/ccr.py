"""CCR: counterfactual cross-modality reasoning on top of CPL (ACM MM 2023, cpl_ccr.md s. 4).

Each decoded branch (positive, reference, left and right negative) gets a query-only head
``q_b`` on the masked decoder input (a bigram-like language prior). RUBi fusion
``F(a, q) = a * sigmoid(q)`` gives TE = F(v, q) and, with a learnable constant c standing in
for the video, NDE = F(c, q); TIE = TE - NDE removes what the query alone predicts. Training
adds per-branch counterfactual terms; inference ranks proposals by CE(TIE) (``rank_logits``).

Clean defaults vs the release (flags keep the original): per-sample counterfactual hinges
(``bxb_broadcast``), KL over valid tokens (``kl_reduction: legacy``), TIE ranking at test
time (``rank_logits: factual`` is what the shipped runner did), optional / shared V x V
end classifiers (``end_classifier``, ``share_end_classifier``), ``q_stopgrad`` (CF-VQA's
gradient stop). ``reproduce_upstream_quirks`` turns on every faithful flag at once.

Options added for issue 17 (release behaviour stays the default):

* ``q_branch``: ``token`` (the release: q_b = Linear_b on each masked input token, so q at
  position t sees one token) or ``causal`` (a text-only causal transformer over the masked
  query, ``q_layers`` layers shared by the branches, then the per-branch heads: q at position
  t sees every unmasked word before it, so it can represent "unmasked words -> next word"
  shortcuts such as verb -> object across "the").
* ``hinge_effect``: which logits CPL's proposal hinges compare: ``factual`` (the release: CE of
  the factual logits v) or ``tie`` (CE of TIE = (v - c)·σ(q), the release's commented-out
  variant). k* is chosen by the factual CE either way; the counterfactual hinges are unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from vidlang.losses.ccr import counterfactual_effects, kl_counterfactual, rubi_fusion
from vidlang.losses.cpl import label_smoothed_ce, pick, ranking_loss
from vidlang.models.blocks.transformer import DecoderStack
from vidlang.models.cpl import BRANCHES, CHOICES, CPL, CPLConfig, Encoded, check_positive
from vidlang.registry import MODELS


@dataclass
class CCRConfig(CPLConfig):
    """CPL's keys plus the counterfactual ones; defaults are CCR's Charades-STA values."""

    heads: int = 8
    end_classifier: bool = True         # the per-branch V x V q-only classifiers (~256 M on ANet)
    share_end_classifier: bool = False  # one V x V layer for all four branches
    rank_logits: str = "tie"            # tie | te | factual: logits that rank proposals at test
    bxb_broadcast: bool = False         # release: cf hinges averaged over all B x B pairs
    kl_reduction: str = "masked"        # masked | legacy (sum over positions incl. padding / V)
    q_stopgrad: bool = False            # stop the q-branch gradient into the word embeddings
    reproduce_upstream_quirks: bool = False  # all of: bxb, legacy KL, factual ranking, global-RNG masks
    q_branch: str = "token"             # token (release: per-token head) | causal (text-only stack)
    q_layers: int = 1                   # q_branch=causal: causal layers over the masked query
    hinge_effect: str = "factual"       # factual (release) | tie: logits of CPL's proposal hinges


def _ranking_logits_tie(v: torch.Tensor, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return counterfactual_effects(v, q, c).tie


RANK_LOGITS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tie": _ranking_logits_tie,
    "te": lambda v, q, c: rubi_fusion(v, q),
    "factual": lambda v, q, c: v,
}

CCR_CHOICES = {**CHOICES, "rank_logits": tuple(RANK_LOGITS), "kl_reduction": ("masked", "legacy"),
               "q_branch": ("token", "causal"), "hinge_effect": ("factual", "tie")}


def upstream_config(cfg: CCRConfig) -> CCRConfig:
    """The effective config: with ``reproduce_upstream_quirks`` every faithful flag is set."""
    if not cfg.reproduce_upstream_quirks:
        return cfg
    return replace(cfg, bxb_broadcast=True, kl_reduction="legacy", rank_logits="factual", eval_mask="global_rng")


@MODELS.register("ccr")
class CCR(CPL):
    """CPL + query-only heads, RUBi fusion and the counterfactual constant c."""

    config_class: ClassVar[type] = CCRConfig
    choices: ClassVar[dict[str, tuple[str, ...]]] = CCR_CHOICES

    def __init__(self, cfg: CCRConfig) -> None:
        cfg = upstream_config(cfg)
        super().__init__(cfg)
        self.q_heads = nn.ModuleDict({b: copy.deepcopy(self.fc_comp) for b in BRANCHES})
        self.end_classifiers: nn.ModuleDict | None = None
        if cfg.end_classifier:
            names = ("shared",) if cfg.share_end_classifier else BRANCHES
            self.end_classifiers = nn.ModuleDict({n: nn.Linear(self.num_words, self.num_words) for n in names})
        self.c = nn.Parameter(torch.zeros(()))
        self.q_context: DecoderStack | None = None
        if cfg.q_branch == "causal":
            check_positive(cfg, ("q_layers",))
            self.q_context = DecoderStack(cfg.q_layers, cfg.hidden, cfg.heads, cfg.ffn_dim, cfg.dropout)

    def q_logits(self, branch: str, enc: Encoded) -> torch.Tensor:
        """Query-only logits ``[Q, L+1, V]`` of ``branch`` (one per query, not per proposal)."""
        words = enc.words.detach() if self.cfg.q_stopgrad else enc.words
        if self.q_context is not None:
            words = self.q_context(words, enc.key_mask)
        return self.q_heads[branch](words)

    def q_only(self, branch: str, q: torch.Tensor) -> torch.Tensor:
        """The q-only classifier's logits (identity when ``end_classifier`` is off)."""
        if self.end_classifiers is None:
            return q
        return self.end_classifiers["shared" if self.cfg.share_end_classifier else branch](q)

    def branch_terms(self, branch: str, logits: torch.Tensor, enc: Encoded, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """CPL's CE plus ``cf_b = KL_c + CE_ls(q_only) + CE_ls(TE)`` per sample."""
        terms = super().branch_terms(branch, logits, enc, rows)
        cfg = self.cfg
        q = self.q_logits(branch, enc)
        q_only_ce = label_smoothed_ce(self.q_only(branch, q), enc.target, enc.loss_mask, cfg.label_smoothing)
        q_rows, target, mask = q[rows], enc.target[rows], enc.loss_mask[rows]
        te = rubi_fusion(logits, q_rows)
        terms["cf"] = (kl_counterfactual(te, q_rows, self.c, mask, cfg.kl_reduction) + q_only_ce[rows]
                       + label_smoothed_ce(te, target, mask, cfg.label_smoothing))
        if cfg.hinge_effect == "tie":
            tie = counterfactual_effects(logits, q_rows, self.c).tie
            terms["tie"] = label_smoothed_ce(tie, target, mask, cfg.label_smoothing)
        return terms

    def rank_scores(self, logits: torch.Tensor, enc: Encoded, rows: torch.Tensor) -> torch.Tensor:
        """CE of the ``rank_logits`` effect (TIE by default) of each positive proposal."""
        ranked = RANK_LOGITS[self.cfg.rank_logits](logits, self.q_logits("pos", enc)[rows], self.c)
        return label_smoothed_ce(ranked, enc.target[rows], enc.loss_mask[rows], self.cfg.label_smoothing)

    def combine(self, terms: dict[str, dict[str, torch.Tensor]], best: torch.Tensor,
                gauss: torch.Tensor) -> dict[str, torch.Tensor]:
        """``L_rec = 1/4 (CE_p + CE_ref + cf_p + cf_ref)``; ``L_rank`` = CPL hinges + cf hinges."""
        cfg = self.cfg
        cpl = super().combine(terms, best, gauss)
        cf_pos = pick(terms["pos"]["cf"], best)
        rec = 0.5 * cpl["rec"] + 0.25 * (cf_pos.mean() + terms["ref"]["cf"].mean())
        cf_rank = ranking_loss(cf_pos, terms["ref"]["cf"], terms["neg_left"]["cf"], terms["neg_right"]["cf"],
                               cfg.margin_ref, cfg.margin_neg, pairwise=cfg.bxb_broadcast)
        rank_f = cpl["rank"]
        if cfg.hinge_effect == "tie":  # CPL's hinges on CE(TIE); k* stays the factual argmin
            rank_f = ranking_loss(pick(terms["pos"]["tie"], best), terms["ref"]["tie"],
                                  terms["neg_left"]["tie"], terms["neg_right"]["tie"],
                                  cfg.margin_ref, cfg.margin_neg)
        rank = rank_f + cf_rank
        return {"loss": rec + cfg.alpha_rank * rank + cfg.alpha_div * cpl["div"], "rec": rec, "rank": rank,
                "cf_rank": cf_rank, "div": cpl["div"], "c": self.c.detach()}

    def describe(self) -> dict[str, Any]:
        """Parameter counts of the parts (the V x V end classifiers dominate on ActivityNet)."""
        end = sum(p.numel() for p in self.end_classifiers.parameters()) if self.end_classifiers is not None else 0
        return {"params": sum(p.numel() for p in self.parameters()), "end_classifier_params": end}
