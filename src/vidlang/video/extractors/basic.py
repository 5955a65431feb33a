"""``basic``: a deterministic, weight-free clip extractor that works offline.

Each sampled frame is resized to ``size`` x ``size`` and described by

* colour statistics: every pixel falls in one of 9 colour classes (6 hues - red, yellow,
  green, cyan, blue, magenta - when saturated and bright enough, else black / grey / white);
  per class its area fraction, centroid offset from the centre (x, y) and spread (x, y);
* colour layout: mean RGB of a ``grid`` x ``grid`` layout;
* edge orientation: a magnitude-weighted histogram of gradient orientations (8 bins).

A clip is the mean of its frames' descriptors, plus the change of the colour statistics from
its first to its last frame (what moved, grew, appeared or changed colour), the spread over
time of the orientation histogram (what turned), and motion energy: the mean absolute
difference of consecutive grey frames per layout cell. The groups are scaled by
``GROUP_WEIGHTS`` so changes weigh as much as the static layout. Same input -> same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from vidlang.errors import ConfigError
from vidlang.registry import EXTRACTORS
from vidlang.video.decode import Clip, FrameSize
from vidlang.video.extractors.base import Extractor

HUE_CENTRES = (0.0, 60.0, 120.0, 180.0, 240.0, 300.0)  # red yellow green cyan blue magenta
N_CLASSES = len(HUE_CENTRES) + 3  # + black, grey, white
STATS_PER_CLASS = 5  # area, centroid x, centroid y, spread x, spread y
ORIENT_BINS = 8
_SATURATION_MIN, _VALUE_MIN = 0.35, 0.25
# Scale of each group (frame stats, layout, orientation, stats change, orientation spread,
# motion) so that, after the per-clip L2 normalisation grounding models apply, what changes
# within a clip is not drowned by the static layout: raw change / motion values are ~100x
# smaller than the layout's (measured on SynthVL-video small, seed 0).
GROUP_WEIGHTS = (1.0, 0.25, 1.0, 5.0, 20.0, 20.0)


def colour_classes(frames: np.ndarray) -> np.ndarray:
    """[N, H, W] class index of each pixel of [N, H, W, 3] uint8 frames (see module doc)."""
    rgb = frames.astype(np.float32) / 255.0
    vmax, vmin = rgb.max(axis=-1), rgb.min(axis=-1)
    chroma = vmax - vmin
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(vmax == r, ((g - b) / safe) % 6.0,
                   np.where(vmax == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0)) * 60.0
    hue_class = np.floor(((hue + 30.0) % 360.0) / 60.0).astype(np.int64)
    saturation = np.where(vmax > 0, chroma / np.maximum(vmax, 1e-6), 0.0)
    grey_class = len(HUE_CENTRES) + np.minimum((vmax * 3).astype(np.int64), 2)
    chromatic = (saturation >= _SATURATION_MIN) & (vmax >= _VALUE_MIN)
    return np.where(chromatic, hue_class, grey_class)


def colour_stats(frames: np.ndarray) -> np.ndarray:
    """[N, 9 * 5] per-class area, centroid offset and spread of each frame."""
    n, h, w = frames.shape[:3]
    classes = colour_classes(frames)
    onehot = (classes[..., None] == np.arange(N_CLASSES)).astype(np.float32)  # [N, H, W, C]
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    count = onehot.sum(axis=(1, 2))  # [N, C]
    area = count / (h * w)
    denom = np.maximum(count, 1.0)
    cx = np.einsum("nhwc,w->nc", onehot, xs) / denom
    cy = np.einsum("nhwc,h->nc", onehot, ys) / denom
    sx = np.sqrt(np.maximum(np.einsum("nhwc,w->nc", onehot, xs ** 2) / denom - cx ** 2, 0.0))
    sy = np.sqrt(np.maximum(np.einsum("nhwc,h->nc", onehot, ys ** 2) / denom - cy ** 2, 0.0))
    return np.stack([area, cx, cy, sx, sy], axis=-1).reshape(n, -1)


def _grey(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0


def _cell_means(values: np.ndarray, grid: int) -> np.ndarray:
    """[N, grid*grid, ...] means of [N, H, W, ...] over a grid x grid layout (H, W divisible)."""
    n, h, w = values.shape[:3]
    rest = values.shape[3:]
    cells = values.reshape(n, grid, h // grid, grid, w // grid, *rest).mean(axis=(2, 4))
    return cells.reshape(n, grid * grid, *rest)


def orientation_histogram(grey: np.ndarray) -> np.ndarray:
    """[N, 8] magnitude-weighted histogram of gradient orientations in [0, pi), summing to 1
    (all zeros for a flat frame)."""
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :, 1:-1] = grey[:, :, 2:] - grey[:, :, :-2]
    gy[:, 1:-1, :] = grey[:, 2:, :] - grey[:, :-2, :]
    mag = np.hypot(gx, gy)
    angle = np.arctan2(gy, gx) % np.pi
    bins = np.minimum((angle / np.pi * ORIENT_BINS).astype(np.int64), ORIENT_BINS - 1)
    hist = np.stack([(mag * (bins == k)).sum(axis=(1, 2)) for k in range(ORIENT_BINS)], axis=1)
    total = hist.sum(axis=1, keepdims=True)
    return np.where(total > 0, hist / np.maximum(total, 1e-12), 0.0).astype(np.float32)


@EXTRACTORS.register("basic")
class BasicExtractor(Extractor):
    """Colour statistics, colour layout, edge orientation and motion energy per clip."""

    name: ClassVar[str] = "basic"
    default_fps: ClassVar[float] = 4.0

    def __init__(self, clip_seconds: float = 2.0, fps: float | None = None, num_frames: int | None = None,
                 batch_size: int = 16, size: int = 64, grid: int = 4) -> None:
        super().__init__(clip_seconds, fps, num_frames, batch_size)
        if grid < 1 or size < grid or size % grid:
            raise ConfigError(f"basic extractor: size ({size}) must be a positive multiple of grid ({grid})")
        self.size, self.grid = int(size), int(grid)
        self.frame_size = FrameSize(self.size, self.size, "resize")
        stats = N_CLASSES * STATS_PER_CLASS
        cells = self.grid * self.grid
        # frame means (stats, layout RGB, orientation) + stats change + orientation spread + motion
        self.dim = stats + 3 * cells + ORIENT_BINS + stats + ORIENT_BINS + cells

    #: bumped whenever the numbers change, so resume and merge refuse older files
    version: ClassVar[int] = 2

    def options(self) -> dict[str, Any]:
        return {**super().options(), "size": self.size, "grid": self.grid, "version": self.version}

    def encode_clip(self, frames: np.ndarray) -> np.ndarray:
        """[dim] features of one clip's [N, size, size, 3] uint8 frames."""
        stats = colour_stats(frames)
        layout = _cell_means(frames.astype(np.float32) / 255.0, self.grid).reshape(len(frames), -1)
        grey = _grey(frames)
        orient = orientation_histogram(grey)
        if len(frames) > 1:
            motion = _cell_means(np.abs(np.diff(grey, axis=0)), self.grid).mean(axis=0)
        else:
            motion = np.zeros(self.grid * self.grid, dtype=np.float32)
        groups = (stats.mean(axis=0), layout.mean(axis=0), orient.mean(axis=0),
                  stats[-1] - stats[0], orient.std(axis=0), motion)
        return np.concatenate([w * g for w, g in zip(GROUP_WEIGHTS, groups)]).astype(np.float32)

    def encode(self, clips: Sequence[Clip]) -> np.ndarray:
        return np.stack([self.encode_clip(c.frames) for c in clips])
