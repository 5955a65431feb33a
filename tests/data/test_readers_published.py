"""The real annotation files give the published sizes, and the readers agree across releases."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidlang.data.catalog import load_captions, load_grounding, load_paragraphs
from vidlang.registry import READERS

# (dataset, split, lines/records read, records kept, videos kept)
GROUNDING = [
    ("charades_sta", "train", 12408, 12404, 5336),
    ("charades_sta", "test", 3720, 3720, 1334),
    ("activitynet", "train", 37421, 37417, 10009),
    ("activitynet", "val_1", 17505, 17505, 4917),
    ("activitynet", "val_2", 17031, 17031, 4885),
    ("tacos", "train", 9790, 9790, 75),
    ("tacos", "val", 4436, 4436, 27),
    ("tacos", "test", 4001, 4001, 25),
    ("tacos_scdm", "train", 10146, 10146, 75),
    ("tacos_scdm", "val", 4589, 4589, 27),
    ("tacos_scdm", "test", 4083, 4083, 25),
    ("qvhighlights", "train", 7218, 7218, 7100),
    ("qvhighlights", "val", 1550, 1550, 1519),
    ("didemo", "val", 4180, 4180, 1094),
    ("charades_sta_cpl", "train", 10602, 10602, None),
    ("charades_sta_cpl", "test", 3158, 3158, 1225),
    ("youcook2", "train", 10337, 10337, 1333),
    ("youcook2", "val", 3492, 3492, 457),
]


@pytest.mark.parametrize(("name", "split", "read", "kept", "videos"), GROUNDING)
def test_grounding_sizes(shared_data: Path, name: str, split: str, read: int, kept: int,
                        videos: int | None) -> None:
    records, report = load_grounding(name, split, shared_data)
    assert (report.read, report.kept, len(records)) == (read, kept, kept)
    assert len(report.dropped) == read - kept
    if videos is not None:
        assert len({r.video_id for r in records}) == videos
    assert all(0 <= s < e <= r.duration for r in records for s, e in r.windows)
    assert len({r.qid for r in records}) == kept  # query ids are unique


def test_charades_drops_the_four_inverted_lines(shared_data: Path) -> None:
    _, report = load_grounding("charades_sta", "train", shared_data)
    dropped = sorted(i.line for i in report.dropped)
    assert len(dropped) == 4 and all("start >= end" in i.reason for i in report.dropped)
    lines = (shared_data / "charades_sta" / "charades_sta_train.txt").read_text().splitlines()
    assert sorted(lines[n - 1].split()[0] for n in dropped) == ["AKKWU", "AKKWU", "IOL8Q", "LEOL6"]
    assert report.clamped and all("clamped to" in i.reason for i in report.clamped)


def test_charades_txt_equals_mmn_json(shared_data: Path) -> None:
    """TALL lines + CSV lengths, clamped and filtered, give exactly MMN's converted JSON."""
    txt, _ = load_grounding("charades_sta", "train", shared_data)
    mmn, report = READERS.get("timestamps_json")(shared_data / "charades_sta" / "mmn_charades_train.json")
    assert report.clamped == [] and report.dropped == []

    def key(rs: list) -> list:
        return sorted((r.video_id, r.duration, r.windows, r.query.strip()) for r in rs)

    assert key(txt) == key(mmn)


def test_tacos_frames_equal_lighthouse_seconds(shared_data: Path) -> None:
    ours, _ = load_grounding("tacos", "test", shared_data)
    theirs, _ = READERS.get("lighthouse_jsonl")(shared_data / "tacos" / "lighthouse_tacos_test_release.jsonl")
    assert [r.qid for r in ours] == [r.qid for r in theirs]
    for a, b in zip(ours, theirs):
        assert a.video_id == b.video_id and a.query == b.query
        assert a.duration == pytest.approx(b.duration, abs=1e-9)
        assert [x for w in a.windows for x in w] == pytest.approx([x for w in b.windows for x in w], abs=1e-9)


def test_tacos_scdm_converts_frames(shared_data: Path) -> None:
    records, _ = load_grounding("tacos_scdm", "train", shared_data)
    first = records[0]
    assert first.video_id == "s17-d69" and first.duration == pytest.approx(12438 / 29.4)
    assert first.windows[0] == pytest.approx((224 / 29.4, 358 / 29.4))


def test_qvhighlights_keeps_saliency(shared_data: Path) -> None:
    records, _ = load_grounding("qvhighlights", "train", shared_data)
    r = records[0]
    assert r.qid == "9769" and r.relevant_clip_ids is not None and r.saliency_scores is not None
    assert len(r.relevant_clip_ids) == len(r.saliency_scores) and len(r.saliency_scores[0]) == 3
    assert any(len(x.windows) > 1 for x in records)  # several windows per query


def test_cpl_lists(shared_data: Path) -> None:
    cpl = READERS.get("cpl_list_json")
    for path, n in (("charades_sta/cpl_charades_train.json", 10602), ("charades_sta/cpl_charades_test.json", 3158),
                    ("activitynet_captions/cpl_test_data.json", 17031)):
        records, report = cpl(shared_data / path)
        assert report.read == report.kept == len(records) == n


def test_didemo_segments_to_seconds(shared_data: Path) -> None:
    records, _ = load_grounding("didemo", "val", shared_data)
    r = records[0]  # times [[1, 1], [1, 1], [1, 1], [0, 0]], 6 segments
    assert r.qid == "49152" and r.duration == 30.0
    assert r.windows == ((5.0, 10.0), (5.0, 10.0), (5.0, 10.0), (0.0, 5.0))
    paras, report = load_paragraphs("didemo", "val", shared_data)
    assert report.kept == len(paras) == 1094 and sum(len(p.sentences) for p in paras) == 4180


def test_retrieval_splits(shared_data: Path) -> None:
    sizes = {s: len(load_captions("msrvtt", s, shared_data)[0]) for s in ("train_9k", "train_7k", "test_1k")}
    assert sizes == {"train_9k": 9000, "train_7k": 7010, "test_1k": 1000}
    test, _ = load_captions("msrvtt", "test_1k", shared_data)
    assert test[0].video_id == "video9770" and test[0].captions == ("a person is connecting something to system",)
    msvd = {s: load_captions("msvd", s, shared_data)[0] for s in ("train", "val", "test")}
    assert [len(msvd[s]) for s in ("train", "val", "test")] == [1200, 100, 670]
    assert sum(len(v.captions) for vs in msvd.values() for v in vs) == 80827


def test_paragraphs_and_captions(shared_data: Path) -> None:
    paras, report = load_paragraphs("activitynet", "val_1", shared_data)
    assert report.kept == len(paras) == 4917 and sum(len(p.sentences) for p in paras) == 17505
    assert all(list(p.windows) == sorted(p.windows, key=lambda w: w[0]) for p in paras)
    train, _ = load_paragraphs("activitynet", "train", shared_data)
    assert sum(len(p.sentences) for p in train) == 37417  # the 4 degenerate sentences are left out
    yc2 = {s: load_paragraphs("youcook2", s, shared_data)[0] for s in ("train", "val")}
    assert [len(yc2[s]) for s in ("train", "val")] == [1333, 457]
    assert [sum(len(p.sentences) for p in yc2[s]) for s in ("train", "val")] == [10337, 3492]
    caps, _ = load_captions("youcook2", "val", shared_data)
    assert len(caps) == 457 and sum(len(c.captions) for c in caps) == 3492
