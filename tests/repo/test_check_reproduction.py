"""scripts/check_reproduction.py: the fingerprint keeps every metric number and drops timings,
and compare says identical only when every number matches (exit 0), else lists them (exit 1)."""

from __future__ import annotations

import json
from pathlib import Path

from repo_scripts import load_repo_module

repro = load_repo_module("scripts/check_reproduction.py")


def _write(folder: Path, metrics: dict, runs: list[dict]) -> None:
    (folder / "job" / "run").mkdir(parents=True)
    (folder / "job" / "run" / "metrics.json").write_text(json.dumps(metrics))
    (folder / "job" / "runs.jsonl").write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    (folder / "job" / "notes.txt").write_text("not a metric file")


def _fingerprint(folder: Path, commit: str) -> Path:
    out = folder / "fingerprint.json"
    out.write_text(json.dumps({"commit": commit, "jobs": {"job": {"task": "t",
                                                                   "numbers": repro.fingerprint(folder / "job")}}}))
    return out


def test_fingerprint_keeps_metrics_and_drops_timings(tmp_path: Path) -> None:
    _write(tmp_path, {"metrics": {"R@1,IoU>=0.5 [mmn]": 58.3, "val_score": 1.5, "wall_s": 12.0,
                                  "epoch_time": 3.0, "ok": True}},
           [{"seed": 0, "mIoU": 48.4, "seconds": 99}])
    numbers = repro.fingerprint(tmp_path / "job")
    assert numbers == {"run/metrics.json.metrics.R@1,IoU>=0.5 [mmn]": 58.3,
                       "run/metrics.json.metrics.val_score": 1.5,
                       "run/metrics.json.metrics.ok": True,
                       "runs.jsonl:1.seed": 0, "runs.jsonl:1.mIoU": 48.4}


def test_compare_is_identical_only_when_every_number_matches(tmp_path: Path, capsys) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for folder, miou in ((a, 48.4), (b, 48.4), (c, 48.41)):
        _write(folder, {"metrics": {"mIoU": miou, "wall_s": float(hash(str(folder)) % 7)}}, [])
    fa, fb, fc = _fingerprint(a, "old"), _fingerprint(b, "new"), _fingerprint(c, "new")
    assert repro.compare(fa, fb) == 0
    assert "old vs new: identical" in capsys.readouterr().out
    assert repro.compare(fa, fc) == 1
    out = capsys.readouterr().out
    assert "run/metrics.json.metrics.mIoU: 48.4 != 48.41" in out and "1 differences" in out


def test_compare_names_a_missing_or_malformed_file_in_one_line(tmp_path: Path, capsys) -> None:
    a = tmp_path / "a"
    _write(a, {"metrics": {"mIoU": 48.4}}, [])
    fa = _fingerprint(a, "old")
    assert repro.compare(fa, tmp_path / "nope.json") == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"{tmp_path / 'nope.json'}: cannot read it") and "\n" not in out
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    assert repro.compare(bad, fa) == 2
    assert "bad.json: not JSON (line 1" in capsys.readouterr().out
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}', encoding="utf-8")
    assert repro.compare(fa, other) == 2
    assert "not a fingerprint" in capsys.readouterr().out
