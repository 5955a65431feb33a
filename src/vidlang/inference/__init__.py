"""One predictor per task, loaded once and called many times (``vidlang serve``, scripts).

* :class:`GroundingPredictor`: a grounding run folder -> ranked ``[start_s, end_s, score]``
  windows for free-text queries, from clip features or from a video file.
* :class:`RetrievalPredictor`: a retrieval run folder -> sentence and video embeddings (the
  vectors a :class:`vidlang.index.VideoIndex` holds and is queried with).

The retrieval one composes :mod:`vidlang.index.embed` (what ``vidlang index build`` uses), so
the vectors it computes are the ones in the index.
"""

from vidlang.inference.grounding import GroundingPredictor
from vidlang.inference.retrieval import RetrievalPredictor

__all__ = ["GroundingPredictor", "RetrievalPredictor"]
