"""Sentence pooling over token vectors [B, L, D] with a mask [B, L], by name."""

from __future__ import annotations

from collections.abc import Callable

import torch

from vidlang.errors import ConfigError


def mean_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens (MMN/sentence-transformers style)."""
    m = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * m).sum(1) / m.sum(1).clamp_min(1.0)


def cls_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token ([CLS])."""
    return tokens[:, 0]


def last_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last real token (an LSTM's final state, as 2D-TAN uses)."""
    idx = (mask.long().sum(1) - 1).clamp_min(0)
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), idx]


def max_pool(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Channel-wise max over real tokens."""
    return tokens.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)


POOLINGS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mean": mean_pool, "cls": cls_pool, "last": last_pool, "max": max_pool}


def get_pooling(name: str, key: str = "text.pooling") -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    try:
        return POOLINGS[name]
    except KeyError:
        raise ConfigError(f"{key}: unknown pooling {name!r}; known: {', '.join(sorted(POOLINGS))}") from None
