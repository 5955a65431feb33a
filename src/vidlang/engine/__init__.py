"""The training engine: layered configs, a Lightning wrapper around any VidlangModel, task data
pipelines, checkpoints and evaluation. See docs/engine.md.

Public API (imported lazily so ``import vidlang.engine`` stays cheap)::

    load_config(name_or_path, overrides=()) -> ExperimentConfig
    train(cfg, out_dir, resume=False) -> TrainResult
    evaluate(cfg, ckpt, split=None, out_dir=None) -> dict
    load_model(dir) -> VidlangModel
    save_pretrained(model, cfg, dir) -> Path
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_config": "vidlang.engine.config",
    "load_raw_config": "vidlang.engine.config",
    "build_config": "vidlang.engine.config",
    "save_config": "vidlang.engine.config",
    "train": "vidlang.engine.run",
    "evaluate": "vidlang.engine.evaluation",
    "TrainResult": "vidlang.engine.run",
    "load_model": "vidlang.engine.checkpoint",
    "save_pretrained": "vidlang.engine.checkpoint",
    "ExperimentConfig": "vidlang.engine.schema",
    "DataConfig": "vidlang.engine.schema",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vidlang.engine' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
