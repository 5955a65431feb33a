"""What a model asks of its input features: :class:`FeatureSpec`.

The data layer owns it because it describes inputs: the engine reads each video's [T, D]
features, resamples them as the spec says (:func:`vidlang.data.features.resample.resample`)
and batches them; a model only returns one from ``feature_spec()``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    """How each video's T x D features are resampled before batching.

    ``num_rows`` is the number of feature rows every video has after resampling (a model
    config names it after its paper: MMN's ``num_pre_clips`` P, CPL's ``num_clips``, the
    dual encoder's ``num_frames``). ``mode``: ``segment_mean`` (MMN/2D-TAN: optional per-step
    L2 norm, then average into ``num_rows`` segments), ``fixed_bin`` (CPL: ``num_rows`` equal
    bins, averaged; empty bins repeat the nearest frame), ``uniform`` (pick ``num_rows`` rows
    evenly), ``none`` (keep all T rows, pad in the batch; ``num_rows`` unused).
    """

    mode: str = "none"
    num_rows: int | None = None
    l2_normalise: bool = False
