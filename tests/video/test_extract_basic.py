"""The ``basic`` extractor: declared dim, determinism, and features that see colour, motion
direction and size change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from video_support import moving_square, write_video
from vidlang.errors import ConfigError
from vidlang.registry import EXTRACTORS
from vidlang.video import features_for_video
from vidlang.video.extractors import build_extractor
from vidlang.video.extractors.basic import HUE_CENTRES, N_CLASSES, STATS_PER_CLASS, colour_classes


def test_basic_is_registered_and_declares_its_dim() -> None:
    assert "basic" in EXTRACTORS and "clip" in EXTRACTORS
    ext = build_extractor("basic", grid=2, size=32)
    assert ext.dim == 2 * N_CLASSES * STATS_PER_CLASS + 3 * 4 + 2 * 8 + 4
    with pytest.raises(ConfigError, match="unknown feature extractor"):
        build_extractor("nope")
    with pytest.raises(ConfigError):
        build_extractor("basic", size=30, grid=4)


def test_colour_classes_of_pure_colours() -> None:
    pixels = np.array([[[220, 40, 40], [40, 185, 60], [45, 70, 225], [10, 10, 10], [128, 128, 128],
                        [250, 250, 250]]], dtype=np.uint8)
    classes = colour_classes(pixels[None])[0, 0].tolist()
    grey = len(HUE_CENTRES)
    assert classes == [0, 2, 4, grey, grey + 1, grey + 2]


def test_motion_direction_shows_in_the_colour_centroid_change(tmp_path: Path) -> None:
    right = write_video(tmp_path / "right.mp4", n_frames=16, fps=8, frame=moving_square(+1))
    left = write_video(tmp_path / "left.mp4", n_frames=16, fps=8, frame=moving_square(-1))
    feats_r, dur = features_for_video(right, "basic", fps=4, size=32)
    feats_l, _ = features_for_video(left, "basic", fps=4, size=32)
    assert dur == pytest.approx(2.0) and feats_r.shape == (1, build_extractor("basic", size=32).dim)
    stats = N_CLASSES * STATS_PER_CLASS
    delta_offset = stats + 3 * 16 + 8  # after frame-mean stats, layout and orientation
    red_dx = delta_offset + 0 * STATS_PER_CLASS + 1  # class 0 (red), centroid x change
    assert feats_r[0, red_dx] > 0.2 and feats_l[0, red_dx] < -0.2
    motion = feats_r[0, -16:]
    assert motion.max() > 0 and motion.min() == 0  # only cells the square crossed moved


def test_same_video_gives_identical_features(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", n_frames=24, fps=8, frame=moving_square(+1, n_frames=24))
    a, da = features_for_video(path, "basic")
    b, db = features_for_video(path, "basic", batch_size=1)
    np.testing.assert_array_equal(a, b)
    assert da == db == pytest.approx(3.0) and a.shape[0] == 2 and np.isfinite(a).all()
