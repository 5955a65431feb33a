"""The small config every text encoder is built from, and the builder.

Models embed :class:`TextEncoderConfig` in their own config dataclass (e.g. ``text:``) and call
:func:`build_text_encoder`; the ``name`` picks the registered encoder (``minilm``, ``hf``,
``word``), so a YAML change swaps encoders without touching the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vidlang.errors import ConfigError, RegistryError


@dataclass
class TextEncoderConfig:
    """Text-encoder settings.

    name: ``minilm`` (bundled all-MiniLM-L6-v2, offline; default), ``hf`` (any Hugging Face
        encoder by local folder or cached hub name), ``word`` (word embeddings).
    path: ``hf``: folder or hub name; ``minilm``: override of the bundled folder; ``word``: a
        GloVe-format text file (``word v1 ... vD`` per line) or None for trainable hashed
        embeddings.
    pooling: sentence vector from token vectors: ``mean`` (over real tokens), ``cls`` (first
        token), ``last`` (last real token, e.g. after an LSTM) or ``max``.
    max_length: truncate to this many tokens (None = the model's maximum).
    freeze_epochs / lr_mult: frozen while epoch <= freeze_epochs, then trained at
        lr_mult x base lr (MMN: 4 and 0.1 for DistilBERT); see ``vidlang.text.finetune``.
    """

    name: str = "minilm"
    path: str | None = None
    pooling: str = "mean"
    max_length: int | None = None
    freeze_epochs: int = 0
    lr_mult: float = 1.0
    # word encoder only
    dim: int = 300  # embedding width without a GloVe file
    vocab_size: int = 20000  # hashed buckets without a GloVe file
    train_embeddings: bool | None = None  # None: trainable without GloVe, frozen with it
    lstm_layers: int = 0  # >0 adds an LSTM over the word vectors (2D-TAN: 3 layers of 512)
    lstm_hidden: int = 512
    lstm_bidirectional: bool = False


def build_text_encoder(cfg: TextEncoderConfig, key: str = "text") -> Any:
    """The encoder named ``cfg.name`` (``key`` is the config path used in error messages)."""
    from vidlang.registry import TEXT_ENCODERS

    if cfg.freeze_epochs < 0:
        raise ConfigError(f"{key}.freeze_epochs: must be >= 0, got {cfg.freeze_epochs}")
    if cfg.lr_mult < 0:
        raise ConfigError(f"{key}.lr_mult: must be >= 0, got {cfg.lr_mult}")
    try:
        factory = TEXT_ENCODERS.get(cfg.name)
    except RegistryError as e:
        raise ConfigError(f"{key}.name: {e}") from None
    encoder = factory(cfg)
    encoder.freeze_epochs = cfg.freeze_epochs
    encoder.lr_mult = cfg.lr_mult
    return encoder
