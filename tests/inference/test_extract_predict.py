"""``vidlang predict --video`` support: the extractor recorded in the training features is the
default for a new video, --extractor / --extractor-model override it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import vidlang.inference.run_folder as vf
from video_support import moving_square, write_video
from vidlang.errors import ConfigError
from vidlang.video.collection import extract_collection, list_videos
from vidlang.video.extractors import build_extractor


@pytest.fixture
def trained_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A feature file written by `basic` at fps 2 / size 32, posing as a checkpoint's features."""
    video = write_video(tmp_path / "train.mp4", n_frames=24, fps=8, frame=moving_square(-1, n_frames=24))
    out = tmp_path / "feats" / "features.h5"
    extract_collection(list_videos([video]), build_extractor("basic", fps=2, size=32, clip_seconds=1.0), out)
    monkeypatch.setattr(vf, "training_features_of", lambda ckpt: out)
    return out


def test_new_video_is_extracted_like_the_training_features(trained_on: Path, tmp_path: Path) -> None:
    name, options = vf.extractor_for_checkpoint("ckpt")
    assert name == "basic"
    assert options == {"clip_seconds": 1.0, "fps": 2.0, "size": 32, "grid": 4}  # not "version"
    new = write_video(tmp_path / "new.mp4", n_frames=20, fps=8, frame=moving_square(+1, n_frames=20))
    feats, duration = vf.features_for_checkpoint("ckpt", new)
    expected, _ = vf.features_for_video(new, "basic", fps=2, size=32, clip_seconds=1.0)
    np.testing.assert_array_equal(feats, expected)
    assert duration == pytest.approx(2.5) and feats.shape[0] == 3


def test_explicit_extractor_and_model_override_the_record(trained_on: Path) -> None:
    name, options = vf.extractor_for_checkpoint("ckpt", extractor="clip", model="/some/clip")
    assert (name, options) == ("clip", {"model": "/some/clip"})


def test_features_without_a_record_need_an_explicit_extractor(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from vidlang.data.features import write_canonical_h5

    plain = write_canonical_h5(tmp_path / "plain.h5", [("v", np.ones((2, 4), np.float32), 4.0)], 2.0)
    monkeypatch.setattr(vf, "training_features_of", lambda ckpt: plain)
    with pytest.raises(ConfigError, match="pass --extractor"):
        vf.extractor_for_checkpoint("ckpt")
    assert vf.extractor_for_checkpoint("ckpt", extractor="basic") == ("basic", {})
