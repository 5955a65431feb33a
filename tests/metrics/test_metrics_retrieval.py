"""Hand-computed retrieval ranks: ties, multi-caption t2v / v2t conventions, DSL, QB-Norm."""

from __future__ import annotations

import numpy as np
import pytest

from vidlang.errors import ConfigError, DataError
from vidlang.metrics import dual_softmax, qb_norm, retrieval_metrics

TIED = np.array([[1.0, 0.0, 0.0],
                 [0.5, 0.5, 0.0],
                 [0.0, 0.0, 1.0]])


def test_tie_modes_on_a_two_way_tie():
    # text 1 ties its GT video 1 with video 0: optimistic rank 0, pessimistic 1, average 0.5
    avg = retrieval_metrics(TIED, ks=(1, 2))
    assert avg["t2v R@1 [ties=average]"] == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    assert avg["t2v R@2 [ties=average]"] == 100.0
    assert avg["t2v MnR [ties=average]"] == pytest.approx((1 + 1.5 + 1) / 3)
    assert avg["t2v MdR [ties=average]"] == 1.0
    opt = retrieval_metrics(TIED, ties="optimistic", ks=(1,))
    pes = retrieval_metrics(TIED, ties="pessimistic", ks=(1,))
    assert opt["t2v R@1 [ties=optimistic]"] == 100.0
    assert pes["t2v R@1 [ties=pessimistic]"] == pytest.approx(200 / 3)
    assert pes["t2v MnR [ties=pessimistic]"] == pytest.approx(4 / 3)
    # v2t ranks columns: video 0's GT text 0 (1.0) beats 0.5 -> no tie
    assert avg["v2t R@1 [ties=average]"] == 100.0
    with pytest.raises(ConfigError, match="ties"):
        retrieval_metrics(TIED, ties="random")


# 4 captions of 2 videos: captions 0, 1 -> video 0; captions 2, 3 -> video 1
MULTI = np.array([[0.9, 0.9],
                  [0.2, 0.8],
                  [0.8, 0.7],
                  [0.0, 0.1]])
OWNER = [0, 0, 1, 1]


def test_multi_caption_t2v_every_caption_is_a_query():
    m = retrieval_metrics(MULTI, OWNER, ks=(1, 2))
    # ranks: 0.5 (tie), 1, 1, 0
    assert m["t2v queries [ties=average]"] == 4
    assert m["t2v R@1 [ties=average]"] == pytest.approx(100 * 1.5 / 4)
    assert m["t2v MnR [ties=average]"] == pytest.approx(1 + 2.5 / 4)


def test_multi_caption_v2t_maxpool_versus_best_caption():
    pooled = retrieval_metrics(MULTI, OWNER, ks=(1, 2, 5))
    best = retrieval_metrics(MULTI, OWNER, v2t_mode="best_caption", ks=(1, 2, 5))
    # maxpool: groups [0.9, 0.9] / [0.8, 0.7]; video 1's column [0.9, 0.7] -> its group ranks 2nd
    assert pooled["v2t R@1 [maxpool,ties=average]"] == 50.0
    assert pooled["v2t MnR [maxpool,ties=average]"] == 1.5
    # best caption: video 1's column [0.9, 0.8 | 0.7, 0.1]: two foreign captions above 0.7
    assert best["v2t R@1 [best_caption,ties=average]"] == 50.0
    assert best["v2t R@2 [best_caption,ties=average]"] == 50.0
    assert best["v2t MnR [best_caption,ties=average]"] == 2.0
    # the engine's aliases name the same conventions
    assert retrieval_metrics(MULTI, OWNER, v2t_mode="groups") == retrieval_metrics(MULTI, OWNER)
    assert retrieval_metrics(MULTI, OWNER, v2t_mode="best") == retrieval_metrics(
        MULTI, OWNER, v2t_mode="best_caption")


def test_video_without_caption_is_skipped_and_counted():
    sim = np.array([[0.9, 0.1, 0.3], [0.2, 0.8, 0.1]])
    m = retrieval_metrics(sim, [0, 1], ks=(1,))
    assert m["v2t queries [maxpool,ties=average]"] == 2
    assert m["v2t skipped (no caption) [maxpool]"] == 1
    assert m["v2t R@1 [maxpool,ties=average]"] == 100.0


def test_dsl_is_reported_separately_and_can_change_ranks():
    sim = np.array([[0.9, 0.5], [0.8, 0.7]])
    # prior over queries: column 0 softmax([9, 8]) = [0.731, 0.269], column 1 [0.119, 0.881]
    expected = sim * np.array([[0.7310586, 0.1192029], [0.2689414, 0.8807971]])
    np.testing.assert_allclose(dual_softmax(sim, 0.1), expected, rtol=1e-6)
    m = retrieval_metrics(sim, ks=(1,), postproc="dsl", dsl_temperature=0.1)
    assert m["t2v R@1 [ties=average]"] == 50.0  # raw numbers first, unchanged
    assert m["t2v R@1 [dsl,transductive,ties=average]"] == 100.0


def test_qb_norm_rescoring_only_for_queries_hitting_the_activation_set():
    bank = np.array([[0.9, 0.1], [0.8, 0.2]])  # both bank queries pick video 0
    sim = np.array([[0.5, 0.45], [0.1, 0.3]])
    out = qb_norm(sim, bank, beta=20.0)
    lse = np.log(np.exp(20 * bank).sum(axis=0))
    np.testing.assert_allclose(out[0], 20 * sim[0] - lse)
    np.testing.assert_array_equal(out[1], sim[1])  # top-1 is video 1, not in the set
    m = retrieval_metrics(sim[:, ::-1].copy(), ks=(1,), postproc="qbnorm", bank_sim=bank[:, ::-1].copy())
    # raw: both texts miss (0.45 < 0.5, 0.1 < 0.3); QB-Norm lifts text 0 (its top-1 is in the
    # activation set), text 1's top-1 is not, so it keeps its scores and still misses
    assert m["t2v R@1 [ties=average]"] == 0.0
    assert m["t2v R@1 [qbnorm,ties=average]"] == 50.0
    assert not any(k.startswith("v2t") and "qbnorm" in k for k in m)  # no video querybank given
    with pytest.raises(ConfigError, match="bank_sim"):
        retrieval_metrics(sim, postproc="qbnorm")


def test_bad_inputs_are_named():
    with pytest.raises(DataError, match="needs a text-to-video map"):
        retrieval_metrics(np.zeros((2, 3)))
    with pytest.raises(DataError, match="NaN at row 1, column 0"):
        retrieval_metrics(np.array([[1.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(DataError, match="text row 1 maps to video 5"):
        retrieval_metrics(np.zeros((2, 2)), [0, 5])
    with pytest.raises(ConfigError, match="v2t_mode"):
        retrieval_metrics(np.eye(2), v2t_mode="mean")
