"""Multiple-choice accuracy, CrossTask step recall, HL metrics on a toy, metric classes, table."""

from __future__ import annotations

import numpy as np
import pytest

from vidlang.errors import DataError
from vidlang.metrics import (
    GroundingMetric,
    MCQAMetric,
    RetrievalMetric,
    StepRecallMetric,
    evaluate_grounding,
    evaluate_qvhighlights,
    mc_accuracy,
    metrics_table,
    retrieval_metrics,
    step_recall,
)

SCORES = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
ANSWERS = [0, 1, 1]


@pytest.mark.parametrize("ties, expected", [("average", 50.0), ("first", 200 / 3),
                                            ("optimistic", 200 / 3), ("pessimistic", 100 / 3)])
def test_mc_accuracy_tie_conventions(ties, expected):
    # query 0: answer tied with one other candidate; query 1: right; query 2: wrong
    assert mc_accuracy(SCORES, ANSWERS, ties=ties) == pytest.approx(expected)


def test_mc_accuracy_rejects_bad_answers():
    with pytest.raises(DataError, match="column indices"):
        mc_accuracy(SCORES, [0, 1, 3])


GT_STEPS = [
    {"vid": "a", "task": "t1", "steps": {"1": [[0, 5]], "2": [[6, 9], [12, 14]], "3": []}},
    {"vid": "b", "task": "t1", "steps": {"1": [[10, 20]]}},
    {"vid": "c", "task": "t2", "steps": {"1": [[0, 5]], "4": [[7, 8]]}},
]


def test_step_recall_per_task_then_averaged():
    preds = [{"vid": "a", "pred_steps": {"1": 5, "2": 13, "3": 0}},  # both hits (closed intervals)
             {"vid": "b", "pred_steps": {"1": 21}},                  # miss
             {"vid": "c", "pred_steps": {"1": 2}}]                   # hit, step 4 not predicted
    m = step_recall(preds, GT_STEPS)
    assert m["step recall/t1 [crosstask]"] == pytest.approx(100 * 2 / 3)
    assert m["step recall/t2 [crosstask]"] == 50.0
    assert m["step recall [crosstask]"] == pytest.approx((200 / 3 + 50) / 2)
    assert m["steps present [crosstask]"] == 5 and m["steps without prediction [crosstask]"] == 1
    with pytest.raises(DataError, match="1 ground-truth videos have no prediction: c"):
        step_recall(preds[:2], GT_STEPS)


def test_highlight_metrics_toy():
    # 4 clips (duration 8 s); annotator scores per clip; prediction ranks clip 1 first
    gt = [{"qid": 1, "duration": 8, "relevant_windows": [[2, 6]], "relevant_clip_ids": [1, 2],
           "saliency_scores": [[4, 2, 1], [1, 3, 4]]}]
    pred = [{"qid": 1, "pred_relevant_windows": [[2, 6, 1.0]],
             "pred_saliency_scores": [0.1, 0.9, 0.5, 0.2]}]
    res = evaluate_qvhighlights(pred, gt)
    # VeryGood (>= 4): annotator 0 -> clip 1 (AP 1), 1 -> none (AP 0), 2 -> clip 2 (AP 1/2)
    assert res["HL-min-VeryGood"]["HL-mAP"] == round(100 * (1 + 0 + 0.5) / 3, 2)
    assert res["HL-min-VeryGood"]["HL-Hit1"] == 100.0  # clip 1 is positive for annotator 0
    # Fair (>= 2): annotator 0 -> clip 1, 1 -> clips 1, 2, 2 -> clip 2
    assert res["HL-min-Fair"]["HL-mAP"] == round(100 * (1 + 1 + 0.5) / 3, 2)
    assert res["brief"]["MR-full-R1@0.7"] == 100.0


def test_metric_classes_accumulate_like_the_functions():
    gts = [{"qid": q, "duration": 50, "relevant_windows": [[q, q + 10]]} for q in range(6)]
    preds = [{"qid": q, "pred_relevant_windows": [[q + q % 3, q + 10, 1.0], [0, 5, 0.5]]}
             for q in range(6)]
    metric = GroundingMetric("2dtan", thresholds=[0.5, 0.7])
    metric.process(preds[:4], gts[:4])
    metric.process(preds[4:], gts[4:])
    assert metric.compute_metrics() == evaluate_grounding(preds, gts, "2dtan", thresholds=[0.5, 0.7])
    metric.reset()
    assert metric.predictions == []

    sim = np.random.default_rng(0).normal(size=(6, 3))
    owner = [0, 0, 1, 1, 2, 2]
    r = RetrievalMetric(ks=(1, 5))
    r.process(sim[:3], owner[:3])
    r.process(sim[3:], owner[3:])
    assert r.compute_metrics() == retrieval_metrics(sim, owner, ks=(1, 5))

    qa = MCQAMetric()
    qa.process(SCORES[:1], ANSWERS[:1])
    qa.process(SCORES[1:], ANSWERS[1:])
    assert qa.compute_metrics()["accuracy [mcqa,ties=average]"] == 50.0

    steps = StepRecallMetric()
    steps.process([{"vid": "c", "pred_steps": {"4": 7}}], GT_STEPS[2:])
    assert steps.compute_metrics()["step recall [crosstask]"] == 50.0


def test_metrics_table_shows_tags_literally():
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(metrics_table({"R@1,IoU>=0.5 [mmn]": 51.234, "queries [mmn]": 3.0,
                                 "full": {"MR-mAP": {"0.5": 12.0}}}, title="t"))
    text = console.export_text()
    assert "R@1,IoU>=0.5 [mmn]" in text and "51.23" in text
    assert "full/MR-mAP/0.5" in text and "12.00" in text
    assert " 3 " in text  # counts print as integers
