"""scripts/run_claims_evidence.py: twin-pair scoring and the table on hand cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from repo_scripts import load_repo_module

ev = load_repo_module("scripts/run_claims_evidence.py")


def test_twin_accuracy_counts_both_members_of_a_pair(tmp_path: Path) -> None:
    videos = [{"vid": "a", "relation": None, "partner": None},
              {"vid": "b", "relation": "hard_negative", "partner": "a"},
              {"vid": "c", "relation": None, "partner": None}]
    (tmp_path / "videos_test.jsonl").write_text("\n".join(json.dumps(v) for v in videos))
    # texts 0, 1 -> video a; text 2 -> b; text 3 -> c (not in a pair)
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.0], [0.3, 0.4, 0.0], [0.0, 0.9, 0.1]])
    acc, n = ev.twin_accuracy(sim, [0, 0, 1, 2], ["a", "b", "c"], tmp_path, "test")
    assert n == 3 and math.isclose(acc, 100.0 * 2 / 3)


def test_table_means_and_partial_label(tmp_path: Path) -> None:
    runs = [{"row": "x", "seed": s, "best_epoch": 3 + s, "test": {"t2v R@1": 10.0 + 2 * s},
             "curve": [{"epoch": 1, "val": 1.0, "hard_fraction": 0.5}]} for s in range(2)]
    text = ev.write_table(tmp_path, "negnce", runs, "PARTIAL\n\n")
    assert "| x | 2 | 3.5 ± 0.7 | 11.0 ± 1.4 |" in text and text.startswith("PARTIAL")
    assert "| x | 1 | 2 | 1 | 0.5 |" in text  # curve row: epoch 1, 2 seeds, val 1, hard set 0.5
    (tmp_path / "runs.jsonl").write_text("\n".join(json.dumps(r) for r in runs))
    merged = ev.report([tmp_path / "runs.jsonl"], tmp_path / "rep", "negnce")
    assert "| x | 2 | 3.5 ± 0.7 | 11.0 ± 1.4 |" in merged
