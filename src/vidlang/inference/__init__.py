"""One predictor per task, loaded once and called many times (``vidlang serve``, scripts).

* :class:`GroundingPredictor`: a grounding run folder -> ranked ``[start_s, end_s, score]``
  windows for free-text queries, from clip features or from a video file.
* :class:`RetrievalPredictor`: a retrieval run folder -> sentence and video embeddings (the
  vectors a :class:`vidlang.index.VideoIndex` holds and is queried with).

Both compose the existing pieces (:mod:`vidlang.predictor`, :mod:`vidlang.index.embed`) rather
than re-implementing them.
"""

from vidlang.inference.grounding import GroundingPredictor
from vidlang.inference.retrieval import RetrievalPredictor

__all__ = ["GroundingPredictor", "RetrievalPredictor"]
