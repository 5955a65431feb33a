"""TPM-CL masking and margins, DMAE textual/visual attention, temporal aggregators."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vidlang.errors import ConfigError
from vidlang.losses.tpmcl import TPMCL, margin_ranking, partial_keep_mask, resample_sequence
from vidlang.models.blocks.temporal import TEMPORAL_MODULES, masked_mean
from vidlang.models.blocks.token_sim import (
    TWM_UNITS,
    nearest_other_frame,
    normalise_weights,
    release_character_weights,
    token_wise_similarity,
    word_level_weights,
)


def test_partial_mask_removes_top_tokens_below_fraction() -> None:
    w = torch.tensor([[0.1, 0.4, 0.3, 0.2], [0.25, 0.25, 0.25, 0.25]])
    mask = torch.ones(2, 4, dtype=torch.bool)
    keep = partial_keep_mask(w, mask, 0.6)
    # row 0: sorted 0.4 (cum 0.4 < 0.6) removed, 0.3 (cum 0.7) kept
    assert keep[0].tolist() == [True, False, True, True]
    # row 1: cum 0.25, 0.5 < 0.6 -> two removed
    assert int(keep[1].sum()) == 2
    removed = (w * (~keep).float()).sum(1)
    assert bool((removed < 0.6).all())


def test_partial_mask_ignores_padding() -> None:
    w = torch.tensor([[0.5, 0.5, 0.0]])
    mask = torch.tensor([[True, True, False]])
    keep = partial_keep_mask(w, mask, 0.6)
    assert keep.tolist() == [[False, True, False]]


def test_tpmcl_terms_follow_partial_type_and_margin() -> None:
    torch.manual_seed(0)
    b, length, t, d = 3, 5, 4, 8
    sent = F.normalize(torch.randn(b, d), dim=-1)
    words = F.normalize(torch.randn(b, length, d), dim=-1)
    frames = F.normalize(torch.randn(b, t, d), dim=-1)
    wm = torch.ones(b, length, dtype=torch.bool)
    wm[0, 3:] = False
    fm = torch.ones(b, t, dtype=torch.bool)
    full = TPMCL(d, partial_type=4, margin=0.6, scoring="pooled", query_map="interpolate")
    with torch.no_grad():
        out = full(sent, words, wm, frames, fm)
    assert sorted(out.terms) == [1, 2, 3]
    assert torch.allclose(out.word_weights.sum(1), torch.ones(b))
    assert float(out.word_weights[0, 3:].abs().sum()) == 0.0
    # recompute term 1 by hand from the exposed weights and masks
    v = F.normalize((out.frame_weights[..., None] * frames).sum(1), dim=-1)
    v_part = F.normalize(((out.frame_weights * out.frame_keep)[..., None] * frames).sum(1), dim=-1)
    s_pos, s_neg = (sent * v).sum(-1), (sent * v_part).sum(-1)
    assert float(out.terms[1]) == pytest.approx(float((0.6 - s_pos + s_neg).clamp_min(0).mean()),
                                                abs=1e-6)
    assert float(out.loss) == pytest.approx(sum(float(x) for x in out.terms.values()), abs=1e-6)
    only3 = TPMCL(d, partial_type=3, scoring="pooled", query_map="interpolate")
    only3.load_state_dict(full.state_dict())
    assert sorted(only3(sent, words, wm, frames, fm).terms) == [3]
    with pytest.raises(ConfigError, match="tpmcl_partial_type"):
        TPMCL(d, partial_type=5)


def test_margin_ranking_hinge() -> None:
    pos, neg = torch.tensor([1.0, 0.2]), torch.tensor([0.0, 0.1])
    # pair 0 beats by 1.0 > 0.6 -> 0; pair 1 by 0.1 -> 0.5
    assert float(margin_ranking(pos, neg, 0.6)) == pytest.approx(0.25)


def test_resample_sequence_maps_frames_onto_words() -> None:
    x = torch.tensor([[[0.0], [2.0], [9.0]]])
    xm = torch.tensor([[True, True, False]])
    tm = torch.tensor([[True, True, True, False]])
    out = resample_sequence(x, xm, tm)
    assert out[0, :, 0].tolist() == pytest.approx([0.0, 1.0, 2.0, 0.0])


def test_word_level_weights_share_weight_across_wordpieces() -> None:
    words = [["[CLS]", "the", "danc", "##ing", "dog", "[SEP]"], ["a", "cat"]]
    def content(ws: list[str]) -> list[bool]:
        assert "[CLS]" not in ws  # special tokens never reach the tagger
        return [w in {"dancing", "dog", "cat"} for w in ws]

    w = word_level_weights(words, 6, content, 2.0)
    assert w[0].tolist() == [1, 1, 2, 2, 2, 1]
    assert w[1].tolist() == [1, 2, 0, 0, 0, 0]
    mask = torch.tensor([[True] * 6, [True, True] + [False] * 4])
    n = normalise_weights(w, mask)
    assert n[1, :2].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert torch.allclose(n.sum(1), torch.ones(2))


def test_release_character_twm_only_fires_on_single_character_tokens() -> None:
    words = [["[CLS]", "a", "danc", "##ing", "dog", "x", "[SEP]"]]
    w = release_character_weights(words, 7, lambda ws: [True] * len(ws), 2.0)
    assert w[0].tolist() == [1, 2, 1, 1, 1, 2, 1]
    assert TWM_UNITS["word"] is word_level_weights


def test_token_wise_similarity_hand_case_with_nfc() -> None:
    e = torch.eye(3)
    frames = torch.stack([e[0], F.normalize(e[0] + e[1], dim=0), e[2]])[None]  # [1, 3, 3]
    fm = torch.ones(1, 3, dtype=torch.bool)
    tokens = torch.stack([e[0], e[2]])[None]  # two words
    tm = torch.ones(1, 2, dtype=torch.bool)
    tw = torch.tensor([[0.75, 0.25]])
    idx, cos, ok = nearest_other_frame(frames, fm)
    assert idx[0, :2].tolist() == [1, 0] and float(cos[0, 2]) == pytest.approx(0.0, abs=1e-6)
    c = 1 / 2 ** 0.5
    plain = token_wise_similarity(tokens, tw, tm, frames, fm, nfc_weight=0.0)
    # t2v: word0 best 1.0 (frame 0), word1 best 1.0 (frame 2) -> 1.0; v2t: frames max 1, c, 1
    assert float(plain) == pytest.approx(0.5 * (1.0 + (2 + c) / 3), abs=1e-6)
    nfc = token_wise_similarity(tokens, tw, tm, frames, fm, nfc_weight=0.5)
    # word0: f*=0, f'=1 (cos c), sim(word0, f1) = c -> + 0.5 * c * c = 0.25 (weight 0.75)
    # word1: f*=2, nearest other frame has cos 0 -> + 0
    assert float(nfc - plain) == pytest.approx(0.5 * 0.75 * 0.25, abs=1e-6)


def test_nearest_other_frame_single_frame_has_none() -> None:
    frames = F.normalize(torch.randn(1, 3, 4), dim=-1)
    fm = torch.tensor([[True, False, False]])
    _, cos, ok = nearest_other_frame(frames, fm)
    assert not bool(ok.any()) and float(cos.abs().sum()) == 0.0


@pytest.mark.parametrize("name", ["meanP", "seqTransf"])
def test_temporal_modules_respect_padding(name: str) -> None:
    torch.manual_seed(0)
    mod = TEMPORAL_MODULES.get(name)(8, 1, 2, 16).eval()
    x = torch.randn(1, 5, 8)
    mask = torch.tensor([[True, True, True, False, False]])
    a = masked_mean(mod(x, mask), mask)
    x2 = x.clone()
    x2[0, 3:] = 100.0  # padding content must not matter
    b = masked_mean(mod(x2, mask), mask)
    assert torch.allclose(a, b, atol=1e-5)
