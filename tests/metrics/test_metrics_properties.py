"""Property tests (hypothesis): monotonicity of R@n, permutation invariance, perfect = 100,
IoU symmetric and bounded."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vidlang.metrics import evaluate_grounding, retrieval_metrics, temporal_iou

SETTINGS = settings(max_examples=25, deadline=None)
THRESHOLDS = (0.1, 0.3, 0.5, 0.7, 0.9)


@st.composite
def window(draw, duration=60.0):
    s = draw(st.floats(0, duration - 1, allow_nan=False))
    length = draw(st.floats(0.5, duration, allow_nan=False))
    return [s, min(s + length, duration)]


@st.composite
def grounding_case(draw):
    n = draw(st.integers(1, 8))
    gts, preds = [], []
    for q in range(n):
        gts.append({"qid": q, "duration": 60.0,
                    "relevant_windows": draw(st.lists(window(), min_size=1, max_size=3))})
        wins = draw(st.lists(window(), min_size=0, max_size=8))
        scores = draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=len(wins), max_size=len(wins)))
        preds.append({"qid": q, "pred_relevant_windows": [w + [s] for w, s in zip(wins, scores)]})
    return preds, gts


@SETTINGS
@given(st.lists(window(), min_size=1, max_size=6), st.lists(window(), min_size=1, max_size=6))
def test_iou_symmetric_and_bounded(a, b):
    ab, ba = temporal_iou(a, b), temporal_iou(b, a)
    np.testing.assert_array_equal(ab, ba.T)
    assert np.all((ab >= 0) & (ab <= 1))


@SETTINGS
@given(grounding_case(), st.sampled_from(["mmn", "2dtan", "cpl"]))
def test_recall_monotone_in_n_and_threshold(case, preset):
    preds, gts = case
    m = evaluate_grounding(preds, gts, preset, thresholds=THRESHOLDS, recall_at=(1, 2, 5, 10),
                           clamp_gt=False)
    op = ">=" if preset != "2dtan" else ">"
    for thr in THRESHOLDS:
        row = [v for k, v in m.items() if k.startswith("R@") and f"IoU{op}{thr:g} " in k]
        assert len(row) == 4 and row == sorted(row), f"R@n must not decrease with n at {thr}: {row}"
    for n in (1, 2, 5, 10):
        col = [m[k] for k in m if k.startswith(f"R@{n},")]
        assert col == sorted(col, reverse=True), f"R@{n} must not increase with the threshold"


@SETTINGS
@given(grounding_case(), st.randoms(use_true_random=False), st.sampled_from(["mmn", "2dtan", "cpl"]))
def test_permuting_queries_changes_nothing(case, rnd, preset):
    preds, gts = case
    shuffled_p, shuffled_g = preds[:], gts[:]
    rnd.shuffle(shuffled_p)
    rnd.shuffle(shuffled_g)
    assert evaluate_grounding(preds, gts, preset) == evaluate_grounding(shuffled_p, shuffled_g, preset)


@SETTINGS
@given(grounding_case(), st.sampled_from(["mmn", "2dtan", "cpl", "moment_detr"]))
def test_perfect_predictions_score_100(case, preset):
    _, gts = case
    perfect = [{"qid": g["qid"], "pred_relevant_windows": [g["relevant_windows"][0] + [1.0]]}
               for g in gts]
    m = evaluate_grounding(perfect, gts, preset)
    for k, v in m.items():
        if k.startswith(("R@", "mIoU", "MR-full-R1")):
            assert v == 100.0, k


@SETTINGS
@given(st.integers(2, 12), st.integers(0, 2**31 - 1), st.sampled_from(["average", "optimistic", "pessimistic"]))
def test_retrieval_permutation_and_monotonicity(n, seed, ties):
    rng = np.random.default_rng(seed)
    sim = rng.integers(0, 4, size=(n, n)).astype(float)  # small integers: many ties
    m = retrieval_metrics(sim, ties=ties, ks=(1, 2, 5, 10))
    perm = rng.permutation(n)
    # permuting texts and videos together keeps every pair: nothing may change
    assert retrieval_metrics(sim[perm][:, perm], ties=ties, ks=(1, 2, 5, 10)) == m
    for d in ("t2v", "v2t"):
        r = [m[f"{d} R@{k} [ties={ties}]"] for k in (1, 2, 5, 10)]
        assert r == sorted(r)
    assert retrieval_metrics(np.eye(n), ties=ties)[f"t2v R@1 [ties={ties}]"] == 100.0
