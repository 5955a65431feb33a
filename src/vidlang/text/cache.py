"""The one cache of frozen text-encoder outputs, shared by every model in the process.

A frozen encoder maps a string to the same outputs every epoch, so each string is encoded once
and later steps only look it up (on CPU a MiniLM call costs ~5 ms per sentence, far more than
a small model's step). Caches are keyed by the encoder's *content*: class, settings (e.g.
``repr(text config)``), a fingerprint of its floating-point weights, and the mode it is run in.
An encoder that trains changes its fingerprint, so a model that unfreezes it looks the cache up
again (``shared_text_cache``) and never sees vectors of the old weights; models do not use the
cache at all while the encoder has trainable parameters.

Two ways of encoding a miss, both kept bit-identical to what the models did before the cache
was shared:

* ``eval_mode=True`` (MMN): the encoder runs in eval mode (no dropout) on the sorted missing
  strings, so a string's vector does not depend on the batch or the RNG.
* ``eval_mode=False`` (dual encoder, TempCLR with ``frozen_text: lazy``, the default): the
  encoder runs in its current mode on the missing strings in first-seen order. In training
  mode an HF encoder's dropout is active, so the cached vector of a string carries the dropout
  draw of the step that first met it (and that draw consumes the global RNG); this is the
  behaviour the recorded runs used.

``frozen_text: precompute`` (dual encoder family) uses an eval-mode cache and fills it with
every training text before the first step (:meth:`FrozenTextCache.warm`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vidlang.ops.padding import pad_rows
from vidlang.text.base import TextEncoder, TextEncoding

DEFAULT_CAPACITY = 200_000


@dataclass
class CachedText:
    """One string's outputs on CPU: sentence [D], tokens [n, D], the n token words."""

    sentence: torch.Tensor
    tokens: torch.Tensor
    words: list[str]


class FrozenTextCache:
    """String -> :class:`CachedText` of one frozen encoder; cleared when ``capacity`` would
    be exceeded (the strings are then encoded again, giving the same outputs in eval mode)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, eval_mode: bool = False) -> None:
        self.capacity = capacity
        self.eval_mode = eval_mode
        self.items: dict[str, CachedText] = {}
        self.encoded = 0  # strings sent to the encoder (misses), for tests and benchmarks

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, text: object) -> bool:
        return text in self.items

    def _fill(self, encoder: TextEncoder, texts: Sequence[str]) -> None:
        """Encode the strings of ``texts`` not cached yet."""
        if self.eval_mode:
            missing = sorted({t for t in texts if t not in self.items})
        else:
            missing = list(dict.fromkeys(t for t in texts if t not in self.items))
        if not missing:
            return
        was_training = encoder.training
        if self.eval_mode:
            encoder.eval()
        try:
            with torch.no_grad():
                enc = encoder(missing)
        finally:
            encoder.train(was_training)
        if len(self.items) + len(missing) > self.capacity:
            self.items.clear()
        lengths = enc.mask.sum(dim=1).tolist()
        sentence, tokens = enc.sentence.detach().cpu(), enc.tokens.detach().cpu()
        for i, (t, n) in enumerate(zip(missing, lengths)):
            words = list(enc.words[i]) if enc.words is not None else [""] * int(n)
            self.items[t] = CachedText(sentence[i], tokens[i, : int(n)], words)
        self.encoded += len(missing)

    def warm(self, encoder: TextEncoder, texts: Sequence[str], batch_size: int = 256) -> int:
        """Encode every string of ``texts`` not cached yet, in batches of similar length (less
        padding), before training needs them; returns how many were encoded. Only for an
        eval-mode cache: in training mode the outputs would depend on when a string is met."""
        if not self.eval_mode:
            raise ValueError("warm() needs an eval-mode cache (its outputs do not depend on batching)")
        missing = sorted({t for t in texts if t not in self.items}, key=lambda t: (len(t), t))
        for start in range(0, len(missing), batch_size):
            self._fill(encoder, missing[start:start + batch_size])
        return len(missing)

    def sentences(self, encoder: TextEncoder, texts: Sequence[str]) -> torch.Tensor:
        """[Q, D] sentence vectors of ``texts`` (CPU), encoding the misses first."""
        self._fill(encoder, texts)
        return torch.stack([self.items[t].sentence for t in texts])

    def encode(self, encoder: TextEncoder, texts: Sequence[str]) -> TextEncoding:
        """A :class:`TextEncoding` of ``texts`` (CPU; tokens zero-padded to the longest, at
        least one position), encoding the misses first."""
        self._fill(encoder, texts)
        entries = [self.items[t] for t in texts]
        tokens, mask = pad_rows([e.tokens for e in entries], dtype=None, min_length=1)
        sentence = torch.stack([e.sentence for e in entries])
        return TextEncoding(sentence, tokens, mask, [e.words for e in entries])


_CACHES: dict[tuple[str, str, str, bool], FrozenTextCache] = {}


def encoder_fingerprint(encoder: TextEncoder) -> str:
    """Shape, sum and absolute sum (float64) of every floating-point tensor of the encoder:
    equal for copies of the same weights, different once any weight has changed."""
    with torch.no_grad():
        state = [t.detach().double().cpu() for t in encoder.state_dict().values()
                 if t.is_floating_point()]
        return repr([(tuple(t.shape), float(t.sum()), float(t.abs().sum())) for t in state])


def shared_text_cache(encoder: TextEncoder, settings: str = "", *, eval_mode: bool = False,
                      capacity: int = DEFAULT_CAPACITY) -> FrozenTextCache:
    """The process-wide cache of this encoder's content (class, ``settings``, weights, mode):
    repeated runs (seeds, ablations, baselines) encode each string once."""
    key = (type(encoder).__qualname__, settings, encoder_fingerprint(encoder), eval_mode)
    if key not in _CACHES:
        _CACHES[key] = FrozenTextCache(capacity, eval_mode)
    return _CACHES[key]


def clear_text_caches() -> None:
    """Forget every cached string (tests; frees the memory)."""
    _CACHES.clear()


__all__ = ["CachedText", "FrozenTextCache", "clear_text_caches", "encoder_fingerprint",
           "shared_text_cache"]
