"""``vidlang evaluate``: JSON and table output, file:line errors, missing qids, retrieval maps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vidlang.cli.main import main


def write_jsonl(path, rows, raw_lines=()):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        for line in raw_lines:
            f.write(line + "\n")
    return path


@pytest.fixture
def files(tmp_path):
    gt = write_jsonl(tmp_path / "gt.jsonl", [
        {"qid": 1, "duration": 30, "relevant_windows": [[0, 10]]},
        {"qid": 2, "duration": 30, "relevant_windows": [[10, 20]]},
    ])
    pred = write_jsonl(tmp_path / "pred.jsonl", [
        {"qid": 1, "pred_relevant_windows": [[0, 5, 0.9], [0, 10, 0.8]]},
        {"qid": 2, "pred_relevant_windows": [[10, 20, 0.9]]},
    ])
    return tmp_path, pred, gt


def run(argv, capsys):
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_grounding_json_and_options(files, capsys):
    _, pred, gt = files
    code, out, _ = run(["evaluate", "grounding", "--pred", str(pred), "--gt", str(gt), "--json",
                        "--preset", "2dtan", "--iou-thresholds", "0.5", "--nms", "none"], capsys)
    assert code == 0
    payload = json.loads(out)
    # query 1: top-1 [0,5] has IoU exactly 0.5 -> a miss under the strict 2dtan test
    assert payload["metrics"]["R@1,IoU>0.5 [2dtan*]"] == 50.0
    assert payload["metrics"]["R@5,IoU>0.5 [2dtan*]"] == 100.0
    assert "NMS none" in payload["convention"] and payload["queries"] == 2
    code, out, _ = run(["evaluate", "grounding", "--pred", str(pred), "--gt", str(gt),
                        "--iou-thresholds", "0.5"], capsys)
    assert code == 0 and "R@1,IoU>=0.5 [mmn*]" in out and "100.00" in out


def test_grounding_missing_qids_and_bad_lines(files, capsys):
    tmp, pred, gt = files
    more_gt = write_jsonl(tmp / "gt2.jsonl", [
        {"qid": q, "duration": 30, "relevant_windows": [[0, 10]]} for q in (1, 2, 7, 8)])
    code, _, err = run(["evaluate", "grounding", "--pred", str(pred), "--gt", str(more_gt)], capsys)
    assert code == 2 and "2 ground-truth qids have no prediction: 7, 8" in err
    bad_json = write_jsonl(tmp / "bad.jsonl", [{"qid": 1, "pred_relevant_windows": []}], ["{oops"])
    code, _, err = run(["evaluate", "grounding", "--pred", str(bad_json), "--gt", str(gt)], capsys)
    assert code == 2 and "bad.jsonl:2" in err and "invalid JSON" in err
    bad_window = write_jsonl(tmp / "badw.jsonl", [
        {"qid": 1, "pred_relevant_windows": [[0, 5, 1]]},
        {"qid": 2, "pred_relevant_windows": [[9, 3, 1]]}])
    code, _, err = run(["evaluate", "grounding", "--pred", str(bad_window), "--gt", str(gt)], capsys)
    assert code == 2 and "badw.jsonl:2" in err and "ends before it starts" in err
    code, _, err = run(["evaluate", "grounding", "--pred", str(pred), "--gt", str(gt),
                        "--preset", "vslnet"], capsys)
    assert code == 2 and "unknown grounding preset 'vslnet'" in err


def test_qvhighlights_command_on_golden_file(shared_data, capsys):
    d = shared_data / "qvhighlights"
    code, out, _ = run(["evaluate", "qvhighlights", "--pred", str(d / "moment_detr_sample_val_preds.jsonl"),
                        "--gt", str(d / "highlight_val_release.jsonl"), "--json"], capsys)
    assert code == 0
    official = json.loads((d / "moment_detr_sample_val_preds_metrics_raw.json").read_text())
    assert json.loads(out)["brief"] == official["brief"]


def test_retrieval_command_with_map(tmp_path, capsys):
    sim = np.array([[0.9, 0.9], [0.2, 0.8], [0.8, 0.7], [0.0, 0.1]])
    np.save(tmp_path / "sim.npy", sim)
    (tmp_path / "map.json").write_text(json.dumps({"videos": ["v0", "v1"],
                                                   "text_to_video": ["v0", "v0", "v1", "v1"]}))
    code, out, _ = run(["evaluate", "retrieval", "--sim", str(tmp_path / "sim.npy"),
                        "--text-to-video-map", str(tmp_path / "map.json"), "--ks", "1,2",
                        "--v2t-mode", "best_caption", "--json"], capsys)
    assert code == 0
    payload = json.loads(out)
    assert payload["ties"] == "average"
    assert payload["metrics"]["v2t MnR [best_caption,ties=average]"] == 2.0
    (tmp_path / "list.json").write_text("[0, 0, 1]")
    code, _, err = run(["evaluate", "retrieval", "--sim", str(tmp_path / "sim.npy"),
                        "--text-to-video-map", str(tmp_path / "list.json")], capsys)
    assert code == 2 and "one integer video index per text row (4)" in err
    code, _, err = run(["evaluate", "retrieval", "--sim", str(tmp_path / "missing.npy")], capsys)
    assert code == 2 and "missing.npy" in err
