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


def _tiny_ccr(**kw: object) -> tuple[CCR, dict]:
    from vidlang.text.vocab import PAD, Vocabulary

    torch.manual_seed(0)
    model = CCR(CCRConfig(**TINY, **kw))
    vocab = Vocabulary([PAD, *(f"w{i}" for i in range(TINY["vocab_size"]))])
    model.set_vocabulary(vocab, torch.randn(len(vocab), TINY["word_dim"]), "random")
    q = 5
    gen = torch.Generator().manual_seed(1)
    batch = {"feats": torch.randn(q, 12, 8, generator=gen), "feat_mask": torch.ones(q, 12, dtype=torch.bool),
             "durations": torch.full((q,), 10.0), "queries": [f"w{i} w{i + 1} w{i + 2} w{i + 3}" for i in range(q)],
             "qids": [f"q{i}" for i in range(q)], "query_video": torch.arange(q)}
    return model, batch


def test_bxb_flag_changes_only_the_counterfactual_hinges() -> None:
    from vidlang.models.base import TrainState

    out = {}
    for flag in (False, True):
        model, batch = _tiny_ccr(bxb_broadcast=flag)
        torch.manual_seed(7)
        out[flag] = model.training_losses(batch, TrainState(epoch=1, max_epochs=2))
    assert torch.equal(out[False]["rec"], out[True]["rec"]) and torch.equal(out[False]["div"], out[True]["div"])
    assert not torch.equal(out[False]["cf_rank"], out[True]["cf_rank"])
    cpl_hinges = out[False]["rank"] - out[False]["cf_rank"]
    assert torch.allclose(cpl_hinges, out[True]["rank"] - out[True]["cf_rank"])


def test_rank_logits_select_the_effect_used_at_inference() -> None:
    model, batch = _tiny_ccr()
    model.eval()
    with torch.no_grad():
        model.c.fill_(2.0)
    scores = {}
    for rank in ("tie", "te", "factual"):
        model.cfg.rank_logits = rank
        scores[rank] = model.proposal_losses(batch)[0]
    assert not torch.allclose(scores["tie"], scores["te"])
    assert not torch.allclose(scores["te"], scores["factual"])
    with torch.no_grad():
        model.c.zero_()
    model.cfg.rank_logits = "tie"
    tie0 = model.proposal_losses(batch)[0]
    model.cfg.rank_logits = "te"
    assert torch.allclose(tie0, model.proposal_losses(batch)[0])  # c = 0: TIE = TE
