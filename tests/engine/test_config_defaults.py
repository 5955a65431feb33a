"""Config defaults have one home: the config dataclasses hold every default (the papers'
values), a YAML layer only sets what differs from what lies below it, and one setting (the
``eval`` convention) decides grounding suppression.

The layer check walks every shipped experiment config through its layers (base.yaml, the
``defaults:`` entries, the file itself) and flags a value that equals what the layers below
already give, or, where no layer below sets it, the default of the dataclass that finally
validates it. ``scripts/dump_configs.py`` dumps every resolved config, to show a cleanup
moved no value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, ListConfig, OmegaConf

from cli_support import TINY_MMN, one_line_error, run_vidlang, synth_tiny, train_tiny_mmn
from vidlang.engine.config import (
    BASE_NAME,
    CONFIG_ROOT,
    load_config,
    packaged_configs,
    resolve_config_path,
)
from vidlang.engine.schema import RunConfig
from vidlang.errors import ConfigError

EXPERIMENTS = [n for n in packaged_configs() if not n.startswith(("dataset/", "model/")) and n != BASE_NAME]

# The grounding suppression each shipped experiment evaluated with before NMS moved out of the
# models (scripts/dump_configs.py at f5bb289: model.nms_thresh / max_predictions, then the
# metric preset's NMS; hard NMS at t1 then at t2 >= t1 keeps what NMS at t1 keeps):
# (IoU threshold or None, top-k cap or None)
RECORDED_NMS: dict[str, tuple[float | None, int | None]] = {
    "2dtan/activitynet": (0.5, 5), "2dtan/charades_sta": (0.45, 5), "2dtan/cpu": (0.45, 5),
    "2dtan/synthvl": (0.45, 5), "2dtan/tacos": (0.4, 5),
    "ccr/activitynet": (None, 5), "ccr/charades_sta": (None, 5), "ccr/cpu": (None, 5),
    "ccr/synthvl": (None, 5),
    "cpl/activitynet": (None, 5), "cpl/charades_sta": (None, 5), "cpl/cpu": (None, 5),
    "cpl/synthvl": (None, 5),
    "mmn/activitynet": (0.5, None), "mmn/charades_sta": (0.5, None), "mmn/cpu": (0.5, None),
    "mmn/synthvl": (0.5, None), "mmn/tacos": (0.4, None),
}


def _layers(path: Path) -> list[tuple[Path, DictConfig]]:
    """(file, its own keys) in merge order, ``defaults:`` entries first (recursively)."""
    node = OmegaConf.load(path)
    assert isinstance(node, DictConfig)
    defaults = list(node.pop("defaults", []))
    out: list[tuple[Path, DictConfig]] = []
    for d in defaults:
        out += _layers(resolve_config_path(d, path.parent))
    return [*out, (path, node)]


def _leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted (key, value) pairs; a list is one leaf."""
    if isinstance(node, DictConfig):
        return [leaf for k, v in node.items_ex(resolve=False) for leaf in _leaves(v, f"{prefix}{k}.")]
    value = OmegaConf.to_container(node) if isinstance(node, ListConfig) else node
    return [(prefix[:-1], value)]


def _dataclass_defaults(name: str) -> dict[str, Any]:
    """Dotted key -> default, from the dataclasses that validate experiment ``name``."""
    from vidlang.registry import MODELS, PIPELINES

    cfg = load_config(name)
    model_cls = MODELS.get(cfg.model_name)
    data_cls = PIPELINES.get(model_cls.task).data_config_class
    out: dict[str, Any] = {}
    for section, cls in (("", RunConfig), ("model.", model_cls.config_class), ("data.", data_cls)):
        for key, value in _leaves(OmegaConf.structured(cls)):
            if not key.startswith(("model", "data")) or section:
                out[section + key] = value
    return out


def _occurrences(name: str) -> list[tuple[str, str, Any, bool]]:
    """(file, key, value, repeats what lies below) for each value experiment ``name``'s layers
    set, in merge order (a layer included twice is seen twice)."""
    defaults = _dataclass_defaults(name)
    below: dict[str, Any] = {}
    out = []
    for path, own in _layers(CONFIG_ROOT / f"{BASE_NAME}.yaml") + _layers(resolve_config_path(name)):
        for key, value in _leaves(own):
            if key != "model.name":
                was = below[key] if key in below else defaults.get(key, KeyError)
                same = was is not KeyError and was == value and type(was) is type(value)
                out.append((str(path.relative_to(CONFIG_ROOT)), key, value, same))
            below[key] = value
    return out


def redundant_values(names: list[str]) -> list[str]:
    """``file: key = value`` for each value that, wherever the experiments ``names`` include
    its file, equals what the layers below it (or, where none sets it, the validating
    dataclass) already give: a value that is needed in one place stays."""
    needed: dict[tuple[str, str], bool] = {}
    values: dict[tuple[str, str], Any] = {}
    for name in names:
        for file, key, value, same in _occurrences(name):
            needed[file, key] = needed.get((file, key), False) or not same
            values[file, key] = value
    return sorted(f"{f}: {k} = {values[f, k]!r}" for (f, k), need in needed.items() if not need)


def test_no_layer_repeats_what_lies_below() -> None:
    assert redundant_values(EXPERIMENTS) == []


def test_every_shipped_experiment_is_checked() -> None:
    grounding = {n for n in EXPERIMENTS if load_config(n).task == "grounding"}
    assert grounding == set(RECORDED_NMS)


@pytest.mark.parametrize("name", sorted(RECORDED_NMS))
def test_effective_nms_is_the_recorded_one(name: str) -> None:
    from vidlang.engine.pipelines.grounding import grounding_postprocess

    conv = grounding_postprocess(load_config(name)).convention
    assert (conv.nms_thresh, conv.topk_cap) == RECORDED_NMS[name]
    assert conv.nms_kind == "hard" and not conv.modified, "shipped configs use a preset as published"


def test_model_keys_that_moved_name_their_new_home() -> None:
    with pytest.raises(ConfigError, match=r"^model\.nms_thresh: this key moved to eval\.overrides\.nms_thresh"):
        load_config("mmn/charades_sta", ["model.nms_thresh=0.7"])
    with pytest.raises(ConfigError, match=r"^model\.max_predictions: .*eval\.overrides\.topk_cap"):
        load_config("2dtan/cpu", ["model.max_predictions=3"])


# --- through the real entry point and the pipeline ---------------------------------------

def _pairwise_max_iou(windows: list[list[float]]) -> float:
    best = 0.0
    for i, a in enumerate(windows):
        for b in windows[:i]:
            inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
            best = max(best, inter / (max(a[1], b[1]) - min(a[0], b[0])))
    return best


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("nms")
    data = synth_tiny(root / "data")
    return data, train_tiny_mmn(data, root / "run", "model.input_dim=32")


def test_eval_nms_setting_changes_results_and_old_key_is_refused(tiny_run, tmp_path: Path) -> None:
    import json

    data, run = tiny_run
    sets = [a for s in [*TINY_MMN, f"data.root={data}", "model.input_dim=32"] for a in ("--set", s)]
    counts, metrics = {}, {}
    for thresh in ("0.5", "0.9"):
        out = tmp_path / f"ev{thresh}"
        proc = run_vidlang("eval", "mmn/cpu", "--ckpt", run, "--split", "test", "--out", out, *sets,
                           "--set", f"eval.overrides.nms_thresh={thresh}", timeout=300)
        assert proc.returncode == 0, proc.stderr
        preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
        assert max(_pairwise_max_iou(p["pred_relevant_windows"]) for p in preds) <= float(thresh)
        counts[thresh] = sum(len(p["pred_relevant_windows"]) for p in preds)
        metrics[thresh] = json.loads((out / "metrics.json").read_text())["metrics"]
    assert counts["0.9"] > counts["0.5"], "a looser NMS keeps more windows"
    assert metrics["0.5"]["R@5,IoU>=0.5 [mmn]"] != metrics["0.9"]["R@5,IoU>=0.5 [mmn*]"]
    proc = run_vidlang("eval", "mmn/cpu", "--ckpt", run, "--split", "test", *sets,
                       "--set", "model.nms_thresh=0.7")
    assert "model.nms_thresh: this key moved to eval.overrides.nms_thresh" in one_line_error(proc)


def _predict(run: Path, data: Path) -> list[list[list[float]]]:
    """What ``vidlang predict --ckpt RUN --features STORE --video-id test_00000`` computes, in
    process (the CLI builds this predictor; tests/cli/test_engine_cli.py runs the command)."""
    from vidlang.data.synthvl import FEATURES_FILE
    from vidlang.inference import GroundingPredictor

    predictor = GroundingPredictor.from_pretrained(run, device="cpu")
    return predictor.predict_from_store(data / FEATURES_FILE, "test_00000",
                                        ["a person opens a door", "someone sits down"])


def test_predict_applies_the_recorded_eval_setting_and_old_folders_load(tiny_run, tmp_path: Path) -> None:
    import shutil

    data, run = tiny_run
    base = _predict(run, data)
    assert all(_pairwise_max_iou(w) <= 0.5 for w in base)
    folder = tmp_path / "run"
    shutil.copytree(run, folder)
    configs = sorted(folder.rglob("config.yaml"))   # the run's, best/'s and last/'s
    text = configs[0].read_text()
    assert "nms_thresh" not in text and all(c.read_text() == text for c in configs)

    def record(new_text: str) -> None:
        for c in configs:
            c.write_text(new_text)

    # a folder recorded before the move: the model section carried the NMS keys
    record(text.replace("  rank_masked_cells:", "  nms_thresh: 0.5\n  max_predictions: null\n"
                                                "  rank_masked_cells:"))
    assert _predict(folder, data) == base
    record(text.replace("  rank_masked_cells:", "  nms_thresh: 0.2\n  rank_masked_cells:"))
    strict = _predict(folder, data)   # migrated to eval.overrides.nms_thresh=0.2
    assert all(_pairwise_max_iou(w) <= 0.2 for w in strict) and strict != base
    record(text.replace("  overrides: {}", "  overrides:\n    nms_thresh: 0.9"))
    loose = _predict(folder, data)
    assert sum(map(len, loose)) > sum(map(len, base))
