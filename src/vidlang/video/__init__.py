"""From raw video files to clip features: decoding, extractors, SynthVL-video (docs/video.md).

Importing this package registers the extractors (``basic``, ``clip``) in
``vidlang.registry.EXTRACTORS``; torch and transformers load only when a ``clip`` extractor is
built.
"""

from vidlang.video.decode import (
    Clip,
    ClipReader,
    CorruptVideoError,
    EmptyVideoError,
    FrameSize,
    NoVideoStreamError,
    Sampling,
    UnreadableVideoError,
    VideoError,
    VideoInfo,
    clip_count,
    iter_clips,
    probe_video,
)
from vidlang.video.extractors import Extractor, build_extractor
from vidlang.video.features import extractor_of_features, features_for_video

__all__ = [
    "Clip",
    "ClipReader",
    "CorruptVideoError",
    "EmptyVideoError",
    "Extractor",
    "FrameSize",
    "NoVideoStreamError",
    "Sampling",
    "UnreadableVideoError",
    "VideoError",
    "VideoInfo",
    "build_extractor",
    "clip_count",
    "extractor_of_features",
    "features_for_video",
    "iter_clips",
    "probe_video",
]
