"""``vidlang.predictor.GroundingPredictor``: kept as an import path; the class lives in
:mod:`vidlang.inference.grounding` with the other per-task predictors."""

from vidlang.inference.grounding import GroundingPredictor

__all__ = ["GroundingPredictor"]
