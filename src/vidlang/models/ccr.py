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
from vidlang.models.cpl import BRANCHES, CHOICES, CPL, CPLConfig, Encoded
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


def _ranking_logits_tie(v: torch.Tensor, q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return counterfactual_effects(v, q, c).tie


RANK_LOGITS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tie": _ranking_logits_tie,
    "te": lambda v, q, c: rubi_fusion(v, q),
    "factual": lambda v, q, c: v,
}

CCR_CHOICES = {**CHOICES, "rank_logits": tuple(RANK_LOGITS), "kl_reduction": ("masked", "legacy")}


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

    def q_logits(self, branch: str, enc: Encoded) -> torch.Tensor:
        """Query-only logits ``[Q, L+1, V]`` of ``branch`` (one per query, not per proposal)."""
        words = enc.words.detach() if self.cfg.q_stopgrad else enc.words
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
        rank = cpl["rank"] + cf_rank
        return {"loss": rec + cfg.alpha_rank * rank + cfg.alpha_div * cpl["div"], "rec": rec, "rank": rank,
                "cf_rank": cf_rank, "div": cpl["div"], "c": self.c.detach()}

    def describe(self) -> dict[str, Any]:
        """Parameter counts of the parts (the V x V end classifiers dominate on ActivityNet)."""
        end = sum(p.numel() for p in self.end_classifiers.parameters()) if self.end_classifiers is not None else 0
        return {"params": sum(p.numel() for p in self.parameters()), "end_classifier_params": end}
