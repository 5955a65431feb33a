"""Hand-computed grounding cases: IoU, NMS, >= vs >, caps, multi-GT, clamping, time bases."""

from __future__ import annotations

import numpy as np
import pytest

from vidlang.data.records import GroundingRecord
from vidlang.errors import ConfigError, DataError
from vidlang.metrics import (
    evaluate_grounding,
    evaluate_grounding_detailed,
    nms,
    nms_windows,
    resolve_convention,
    soft_nms,
    temporal_iou,
)


def gt(qid, windows, duration=100.0):
    return {"qid": qid, "duration": duration, "relevant_windows": windows}


def pred(qid, windows):
    return {"qid": qid, "pred_relevant_windows": windows}


def test_temporal_iou_hand_values():
    iou = temporal_iou([[0, 10], [5, 15], [0, 5]], [[0, 10], [5, 10], [20, 30]])
    expected = np.array([[1.0, 0.5, 0.0], [5 / 15, 0.5, 0.0], [0.5, 0.0, 0.0]])
    np.testing.assert_allclose(iou, expected)
    # identical points have no union: IoU 0, not NaN; touching windows do not overlap
    assert temporal_iou([[3, 3]], [[3, 3]])[0, 0] == 0.0
    assert temporal_iou([[0, 5]], [[5, 9]])[0, 0] == 0.0
    np.testing.assert_allclose(temporal_iou([[0, 10]], [[5, 15]], union="sum"), [[1 / 3]])


def test_nms_suppresses_strictly_above_threshold_and_caps():
    windows = np.array([[0, 10], [1, 10], [0, 5], [20, 30]], dtype=float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # [1,10] has IoU 0.9 with [0,10] -> dropped; [0,5] has IoU exactly 0.5 -> kept (> only)
    assert nms(windows, scores, 0.5).tolist() == [0, 2, 3]
    assert nms(windows, scores, 0.5, topk=2).tolist() == [0, 2]
    assert nms(windows, scores, 0.4).tolist() == [0, 3]
    assert nms(windows, scores, 1.0).tolist() == [0, 1, 2, 3]
    # ranking follows the scores, not the input order; ties keep input order
    assert nms(windows[::-1], scores[::-1], 0.5).tolist() == [3, 1, 0]
    assert nms([[0, 1], [5, 6]], [0.5, 0.5], 0.5).tolist() == [0, 1]


def test_soft_nms_decays_instead_of_dropping():
    windows = np.array([[0, 10], [0, 9], [20, 30]], dtype=float)
    scores = np.array([1.0, 0.9, 0.8])
    # [0,9] decays to 0.9 * exp(-0.81 / 0.5) = 0.178 < 0.8, so [20,30] comes second
    assert soft_nms(windows, scores, sigma=0.5).tolist() == [0, 2, 1]


def test_ge_versus_gt_at_the_boundary():
    # IoU of [0,5] with [0,10] is exactly 0.5
    g, p = [gt(1, [[0, 10]])], [pred(1, [[0, 5, 1.0]])]
    ge = evaluate_grounding(p, g, "mmn", thresholds=[0.5], clamp_gt=False)
    strict = evaluate_grounding(p, g, "2dtan", thresholds=[0.5])
    assert ge["R@1,IoU>=0.5 [mmn*]"] == 100.0
    assert strict["R@1,IoU>0.5 [2dtan*]"] == 0.0
    assert evaluate_grounding(p, g, "mmn", iou_op="gt", thresholds=[0.5])["R@1,IoU>0.5 [mmn*]"] == 0.0


def test_nms_and_cap_change_r5():
    g = [gt(1, [[20, 30]])]
    p = [pred(1, [[0, 10, 0.9], [1, 10, 0.8], [0, 5, 0.7], [2, 9, 0.65], [1, 8, 0.62],
                  [3, 10, 0.61], [20, 30, 0.6]])]
    # NMS 0.5 keeps [0,10], [0,5], [20,30]: the GT window is the 3rd survivor
    mmn = evaluate_grounding(p, g, "mmn", thresholds=[0.5])
    assert mmn["R@1,IoU>=0.5 [mmn*]"] == 0.0 and mmn["R@5,IoU>=0.5 [mmn*]"] == 100.0
    # without NMS the 7th window is out of the top 5
    no_nms = evaluate_grounding(p, g, "mmn", thresholds=[0.5], nms_thresh=None)
    assert no_nms["R@5,IoU>=0.5 [mmn*]"] == 0.0
    # a cap of 2 after NMS drops it again
    capped = evaluate_grounding(p, g, "mmn", thresholds=[0.5], topk_cap=2)
    assert capped["R@5,IoU>=0.5 [mmn*]"] == 0.0


def test_miou_top1_and_best_of_k_and_multi_gt():
    # two GT windows: a prediction's IoU is its best over them
    g = [gt("a", [[0, 10], [20, 30]]), gt("b", [[50, 60]])]
    p = [pred("a", [[20, 28, 0.9], [0, 10, 0.5]]), pred("b", [[40, 50, 0.9], [50, 55, 0.8]])]
    m = evaluate_grounding(p, g, "cpl", thresholds=[0.5, 0.9])
    # a: top-1 [20,28] -> 0.8 against [20,30]; b: top-1 [40,50] -> 0, best of 2 -> 0.5
    assert m["mIoU [cpl*]"] == pytest.approx(100 * (0.8 + 0.0) / 2)
    assert m["mIoU,best-of-5 [cpl*]"] == pytest.approx(100 * (1.0 + 0.5) / 2)
    assert m["R@1,IoU>=0.5 [cpl*]"] == 50.0 and m["R@5,IoU>=0.5 [cpl*]"] == 100.0
    assert m["R@5,IoU>=0.9 [cpl*]"] == 50.0


def test_clamp_gt_and_skipped_queries_are_counted():
    g = [gt(1, [[25, 35]], duration=30), gt(2, [[40, 50]], duration=30)]
    p = [pred(1, [[25, 30, 1.0]]), pred(2, [[0, 5, 1.0]])]
    res = evaluate_grounding_detailed(p, g, "mmn")
    # mmn clamps [25,35] to [25,30] (IoU 1) and skips query 2 (nothing left inside [0, 30])
    assert res.metrics["R@1,IoU>=0.7 [mmn]"] == 100.0
    assert res.metrics["queries [mmn]"] == 1 and res.metrics["skipped [mmn]"] == 1
    assert res.skipped[0][0] == "2" and "duration" in res.skipped[0][1]
    # 2D-TAN does not clamp: IoU of [25,30] with [25,35] is 0.5; query 2 is a miss
    raw = evaluate_grounding(p, g, "2dtan", thresholds=[0.3])
    assert raw["R@1,IoU>0.3 [2dtan*]"] == 50.0 and raw["skipped [2dtan*]"] == 0


def test_normalised_time_base_clips_predictions():
    g, p = [gt(1, [[20, 30]], duration=30)], [pred(1, [[20, 40, 1.0]])]
    assert evaluate_grounding(p, g, "cpl")["mIoU [cpl]"] == pytest.approx(100.0)
    assert evaluate_grounding(p, g, "cpl", time_base="seconds")["mIoU [cpl*]"] == pytest.approx(50.0)


def test_list_order_without_scores_and_moment_detr_ranking():
    g = [gt(1, [[0, 10]])]
    # two-column windows: list order is the ranking
    assert evaluate_grounding([pred(1, [[50, 60], [0, 10]])], g, "cpl")["R@1,IoU>=0.5 [cpl]"] == 0.0
    # moment_detr takes the first listed window even if a later one scores higher
    p = [pred(1, [[50, 60, 0.1], [0, 10, 0.9]])]
    assert evaluate_grounding(p, g, "mmn")["R@1,IoU>=0.5 [mmn]"] == 100.0
    md = evaluate_grounding(p, g, "moment_detr")
    assert md["R@1,IoU>=0.5 [moment_detr]"] == 0.0
    assert md["MR-full-R1@0.5 [moment_detr]"] == 0.0
    assert md["MR-full-mAP@0.5 [moment_detr]"] == 100.0  # mAP re-sorts by score


def test_presets_datasets_and_tags():
    assert resolve_convention("mmn", "tacos").nms_thresh == 0.4
    tacos = evaluate_grounding([pred(1, [[0, 10, 1.0]])], [gt(1, [[0, 10]])], "mmn", dataset="tacos")
    assert {k for k in tacos if k.startswith("R@1")} == {
        "R@1,IoU>=0.1 [mmn]", "R@1,IoU>=0.3 [mmn]", "R@1,IoU>=0.5 [mmn]"}
    assert resolve_convention("2dtan", "charades_sta").nms_thresh == 0.45
    assert resolve_convention("qvh").name == "moment_detr"
    # an override that repeats the preset's value keeps the plain tag
    assert resolve_convention("mmn", iou_op="ge").tag == "[mmn]"
    assert resolve_convention("mmn", iou_op="gt").tag == "[mmn*]"
    with pytest.raises(ConfigError, match="known: 2dtan, cpl, mmn"):
        resolve_convention("nope")
    with pytest.raises(ConfigError, match="unknown grounding option 'nms'"):
        resolve_convention("mmn", nms=0.3)
    with pytest.raises(ConfigError, match="iou_op"):
        resolve_convention("mmn", iou_op="gte")
    with pytest.raises(ConfigError, match="no cpl settings"):
        resolve_convention("cpl", "tacos")


def test_records_are_accepted_and_bad_input_is_named():
    rec = GroundingRecord("q1", "v", 30.0, "a query", ((0.0, 10.0),))
    m = evaluate_grounding([pred("q1", [[0, 10, 1.0]])], [rec], "mmn")
    assert m["R@1,IoU>=0.7 [mmn]"] == 100.0
    with pytest.raises(DataError, match=r"2 ground-truth qids have no prediction: b, c"):
        evaluate_grounding([pred("a", [[0, 1, 1]])], [gt("a", [[0, 1]]), gt("b", [[0, 1]]),
                                                      gt("c", [[0, 1]])])
    with pytest.raises(DataError, match=r"record a.*ends before it starts"):
        evaluate_grounding([pred("a", [[5, 1, 1]])], [gt("a", [[0, 1]])])
    with pytest.raises(DataError, match="record a.*not a list of 2 or 3 numbers"):
        evaluate_grounding([pred("a", [[5, 1, 1, 4]])], [gt("a", [[0, 1]])])
    with pytest.raises(DataError, match="twice"):
        evaluate_grounding([pred("a", [[0, 1, 1]])] * 2, [gt("a", [[0, 1]])])
    with pytest.raises(DataError, match="not in the ground truth: z"):
        evaluate_grounding([pred("a", [[0, 1, 1]]), pred("z", [])], [gt("a", [[0, 1]])])


def test_empty_prediction_lists_are_misses():
    m = evaluate_grounding([pred(1, []), pred(2, [[0, 10, 1]])], [gt(1, [[0, 10]]), gt(2, [[0, 10]])],
                           "2dtan")
    assert m["R@5,IoU>0.5 [2dtan]"] == 50.0 and m["mIoU [2dtan]"] == 50.0


def test_nms_windows_returns_kept_rows():
    rows = [[0, 10, 0.9], [1, 10, 0.8], [20, 30, 0.95]]
    assert nms_windows(rows, 0.5) == [[20.0, 30.0, 0.95], [0.0, 10.0, 0.9]]
    assert nms_windows(rows, 0.5, topk=1) == [[20.0, 30.0, 0.95]]
    assert nms_windows([], 0.5) == []


def test_soft_nms_through_the_evaluator_and_empty_moment_detr_lists():
    g = [gt(1, [[20, 30]])]
    p = [pred(1, [[0, 10, 1.0], [0, 9, 0.9], [20, 30, 0.8]])]
    # hard NMS without a cap ranks [20,30] 2nd as well; soft NMS demotes [0,9] below it
    soft = evaluate_grounding(p, g, "mmn", nms_kind="soft", recall_at=[2], thresholds=[0.5])
    assert soft["R@2,IoU>=0.5 [mmn*]"] == 100.0
    none = evaluate_grounding(p, g, "mmn", nms_thresh=None, recall_at=[2], thresholds=[0.5])
    assert none["R@2,IoU>=0.5 [mmn*]"] == 0.0
    empty = evaluate_grounding([pred(1, [])], g, "moment_detr")
    assert empty["MR-full-R1@0.5 [moment_detr]"] == 0.0 and empty["R@1,IoU>=0.5 [moment_detr]"] == 0.0
