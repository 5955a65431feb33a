"""``vidlang data stats --ann FILE`` picks the reader from the file's content (and says which),
and a wrong ``--reader`` names the one that matches; checked on the real annotation files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import one_line_error, run_vidlang
from vidlang.data.readers.sniff import sniff_readers

REAL = [
    ("tacos/train.json", "tacos_2dtan"),
    ("tacos/scdm_train.json", "tacos_scdm"),  # frames, not seconds: the suffix default misread it
    ("didemo/val_data.json", "didemo_json"),
    ("youcook2/youcookii_annotations_trainval.json", "youcook2_grounding"),
    ("youcook2/pdvc_yc2_val.json", "timestamps_json"),
    ("msvd/captions_msvd.json", "msvd_captions"),
    ("charades_sta/cpl_charades_test.json", "cpl_list_json"),
    ("activitynet_captions/cpl_val_data.json", "cpl_list_json"),
    ("activitynet_captions/val_1.json", "timestamps_json"),
    ("charades_sta/charades_sta_test.txt", "charades_sta_txt"),
    ("qvhighlights/highlight_val_release.jsonl", "vidlang_jsonl"),
    ("msrvtt/MSRVTT_JSFUSION_test.csv", "msrvtt_jsfusion_csv"),
    ("msrvtt/MSRVTT_train.9k.csv", "msrvtt_ids_csv"),
]


@pytest.mark.parametrize(("rel", "expected"), REAL, ids=[r for r, _ in REAL])
def test_real_files_are_recognised(shared_data: Path, rel: str, expected: str) -> None:
    assert sniff_readers(shared_data / rel)[0] == expected


@pytest.mark.parametrize("rel", ["charades_sta/Charades_v1_test.csv", "msvd/train_list.txt"])
def test_files_that_are_not_annotations_match_nothing(shared_data: Path, rel: str) -> None:
    assert sniff_readers(shared_data / rel) == []


def test_stats_says_which_reader_it_used(shared_data: Path) -> None:
    proc = run_vidlang("data", "stats", "--ann", shared_data / "tacos" / "train.json", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "reader: tacos_2dtan (detected from the content of train.json)" in proc.stderr
    result = json.loads(proc.stdout)[0]
    assert result["stats"]["queries"] == 9790 and result["source"].endswith("(reader tacos_2dtan)")


def test_a_wrong_reader_names_the_matching_one(shared_data: Path) -> None:
    line = one_line_error(run_vidlang("data", "stats", "--ann", shared_data / "tacos" / "train.json",
                                      "--reader", "timestamps_json"))
    assert "missing field 'duration'" in line and "try --reader tacos_2dtan" in line


def test_unknown_content_lists_the_readers(tmp_path: Path) -> None:
    from vidlang.cli.data import _choose_reader
    from vidlang.errors import ConfigError

    path = tmp_path / "x.json"
    path.write_text('{"a": 1}')
    with pytest.raises(ConfigError, match=r"--reader: cannot tell the format .*known: .*tacos_2dtan"):
        _choose_reader(path, None, None)
