"""The clip-feature width of a model config: ``auto`` (read from the feature store) or a number
checked against the store before the model is built.

Every model that reads clip features names their width with one key (:data:`FEATURE_DIM_KEYS`:
MMN / 2D-TAN ``input_dim``, CPL / CCR ``frame_dim``, the retrieval and alignment models
``video_dim``). ``auto`` is replaced by the store's width when training starts; a number that
disagrees with the store is one :class:`ConfigError` that prints the ``--set`` that fixes it,
raised before anything is built or trained.
"""

from __future__ import annotations

import logging
from typing import Any

from vidlang.errors import ConfigError
from vidlang.models.feature_dim import AUTO, dim_mismatch, feature_dim_key, require_dim

log = logging.getLogger(__name__)


def store_width(path: str) -> int | None:
    """The feature width of the store at ``path`` (None when there is no store there)."""
    from pathlib import Path

    from vidlang.data.features import open_feature_store

    if not Path(path).exists():
        return None
    with open_feature_store(path) as store:
        return int(store.dim)


def missing_store(data: Any, path: str) -> ConfigError:
    """The error for a feature store that is not there, naming the key to set."""
    if getattr(data, "features", None):
        return ConfigError(f"data.features: no feature store at {path}")
    return ConfigError(f"data.root: no feature store at {path}; pass --set data.root=DIR with DIR "
                       f"a folder written by `vidlang synth --out DIR` (or set data.features)")


def resolve_feature_dims(cfg: Any, *, require_store: bool = True, only_auto: bool = False) -> None:
    """Replace ``auto`` in the model's feature-width key by the store's width, and check a
    number against it; in place, before the model is built (and before the config is saved,
    so checkpoints record the number). ``require_store``: a missing store is an error naming
    ``data.root`` / ``data.features`` (off when the caller brings its own data); ``only_auto``:
    leave a number unchecked (a saved checkpoint's config, whose store may have moved)."""
    from vidlang.engine.pipelines.features import feature_store_path

    key = feature_dim_key(cfg.model)
    if key is None:
        return
    value = getattr(cfg.model, key)
    if value is None:  # models that take the width from elsewhere (zero-shot CLIP)
        return
    if value != AUTO:
        require_dim(value, key)
        if only_auto:
            return
    try:
        path = feature_store_path(cfg.data)
    except ConfigError as e:
        if value == AUTO:
            raise ConfigError(f"model.{key}: '{AUTO}' reads the width from the feature store, "
                              f"but there is none: {e}") from None
        return
    width = store_width(path)
    if width is None:
        if require_store or value == AUTO:
            raise missing_store(cfg.data, path)
        return
    if value == AUTO:
        setattr(cfg.model, key, width)
        log.info("model.%s: auto -> %d (from %s)", key, width, path)
    elif value != width:
        raise ConfigError(dim_mismatch(key, value, width, path))
