"""One predictor per task, loaded from a run folder once and called many times (the CLI,
``vidlang index`` / ``search``, ``vidlang serve``, scripts). Each ``predict`` takes a video
file (decoded and featurised with the extractor the run was trained with) or its features.

* :class:`GroundingPredictor`: a grounding run -> ranked ``[start_s, end_s, score]`` windows
  for free-text queries.
* :class:`RetrievalPredictor`: a retrieval run -> sentence and video embeddings (the vectors a
  :class:`vidlang.index.VideoIndex` holds and is queried with); it owns the embedding code.
* :class:`AlignmentPredictor`: an alignment (TempCLR) run -> a paragraph's step times in a
  video and its paragraph-to-video score.

What a run folder says about its inputs (training features, extractor, clip length, weights
fingerprint) is read in :mod:`vidlang.inference.run_folder`.
"""

from vidlang.inference.alignment import AlignmentPredictor
from vidlang.inference.grounding import GroundingPredictor
from vidlang.inference.retrieval import RetrievalPredictor

__all__ = ["AlignmentPredictor", "GroundingPredictor", "RetrievalPredictor"]
