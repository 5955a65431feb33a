"""Bad numbers are refused when the arguments or the config are read, each as one line naming
the option or key: ``predict --top-k -3``, a ``--duration`` far from what the features cover,
``--set optim.lr=-5`` and the other engine ranges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import one_line_error, run_vidlang, synth_tiny, train_tiny_mmn
from vidlang.cli.train import check_duration, npy_duration
from vidlang.engine.config import NUMBER_RANGES, load_config
from vidlang.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("numbers")
    data = synth_tiny(root / "data")
    return data, train_tiny_mmn(data, root / "run", "model.input_dim=32")


def _predict(run: Path, data: Path, *args: str):
    return run_vidlang("predict", "--ckpt", run, "--features", data / "features.h5",
                       "--video-id", "test_00000", "--query", "a person", *args)


def test_negative_top_k_is_refused(tiny_run) -> None:
    data, run = tiny_run
    line = one_line_error(_predict(run, data, "--top-k", "-3"))
    assert "--top-k" in line


def test_duration_far_beyond_the_features_is_refused(tiny_run) -> None:
    data, run = tiny_run
    line = one_line_error(_predict(run, data, "--duration", "600"))
    recorded = json.loads((data / "durations.json").read_text())["test_00000"]
    assert "--duration: 600 s" in line and f"cover {recorded:.1f} s" in line, line


def test_duration_check_bounds_and_npy_length(tiny_run) -> None:
    import h5py

    data, run = tiny_run
    check_duration(30.0, 33.2, "v")  # close to what the features cover: accepted
    check_duration(None, 33.2, "v")
    check_duration(600.0, None, "v")  # nothing to compare with
    for bad in (600.0, 5.0, -1.0):
        with pytest.raises(ConfigError, match="--duration"):
            check_duration(bad, 33.2, "v")
    # a bare [T, D] array covers T times the training store's clip_seconds (1 s in SynthVL)
    with h5py.File(data / "features.h5") as f:
        rows = f["test_00000"][()]
    assert npy_duration(run, rows) == pytest.approx(len(rows) * 1.0)


def test_negative_learning_rate_is_refused_before_training(tmp_path) -> None:
    line = one_line_error(run_vidlang("train", "mmn/cpu", "--set", "optim.lr=-5", "--out", tmp_path / "r"))
    assert "optim.lr: must be a finite number > 0.0, got -5.0" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("key", "low", "inclusive"), NUMBER_RANGES)
def test_every_range_is_checked(key: str, low: float, inclusive: bool) -> None:
    bad = low - 1 if inclusive else low
    with pytest.raises(ConfigError, match=rf"^{key}: must be"):
        load_config("mmn/cpu", [f"{key}={bad}"])
    load_config("mmn/cpu", [f"{key}={low + 1}"])  # in range: accepted


def test_betas_outside_unit_interval_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"optim.betas: .*betas\[1\] = 1.5"):
        load_config("mmn/cpu", ["optim.betas=[0.9,1.5]"])
