"""The clip-feature width key of a model config (``input_dim``, ``frame_dim``, ``video_dim``):
a positive number, or ``auto`` that the engine replaces by the feature store's width when
training starts (:mod:`vidlang.engine.dims`). Shared by the models so a width error always
says the same thing and prints the ``--set`` that fixes it.
"""

from __future__ import annotations

from typing import Any

from vidlang.errors import ConfigError

FEATURE_DIM_KEYS = ("input_dim", "frame_dim", "video_dim")
AUTO = "auto"


def feature_dim_key(model_cfg: Any) -> str | None:
    """The config key holding the model's clip-feature width, or None if it has none."""
    return next((k for k in FEATURE_DIM_KEYS if hasattr(model_cfg, k)), None)


def dim_mismatch(key: str, configured: Any, actual: int, where: str = "") -> str:
    """The message for a configured width that is not the features' width, with the fix."""
    source = f" in {where}" if where else ""
    return (f"model.{key}: is {configured} but the features{source} are {actual}-d; "
            f"fix: --set model.{key}={actual} (or model.{key}={AUTO})")


def require_dim(value: Any, key: str) -> int:
    """``value`` as a positive int; ``auto`` here means nobody resolved it from a store."""
    if value == AUTO:
        raise ConfigError(f"model.{key}: '{AUTO}' is resolved from the feature store when "
                          f"training starts; building the model directly needs a number, "
                          f"e.g. --set model.{key}=512")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"model.{key}: expected a positive integer or '{AUTO}', got {value!r}")
    return value
