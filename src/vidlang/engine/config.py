"""Layered YAML experiment configs: load, merge, override, validate, save.

Layering (first to last, later wins): ``configs/base.yaml`` -> the entries of the file's
``defaults:`` list, in order (each resolved the same way, recursively) -> the file's own keys
-> ``--set key=value`` overrides. A ``defaults`` entry ending in ``.yaml`` is a path relative
to the including file; any other entry is a packaged name (``dataset/charades_sta`` ->
``vidlang/configs/dataset/charades_sta.yaml``). Interpolations (``${oc.env:VAR,default}``)
are resolved before validation. Validation builds typed objects: ``model`` against the model's
``config_class`` (from ``model.name``), ``data`` against the task pipeline's
``data_config_class``, the rest against :mod:`vidlang.engine.schema`; an unknown key or a
wrong type is one :class:`ConfigError` naming the dotted key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from vidlang.engine.schema import ExperimentConfig, RunConfig
from vidlang.errors import ConfigError, RegistryError

CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"
BASE_NAME = "base"


def packaged_configs() -> list[str]:
    """Names of the packaged configs, e.g. ``mmn/charades_sta``."""
    return sorted(str(p.relative_to(CONFIG_ROOT).with_suffix("")) for p in CONFIG_ROOT.rglob("*.yaml"))


def resolve_config_path(name: str | Path, relative_to: Path | None = None) -> Path:
    """A config file from a path (``.yaml``; relative to ``relative_to`` or the cwd) or a
    packaged name."""
    text = str(name)
    if text.endswith((".yaml", ".yml")):
        candidates = [Path(text)] if relative_to is None else [relative_to / text, Path(text)]
    else:
        candidates = [CONFIG_ROOT / f"{text}.yaml"]
        if relative_to is None:
            candidates.append(Path(f"{text}.yaml"))
    for cand in candidates:
        if cand.is_file():
            return cand.resolve()
    raise ConfigError(
        f"config {text!r} not found (looked at {', '.join(str(c) for c in candidates)}); "
        f"packaged configs: {', '.join(packaged_configs())}"
    )


def _load_layers(path: Path, stack: tuple[Path, ...] = ()) -> DictConfig:
    """One file merged over its ``defaults`` (recursively)."""
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise ConfigError(f"{path}: defaults form a cycle: {chain}")
    try:
        node = OmegaConf.load(path)
    except Exception as e:  # YAML syntax errors carry line numbers in their message
        raise ConfigError(f"{path}: cannot parse YAML: {e}") from None
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: top level must be a mapping, got a list")
    defaults = node.pop("defaults", [])
    if not isinstance(defaults, (ListConfig, list)) or not all(isinstance(d, str) for d in defaults):
        raise ConfigError(f"{path}: 'defaults' must be a list of config names or .yaml paths")
    layers = [_load_layers(resolve_config_path(d, path.parent), (*stack, path)) for d in defaults]
    merged = OmegaConf.merge(*layers, node) if layers else node
    assert isinstance(merged, DictConfig)
    return merged


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """``["optim.lr=1e-3", "trainer.devices=2"]`` -> a config (values parsed as YAML)."""
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. optim.lr=1e-3")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as e:
        raise ConfigError(f"--set: {e}") from None


def load_raw_config(name: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Merge base -> defaults -> file -> overrides into one untyped, resolved config."""
    base = _load_layers(CONFIG_ROOT / f"{BASE_NAME}.yaml")
    path = resolve_config_path(name)
    layers = [base] if path == (CONFIG_ROOT / f"{BASE_NAME}.yaml").resolve() else [base, _load_layers(path)]
    merged = OmegaConf.merge(*layers, parse_overrides(overrides))
    assert isinstance(merged, DictConfig)
    try:
        OmegaConf.resolve(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{_key_of(e)}: cannot resolve interpolation: {_msg_of(e)}") from None
    return merged


def _key_of(e: OmegaConfBaseException, prefix: str = "") -> str:
    key = str(getattr(e, "full_key", "") or "")
    return ".".join(k for k in (prefix, key) if k) or prefix or "<config>"


def _msg_of(e: OmegaConfBaseException) -> str:
    return str(getattr(e, "msg", None) or e).splitlines()[0]


def validate_section(schema: type, node: Any, prefix: str) -> Any:
    """Merge ``node`` into the structured ``schema`` and return the typed dataclass object."""
    if not dataclasses.is_dataclass(schema):
        raise ConfigError(f"{prefix}: schema {schema!r} is not a dataclass")
    if node is None:
        node = {}
    if not isinstance(node, (DictConfig, dict)):
        raise ConfigError(f"{prefix}: expected a mapping, got {type(node).__name__}")
    try:
        typed = OmegaConf.merge(OmegaConf.structured(schema), node)
        missing = sorted(OmegaConf.missing_keys(typed))
        if missing:
            raise ConfigError(f"{prefix}.{missing[0]}: required value is missing")
        return OmegaConf.to_object(typed)
    except ConfigKeyError as e:
        raise ConfigError(f"{_key_of(e, prefix)}: unknown key ({_msg_of(e)})") from None
    except OmegaConfBaseException as e:
        raise ConfigError(f"{_key_of(e, prefix)}: {_msg_of(e)}") from None


# (dotted key, lower bound, bound included): numbers that make no sense outside the range are
# refused when the config is loaded, not by torch minutes later (`--set optim.lr=-5`)
NUMBER_RANGES: tuple[tuple[str, float, bool], ...] = (
    ("optim.lr", 0.0, False),
    ("optim.weight_decay", 0.0, True),
    ("optim.eps", 0.0, False),
    ("optim.grad_clip", 0.0, True),
    ("optim.scheduler.gamma", 0.0, False),
    ("optim.scheduler.warmup_updates", 0, True),
    ("optim.scheduler.warmup_init_lr", 0.0, True),
    ("trainer.max_epochs", 1, True),
    ("trainer.num_nodes", 1, True),
    ("trainer.accumulate_grad_batches", 1, True),
    ("trainer.log_every_n_steps", 1, True),
    ("eval.every_n_epochs", 1, True),
)


def check_number_ranges(run: RunConfig) -> None:
    """Each :data:`NUMBER_RANGES` key is a finite number in its range, and ``optim.betas`` lie
    in [0, 1); else one :class:`ConfigError` naming the key, its value and the range."""
    import math

    for key, low, inclusive in NUMBER_RANGES:
        value: Any = run
        for part in key.split("."):
            value = getattr(value, part)
        ok = math.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok:
            bound = f">= {low}" if inclusive else f"> {low}"
            raise ConfigError(f"{key}: must be a finite number {bound}, got {value}")
    for i, beta in enumerate(run.optim.betas):
        if not (math.isfinite(beta) and 0.0 <= beta < 1.0):
            raise ConfigError(f"optim.betas: each must be in [0, 1), got {list(run.optim.betas)} "
                              f"(betas[{i}] = {beta})")


# keys that moved: old dotted key -> (new dotted key, why). An experiment config or --set that
# still sets an old key gets a ConfigError naming the new one; a config.yaml recorded in a run
# folder before the move is migrated by load_recorded_config.
MOVED_KEYS: dict[str, tuple[str, str]] = {
    "model.nms_thresh": ("eval.overrides.nms_thresh",
                         "suppression is the evaluation's post-processing step, applied by the "
                         "pipeline and the predictor; a model's predict returns every ranked candidate"),
    "model.max_predictions": ("eval.overrides.topk_cap",
                              "the cap after NMS is part of the evaluation's post-processing step"),
}


def check_moved_keys(raw: DictConfig) -> None:
    """One :class:`ConfigError` for the first :data:`MOVED_KEYS` key ``raw`` still sets."""
    for old, (new, why) in MOVED_KEYS.items():
        section, key = old.split(".", 1)
        node = raw.get(section)
        if isinstance(node, DictConfig) and key in node:
            raise ConfigError(f"{old}: this key moved to {new} ({why}); set "
                              f"{new}={node[key]} instead (or drop it to use eval.preset's value)")


def migrate_moved_keys(raw: DictConfig) -> DictConfig:
    """A recorded run config with the :data:`MOVED_KEYS` keys moved to their new place.

    The old model keys decided what the predictor returned, so where one differs from what the
    recorded ``eval`` section gives, it becomes the ``eval.overrides`` value (logged by name)."""
    import logging

    found = {old: raw[old.split(".", 1)[0]].pop(old.split(".", 1)[1])
             for old in MOVED_KEYS
             if isinstance(raw.get(old.split(".", 1)[0]), DictConfig)
             and old.split(".", 1)[1] in raw[old.split(".", 1)[0]]}
    if not found:
        return raw
    from vidlang.metrics.postprocess import GroundingPostprocess

    cfg = build_config(raw)
    if cfg.task != "grounding":
        return raw
    conv = GroundingPostprocess.from_eval(cfg.eval.preset, cfg.eval.overrides, cfg.data.dataset).convention
    current = {"eval.overrides.nms_thresh": conv.nms_thresh, "eval.overrides.topk_cap": conv.topk_cap}
    for old, value in found.items():
        new = MOVED_KEYS[old][0]
        if value != current[new]:
            OmegaConf.update(raw, new, value, force_add=True)
            logging.getLogger(__name__).warning(
                "recorded config: %s=%s moved to %s (differs from eval.preset's %s)",
                old, value, new, current[new])
    return raw


def load_recorded_config(path: str | Path) -> ExperimentConfig:
    """The config.yaml saved with a run or model folder, migrated (see
    :func:`migrate_moved_keys`) and validated."""
    return build_config(migrate_moved_keys(load_raw_config(path)))


def build_config(raw: DictConfig) -> ExperimentConfig:
    """Validate a merged config into typed sections (errors name the dotted key)."""
    from vidlang.registry import MODELS, PIPELINES

    model_node = raw.get("model")
    if not isinstance(model_node, DictConfig) or not model_node.get("name"):
        raise ConfigError(f"model.name: missing; name a registered model (known: {', '.join(MODELS.names())})")
    model_name = str(model_node.name)
    check_moved_keys(raw)
    try:
        model_cls = MODELS.get(model_name)
        pipeline_cls = PIPELINES.get(model_cls.task)
    except RegistryError as e:
        raise ConfigError(f"model.name: {e}") from None
    rest = {k: v for k, v in raw.items() if k not in ("model", "data")}
    run = validate_section(RunConfig, rest, "")
    check_number_ranges(run)
    model_fields = {k: v for k, v in model_node.items() if k != "name"}
    model_cfg = validate_section(model_cls.config_class, model_fields, "model")
    data_cfg = validate_section(pipeline_cls.data_config_class, raw.get("data"), "data")
    cfg = ExperimentConfig(model_name=model_name, model=model_cfg, data=data_cfg, seed=run.seed,
                           optim=run.optim, trainer=run.trainer, eval=run.eval)
    pipeline_cls.check_config(cfg)
    return cfg


def load_config(name: str | Path, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Load, merge, override and validate an experiment config (a packaged name or a path)."""
    return build_config(load_raw_config(name, overrides))


def config_to_container(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config as plain YAML-able data (``model.name`` first in the model section)."""

    def plain(obj: Any) -> Any:
        return OmegaConf.to_container(OmegaConf.structured(obj), resolve=True)

    return {
        "seed": cfg.seed,
        "model": {"name": cfg.model_name, **plain(cfg.model)},
        "data": plain(cfg.data),
        "optim": plain(cfg.optim),
        "trainer": plain(cfg.trainer),
        "eval": plain(cfg.eval),
    }


def config_to_yaml(cfg: ExperimentConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.create(config_to_container(cfg)))


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config; :func:`load_config` reads it back to an equal object."""
    Path(path).write_text(config_to_yaml(cfg), encoding="utf-8")
