"""Paths recorded in a run's config must not depend on the folder training ran in.

``train`` stores ``data.root`` / ``data.features`` (and model keys named ``path`` / ``*_path``
that name an existing file or folder, e.g. a GloVe file or a local HF encoder) as absolute
paths, so ``vidlang predict --video`` or ``vidlang index`` work from any folder.
:func:`resolve_recorded_path` reads a relative path from an older run folder: relative to
the current folder if it exists there, else relative to the model folder or one of its parents.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from vidlang.engine.schema import ExperimentConfig


def _absolute(value: str) -> str:
    return os.path.abspath(os.path.expanduser(value))


def _is_path_key(name: str) -> bool:
    return name == "path" or name.endswith("_path")


def _absolute_model_paths(obj: Any) -> Any:
    """A copy of a (nested) dataclass with relative ``path`` / ``*_path`` strings that exist
    made absolute; hub names such as ``distilbert-base-uncased`` (no such file) stay as they are."""
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return obj
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            new = _absolute_model_paths(value)
            if new is not value:
                changes[f.name] = new
        elif (_is_path_key(f.name) and isinstance(value, str) and value
              and not os.path.isabs(value) and os.path.exists(value)):
            changes[f.name] = _absolute(value)
    return dataclasses.replace(obj, **changes) if changes else obj


def with_absolute_paths(cfg: ExperimentConfig) -> ExperimentConfig:
    """``cfg`` with its data paths (and existing model file paths) resolved against the cwd."""
    data_changes = {key: _absolute(getattr(cfg.data, key)) for key in ("root", "features")
                    if isinstance(getattr(cfg.data, key, None), str) and getattr(cfg.data, key)}
    data = dataclasses.replace(cfg.data, **data_changes) if data_changes else cfg.data
    return dataclasses.replace(cfg, data=data, model=_absolute_model_paths(cfg.model))


def resolve_recorded_path(value: str | Path, model_dir: str | Path) -> Path:
    """A path read from a model folder's config: as is when absolute or found from the cwd,
    else the first match relative to ``model_dir`` and its parents (a run trained with
    ``--set data.root=data`` from the project folder keeps ``data`` next to ``runs/``);
    unchanged when none exists (the caller's not-found error names it)."""
    path = Path(value).expanduser()
    if path.is_absolute() or path.exists():
        return path
    folder = Path(model_dir).resolve()
    for base in (folder, *folder.parents):
        if (base / path).exists():
            return base / path
    return path


__all__ = ["resolve_recorded_path", "with_absolute_paths"]
