"""A run trained with relative paths works from any folder: `predict --video` in another
working directory finds the training features (and their extractor) through the run's config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vidlang.engine.paths import resolve_recorded_path

pytestmark = pytest.mark.slow

VIDLANG = str(Path(sys.executable).parent / "vidlang")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([VIDLANG, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_predict_video_from_another_folder(tmp_path: Path) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    run("synth", "--video", "--preset", "tiny", "--out", "svv", cwd=project)
    run("extract", "svv/videos", "--extractor", "basic", "--out", "svv/features.h5", cwd=project)
    run("train", "mmn/cpu", "--set", "data.root=svv", "--set", "model.input_dim=170",
        "--set", "model.conv_hidden=16", "--set", "model.featpool_hidden=16", "--set", "model.conv_layers=2",
        "--set", "model.joint_dim=16", "--set", "data.batch_size=4", "--set", "trainer.max_epochs=1",
        "--set", "trainer.progress_bar=false", "--out", "runs/svv", cwd=project)
    saved = yaml.safe_load((project / "runs" / "svv" / "best" / "config.yaml").read_text())
    assert saved["data"]["root"] == str(project / "svv")  # resolved when training started

    video = project / "svv" / "videos" / sorted(os.listdir(project / "svv" / "videos"))[0]
    res = run("predict", "--ckpt", str(project / "runs" / "svv"), "--video", str(video),
              "--query", "the red square moves to the left", cwd=elsewhere)
    assert '"pred_relevant_windows": [[' in res.stdout


def test_relative_paths_of_older_runs_resolve_against_the_run_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "features.h5").write_bytes(b"")
    (tmp_path / "runs" / "x" / "best").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    found = resolve_recorded_path("data/features.h5", tmp_path / "runs" / "x" / "best")
    assert found == tmp_path / "data" / "features.h5"
    assert resolve_recorded_path("nowhere/f.h5", tmp_path / "runs") == Path("nowhere/f.h5")
