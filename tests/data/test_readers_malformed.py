"""Malformed input gives a DataError naming file:line (or the record), or a counted drop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vidlang.data.catalog import DatasetSource, load_grounding
from vidlang.data.records import ClampPolicy, GroundingRecord, LoadReport, write_grounding_jsonl
from vidlang.errors import ConfigError, DataError, RegistryError
from vidlang.registry import DATASETS, READERS

CSV_HEADER = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"


def _charades(tmp_path: Path, lines: list[str], lengths: dict[str, str] | None = None) -> Path:
    txt = tmp_path / "sta.txt"
    txt.write_text("\n".join(lines) + "\n")
    rows = "".join(f"{vid},S,K,5,6,Yes,s,o,d,a,{n}\n" for vid, n in (lengths or {"AAA": "30.0"}).items())
    (tmp_path / "Charades_v1_train.csv").write_text(CSV_HEADER + rows)
    (tmp_path / "Charades_v1_test.csv").write_text(CSV_HEADER)
    return txt


def _read_charades(txt: Path, **kw: object) -> tuple[list[GroundingRecord], LoadReport]:
    return READERS.get("charades_sta_txt")(txt, **kw)


def test_truncated_line_names_file_and_line(tmp_path: Path) -> None:
    txt = _charades(tmp_path, ["AAA 1.0 2.0##ok", "AAA 0.0"])
    with pytest.raises(DataError, match=r"sta\.txt:2: expected 'vid start end##sentence'"):
        _read_charades(txt)


def test_non_numeric_time_names_file_and_line(tmp_path: Path) -> None:
    txt = _charades(tmp_path, ["AAA 1.0 2.0##ok", "", "AAA 1.0 abc##bad"])
    with pytest.raises(DataError, match=r"sta\.txt:3: non-numeric end time 'abc'"):
        _read_charades(txt)


def test_start_after_end_is_a_counted_drop(tmp_path: Path) -> None:
    txt = _charades(tmp_path, ["AAA 5.0 2.0##inverted", "AAA 1.0 2.0##fine"])
    records, report = _read_charades(txt)
    assert [r.query for r in records] == ["fine"] and records[0].qid == "AAA_1"
    assert (report.read, report.kept) == (2, 1)
    assert report.dropped[0].line == 1 and "start >= end" in report.dropped[0].reason
    with pytest.raises(DataError, match=r"sta\.txt:1: window \[5.0, 2.0\] has start >= end"):
        _read_charades(txt, clamp=ClampPolicy.ERROR)


def test_end_beyond_duration_clamp_drop_error(tmp_path: Path) -> None:
    txt = _charades(tmp_path, ["AAA 25.0 31.5##late", "AAA 30.0 31.0##after the end"])
    records, report = _read_charades(txt)
    assert records[0].windows == ((25.0, 30.0),) and len(records) == 1
    assert report.clamped[0].line == 1 and "clamped to [25.0, 30.0]" in report.clamped[0].reason
    assert report.dropped[0].line == 2 and "after clamping" in report.dropped[0].reason
    records, report = _read_charades(txt, clamp="drop")
    assert records == [] and len(report.dropped) == 2 and not report.clamped
    with pytest.raises(DataError, match=r"sta\.txt:1: window \[25.0, 31.5\] leaves \[0, 30.0\]"):
        _read_charades(txt, clamp="error")


def test_unknown_video_is_a_counted_drop(tmp_path: Path) -> None:
    txt = _charades(tmp_path, ["ZZZ 1.0 2.0##no such video", "AAA 1.0 2.0##ok"])
    records, report = _read_charades(txt)
    assert len(records) == 1 and report.read == 2
    assert "no duration for video 'ZZZ'" in str(report.dropped[0]) and "sta.txt:1" in str(report.dropped[0])
    with pytest.raises(DataError, match="sta.txt:1: no duration"):
        _read_charades(txt, clamp="error")


def test_missing_durations_file(tmp_path: Path) -> None:
    txt = _charades(tmp_path, ["AAA 1.0 2.0##ok"])
    (tmp_path / "Charades_v1_test.csv").unlink()
    with pytest.raises(DataError, match=r"Charades_v1_test\.csv: durations file not found"):
        _read_charades(txt)
    records, _ = _read_charades(txt, durations=tmp_path / "Charades_v1_train.csv")
    assert records[0].duration == 30.0


def test_bad_duration_in_csv_names_line(tmp_path: Path) -> None:
    txt = _charades(tmp_path, ["AAA 1.0 2.0##ok"], {"AAA": "30", "BBB": "n/a"})
    with pytest.raises(DataError, match=r"Charades_v1_train\.csv:3: non-numeric length 'n/a'"):
        _read_charades(txt)


def test_json_dict_errors_name_the_record(tmp_path: Path) -> None:
    path = tmp_path / "anet.json"
    path.write_text(json.dumps({"v_a": {"duration": 10, "timestamps": [[0, 1], [2, "x"]], "sentences": ["a", "b"]}}))
    with pytest.raises(DataError, match=r"anet\.json \(record v_a\[1\]\): non-numeric window end 'x'"):
        READERS.get("timestamps_json")(path)
    path.write_text(json.dumps({"v_a": {"duration": 10, "timestamps": [[0, 1]], "sentences": ["a", "b"]}}))
    with pytest.raises(DataError, match=r"record v_a\): 1 timestamps but 2 sentences"):
        READERS.get("timestamps_json")(path)
    path.write_text('{"v_a": {"duration": 10,\n "timestamps": [[0, 1]] "sentences": []}}')
    with pytest.raises(DataError, match=r"anet\.json:2: invalid JSON"):
        READERS.get("timestamps_json")(path)


def test_jsonl_multi_window_record_keeps_good_windows(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    rows = [{"qid": 1, "vid": "v", "duration": 10, "query": "q", "relevant_windows": [[2, 4], [9, 9]]},
            {"qid": 2, "vid": "v", "duration": 10, "query": "q2"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n")
    with pytest.raises(DataError, match=r"q\.jsonl:3: invalid JSON"):
        READERS.get("moment_detr_jsonl")(path)
    path.write_text("\n".join(json.dumps(r) for r in rows))
    records, report = READERS.get("vidlang_jsonl")(path)
    assert records[0].windows == ((2.0, 4.0),) and records[1].windows == ()
    assert report.clamped[0].line == 1 and "[9.0, 9.0] has start >= end" in report.clamped[0].reason


def test_canonical_jsonl_roundtrip(tmp_path: Path) -> None:
    rec = GroundingRecord("q1", "v1", 20.0, "a query", ((1.0, 2.5), (3.0, 4.0)), split="val",
                          relevant_clip_ids=(0, 1), saliency_scores=((1, 2, 3), (0, 0, 4)))
    write_grounding_jsonl([rec], tmp_path / "c.jsonl")
    (back,), report = READERS.get("vidlang_jsonl")(tmp_path / "c.jsonl")
    assert back == rec and report.kept == 1


def test_cpl_list_and_didemo_shapes(tmp_path: Path) -> None:
    path = tmp_path / "cpl.json"
    path.write_text(json.dumps([["v", 10, [0, 1], "ok"], ["v", 10, [0, 1]]]))
    with pytest.raises(DataError, match=r"record #1\): expected \[vid, duration"):
        READERS.get("cpl_list_json")(path)
    path = tmp_path / "didemo.json"
    path.write_text(json.dumps([{"annotation_id": 7, "video": "v.mp4", "num_segments": 5,
                                 "description": "d", "times": [[4, 5], [2, 3]]}]))
    (rec,), report = READERS.get("didemo_json")(path)
    assert rec.windows == ((20.0, 25.0), (10.0, 20.0)) and rec.duration == 25.0
    assert "clamped to [20.0, 25.0]" in report.clamped[0].reason


def test_msvd_list_id_without_captions_is_counted(tmp_path: Path) -> None:
    (tmp_path / "caps.json").write_text(json.dumps({"a": ["x", "y"], "b": ["z"]}))
    (tmp_path / "list.txt").write_text("a\nmissing\n")
    items, report = READERS.get("msvd_captions")(tmp_path / "caps.json", split_list=tmp_path / "list.txt")
    assert [v.video_id for v in items] == ["a"] and items[0].captions == ("x", "y")
    assert (report.read, report.kept) == (2, 1) and report.dropped[0].line == 2


class _Fake:
    """A minimal DatasetSource, as SynthVL registers itself."""

    def load_grounding(self, split: str, root: str | Path | None,
                       clamp: ClampPolicy = ClampPolicy.CLAMP) -> tuple[list[GroundingRecord], LoadReport]:
        rep = LoadReport(f"fake/{split}", read=1, kept=1)
        return [GroundingRecord("q", "v", 1.0, "x", ((0.0, 1.0),), split)], rep

    def load_captions(self, split: str, root: str | Path | None) -> tuple[list, LoadReport]:
        raise ConfigError("fake has no captions")

    def load_paragraphs(self, split: str, root: str | Path | None) -> tuple[list, LoadReport]:
        raise ConfigError("fake has no paragraphs")


_FAKE = DATASETS.register("test_readers_fake")(_Fake())


def test_catalog_lookup_and_errors(tmp_path: Path) -> None:
    assert isinstance(_FAKE, DatasetSource)
    records, _ = load_grounding("test_readers_fake", "dev")
    assert records[0].split == "dev"
    with pytest.raises(RegistryError, match="unknown dataset 'nope'.*charades_sta"):
        load_grounding("nope", "train")
    with pytest.raises(ConfigError, match="unknown grounding split 'dev'; known: train, test"):
        load_grounding("charades_sta", "dev", tmp_path)
    with pytest.raises(ConfigError, match="has no grounding records"):
        load_grounding("msvd", "train", tmp_path)
    with pytest.raises(DataError, match="charades_sta_train.txt: annotation file not found"):
        load_grounding("charades_sta", "train", tmp_path)
    with pytest.raises(DataError, match="data root not found"):
        load_grounding("charades_sta", "train", tmp_path / "missing")
