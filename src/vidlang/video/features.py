"""One video file -> features, and which extractor made a feature file.

The ``vidlang extract`` command records the extractor in the canonical feature file's root
attrs (``extractor``: its name, ``extractor_options``: JSON of everything that changes the
features), so ``vidlang predict --video`` can extract a new video exactly as the training
features were made.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.errors import ConfigError, DataError

ATTR_EXTRACTOR = "extractor"
ATTR_OPTIONS = "extractor_options"


def features_for_video(path: str | Path, extractor: str, **kw: Any) -> tuple[np.ndarray, float]:
    """([T, D] clip features, duration s) of one video file with the extractor named
    ``extractor`` built with options ``kw`` (e.g. ``model=``, ``fps=``, ``clip_seconds=``)."""
    from vidlang.video.extractors import build_extractor

    return build_extractor(extractor, **kw).extract(path)


def extractor_of_features(h5_path: str | Path) -> tuple[str, dict[str, Any]] | None:
    """(extractor name, options) recorded in a feature file, or None if it records none."""
    import h5py

    path = Path(h5_path)
    if not path.is_file():
        raise DataError("feature file not found", path)
    try:
        with h5py.File(path, "r") as f:
            name = f.attrs.get(ATTR_EXTRACTOR)
            options = f.attrs.get(ATTR_OPTIONS, "{}")
    except OSError as e:
        raise DataError(f"cannot open as HDF5 ({e})", path) from None
    if name is None:
        return None
    as_text = [v.decode() if isinstance(v, bytes) else str(v) for v in (name, options)]
    return as_text[0], json.loads(as_text[1])


def constructor_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of recorded ``options`` that the extractor ``name``'s constructor takes."""
    from vidlang.registry import EXTRACTORS

    params = inspect.signature(EXTRACTORS.get(name)).parameters
    return {k: v for k, v in options.items() if k in params and v is not None}


def training_features_of(ckpt: str | Path) -> Path:
    """The feature file a grounding checkpoint was trained on (from its saved config). Runs
    record absolute paths; a relative one (older runs) is looked up from the current folder,
    then from the model folder and its parents (``vidlang.engine.paths``)."""
    from vidlang.engine.checkpoint import load_config_of, resolve_model_dir
    from vidlang.engine.paths import resolve_recorded_path

    cfg = load_config_of(ckpt)
    features = cfg.data.features
    if features is None and cfg.data.root is not None:
        features = str(Path(cfg.data.root) / "features.h5")
    if features is None:
        raise ConfigError(f"{ckpt}: the checkpoint's config names no feature file; pass --extractor")
    return resolve_recorded_path(features, resolve_model_dir(ckpt))


def extractor_for_checkpoint(ckpt: str | Path, extractor: str | None = None,
                             model: str | None = None) -> tuple[str, dict[str, Any]]:
    """(name, constructor options) to extract a new video for a checkpoint: the extractor
    recorded in its training features unless ``extractor`` names another; ``model`` replaces
    the recorded checkpoint of a ``clip`` extractor."""
    recorded: tuple[str, dict[str, Any]] | None = None
    try:
        recorded = extractor_of_features(training_features_of(ckpt))
    except (DataError, ConfigError):
        if extractor is None:
            raise
    if extractor is None:
        if recorded is None:
            raise ConfigError(f"{ckpt}: its training features record no extractor; pass --extractor")
        extractor = recorded[0]
    options = dict(recorded[1]) if recorded is not None and recorded[0] == extractor else {}
    if model is not None:
        options["model"] = model
    return extractor, constructor_options(extractor, options)


def features_for_checkpoint(ckpt: str | Path, video: str | Path, extractor: str | None = None,
                            model: str | None = None) -> tuple[np.ndarray, float]:
    """:func:`features_for_video` with the extractor the checkpoint was trained with."""
    name, options = extractor_for_checkpoint(ckpt, extractor, model)
    return features_for_video(video, name, **options)
