"""Config system: layering order, defaults lists, --set overrides, validation errors."""

from __future__ import annotations

import pytest

import engine_toy  # noqa: F401  (registers the engine_toy model)
from vidlang.engine.config import (
    config_to_container,
    load_config,
    load_raw_config,
    packaged_configs,
    parse_overrides,
    save_config,
)
from vidlang.errors import ConfigError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def layered(tmp_path):
    write(tmp_path / "parts" / "data.yaml", "data:\n  batch_size: 5\n  eval_batch_size: 7\noptim:\n  lr: 0.1\n")
    write(tmp_path / "parts" / "model.yaml", "model:\n  name: engine_toy\n  hidden: 4\noptim:\n  lr: 0.2\n")
    return write(tmp_path / "exp.yaml",
                 "defaults: [parts/data.yaml, parts/model.yaml]\noptim:\n  weight_decay: 0.5\n"
                 "data:\n  eval_batch_size: 9\n")


def test_layers_merge_in_order_base_defaults_file_overrides(layered):
    cfg = load_config(layered)
    assert cfg.model_name == "engine_toy" and cfg.model.hidden == 4
    assert cfg.optim.lr == 0.2  # model.yaml (later default) beats data.yaml
    assert cfg.data.batch_size == 5 and cfg.data.eval_batch_size == 9  # file beats its defaults
    assert cfg.optim.weight_decay == 0.5
    assert cfg.trainer.max_epochs == 10  # from base.yaml
    cfg2 = load_config(layered, ["optim.lr=3e-3", "model.hidden=8", "trainer.devices=[0,1]"])
    assert cfg2.optim.lr == 3e-3 and cfg2.model.hidden == 8 and list(cfg2.trainer.devices) == [0, 1]


@pytest.mark.parametrize("override, key", [
    ("model.hiddn=3", "model.hiddn"),
    ("optim.nope=1", "optim.nope"),
    ("data.batch_unit2=video", "data.batch_unit2"),
    ("typo=1", "typo"),
])
def test_unknown_key_names_the_key(layered, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}: unknown key"):
        load_config(layered, [override])


@pytest.mark.parametrize("override, key", [
    ("model.hidden=wide", "model.hidden"),
    ("optim.lr=fast", "optim.lr"),
    ("trainer.max_epochs=[1]", "trainer.max_epochs"),
    ("data.batch_unit=frame", "data.batch_unit"),
    ("data.batch_size=0", "data.batch_size"),
    ("optim.scheduler.name=cosine", "optim.scheduler.name"),
    ("data.select_split=valid", "data.select_split"),
    ("data.dataset=nope", "data.dataset"),
    ("eval.metric=R@9", "eval.metric"),
    ("eval.preset=nope", "eval.preset"),
    ("eval.overrides.thresholds=[2.0]", "eval.overrides"),
])
def test_wrong_type_or_value_names_the_key(layered, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}"):
        cfg = load_config(layered, [override])
        # the scheduler name is checked when the optimiser is built (before training starts)
        from engine_toy import ToyGrounder
        from vidlang.engine.optim import build_optimizer, build_scheduler

        model = ToyGrounder(cfg.model)
        build_scheduler(build_optimizer(model.param_groups(cfg.optim.lr), cfg.optim), cfg.optim)


def test_missing_or_unknown_model_name(tmp_path):
    with pytest.raises(ConfigError, match="^model.name: missing"):
        load_config(write(tmp_path / "a.yaml", "seed: 1\n"))
    with pytest.raises(ConfigError, match="^model.name: unknown model 'nope'"):
        load_config(write(tmp_path / "b.yaml", "model:\n  name: nope\n"))


def test_bad_override_syntax_and_missing_file(tmp_path, layered):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["optim.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not found.*packaged configs"):
        load_config("no_such/experiment")


def test_defaults_cycle_is_reported(tmp_path):
    write(tmp_path / "a.yaml", "defaults: [b.yaml]\n")
    write(tmp_path / "b.yaml", "defaults: [a.yaml]\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_raw_config(tmp_path / "a.yaml")


def test_test_split_selection_needs_explicit_opt_in(layered):
    with pytest.raises(ConfigError, match="^data.select_split"):
        load_config(layered, ["data.select_split=test"])
    cfg = load_config(layered, ["data.select_split=test", "data.allow_test_selection=true"])
    assert cfg.data.select_split == "test"


def test_saved_config_round_trips(layered, tmp_path):
    cfg = load_config(layered, ["seed=7", "optim.scheduler.name=multistep", "optim.scheduler.milestones=[2,4]"])
    save_config(cfg, tmp_path / "saved.yaml")
    again = load_config(tmp_path / "saved.yaml")
    assert again == cfg
    assert list(config_to_container(cfg)["model"])[0] == "name"


def test_interpolation_and_env(tmp_path, monkeypatch, layered):
    monkeypatch.setenv("VIDLANG_TEST_ROOT", "/data/x")
    path = write(tmp_path / "env.yaml", "defaults: [exp.yaml]\ndata:\n  root: ${oc.env:VIDLANG_TEST_ROOT}/synth\n")
    assert load_config(path).data.root == "/data/x/synth"


def test_packaged_configs_include_base():
    assert "base" in packaged_configs()
