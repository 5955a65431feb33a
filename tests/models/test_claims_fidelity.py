"""Issue 17 fidelity fixes on hand-checked cases: TPM-CL's release triplets and learned query
map, DMAE's fixed logit scale, att_ti's token-wise sentence half, NegNCE diagnostics, CCR's
context-aware query-only branch and TIE hinges, TempCLR's raw-dot clip logits, SynthVL's
verb-object gap."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from retrieval_toy import HashWordEncoder
from vidlang.errors import ConfigError, DataError
from vidlang.losses.contrastive import negnce_diagnostics
from vidlang.losses.cpl import label_smoothed_ce
from vidlang.losses.tpmcl import TPMCL, SequenceAxisMap, row_tokenwise_similarity
from vidlang.models.retrieval import (
    DMAE,
    DMAEConfig,
    DualEncoder,
    DualEncoderConfig,
    TextRepr,
    VideoRepr,
    att_ti_similarity,
)


class FixedWeights(nn.Module):
    """An importance predictor that returns given weights (to hand-check the triplets)."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.weights = weights

    def forward(self, query: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.weights


def test_row_tokenwise_similarity_hand_case() -> None:
    t = torch.tensor([[1.0, 0.0]])
    f = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]])
    full = torch.ones(1, 3, dtype=torch.bool)
    # sims 1, 0, 0.6: max 1, mean 1.6/3
    assert float(row_tokenwise_similarity(t, f, full)) == pytest.approx(0.5 * (1 + 1.6 / 3))
    first_pad = torch.tensor([[False, True, True]])
    assert float(row_tokenwise_similarity(t, f, first_pad)) == pytest.approx(0.5 * (0.6 + 0.3))


def test_release_tpmcl_triplets_use_token_wise_similarity() -> None:
    frames = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]])
    words = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]])
    sentence = torch.tensor([[1.0, 0.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    tp = TPMCL(2, partial_type=4, margin=0.6, max_frames=3, max_words=3)
    assert tp.scoring == "tokenwise" and tp.query_map == "learned"  # the release is the default
    tp.frame_importance = FixedWeights(torch.tensor([[0.5, 0.3, 0.2]]))
    tp.word_importance = FixedWeights(torch.tensor([[0.5, 0.3, 0.2]]))
    out = tp(sentence, words, mask, frames, mask)
    # 0.5 < 0.6 is removed, 0.8 is not: frame 0 and word 0 go
    assert out.frame_keep.tolist() == [[False, True, True]]
    assert out.word_keep.tolist() == [[False, True, True]]
    # term 1: s(t_cls, V) = (1 + 1.6/3)/2; s(t_cls, V') with frame 0 zeroed (still counted):
    # sims 0, 0, 0.6 -> (0.6 + 0.2)/2 = 0.4
    s_full, s_part = 0.5 * (1 + 1.6 / 3), 0.4
    assert float(out.terms[1]) == pytest.approx(0.6 - (s_full - s_part), abs=1e-6)
    # term 3: t_g = norm(0.5 w0 + 0.3 w1 + 0.2 w2) = norm(0.62, 0.46); t_g' = (0.12, 0.46) raw
    t_g = torch.tensor([0.62, 0.46]) / (0.62**2 + 0.46**2) ** 0.5
    t_gp = torch.tensor([0.12, 0.46])

    def s(t: torch.Tensor, fr: torch.Tensor) -> float:
        sims = [float(t @ x) for x in fr]
        return 0.5 * (max(sims) + sum(sims) / len(sims))

    s_g = s(t_g, frames[0])
    s_g_part = s(t_g, frames[0] * torch.tensor([[0.0], [1.0], [1.0]]))
    assert float(out.terms[2]) == pytest.approx(max(0.0, 0.6 - (s_g - s_g_part)), abs=1e-5)
    assert float(out.terms[3]) == pytest.approx(max(0.0, 0.6 - (s_g - s(t_gp, frames[0]))), abs=1e-5)
    assert set(out.active) == {1, 2, 3} and float(out.active[1]) == 1.0
    # the pooled (vidlang v1) form scores the same triplet differently
    tp.scoring = "pooled"
    from vidlang.losses.tpmcl import TRIPLET_SCORINGS

    pooled = TRIPLET_SCORINGS["pooled"](sentence, words, out.word_weights, out.word_keep, mask,
                                        frames, out.frame_weights, out.frame_keep, mask)
    assert float(pooled[1][0]) != pytest.approx(s_full, abs=1e-3)


def test_sequence_axis_map_hand_case_and_size_error() -> None:
    m = SequenceAxisMap(2, 3, "model.tpmcl_max_frames")
    with torch.no_grad():
        m.proj.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    x = torch.tensor([[[1.0], [2.0]]])
    out = m(x, torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))
    assert out.squeeze(-1).tolist() == [[1.0, 2.0, 3.0]]
    # padding on both sides: the padded source is zeroed, the padded target stays 0
    out = m(x, torch.tensor([[True, False]]), torch.tensor([[True, True, False]]))
    assert out.squeeze(-1).tolist() == [[1.0, 0.0, 0.0]]
    with pytest.raises(DataError, match="tpmcl_max_frames"):
        m(torch.zeros(1, 3, 1), torch.ones(1, 3, dtype=torch.bool), torch.ones(1, 3, dtype=torch.bool))


def test_learned_query_map_drives_frame_importance() -> None:
    torch.manual_seed(0)
    d = 4
    frames = F.normalize(torch.randn(2, 5, d), dim=-1)
    words = F.normalize(torch.randn(2, 3, d), dim=-1)
    sent = F.normalize(torch.randn(2, d), dim=-1)
    fm, wm = torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)
    tp = TPMCL(d, max_frames=8, max_words=4)
    before = tp(sent, words, wm, frames, fm).frame_weights
    with torch.no_grad():
        tp.text_to_frames.proj.weight.mul_(-3.0)
    after = tp(sent, words, wm, frames, fm).frame_weights
    assert not torch.allclose(before, after)
    with pytest.raises(ConfigError, match="tpmcl_query_map"):
        TPMCL(d, query_map="nearest")


def _stub(sentence_score: str) -> SimpleNamespace:
    return SimpleNamespace(cfg=SimpleNamespace(sentence_score=sentence_score, nfc_weight=0.5))


def test_att_ti_sentence_half_is_cls_token_wise_with_nfc() -> None:
    sentence = torch.tensor([[1.0, 0.0]])
    tokens = torch.tensor([[[0.0, 1.0]]])
    clips = torch.tensor([[[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]]])
    vmask = torch.ones(1, 3, dtype=torch.bool)
    pooled = F.normalize(clips.mean(1), dim=-1)
    text = TextRepr(sentence, tokens, torch.ones(1, 1, dtype=torch.bool), torch.ones(1, 1))
    video = VideoRepr(clips, vmask, pooled)
    # words half: token (0, 1): sims 0, 0.6, 1 -> best f2, its nearest other frame f1 (cos 0.6)
    # bonus 0.5 * 0.6 * 0.6 = 0.18; t2v 1.18; v2t = mean(0, 0.6, 1) = 1.6/3
    words = 0.5 * (1.18 + 1.6 / 3)
    # sentence half: sims 1, 0.8, 0 -> best f0, nearest other f1 (cos 0.8): bonus 0.5*0.8*0.8
    sent_tok = 0.5 * (1 + 0.32 + 1.8 / 3)
    got = att_ti_similarity(_stub("tokenwise"), text, video)  # type: ignore[arg-type]
    assert float(got) == pytest.approx(0.5 * (sent_tok + words), abs=1e-6)
    cos = float(sentence[0] @ pooled[0])
    got = att_ti_similarity(_stub("cosine"), text, video)  # type: ignore[arg-type]
    assert float(got) == pytest.approx(0.5 * (cos + words), abs=1e-6)


def test_dmae_defaults_to_the_release_fixed_scale_100() -> None:
    from vidlang.engine.config import load_config

    assert DMAEConfig().logit_scale_init == 100.0 and DMAEConfig().learn_logit_scale is False
    cfg = load_config("retrieval/synthvl_dmae_cpu", [])
    assert cfg.model.logit_scale_init == 100.0 and cfg.model.learn_logit_scale is False
    assert cfg.model.sentence_score == "tokenwise" and cfg.model.tpmcl_scoring == "tokenwise"
    model = DMAE(DMAEConfig(video_dim=6, embed_dim=4), text_encoder=HashWordEncoder(dim=8))
    assert float(model.scale()) == pytest.approx(100.0, rel=1e-5)
    assert not model.logit_scale.requires_grad
    # the dual encoder keeps its learned scale from 1/0.07
    base = DualEncoder(DualEncoderConfig(video_dim=6, embed_dim=4), text_encoder=HashWordEncoder(dim=8))
    assert float(base.scale()) == pytest.approx(1 / 0.07, rel=1e-5) and base.logit_scale.requires_grad


def test_negnce_diagnostics_hand_case() -> None:
    sim = torch.tensor([[0.5, 0.8], [0.1, 0.9]])
    # rows: (0,1) beats S00 -> hard; columns (transpose): (1,0) = 0.8 beats S00 -> hard
    d = negnce_diagnostics(100 * sim, sim, beta=0.5)
    assert d["hard_count"] == 2.0 and d["hard_fraction"] == 0.5
    assert 0.0 < d["grad_share"] < 1.0
    assert negnce_diagnostics(100 * sim, sim, beta=0.0)["grad_share"] == 0.0
    easy = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    assert negnce_diagnostics(100 * easy, easy) == {"hard_count": 0.0, "hard_fraction": 0.0,
                                                    "grad_share": 0.0}
    assert negnce_diagnostics(100 * sim, sim, beta=1.0)["grad_share"] > d["grad_share"]


# ---- CCR ---------------------------------------------------------------------------------

def _ccr(q_branch: str, **kw: object):  # noqa: ANN202
    from vidlang.models.ccr import CCR, CCRConfig

    torch.manual_seed(0)
    cfg = CCRConfig(frame_dim=8, num_clips=8, num_props_clips=8, hidden=16, ffn_dim=32, heads=2,
                    layers=1, word_dim=8, vocab_size=12, dropout=0.0, end_classifier=False,
                    q_branch=q_branch, **kw)
    return CCR(cfg)


def _toy_encoded(n_verbs: int = 4, reps: int = 8):  # noqa: ANN202
    """Sentences [start, verb_i, the, object_i]: the object is a function of the verb, two
    positions back; the q-branch position that predicts the object reads "the"."""
    from vidlang.models.blocks.transformer import sinusoidal_positions
    from vidlang.models.cpl import Encoded

    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(12, 16, generator=gen)
    the, start = 10, 11
    verbs = torch.arange(n_verbs).repeat(reps)
    objects = verbs + n_verbs
    ids = torch.stack([torch.full_like(verbs, start), verbs, torch.full_like(verbs, the), objects], 1)
    words = emb[ids] + sinusoidal_positions(4, 16, torch.device("cpu"))
    target = torch.stack([verbs, torch.full_like(verbs, the), objects, torch.zeros_like(verbs)], 1)
    q = len(verbs)
    ones = torch.ones(q, 4, dtype=torch.bool)
    zero = torch.zeros(q, 1)
    return Encoded(props=torch.zeros(q, 8, 16), words=words, target=target, loss_mask=ones,
                   key_mask=ones, center=zero, width=zero), objects


@pytest.mark.parametrize("branch", ["token", "causal"])
def test_query_only_branch_and_the_verb_object_shortcut(branch: str) -> None:
    model = _ccr(branch)
    enc, objects = _toy_encoded()
    params = list(model.q_heads["pos"].parameters())
    if model.q_context is not None:
        params += list(model.q_context.parameters())
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(150):
        loss = label_smoothed_ce(model.q_logits("pos", enc), enc.target, enc.loss_mask, 0.0).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = model.q_logits("pos", enc)[:, 2].argmax(-1)  # input "the" -> predicts the object
    acc = float((pred == objects).float().mean())
    if branch == "causal":
        assert acc == 1.0  # the context-aware branch learns verb -> object across "the"
    else:
        assert acc <= 0.25 + 1e-6  # one token of input: at best the marginal (1 of 4 objects)


def test_ccr_tie_hinge_term_hand_case() -> None:
    enc, _ = _toy_encoded(reps=1)
    logits = torch.randn(4, 4, 13)
    rows = torch.arange(4)
    model = _ccr("token", hinge_effect="tie")
    with torch.no_grad():
        for head in model.q_heads.values():
            head.weight.zero_()
            head.bias.zero_()
        model.c.fill_(0.0)
    terms = model.branch_terms("pos", logits, enc, rows)
    # q = 0 -> sigma(q) = 1/2; c = 0 -> TIE = v / 2
    expect = label_smoothed_ce(0.5 * logits, enc.target, enc.loss_mask, model.cfg.label_smoothing)
    torch.testing.assert_close(terms["tie"], expect)
    assert "tie" not in _ccr("token").branch_terms("pos", logits, enc, rows)
    with pytest.raises(ConfigError, match="hinge_effect"):
        _ccr("token", hinge_effect="te")


# ---- TempCLR, SynthVL --------------------------------------------------------------------

def test_raw_video_and_text_vectors_are_unnormalised_projections() -> None:
    model = DualEncoder(DualEncoderConfig(video_dim=3, embed_dim=2), text_encoder=HashWordEncoder(dim=4))
    feats = torch.randn(2, 3, 3)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    proj = model.video_proj(feats)
    expect = torch.stack([proj[0, :2].mean(0), proj[1].mean(0)])
    torch.testing.assert_close(model.raw_video(feats, mask), expect)
    enc = model.text_encoder(["a dog"])
    torch.testing.assert_close(model.raw_text(["a dog"]), model.text_proj(enc.sentence))


def test_tempclr_clip_logits_option() -> None:
    from vidlang.models.tempclr import CLIP_LOGITS, TempCLRConfig

    assert TempCLRConfig().clip_logits == "scaled_cosine"
    stub = SimpleNamespace(raw_text=lambda texts: torch.tensor([[1.0, 2.0], [0.0, 3.0]]),
                           raw_video=lambda f, m: torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
    got = CLIP_LOGITS["dot"](stub, {"seg_texts": ["a", "b"], "seg_feats": None, "seg_mask": None},
                             None, None)
    assert got.tolist() == [[2.0, 3.0], [0.0, 3.0]]  # raw dot products, no temperature


def test_synthvl_verb_object_gap(tmp_path: Path) -> None:
    from vidlang.data.synthvl.config import make_config
    from vidlang.data.synthvl.generate import generate
    from vidlang.data.synthvl.vocab import clause_of

    assert clause_of("open", "door", 0) == "opens door"
    assert clause_of("open", "door") == "opens the door"
    assert clause_of("open", "door", 2) == "opens the same door"
    with pytest.raises(ConfigError, match="verb_object_gap"):
        make_config("tiny", verb_object_gap=4)
    root = generate(tmp_path / "g0", preset="tiny", seed=0, verb_object_gap=0)
    videos = [json.loads(x) for x in (root / "videos_train.jsonl").read_text().splitlines()]
    for v in videos[:10]:
        for ev, sentence in zip(v["events"], v["paragraph"]["sentences"]):
            assert ev["phrase"].split()[-1] == ev["object"] and "the" not in ev["phrase"].split()
            assert f" {ev['object']}" in sentence
