"""Non-finite numbers and corrupted files through the real `vidlang` entry point: each is one
line naming the file (and video / step), exit 2, and nothing NaN is ever written as a model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

pytestmark = pytest.mark.slow

VIDLANG = str(Path(sys.executable).parent / "vidlang")
TINY = ["--set", "model.input_dim=32", "--set", "model.conv_hidden=16", "--set", "model.featpool_hidden=16",
        "--set", "model.conv_layers=2", "--set", "model.joint_dim=16", "--set", "data.batch_size=8",
        "--set", "trainer.max_epochs=1", "--set", "trainer.progress_bar=false"]


def vidlang(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([VIDLANG, *args], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)


def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, and the error is the last stderr line, one line holding every
    needle (Lightning's own start-up info lines may come before it)."""
    lines = [x for x in res.stderr.strip().splitlines() if x.strip()]
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr and lines and lines[-1].startswith("error:"), res.stderr[-3000:]
    assert sum(x.startswith("error:") for x in lines) == 1
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def poison(h5: Path, vid: str, value: float) -> None:
    with h5py.File(h5, "r+") as f:
        data = f[vid][()]
        data[2, 3] = value
        f[vid][...] = data


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny SynthVL folder, a run folder trained on it for one epoch)."""
    from vidlang.data.synthvl import generate

    root = tmp_path_factory.mktemp("bad_numbers")
    data = generate(root / "syn", "tiny", 0)
    res = vidlang("train", "mmn/cpu", "--set", f"data.root={data}", *TINY, "--out", str(root / "run"))
    assert res.returncode == 0, res.stderr[-3000:]
    return data, root / "run"


def test_nan_in_a_training_feature_stops_before_any_model_is_written(trained, tmp_path: Path) -> None:
    data, _ = trained
    bad = Path(shutil.copytree(data, tmp_path / "syn"))
    poison(bad / "features.h5", "train_00007", float("nan"))
    res = vidlang("train", "mmn/cpu", "--set", f"data.root={bad}", *TINY, "--out", str(tmp_path / "run"))
    one_line_error(res, "features.h5", "train_00007", "1 NaN value(s)", "clip=2, dim=3")
    assert not (tmp_path / "run" / "best").exists() and not (tmp_path / "run" / "last").exists()


def test_inf_features_are_refused_by_predict_and_eval(trained, tmp_path: Path) -> None:
    data, run = trained
    bad = Path(shutil.copytree(data, tmp_path / "syn"))
    poison(bad / "features.h5", "test_00001", float("inf"))
    res = vidlang("predict", "--ckpt", str(run), "--features", str(bad / "features.h5"),
                  "--video-id", "test_00001", "--query", "a person opens the door")
    one_line_error(res, "features.h5", "test_00001", "inf value(s)")
    res = vidlang("eval", "mmn/cpu", "--ckpt", str(run), "--set", f"data.root={bad}", *TINY,
                  "--split", "test", "--out", str(tmp_path / "ev"))
    one_line_error(res, "features.h5", "test_00001", "inf")
    np.save(tmp_path / "one.npy", np.full((8, 32), np.nan, np.float32))
    res = vidlang("predict", "--ckpt", str(run), "--features", str(tmp_path / "one.npy"),
                  "--duration", "8", "--query", "a person opens the door")
    one_line_error(res, "one.npy", "256 NaN value(s)")


def test_diverging_training_stops_on_the_first_non_finite_loss(trained, tmp_path: Path) -> None:
    data, _ = trained
    res = vidlang("train", "mmn/cpu", "--set", f"data.root={data}", *TINY, "--set", "optim.lr=1e30",
                  "--out", str(tmp_path / "run"))
    line = one_line_error(res, "training loss is nan at epoch 1, step 2 (batch 2 of the epoch; videos: train_")
    assert "lower optim.lr" in line
    assert not (tmp_path / "run" / "best").exists() and not (tmp_path / "run" / "checkpoints").exists()


def test_retrieval_metrics_refuse_inf_like_nan(tmp_path: Path) -> None:
    sim = np.eye(4)
    sim[1, 2] = np.inf
    np.save(tmp_path / "inf.npy", sim)
    one_line_error(vidlang("evaluate", "retrieval", "--sim", str(tmp_path / "inf.npy")),
                   "1 non-finite value(s), first inf at row 1, column 2")
    sim[1, 2] = np.nan
    np.save(tmp_path / "nan.npy", sim)
    one_line_error(vidlang("evaluate", "retrieval", "--sim", str(tmp_path / "nan.npy")), "first NaN at row 1, column 2")


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty"])
def test_corrupted_weights_are_one_line_in_predict_and_eval(trained, tmp_path: Path, kind: str) -> None:
    data, run = trained
    folder = Path(shutil.copytree(run / "last", tmp_path / "model"))
    weights = folder / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes({"truncated": good[: len(good) // 2], "garbage": os.urandom(4000), "empty": b""}[kind])
    what = "the file is empty" if kind == "empty" else "truncated or not a safetensors file"
    res = vidlang("predict", "--ckpt", str(folder), "--features", str(data / "features.h5"),
                  "--video-id", "test_00001", "--query", "a person opens the door")
    one_line_error(res, str(weights), what)
    res = vidlang("eval", "mmn/cpu", "--ckpt", str(folder), "--set", f"data.root={data}", *TINY,
                  "--split", "test", "--out", str(tmp_path / "ev"))
    one_line_error(res, str(weights), what)


def test_truncated_training_state_is_one_line_for_resume(trained, tmp_path: Path) -> None:
    data, run = trained
    copy = Path(shutil.copytree(run, tmp_path / "run"))
    ckpt = copy / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:5000])
    res = vidlang("train", "mmn/cpu", "--set", f"data.root={data}", *TINY, "--set", "trainer.max_epochs=2",
                  "--out", str(copy), "--resume")
    one_line_error(res, str(ckpt), "cannot read the training state: truncated")
