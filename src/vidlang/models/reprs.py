"""The dual encoder's text and video outputs, shared by the retrieval models and the
multi-level alignment option (below both, so they import it one way).

:class:`TextEncoderLike` is the one method multi-level alignment needs from its model, so
``vidlang.models.multilevel`` never imports the dual encoder that owns it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass
class TextRepr:
    """Projected, L2-normalised text outputs: sentence [Q, D], tokens [Q, L, D], mask [Q, L],
    TWM word weights [Q, L] (sum 1 over valid tokens)."""

    sentence: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor


@dataclass
class VideoRepr:
    """Contextual clip embeddings [B, T, D] (L2-normalised), mask [B, T], pooled video [B, D]."""

    clips: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor


class TextEncoderLike(Protocol):
    """A model that encodes texts into a :class:`TextRepr` (``DualEncoder.text_repr``)."""

    def text_repr(self, texts: Sequence[str]) -> TextRepr: ...
