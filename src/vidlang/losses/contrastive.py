"""Contrastive losses over a text x video similarity matrix: symmetric InfoNCE and NegNCE.

``info_nce`` is the one InfoNCE of the project (CLIP4Clip's ``CrossEn`` averaged over both
directions); other models reuse it. ``negnce`` adds DMAE's negative-aware term over hard
negatives (retrieval.md section 2.1). Both take *logits* (similarities already multiplied by
the logit scale) whose diagonal holds the positives, and an optional ``valid`` mask whose False
entries (duplicate videos, identical sentences, overlapping segments) are left out of every
denominator and never counted as negatives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidlang.registry import LOSSES

_P_MIN = 1e-6


def _check_square(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Validate shapes; return the mask of allowed entries (diagonal always allowed)."""
    if logits.dim() != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"expected a square [N, N] logit matrix, got {tuple(logits.shape)}")
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    if valid is None:
        return torch.ones_like(eye)
    if valid.shape != logits.shape:
        raise ValueError(f"valid mask {tuple(valid.shape)} does not match logits {tuple(logits.shape)}")
    return valid.bool() | eye


def masked_logits(logits: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """``logits`` with disallowed entries set to -inf (the diagonal is always kept)."""
    allowed = _check_square(logits, valid)
    return logits.masked_fill(~allowed, float("-inf"))


def info_nce_rows(logits: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """One-directional InfoNCE: mean over rows of -log softmax(row)[diagonal]."""
    z = masked_logits(logits, valid)
    target = torch.arange(z.shape[0], device=z.device)
    return F.cross_entropy(z, target)


@LOSSES.register("infonce")
def info_nce(logits: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: ½ [CE(rows) + CE(columns)], positives on the diagonal."""
    return 0.5 * (info_nce_rows(logits, valid) + info_nce_rows(logits.t(), _t(valid)))


def hard_negative_mask(sim: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """NegNCE's hard negatives: (i, j), i != j, with S_ij > S_ii or S_ij > S_jj (margin 0)."""
    allowed = _check_square(sim, valid)
    diag = sim.diagonal()
    beats = (sim > diag[:, None]) | (sim > diag[None, :])
    eye = torch.eye(sim.shape[0], dtype=torch.bool, device=sim.device)
    return beats & ~eye & allowed


def negnce_rows(logits: torch.Tensor, sim: torch.Tensor, alpha: float, beta: float,
                valid: torch.Tensor | None = None) -> torch.Tensor:
    """One direction of NegNCE: α·mean[-log p_ii] + β·mean_H[-log(1 - p_ij)]."""
    z = masked_logits(logits, valid)
    p = z.softmax(dim=1).clamp(_P_MIN, 1.0 - _P_MIN)
    positive = -p.diagonal().log().mean()
    hard = hard_negative_mask(sim, valid)
    if not bool(hard.any()):
        return alpha * positive
    negative = -(1.0 - p[hard]).log().mean()
    return alpha * positive + beta * negative


@LOSSES.register("negnce")
def negnce(logits: torch.Tensor, sim: torch.Tensor | None = None, alpha: float = 1.0,
           beta: float = 0.5, valid: torch.Tensor | None = None) -> torch.Tensor:
    """DMAE's NegNCE, ½ [L(S) + L(Sᵀ)]; ``sim`` (default: ``logits``) selects hard negatives."""
    sim = logits.detach() if sim is None else sim.detach()
    forward = negnce_rows(logits, sim, alpha, beta, valid)
    backward = negnce_rows(logits.t(), sim.t(), alpha, beta, _t(valid))
    return 0.5 * (forward + backward)


def _t(mask: torch.Tensor | None) -> torch.Tensor | None:
    return None if mask is None else mask.t()


def negnce_diagnostics(logits: torch.Tensor, sim: torch.Tensor | None = None, alpha: float = 1.0,
                       beta: float = 0.5, valid: torch.Tensor | None = None
                       ) -> dict[str, float]:
    """What NegNCE's hard-negative term contributes on one batch (for logging, no graph):

    ``hard_count`` / ``hard_fraction``: size of the hard set H over both directions (of the
    N(N-1) off-diagonal entries per direction); ``grad_share``: ‖∂(β·L_neg)/∂z‖ /
    (‖∂(α·L_pos)/∂z‖ + ‖∂(β·L_neg)/∂z‖) for the logits z, i.e. how much of the gradient on
    the similarity matrix comes from the hard-negative term (0 when H is empty)."""
    z = logits.detach().clone().requires_grad_(True)
    s = (logits if sim is None else sim).detach()
    n = z.shape[0]
    grads, count = [], 0
    for part in ("pos", "neg"):
        total = z.new_zeros(())
        for zz, ss, vv in ((z, s, valid), (z.t(), s.t(), _t(valid))):
            p = masked_logits(zz, vv).softmax(dim=1).clamp(_P_MIN, 1.0 - _P_MIN)
            if part == "pos":
                total = total + alpha * -p.diagonal().log().mean()
                continue
            hard = hard_negative_mask(ss, vv)
            count += int(hard.sum())
            if bool(hard.any()):
                total = total + beta * -(1.0 - p[hard]).log().mean()
        (g,) = torch.autograd.grad(0.5 * total, z, allow_unused=True) if total.requires_grad \
            else (torch.zeros_like(z),)
        grads.append(float((g if g is not None else torch.zeros_like(z)).norm()))
    denom = grads[0] + grads[1]
    return {"hard_count": float(count), "hard_fraction": count / max(2 * n * (n - 1), 1),
            "grad_share": grads[1] / denom if denom > 0 else 0.0}
