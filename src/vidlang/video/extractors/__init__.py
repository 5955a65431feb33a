"""Clip feature extractors, registered in ``vidlang.registry.EXTRACTORS``: ``basic``
(weight-free, offline) and ``clip`` (CLIP / SigLIP vision towers via transformers)."""

from vidlang.video.extractors import basic, clip  # noqa: F401  (registers the extractors)
from vidlang.video.extractors.base import Extractor, build_extractor

__all__ = ["Extractor", "build_extractor"]
