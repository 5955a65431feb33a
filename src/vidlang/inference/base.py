"""What every predictor shares: a model loaded from a run folder, and a video file turned into
features the way that run's training features were made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidlang.errors import DataError

#: what ``predict`` takes as a video: a file to decode, or its [T, D] clip features
VideoInput = str | Path | np.ndarray | torch.Tensor


def is_video_file(video: Any) -> bool:
    """Whether ``video`` names a file (to decode and featurise) rather than holding features."""
    return isinstance(video, (str, Path))


def as_array(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """A features argument as a NumPy array (tensors are detached and moved to the CPU)."""
    return features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else features


class Predictor:
    """A model and the run folder it came from (``ckpt``, None when built from a model)."""

    def __init__(self, model: Any, ckpt: Path | None = None) -> None:
        self.model = model
        self.ckpt = ckpt

    def featurise(self, video: str | Path, extractor: str | None = None,
                  extractor_model: str | None = None) -> tuple[np.ndarray, float]:
        """([T, D] clip features, duration s) of a video file, made by the extractor recorded
        in the run's training features (or ``extractor``; ``extractor_model`` replaces the
        checkpoint of a ``clip`` extractor)."""
        from vidlang.inference.run_folder import features_for_checkpoint

        if self.ckpt is None:
            raise DataError(f"{type(self).__name__} needs to be loaded with from_pretrained to read a "
                            "video file (it reads the extractor from the run's training features)")
        return features_for_checkpoint(self.ckpt, video, extractor, extractor_model)

    def features_of(self, video: VideoInput, duration: float | None, extractor: str | None = None,
                    extractor_model: str | None = None) -> tuple[np.ndarray, float | None]:
        """(raw [T, D] features, duration s) of either input form: a file is featurised (its
        decoded length is the duration unless ``duration`` is given); features pass through."""
        if is_video_file(video):
            feats, seconds = self.featurise(video, extractor, extractor_model)  # type: ignore[arg-type]
            return feats, duration or seconds
        return as_array(video), duration  # type: ignore[arg-type]
