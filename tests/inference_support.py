"""Run folders for the inference tests (not a test module): two small MP4s featurised by the
``basic`` extractor into a feature file that records it, and models saved as run folders
whose config names that file, so a predictor reads the extractor back from the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from video_support import moving_square, write_video

BASIC = {"fps": 2, "size": 32, "clip_seconds": 1.0}


def basic_collection(root: Path) -> tuple[list[Path], Path, int]:
    """(videos, feature file, feature dim): a left and a right moving square, 24 frames at 8 fps."""
    import h5py

    from vidlang.video.collection import extract_collection, list_videos
    from vidlang.video.extractors import build_extractor

    root.mkdir(parents=True, exist_ok=True)
    videos = [write_video(root / f"{name}.mp4", n_frames=24, fps=8, frame=moving_square(d, n_frames=24))
              for name, d in (("left", -1), ("right", 1))]
    out = root / "features.h5"
    extract_collection(list_videos(videos), build_extractor("basic", **BASIC), out)
    with h5py.File(out, "r") as f:
        dim = _dim(f)
    return videos, out, dim


def _dim(f: Any) -> int:
    """Width of the first dataset found in an open HDF5 file."""
    found: list[int] = []
    f.visititems(lambda _, obj: found.append(obj.shape[-1]) if hasattr(obj, "shape") and len(obj.shape) == 2 else None)
    return int(found[0])


def save_run(config: str | Path, overrides: list[str], run: Path, seed: int = 0) -> Path:
    """A randomly initialised model of ``config`` (with ``overrides``) saved as run folder
    ``run/best`` (what training writes); returns ``run``."""
    from vidlang.engine.checkpoint import build_model, save_pretrained
    from vidlang.engine.config import load_config

    cfg = load_config(config, overrides)
    torch.manual_seed(seed)
    save_pretrained(build_model(cfg), cfg, run / "best")
    return run
