"""Data reports are complete: duplicate qids and empty queries are reported by ``data stats`` /
``data validate`` and refused by the grounding pipeline (eval would score them); MSR-VTT's
caption-less training lists say why; an over-long query is truncated with a warning naming the
encoder's limit; ``extract`` fails when every video failed."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from cli_support import one_line_error, run_vidlang, synth_tiny
from vidlang.errors import DataError

RECORDS = [
    {"qid": "q1", "vid": "v1", "duration": 10, "query": "a man walks", "relevant_windows": [[1, 2]]},
    {"qid": "q1", "vid": "v1", "duration": 10, "query": "a man runs", "relevant_windows": [[2, 3]]},
    {"qid": "q2", "vid": "v2", "duration": 10, "query": "   ", "relevant_windows": [[2, 3]]},
]


@pytest.fixture()
def bad_ann(tmp_path: Path) -> Path:
    path = tmp_path / "ann.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def test_stats_reports_duplicate_qids_and_empty_queries(bad_ann: Path) -> None:
    proc = run_vidlang("data", "stats", "--ann", bad_ann, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["problems"] == {"duplicate_qids": ["q1"], "empty_queries": ["q2"]}
    assert "warning:" in proc.stderr and "1 duplicate qids: q1" in proc.stderr
    assert "1 empty queries: q2" in proc.stderr


def test_validate_fails_on_duplicate_qids_and_empty_queries(bad_ann: Path, tmp_path: Path) -> None:
    import numpy as np

    feats = tmp_path / "feats"
    feats.mkdir()
    for vid in ("v1", "v2"):
        np.save(feats / f"{vid}.npy", np.ones((4, 8), dtype=np.float32))
    proc = run_vidlang("data", "validate", "--ann", bad_ann, "--features", feats, "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["record_problems"] == {"duplicate_qids": ["q1"], "empty_queries": ["q2"]}
    assert report["ok"] is True  # the features are fine; the records are not


def test_grounding_pipeline_refuses_empty_queries(tmp_path: Path) -> None:
    from vidlang.engine import load_config
    from vidlang.engine.pipelines.grounding import load_records

    data = synth_tiny(tmp_path / "data")
    lines = (data / "test.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["query"] = ""
    (data / "test.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    cfg = load_config("mmn/cpu", [f"data.root={data}"])
    with pytest.raises(DataError, match=rf"split 'test': 1 empty queries \(first: {first['qid']}\)"):
        load_records(cfg.data, "test")
    load_records(cfg.data, "val")  # untouched split: fine
    shutil.rmtree(data)


def test_msrvtt_training_list_without_captions_says_so(shared_data: Path) -> None:
    from vidlang.engine import load_config
    from vidlang.engine.pipelines.retrieval import load_entries

    cfg = load_config("retrieval/msrvtt_9k", [f"data.root={shared_data}"])
    with pytest.raises(DataError, match=r"9000 videos listed, none with a caption; .*MSRVTT_data.json"):
        load_entries(cfg.data, "train_9k")


def test_long_query_is_truncated_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from vidlang.text.config import TextEncoderConfig, build_text_encoder

    enc = build_text_encoder(TextEncoderConfig(name="minilm"), "text")
    with caplog.at_level(logging.WARNING, logger="vidlang.text"):
        out = enc(["a person opens the door", "word " * 600])
    assert out.tokens.shape[1] == enc.max_length
    assert f"minilm text encoder's limit of {enc.max_length} tokens (it has 602)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vidlang.text"):
        enc(["a person opens the door"])
    assert caplog.text == ""


def test_extract_fails_when_every_video_failed(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (videos / name).write_bytes(b"not a video")
    line = one_line_error(run_vidlang("extract", videos, "--out", tmp_path / "f.h5"))
    assert "every video failed (2 of 2" in line and "f.failures.json" in line
