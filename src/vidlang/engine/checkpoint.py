"""Model folders: ``model.safetensors`` (weights) + ``config.yaml`` (the resolved experiment).

A training run writes ``<out>/best/`` (selected on the validation split) and ``<out>/last/``;
the resumable training state (optimiser, scheduler, epoch, RNG) is Lightning's
``<out>/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model as _st_load
from safetensors.torch import save_model as _st_save

from vidlang.engine.config import load_recorded_config, save_config
from vidlang.engine.schema import ExperimentConfig
from vidlang.errors import ConfigError, DataError

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
INFO = "info.json"


def save_pretrained(model: torch.nn.Module, cfg: ExperimentConfig, path: str | Path,
                    info: dict[str, Any] | None = None) -> Path:
    """Write weights, the resolved config and optional ``info.json`` into folder ``path``.

    Refuses weights holding NaN/inf (:class:`~vidlang.errors.NonFiniteError`); each file is
    written to a temporary name and renamed, so a kill never leaves a half-written file.
    """
    from vidlang.engine.resume import atomic_write, check_finite_weights

    out = Path(path)
    check_finite_weights(model, str(out))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / WEIGHTS, lambda tmp: _st_save(model, str(tmp),
                                                      metadata={"vidlang_model": cfg.model_name}))
    atomic_write(out / CONFIG, lambda tmp: save_config(cfg, tmp))
    if info is not None:
        atomic_write(out / INFO, lambda tmp: tmp.write_text(json.dumps(info, indent=2), encoding="utf-8"))
    return out


def _load_weights(model: torch.nn.Module, file: Path, device: str) -> tuple[list[str], list[str]]:
    """``safetensors.torch.load_model`` with an unreadable file (empty, truncated, not
    safetensors) turned into one :class:`DataError` naming it."""
    from safetensors import SafetensorError

    try:
        missing, unexpected = _st_load(model, str(file), strict=False, device=device)
    except (SafetensorError, OSError, ValueError) as e:
        size = file.stat().st_size if file.is_file() else 0
        what = "the file is empty" if size == 0 else f"truncated or not a safetensors file ({e})"
        raise DataError(f"cannot read model weights: {what}; re-export or re-train this model folder",
                        file) from None
    return list(missing), list(unexpected)


def resolve_model_dir(path: str | Path) -> Path:
    """``path`` itself when it holds ``model.safetensors``, else its ``best/`` or ``last/``."""
    p = Path(path)
    for cand in (p, p / "best", p / "last"):
        if (cand / WEIGHTS).is_file() and (cand / CONFIG).is_file():
            return cand
    raise ConfigError(f"{p}: no {WEIGHTS} + {CONFIG} here or in best/ or last/")


def load_config_of(path: str | Path) -> ExperimentConfig:
    """The experiment config saved with a model folder."""
    return load_recorded_config(resolve_model_dir(path) / CONFIG)


def build_model(cfg: ExperimentConfig) -> Any:
    """A freshly initialised model for ``cfg`` (from the MODELS registry); a feature width left
    ``auto`` is read from the configured store first (vidlang.engine.dims)."""
    from vidlang.engine.dims import resolve_feature_dims
    from vidlang.registry import MODELS

    resolve_feature_dims(cfg, require_store=False, only_auto=True)

    return MODELS.get(cfg.model_name)(cfg.model)


def load_model(path: str | Path, map_location: str | torch.device = "cpu",
               expect: type | None = None) -> Any:
    """The model saved in folder ``path`` (see :func:`resolve_model_dir`), in eval mode.

    ``expect``: a model class the folder must hold (a subclass counts); another class is one
    :class:`ConfigError` naming both, raised before any weights are read.
    """
    folder = resolve_model_dir(path)
    cfg = load_recorded_config(folder / CONFIG)
    model = build_model(cfg)
    if expect is not None and not isinstance(model, expect):
        raise ConfigError(f"{path}: holds a {type(model).__name__}, not a {expect.__name__}")
    missing, unexpected = _load_weights(model, folder / WEIGHTS, str(map_location))
    if missing or unexpected:
        raise ConfigError(f"{folder / WEIGHTS}: weights do not fit {cfg.model_name}: "
                          f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    model.to(map_location)
    model.eval()
    return model
