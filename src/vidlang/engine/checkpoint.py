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

from vidlang.engine.config import build_config, load_raw_config, save_config
from vidlang.engine.schema import ExperimentConfig
from vidlang.errors import ConfigError

WEIGHTS = "model.safetensors"
CONFIG = "config.yaml"
INFO = "info.json"


def save_pretrained(model: torch.nn.Module, cfg: ExperimentConfig, path: str | Path,
                    info: dict[str, Any] | None = None) -> Path:
    """Write weights, the resolved config and optional ``info.json`` into folder ``path``."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    _st_save(model, str(out / WEIGHTS), metadata={"vidlang_model": cfg.model_name})
    save_config(cfg, out / CONFIG)
    if info is not None:
        (out / INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out


def resolve_model_dir(path: str | Path) -> Path:
    """``path`` itself when it holds ``model.safetensors``, else its ``best/`` or ``last/``."""
    p = Path(path)
    for cand in (p, p / "best", p / "last"):
        if (cand / WEIGHTS).is_file() and (cand / CONFIG).is_file():
            return cand
    raise ConfigError(f"{p}: no {WEIGHTS} + {CONFIG} here or in best/ or last/")


def load_config_of(path: str | Path) -> ExperimentConfig:
    """The experiment config saved with a model folder."""
    return build_config(load_raw_config(resolve_model_dir(path) / CONFIG))


def build_model(cfg: ExperimentConfig) -> Any:
    """A freshly initialised model for ``cfg`` (from the MODELS registry); a feature width left
    ``auto`` is read from the configured store first (vidlang.engine.dims)."""
    from vidlang.engine.dims import resolve_feature_dims
    from vidlang.registry import MODELS

    resolve_feature_dims(cfg, require_store=False, only_auto=True)

    return MODELS.get(cfg.model_name)(cfg.model)


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """The model saved in folder ``path`` (see :func:`resolve_model_dir`), in eval mode."""
    folder = resolve_model_dir(path)
    cfg = build_config(load_raw_config(folder / CONFIG))
    model = build_model(cfg)
    missing, unexpected = _st_load(model, str(folder / WEIGHTS), strict=False, device=str(map_location))
    if missing or unexpected:
        raise ConfigError(f"{folder / WEIGHTS}: weights do not fit {cfg.model_name}: "
                          f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")
    model.to(map_location)
    model.eval()
    return model
