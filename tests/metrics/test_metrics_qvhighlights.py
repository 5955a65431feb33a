"""QVHighlights evaluator against the real val GT and moment_detr's golden sample output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidlang.metrics import evaluate_qvhighlights
from vidlang.metrics.ap import detection_ap, ranking_ap
from vidlang.metrics.inputs import load_jsonl


@pytest.fixture(scope="module")
def qvh(shared_data):
    d = shared_data / "qvhighlights"
    return (load_jsonl(d / "highlight_val_release.jsonl"),
            load_jsonl(d / "moment_detr_sample_val_preds.jsonl"),
            json.loads((d / "moment_detr_sample_val_preds_metrics_raw.json").read_text()))


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}/")
        else:
            yield f"{prefix}{k}", v


def test_golden_sample_reproduces_official_output(qvh):
    gt, preds, official = qvh
    ours = evaluate_qvhighlights(preds, gt)
    assert list(ours) == list(official) and list(ours["brief"]) == list(official["brief"])
    assert ours["brief"] == official["brief"]
    assert dict(_leaves(ours)) == dict(_leaves(official))


def test_ground_truth_as_predictions_scores_100(qvh):
    gt, _, _ = qvh
    perfect = [{"qid": g["qid"], "pred_relevant_windows": [w + [1.0] for w in g["relevant_windows"]]}
               for g in gt]
    res = evaluate_qvhighlights(perfect, gt)
    assert set(res["full"]["MR-R1"].values()) == {100.0}
    # moment_detr scores only the first 10 windows, so the 13 val queries with more than 10 GT
    # windows reach recall 10 / G at best: AP = min(1, 10 / G) (99.76, not 100)
    expected = round(100 * float(np.mean([min(1.0, 10 / len(g["relevant_windows"])) for g in gt])), 2)
    assert expected < 100.0
    assert set(res["full"]["MR-mAP"].values()) == {expected}
    # without those queries it is exactly 100
    few = [g for g in gt if len(g["relevant_windows"]) <= 10]
    few_ids = {g["qid"] for g in few}
    res = evaluate_qvhighlights([p for p in perfect if p["qid"] in few_ids], few)
    assert set(res["full"]["MR-mAP"].values()) == {100.0}
    assert res["brief"]["MR-full-mAP"] == 100.0 and res["brief"]["MR-full-R1@0.7"] == 100.0


def test_shifted_predictions_match_hand_computation(qvh):
    gt, _, _ = qvh
    # shift each query's first GT window by a quarter of its length: IoU with it is
    # (L - L/4) / (L + L/4) = 0.6, and it cannot reach 0.6 with any other GT window
    preds = []
    for g in gt:
        s, e = g["relevant_windows"][0]
        d = (e - s) / 4
        preds.append({"qid": g["qid"], "pred_relevant_windows": [[s + d, e + d, 1.0]]})
    res = evaluate_qvhighlights(preds, gt)["full"]
    assert res["MR-R1"]["0.5"] == 100.0 and res["MR-R1"]["0.55"] == 100.0
    assert all(res["MR-R1"][t] == 0.0 for t in ("0.65", "0.7", "0.8", "0.95"))
    # one true positive among G GT windows: AP = 1 / G at IoU 0.5, 0 from 0.65 on
    expected = round(100 * float(np.mean([1 / len(g["relevant_windows"]) for g in gt])), 2)
    assert res["MR-mAP"]["0.5"] == expected
    assert res["MR-mAP"]["0.7"] == 0.0


def test_detection_ap_hand_case():
    # GT [0,10] and [20,30]; predictions by score: [0,10] (TP), [1,10] (duplicate: FP), [20,30] (TP)
    pred = np.array([[[0, 10], [1, 10], [20, 30]]], dtype=float)
    scores = np.array([[0.9, 0.8, 0.7]])
    gt = np.array([[[0, 10], [20, 30]]], dtype=float)
    ap = detection_ap(pred, scores, np.ones((1, 3), bool), gt, np.ones((1, 2), bool), np.array([0.5]))
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope: 1 for the first half, 2/3 after
    assert ap[0, 0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_ranking_ap_hand_case_with_ties():
    # scores 3 (pos), 2 (neg), 2 (pos), 1 (neg): the tied pair is one operating point
    scores = np.array([[3.0, 2.0, 2.0, 1.0]])
    labels = np.array([[True, False, True, False]])
    ap = ranking_ap(scores, labels, np.ones((1, 4), bool))
    # operating points: (P 1, R 1/2), (P 2/3, R 1), (P 1/2, R 1) -> mean over recall changes
    assert ap[0] == pytest.approx((1.0 + 2 / 3) / 2)
    assert ranking_ap(scores, np.zeros((1, 4), bool), np.ones((1, 4), bool))[0] == 0.0
