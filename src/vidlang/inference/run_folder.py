"""What a run folder says about its inputs: the feature file it was trained on, the extractor
that made those features, the clip length, the weights' fingerprint.

These lookups read the engine's checkpoint layout (``vidlang.engine.checkpoint``) and its
recorded-path rules (``vidlang.engine.paths``), so they live here, above the engine, and
``vidlang.video`` stays a floor below it: it decodes and featurises a file with an extractor
it is *given*; this module says which one a run needs.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.errors import ConfigError, DataError
from vidlang.video.features import constructor_options, extractor_of_features, features_for_video

__all__ = [
    "extractor_for_checkpoint",
    "features_for_checkpoint",
    "features_for_video",
    "training_clip_seconds",
    "training_features_of",
    "weights_fingerprint",
]


def training_features_of(ckpt: str | Path) -> Path:
    """The feature file a checkpoint was trained on (from its saved config). Runs record
    absolute paths; a relative one (older runs) is looked up from the current folder, then
    from the model folder and its parents (``vidlang.engine.paths``)."""
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
    """([T, D] clip features, duration s) of a video file, made by the extractor the
    checkpoint was trained with (:func:`vidlang.video.features.features_for_video`)."""
    name, options = extractor_for_checkpoint(ckpt, extractor, model)
    return features_for_video(video, name, **options)


def training_clip_seconds(ckpt: str | Path) -> float | None:
    """Seconds one feature row covers in the checkpoint's training feature file (its
    ``clip_seconds`` attribute), or None when that file or the attribute is unavailable."""
    import h5py

    from vidlang.errors import VidlangError

    try:
        path = training_features_of(ckpt)
        with h5py.File(path, "r") as f:
            clip = float(f.attrs.get("clip_seconds", math.nan))
    except (VidlangError, OSError):
        return None
    return clip if math.isfinite(clip) and clip > 0 else None


def weights_fingerprint(model_dir: str | Path) -> str:
    """sha256 (first 16 hex digits) of the checkpoint's ``model.safetensors``."""
    from vidlang.engine.checkpoint import WEIGHTS, resolve_model_dir

    h = hashlib.sha256()
    with open(resolve_model_dir(model_dir) / WEIGHTS, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]
