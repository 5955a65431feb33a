"""The one interface every text encoder implements: sentence vector + token vectors + mask.

Models receive raw strings and call the encoder; tokenisation happens inside the encoder so a
config can swap MiniLM, any Hugging Face encoder or word embeddings without touching the model.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class TextEncoding:
    """Output of a text encoder for a batch of B strings.

    sentence: [B, D] pooled sentence vectors.
    tokens: [B, L, D] contextual token vectors (padding positions are arbitrary).
    mask: [B, L] bool, True at real tokens.
    words: per string, the surface form of each of the L token positions (padding excluded),
        so word-level weighting (content words, DMAE's textual attention) can be applied.
    """

    sentence: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    words: list[list[str]] | None = None


class TextEncoder(nn.Module, ABC):
    """Base class for text encoders registered in ``vidlang.registry.TEXT_ENCODERS``."""

    #: width D of the sentence and token vectors
    dim: int
    #: frozen while the 1-based epoch <= freeze_epochs (set from TextEncoderConfig)
    freeze_epochs: int = 0
    #: learning-rate multiplier once trainable (set from TextEncoderConfig)
    lr_mult: float = 1.0

    def apply_freeze(self, epoch: int) -> bool:
        """Freeze or unfreeze for this epoch (call from ``on_train_epoch_start``); returns
        whether the encoder is trainable now."""
        from vidlang.text.finetune import apply_freeze

        return apply_freeze(self, epoch, self.freeze_epochs)

    @abstractmethod
    def forward(self, texts: Sequence[str]) -> TextEncoding:
        """Encode B strings on the encoder's device."""

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


_TRUNCATION_WARNED: set[str] = set()


def warn_if_truncated(texts: Sequence[str], tokenizer: Any, max_length: int, encoder: str) -> int:
    """Log one warning per text longer than the encoder's ``max_length`` tokens (the encoders
    truncate it); the number of such texts. A text of at most ``max_length - 2`` characters
    cannot be over the limit, so only longer ones are tokenised a second time."""
    long = [t for t in texts if len(t) + 2 > max_length]
    if not long:
        return 0
    count = 0
    for text, ids in zip(long, tokenizer(long, truncation=False, verbose=False)["input_ids"]):
        if len(ids) <= max_length:
            continue
        count += 1
        if text not in _TRUNCATION_WARNED and len(_TRUNCATION_WARNED) < 1000:
            _TRUNCATION_WARNED.add(text)
            logging.getLogger("vidlang.text").warning(
                "text truncated to the %s text encoder's limit of %d tokens (it has %d): %.60r...",
                encoder, max_length, len(ids), text)
    return count
