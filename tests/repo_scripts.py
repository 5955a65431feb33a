"""Import a script or benchmark of the repository (not part of the package) by its path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]


def load_repo_module(relative_path: str) -> ModuleType:
    """The module at ``REPO / relative_path``, registered in ``sys.modules`` under its stem
    (dataclasses and pickling look modules up there)."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module
