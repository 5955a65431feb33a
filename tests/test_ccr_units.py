"""CCR's counterfactual arithmetic, KL reductions, flags and inference ranking."""

from __future__ import annotations

import pytest
import torch

from vidlang.errors import ConfigError
from vidlang.losses.ccr import counterfactual_effects, kl_counterfactual, rubi_fusion
from vidlang.models.ccr import CCR, CCRConfig, upstream_config

TINY = dict(frame_dim=8, num_clips=12, num_props_clips=6, hidden=16, ffn_dim=32, heads=2, layers=1,
            word_dim=8, vocab_size=20)


def test_te_nde_tie_arithmetic() -> None:
    torch.manual_seed(0)
    v, q, c = torch.randn(2, 3, 7), torch.randn(2, 3, 7), torch.tensor(0.4)
    eff = counterfactual_effects(v, q, c)
    assert torch.allclose(eff.te, v * torch.sigmoid(q))
    assert torch.allclose(eff.nde, 0.4 * torch.sigmoid(q))
    assert torch.allclose(eff.tie, (v - 0.4) * torch.sigmoid(q), atol=1e-6)
    assert torch.allclose(eff.te - eff.nde, eff.tie)
    assert torch.equal(rubi_fusion(v, q), eff.te)


def test_kl_only_trains_c_and_masks_padding() -> None:
    torch.manual_seed(0)
    v = torch.randn(2, 4, 5, requires_grad=True)
    q = torch.randn(2, 4, 5, requires_grad=True)
    c = torch.tensor(0.3, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    kl = kl_counterfactual(rubi_fusion(v, q), q, c, mask)
    kl.sum().backward()
    assert c.grad is not None and c.grad.abs() > 0
    assert v.grad is None and q.grad is None
    # masked mean ignores padding; legacy sums all positions and divides by V
    te = rubi_fusion(v, q).detach()
    per_tok = -(te.softmax(-1) * rubi_fusion(c.detach().expand(2, 4, 5), q.detach()).log_softmax(-1)).sum(-1)
    assert kl[0].item() == pytest.approx(per_tok[0, :2].mean().item(), rel=1e-5)
    legacy = kl_counterfactual(te, q.detach(), c.detach(), mask, "legacy")
    assert legacy[0].item() == pytest.approx(per_tok[0].sum().item() / 5, rel=1e-5)


def test_upstream_quirks_switch_sets_every_faithful_flag() -> None:
    cfg = upstream_config(CCRConfig(reproduce_upstream_quirks=True))
    assert cfg.bxb_broadcast and cfg.kl_reduction == "legacy"
    assert cfg.rank_logits == "factual" and cfg.eval_mask == "global_rng"
    assert upstream_config(CCRConfig()) == CCRConfig()


def test_bad_choice_names_the_key() -> None:
    with pytest.raises(ConfigError, match="model.rank_logits"):
        CCR(CCRConfig(**TINY, rank_logits="nope"))


def test_end_classifier_optional_and_shareable() -> None:
    v = TINY["vocab_size"] + 1
    full = CCR(CCRConfig(**TINY)).describe()
    shared = CCR(CCRConfig(**TINY, share_end_classifier=True)).describe()
    none = CCR(CCRConfig(**TINY, end_classifier=False)).describe()
    per_layer = v * v + v
    assert full["end_classifier_params"] == 4 * per_layer
    assert shared["end_classifier_params"] == per_layer
    assert none["end_classifier_params"] == 0
    assert full["params"] - none["params"] == 4 * per_layer


def test_ccr_q_heads_start_as_copies_of_the_output_layer() -> None:
    model = CCR(CCRConfig(**TINY))
    for head in model.q_heads.values():
        assert torch.equal(head.weight, model.fc_comp.weight)
        assert head.weight.data_ptr() != model.fc_comp.weight.data_ptr()
    assert model.c.item() == 0.0
