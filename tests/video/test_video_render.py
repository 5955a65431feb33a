"""SynthVL-video: deterministic rendering, the canonical layout, and pixels that do what the
sentences say."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from vidlang.data.synthvl import load
from vidlang.errors import ConfigError
from vidlang.video import iter_clips, probe_video
from vidlang.video.extractors.basic import colour_classes
from vidlang.video.render import (
    COLOURS,
    MOVES,
    make_video_config,
    plan_script,
    render_synthvl_video,
)

N = 6


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_synthvl_video(tmp_path_factory.mktemp("svv") / "a", "tiny", seed=0, n_videos=N)


def test_same_seed_same_files_other_seed_differs(folder: Path, tmp_path: Path) -> None:
    again = render_synthvl_video(tmp_path / "b", "tiny", seed=0, n_videos=N)
    assert _digest(again) == _digest(folder)
    other = render_synthvl_video(tmp_path / "c", "tiny", seed=1, n_videos=N)
    assert _digest(other)["train.jsonl"] != _digest(folder)["train.jsonl"]


def test_layout_and_annotations_are_canonical(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["format"] == "synthvl" and meta["kind"] == "video"
    assert sum(c["videos"] for c in meta["counts"].values()) == N
    split = load(folder, "train")  # the SynthVL reader takes the folder as it is
    assert split.grounding and len(split.videos) == meta["counts"]["train"]["videos"]
    for rec in split.grounding:
        (start, end), = rec.windows
        assert 0 <= start < end <= rec.duration
        assert any(colour in rec.query for colour in COLOURS)
        video = folder / "videos" / f"{rec.video_id}.mp4"
        info = probe_video(video)
        assert (info.width, info.height) == (32, 32) and info.average_fps == pytest.approx(8)
        assert info.duration == pytest.approx(rec.duration, abs=1e-6)


def _centroid(frame: np.ndarray, colour: str) -> tuple[float, float, float]:
    hue_class = {"red": 0, "yellow": 1, "green": 2, "cyan": 3, "blue": 4, "purple": 5}[colour]
    mask = colour_classes(frame[None])[0] == hue_class
    ys, xs = np.nonzero(mask)
    return (float(xs.mean()), float(ys.mean()), float(mask.mean())) if len(xs) else (np.nan, np.nan, 0.0)


def test_moves_and_size_changes_happen_in_their_windows(tmp_path: Path) -> None:
    checked = 0
    root = render_synthvl_video(tmp_path / "s", "small", seed=3, n_videos=10, size=48,
                                min_seconds=8.0, max_seconds=16.0)
    for line in (root / "videos_train.jsonl").read_text().splitlines():
        video = json.loads(line)
        frames = {c.index: c.frames[0] for c in iter_clips(root / "videos" / f"{video['vid']}.mp4",
                                                           fps=8, clip_seconds=0.125)}
        for ev in video["events"]:
            colour = ev["phrase"].split()[1]
            before = frames[round(ev["start"] * 8)]
            after = frames[min(round(ev["end"] * 8), max(frames))]
            x0, y0, a0 = _centroid(before, colour)
            x1, y1, a1 = _centroid(after, colour)
            action = ev["action"]
            if action.startswith("move_"):
                dx, dy = MOVES[action[5:]]
                moved = (x1 - x0) * dx + (y1 - y0) * dy
                assert moved > 5, (video["vid"], ev)
                checked += 1
            elif action in ("grow", "appear"):
                assert a1 > a0 * 1.3, (video["vid"], ev)
                checked += 1
            elif action in ("shrink", "disappear"):
                assert a1 < a0 / 1.3, (video["vid"], ev)
                checked += 1
    assert checked >= 5


def test_scripts_use_distinct_colours_and_unique_sentences() -> None:
    cfg = make_video_config("small")
    for k in range(30):
        script = plan_script(f"v{k}", cfg, np.random.default_rng(k))
        assert len({s.colour for s in script.shapes}) == len(script.shapes)
        assert len(set(script.sentences)) == len(script.sentences) == len(script.events)
        for a, b in zip(script.events, script.events[1:]):
            assert a.end <= b.start
        assert cfg.min_seconds <= script.duration <= cfg.max_seconds


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        make_video_config("small", colour_count=3)
    with pytest.raises(ConfigError, match="unknown preset"):
        make_video_config("huge")
    with pytest.raises(ConfigError):
        make_video_config("small", size=15)


def test_synth_video_command_writes_the_folder(tmp_path: Path) -> None:
    from vidlang.cli.main import main

    out = tmp_path / "cli"
    main(["synth", "--video", "--preset", "tiny", "--out", str(out), "--seed", "2", "--set", "n_videos=2"])
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 2 and meta["params"]["n_videos"] == 2
    assert sorted(p.name for p in (out / "videos").iterdir()) == ["svv0000.mp4", "svv0001.mp4"]
    with pytest.raises(SystemExit) as info:
        main(["synth", "--video", "--out", str(tmp_path / "bad"), "--set", "nope=1"])
    assert info.value.code == 2
