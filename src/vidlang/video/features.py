"""One video file -> features, and which extractor made a feature file.

The ``vidlang extract`` command records the extractor in the canonical feature file's root
attrs (``extractor``: its name, ``extractor_options``: JSON of everything that changes the
features), so ``vidlang predict --video`` can extract a new video exactly as the training
features were made. Which feature file a *run* was trained on is the run folder's business:
:mod:`vidlang.inference.run_folder` reads it and calls back here.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from vidlang.errors import DataError

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
