"""Feature widths are inferred from the store (``auto``) or checked against it before anything
is built; a wrong number prints the ``--set`` that fixes it; a missing data root names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import TINY_MMN, one_line_error, run_vidlang, synth_tiny
from vidlang.engine import load_config
from vidlang.engine.checkpoint import build_model
from vidlang.engine.dims import resolve_feature_dims
from vidlang.errors import ConfigError
from vidlang.models.feature_dim import require_dim


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_tiny(tmp_path_factory.mktemp("dims") / "data")


@pytest.mark.parametrize(("config", "key"), [
    ("mmn/cpu", "input_dim"), ("2dtan/cpu", "input_dim"), ("cpl/cpu", "frame_dim"),
    ("ccr/cpu", "frame_dim"), ("retrieval/synthvl_cpu", "video_dim"),
    ("tempclr/synthvl_cpu", "video_dim"), ("mcqa/synthvl_cpu", "video_dim")])
def test_synthvl_configs_read_the_width_from_the_store(tiny: Path, config: str, key: str) -> None:
    cfg = load_config(config, [f"data.root={tiny}"])
    assert getattr(cfg.model, key) == "auto"
    resolve_feature_dims(cfg)
    assert getattr(cfg.model, key) == 32  # SynthVL tiny features


def test_a_wrong_width_is_refused_before_building_with_the_fix(tiny: Path, tmp_path: Path) -> None:
    cfg = load_config("retrieval/synthvl_cpu", [f"data.root={tiny}", "model.video_dim=512"])
    with pytest.raises(ConfigError, match=r"model.video_dim: is 512 but the features in .* are "
                                          r"32-d; fix: --set model.video_dim=32"):
        resolve_feature_dims(cfg)
    # through the CLI: one line, and no run folder written
    sets = [a for s in (*TINY_MMN, f"data.root={tiny}", "model.input_dim=512") for a in ("--set", s)]
    line = one_line_error(run_vidlang("train", "mmn/cpu", *sets, "--out", tmp_path / "run"))
    assert "--set model.input_dim=32" in line
    assert not (tmp_path / "run").exists()


def test_auto_width_trains_and_the_checkpoint_records_the_number(tiny: Path, tmp_path: Path) -> None:
    from vidlang.engine.run import train

    result = train(load_config("mmn/cpu", [*TINY_MMN, f"data.root={tiny}"]), tmp_path / "run")
    assert "input_dim: 32" in (result.last_dir / "config.yaml").read_text()
    assert "input_dim: 32" in (tmp_path / "run" / "config.yaml").read_text()


def test_auto_without_a_store_names_the_key(tmp_path: Path) -> None:
    cfg = load_config("mmn/cpu", [f"data.root={tmp_path / 'nowhere'}"])
    with pytest.raises(ConfigError, match=r"^data.root: no feature store at .*--set data.root=DIR"):
        resolve_feature_dims(cfg)
    with pytest.raises(ConfigError, match=r"^data.root: no feature store"):
        build_model(cfg)  # auto: the store is read before the model is built
    with pytest.raises(ConfigError, match=r"^model.input_dim: 'auto' .*--set model.input_dim="):
        require_dim("auto", "input_dim")  # a model built without resolving first
    for bad in (0, -3, "wide", True):
        with pytest.raises(ConfigError, match="model.input_dim: expected a positive integer"):
            require_dim(bad, "input_dim")


def test_missing_data_root_names_the_flag(tmp_path: Path) -> None:
    # the default root (synthvl_data) does not exist in a fresh folder: say which key to set
    line = one_line_error(run_vidlang("train", "mmn/cpu", "--out", tmp_path / "r", cwd=tmp_path))
    assert line.startswith("error: data.root:") and "--set data.root=DIR" in line
    assert "meta.json:" not in line
