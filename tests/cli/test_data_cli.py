"""``vidlang data stats`` and ``vidlang data validate`` end to end on tiny files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidlang.cli.main import main
from vidlang.data.catalog import load_grounding
from vidlang.data.features import write_canonical_h5
from vidlang.data.records import GroundingRecord, write_grounding_jsonl


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def _annotations(tmp_path: Path, vids: list[str]) -> Path:
    path = tmp_path / "ann.jsonl"
    write_grounding_jsonl([GroundingRecord(f"q{i}", v, 10.0, "a person opens the door", ((1.0, 4.0),))
                           for i, v in enumerate(vids)], path)
    return path


def test_validate_ok_and_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = write_canonical_h5(tmp_path / "f.h5", [("a", np.ones((3, 4)), 10.0), ("b", np.ones((2, 4)), 10.0)], 2.0)
    ann = _annotations(tmp_path, ["a", "b", "a"])
    code, out, _ = _run(["data", "validate", "--ann", str(ann), "--features", str(store)], capsys)
    assert code == 0 and "OK" in out and "2 videos checked" in out

    raw = tmp_path / "raw.hdf5"  # a non-canonical store with every kind of problem
    with h5py.File(raw, "w") as f:
        f["a"] = np.ones((3, 4), dtype=np.float32)
        f["b"] = np.ones((3, 5), dtype=np.float32)
        f["c"] = np.array([[1.0, np.nan, 0.0, 0.0]], dtype=np.float32)
        f["d"] = np.zeros((0, 4), dtype=np.float32)
    ann = _annotations(tmp_path, ["a", "b", "c", "d", "e"])
    code, out, _ = _run(["data", "validate", "--ann", str(ann), "--features", str(raw), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and not report["ok"] and report["expected_dim"] == 4
    assert {p["video_id"]: p["problem"] for p in report["problems"]} == {
        "b": "wrong_dim", "c": "non_finite", "d": "zero_length", "e": "missing"}
    code, out, _ = _run(["data", "validate", "--ann", str(ann), "--features", str(raw)], capsys)
    assert code == 1 and "PROBLEMS" in out and "missing" in out


def test_validate_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ann = _annotations(tmp_path, ["a"])
    code, _, err = _run(["data", "validate", "--ann", str(ann), "--features", str(tmp_path / "nope.h5")], capsys)
    assert code == 2 and "nope.h5" in err and "not found" in err
    code, _, err = _run(["data", "validate", "--ann", str(tmp_path / "x.csv"), "--features", str(tmp_path)], capsys)
    assert code == 2 and "x.csv: annotation file not found" in err
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")  # no known format: name the readers
    code, _, err = _run(["data", "validate", "--ann", str(tmp_path / "x.csv"), "--features", str(tmp_path)], capsys)
    assert code == 2 and "--reader" in err
    code, _, err = _run(["data", "validate", "--dataset", "tacos", "--features", str(tmp_path)], capsys)
    assert code == 2 and "--split" in err


def test_validate_a_catalog_split(tmp_path: Path, capsys: pytest.CaptureFixture[str], shared_data: Path) -> None:
    """The TACoS test split's 25 videos against a folder holding all but one of them."""
    records, _ = load_grounding("tacos", "test", shared_data)
    vids = sorted({r.video_id for r in records})
    for vid in vids[1:]:
        np.save(tmp_path / f"{vid}.npy", np.zeros((4, 8), dtype=np.float32))
    code, out, _ = _run(["data", "validate", "--dataset", "tacos", "--split", "test", "--root", str(shared_data),
                         "--features", str(tmp_path), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["videos"] == 25
    assert report["problems"] == [{"video_id": vids[0], "problem": "missing", "detail": f"not in {tmp_path}"}]


def test_stats_on_a_file_and_on_a_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          shared_data: Path) -> None:
    ann = _annotations(tmp_path, ["a", "b"])
    code, out, _ = _run(["data", "stats", "--ann", str(ann), "--json"], capsys)
    (res,) = json.loads(out)
    assert code == 0 and res["stats"]["queries"] == 2 and res["stats"]["videos"] == 2
    assert res["stats"]["moment_s"]["mean"] == 3.0 and res["stats"]["query_words"]["max"] == 5
    code, out, _ = _run(["data", "stats", "--dataset", "tacos", "--root", str(shared_data), "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and [(r["split"], r["report"]["kept"]) for r in rows] == [
        ("train", 9790), ("val", 4436), ("test", 4001)]
    code, out, _ = _run(["data", "stats", "--dataset", "charades_sta", "--root", str(shared_data),
                         "--split", "train"], capsys)
    assert code == 0 and "read 12408, kept 12404" in out and "dropped 4" in out
    code, _, err = _run(["data", "stats", "--dataset", "nope"], capsys)
    assert code == 2 and "unknown dataset 'nope'" in err
