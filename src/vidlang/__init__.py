"""vidlang: contrastive video-language learning.

Temporal grounding (find the moment), text-video retrieval (find the video) and sequence
alignment (align a paragraph with a video in order) on one data model, one engine and one
evaluator. Importing the package has no side effects; heavy modules load on first use.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
