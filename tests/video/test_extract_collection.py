"""``vidlang extract``: canonical output, failure report, resume, interrupted runs, shards +
merge equal to one run, and merge refusing shards of different extractors."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from video_support import grey_frame, write_audio_only, write_video
from vidlang.cli.main import main
from vidlang.data.features import open_feature_store
from vidlang.errors import ConfigError, DataError
from vidlang.video.collection import (
    extract_collection,
    failures_path,
    list_videos,
    merge_feature_files,
    parse_shard,
    select_shard,
    shard_output,
)
from vidlang.video.extractors import build_extractor
from vidlang.video.features import extractor_of_features


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five good tiny videos of different lengths, one corrupt file and one audio-only file."""
    root = tmp_path_factory.mktemp("videos")
    for k, n in enumerate((12, 20, 9, 16, 24)):
        write_video(root / f"vid{k}.mp4", n_frames=n, fps=8, size=32,
                    frame=lambda i, k=k: grey_frame(30 * k + 3 * i))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    write_audio_only(root / "sub" / "speech.mp4") if (root / "sub").mkdir() is None else None
    return root


def _features(path: Path) -> dict[str, tuple[np.ndarray, float]]:
    with h5py.File(path, "r") as f:
        return {vid: (ds[()], float(ds.attrs["duration"])) for vid, ds in f.items()}


def test_extract_writes_canonical_features_and_a_failure_report(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "features.h5"
    assert _run(["extract", str(videos), "--extractor", "basic", "--fps", "4", "--out", str(out)]) == 0
    ext = build_extractor("basic", fps=4)
    with open_feature_store(out) as store:
        assert store.video_ids() == [f"vid{k}" for k in range(5)]
        assert store.dim == ext.dim
        assert store.clip_seconds == 2.0
        # 12 frames at 8 fps = 1.5 s -> 1 clip; 20 frames = 2.5 s -> 2 clips
        assert store["vid0"].shape == (1, ext.dim) and store["vid1"].shape == (2, ext.dim)
        assert store.duration("vid1") == pytest.approx(2.5)
    durations = json.loads((tmp_path / "durations.json").read_text())
    assert durations["vid4"] == pytest.approx(3.0)
    report = json.loads(failures_path(out).read_text())
    assert report["extracted"] == 5 and report["failed_count"] == 2
    assert sorted(f["video_id"] for f in report["failed"]) == ["broken", "speech"]
    assert any("no video stream" in f["error"] for f in report["failed"])
    assert extractor_of_features(out) == ("basic", json.loads(ext.describe()))


def test_resume_skips_videos_already_in_the_output(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    entries = list_videos([videos])
    good = [e for e in entries if e.vid.startswith("vid")]
    ext = build_extractor("basic", fps=2)
    first = extract_collection(good[:3], ext, out)
    assert (first.extracted, first.skipped_existing, first.failed) == (3, 0, [])
    before = _features(out)
    again = extract_collection(entries, ext, out)
    assert (again.skipped_existing, again.extracted, len(again.failed)) == (3, 2, 2)
    after = _features(out)
    for vid, (feats, _) in before.items():  # untouched
        np.testing.assert_array_equal(after[vid][0], feats)
    fresh = tmp_path / "fresh" / "f.h5"
    extract_collection(entries, ext, fresh)
    assert sorted(_features(fresh)) == sorted(after)
    for vid in after:
        np.testing.assert_array_equal(_features(fresh)[vid][0], after[vid][0])


def test_interrupted_run_resumes_to_the_same_file_content(videos: Path, tmp_path: Path) -> None:
    entries = list_videos([videos])
    ext = build_extractor("basic", fps=2)
    out = tmp_path / "run" / "f.h5"
    done = []

    def stop_after_three(entry, status):  # noqa: ANN001
        done.append((entry.vid, status))
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_collection(entries, ext, out, progress=stop_after_three)
    # broken.mp4 and speech.mp4 sort first and fail; vid0 is written, then the run stops
    assert done == [("broken", "failed"), ("speech", "failed"), ("vid0", "extracted")]
    assert list(_features(out)) == ["vid0"]
    extract_collection(entries, ext, out)
    single = tmp_path / "single" / "f.h5"
    extract_collection(entries, ext, single)
    a, b = _features(out), _features(single)
    assert sorted(a) == sorted(b)
    for vid in a:
        np.testing.assert_array_equal(a[vid][0], b[vid][0])
        assert a[vid][1] == b[vid][1]


def test_resume_refuses_a_file_of_another_extractor(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.h5"
    entries = list_videos([videos])[:2]
    extract_collection(entries, build_extractor("basic", fps=2), out)
    with pytest.raises(DataError, match="cannot resume"):
        extract_collection(entries, build_extractor("basic", fps=4), out)


def test_shards_then_merge_equal_a_single_run(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.h5"
    for i in range(3):
        assert _run(["extract", str(videos), "--fps", "2", "--shard", f"{i}/3", "--out", str(out)]) == 0
    shards = [shard_output(out, i, 3) for i in range(3)]
    assert all(s.is_file() for s in shards)
    merged = tmp_path / "merged" / "all.h5"
    merged.parent.mkdir()
    assert _run(["extract", "merge", str(merged)] + [str(s) for s in shards]) == 0
    single = tmp_path / "single" / "all.h5"
    assert _run(["extract", str(videos), "--fps", "2", "--out", str(single)]) == 0
    a, b = _features(merged), _features(single)
    assert sorted(a) == sorted(b) == [f"vid{k}" for k in range(5)]
    for vid in a:
        np.testing.assert_array_equal(a[vid][0], b[vid][0])
        assert a[vid][1] == b[vid][1]
    assert extractor_of_features(merged) == extractor_of_features(single)
    failed = json.loads(failures_path(merged).read_text())["failed"]
    assert sorted(f["video_id"] for f in failed) == ["broken", "speech"]


def test_merge_refuses_mismatched_shards(videos: Path, tmp_path: Path) -> None:
    entries = list_videos([videos])
    a, b = tmp_path / "a" / "f.h5", tmp_path / "b" / "f.h5"
    extract_collection(entries[:2], build_extractor("basic", fps=2), a)
    extract_collection(entries[2:4], build_extractor("basic", fps=4), b)
    with pytest.raises(DataError, match="does not match"):
        merge_feature_files(tmp_path / "m.h5", [a, b])
    c = tmp_path / "c" / "f.h5"
    extract_collection(entries[:2], build_extractor("basic", fps=2, size=32), c)
    with pytest.raises(DataError, match="does not match"):
        merge_feature_files(tmp_path / "m2.h5", [a, c])
    assert _run(["extract", "merge", str(tmp_path / "m3.h5"), str(a), str(b)]) == 2


def test_shard_assignment_is_by_sorted_id_and_disjoint(videos: Path) -> None:
    entries = list_videos([videos])
    shuffled = list(reversed(entries))
    parts = [select_shard(shuffled, i, 3) for i in range(3)]
    assert sorted(e.vid for p in parts for e in p) == sorted(e.vid for e in entries)
    assert [e.vid for e in parts[0]] == [e.vid for e in entries[::3]]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x/2", "1", "-1/3"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_list_file_input_and_duplicate_ids(videos: Path, tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two videos\n{videos / 'vid1.mp4'}\n{videos / 'vid3.mp4'}\n")
    assert [e.vid for e in list_videos([listing])] == ["vid1", "vid3"]
    other = tmp_path / "x"
    other.mkdir()
    (other / "vid1.mkv").write_bytes(b"")
    with pytest.raises(DataError, match="vid1"):
        list_videos([videos, other])
