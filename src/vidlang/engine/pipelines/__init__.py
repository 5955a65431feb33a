"""Task data pipelines, registered in ``vidlang.registry.PIPELINES`` by task name.

Each module here registers one task's pipeline on import; add yours to the list below.
"""

from __future__ import annotations

import importlib

from vidlang.engine.pipelines.base import EpochSampler, TaskPipeline, flatten_metrics, make_loader

_TASK_MODULES = ("grounding", "retrieval", "mcqa", "alignment")

for _name in _TASK_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _e:  # a task module not written yet
        if _e.name != f"{__name__}.{_name}":
            raise

__all__ = ["EpochSampler", "TaskPipeline", "flatten_metrics", "make_loader"]
