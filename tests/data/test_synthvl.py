"""SynthVL: determinism, layout, loader, catalog entry and the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from vidlang.data.synthvl import SPLITS, generate, load, make_config, parse_overrides
from vidlang.errors import ConfigError, DataError


def _dir_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.iterdir()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("svl") / "seed0", "tiny", seed=0)


def test_same_seed_gives_identical_files_and_other_seed_differs(tiny: Path, tmp_path: Path) -> None:
    ticks: list[int] = []
    again = generate(tmp_path / "again", "tiny", seed=0, progress=ticks.append)
    assert sum(ticks) == sum(make_config("tiny").split_size(s) for s in SPLITS)
    other = generate(tmp_path / "other", "tiny", seed=1)
    assert _dir_hash(again) == _dir_hash(tiny)
    assert _dir_hash(other) != _dir_hash(tiny)


def test_layout_and_canonical_feature_file(tiny: Path) -> None:
    meta = json.loads((tiny / "meta.json").read_text())
    assert meta["preset"] == "tiny" and meta["seed"] == 0
    assert meta["params"]["feature_dim"] == 32
    durations = json.loads((tiny / "durations.json").read_text())
    with h5py.File(tiny / "features.h5", "r") as f:
        assert f.attrs["vidlang_format"] == "features" and int(f.attrs["version"]) == 1
        assert int(f.attrs["feature_dim"]) == 32 and float(f.attrs["clip_seconds"]) == 1.0
        total = 0
        for split in SPLITS:
            assert (tiny / f"{split}.jsonl").is_file() and (tiny / f"videos_{split}.jsonl").is_file()
            data = load(tiny, split)
            assert len(data.videos) == meta["counts"][split]["videos"]
            total += len(data.videos)
            for video in data.videos:
                ds = f[video["vid"]]
                assert ds.dtype == np.float32 and ds.shape[1] == 32
                assert ds.shape[0] == int(np.ceil(video["duration"] - 1e-6))
                assert float(ds.attrs["duration"]) == video["duration"] == durations[video["vid"]]
        assert len(f) == total == len(durations)


def test_loader_gives_every_task_consistent_records(tiny: Path) -> None:
    data = load(tiny, "train")
    assert data.features_path == tiny / "features.h5"
    by_vid = {v["vid"]: v for v in data.videos}
    assert len(data.grounding) == sum(len(v["events"]) for v in data.videos)
    for rec in data.grounding:
        event = by_vid[rec.video_id]["events"][rec.extra["event_index"]]
        assert rec.windows == ((event["start"], event["end"]),)
        assert 0 <= event["start"] < event["end"] <= rec.duration
        assert rec.split == "train"
    for para in data.paragraphs:
        starts = [w[0] for w in para.windows]
        assert starts == sorted(starts) and len(para.sentences) == len(by_vid[para.video_id]["events"])
    assert all(len(c.captions) == 2 for c in data.captions)
    assert all(v["caption"] == v["captions"][0] for v in data.videos)
    for q in data.questions:
        assert len(q.candidates) == 5 == len(set(q.candidates))
        events = by_vid[q.video_id]["events"]
        expected = {"first": events[0], "last": events[-1]}.get(q.kind)
        if expected is not None:
            assert q.candidates[q.answer] == expected["phrase"]


def test_catalog_entry_serves_synthvl(tiny: Path) -> None:
    from vidlang.data.catalog import DatasetSource, load_captions, load_grounding, load_paragraphs
    from vidlang.registry import DATASETS

    assert isinstance(DATASETS.get("synthvl"), DatasetSource)
    records, report = load_grounding("synthvl", "val", tiny)
    assert report.kept == len(records) > 0 and not report.dropped and not report.clamped
    captions, _ = load_captions("synthvl", "test", tiny)
    paragraphs, _ = load_paragraphs("synthvl", "test_novel", tiny)
    assert captions and paragraphs and all(p.split == "test_novel" for p in paragraphs)
    with pytest.raises(ConfigError, match="root"):
        load_grounding("synthvl", "train", None)
    with pytest.raises(ConfigError, match="unknown split"):
        load_grounding("synthvl", "dev", tiny)


def test_overrides_are_typed_and_checked() -> None:
    assert parse_overrides(["n_train=10", "spurious_cooccurrence=0.5"]) == {
        "n_train": 10, "spurious_cooccurrence": 0.5}
    assert make_config("tiny", n_train=7).n_train == 7
    for bad in (["n_trian=3"], ["n_train=2.5"], ["spurious_cooccurrence=x"], ["n_train"]):
        with pytest.raises(ConfigError):
            make_config("tiny", **parse_overrides(bad))
    with pytest.raises(ConfigError, match="spurious_cooccurrence"):
        make_config("tiny", spurious_cooccurrence=1.5)
    with pytest.raises(ConfigError, match="preset"):
        make_config("huge")
    with pytest.raises(ConfigError, match="<= 1"):
        make_config("tiny", hard_negative_fraction=0.7, shuffled_order_distractors=0.7)


def test_bad_folder_and_bad_line_name_the_file(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(DataError, match="meta.json"):
        load(tmp_path, "train")
    broken = tmp_path / "broken"
    broken.mkdir()
    for path in tiny.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    lines = (broken / "videos_val.jsonl").read_text().splitlines()
    lines[2] = json.dumps({"vid": "x", "duration": 3.0})
    (broken / "videos_val.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"videos_val.jsonl:3"):
        load(broken, "val")


def test_cli_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vidlang.cli.main import main

    main(["synth", "--preset", "tiny", "--seed", "3", "--out", str(tmp_path / "cli"),
          "--set", "n_train=20", "--markdown"])
    out = capsys.readouterr().out
    assert "| train | 20 |" in out
    assert json.loads((tmp_path / "cli" / "meta.json").read_text())["overrides"] == {"n_train": 20}
    with pytest.raises(SystemExit) as exc:
        main(["synth", "--preset", "tiny", "--out", str(tmp_path / "bad"), "--set", "nope=1"])
    assert exc.value.code == 2


def test_train_size_leaves_other_splits_unchanged(tiny: Path, tmp_path: Path) -> None:
    bigger = generate(tmp_path / "bigger", "tiny", seed=0, n_train=60)
    assert len(load(bigger, "train").videos) == 60
    for split in ("val", "test", "test_novel"):
        for name in (f"{split}.jsonl", f"videos_{split}.jsonl"):
            assert (bigger / name).read_bytes() == (tiny / name).read_bytes()
    with h5py.File(tiny / "features.h5", "r") as a, h5py.File(bigger / "features.h5", "r") as b:
        shared = [vid for vid in a if not vid.startswith("train")]
        assert shared and all(np.array_equal(a[vid][()], b[vid][()]) for vid in shared)
