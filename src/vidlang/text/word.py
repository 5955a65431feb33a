"""Word-embedding encoder (``word``): GloVe vectors from a text file, or trainable hashed
embeddings; an optional LSTM on top (2D-TAN: GloVe 300-d -> 3-layer LSTM 512, last state)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vidlang.errors import ConfigError, DataError
from vidlang.registry import TEXT_ENCODERS
from vidlang.text.base import TextEncoder, TextEncoding
from vidlang.text.config import TextEncoderConfig
from vidlang.text.pooling import get_pooling

PAD, UNK = "<pad>", "<unk>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def simple_tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words (apostrophes kept inside words); punctuation dropped."""
    return _WORD.findall(text.lower())


def read_glove(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Words and a [V, D] float32 matrix from a GloVe-format text file (``word v1 ... vD``)."""
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.rstrip("\n").rstrip().split(" ")
            if len(parts) < 2:
                if line.strip():
                    raise DataError("expected 'word v1 ... vD'", path, lineno)
                continue
            try:
                vec = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DataError("vector holds a non-number", path, lineno) from None
            if dim is None:
                dim = vec.shape[0]
            elif vec.shape[0] != dim:
                raise DataError(f"vector has {vec.shape[0]} values, earlier lines have {dim}", path, lineno)
            words.append(parts[0])
            rows.append(vec)
    if not rows:
        raise DataError("no vectors in the file", path)
    return words, np.stack(rows)


@TEXT_ENCODERS.register("word")
class WordEncoder(TextEncoder):
    """Word vectors (+ optional LSTM). Index 0 is padding, 1 is the unknown word."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        self.pool = get_pooling(cfg.pooling)
        self.max_length = cfg.max_length
        if cfg.path:
            if not Path(cfg.path).is_file():
                raise ConfigError(f"text.path: GloVe file {cfg.path!r} not found")
            words, vectors = read_glove(cfg.path)
            self.vocab: dict[str, int] | None = {w: i + 2 for i, w in enumerate(words)}
            table = np.concatenate([np.zeros((2, vectors.shape[1]), np.float32), vectors])
            self.embed = nn.Embedding.from_pretrained(torch.from_numpy(table), freeze=False, padding_idx=0)
            trainable = bool(cfg.train_embeddings)
        else:
            if cfg.vocab_size < 1 or cfg.dim < 1:
                raise ConfigError("text.vocab_size and text.dim: must be >= 1")
            self.vocab = None
            self.vocab_size = cfg.vocab_size
            self.embed = nn.Embedding(cfg.vocab_size + 2, cfg.dim, padding_idx=0)
            trainable = cfg.train_embeddings is None or bool(cfg.train_embeddings)
        self.embed.weight.requires_grad_(trainable)
        width = self.embed.embedding_dim
        self.lstm: nn.LSTM | None = None
        if cfg.lstm_layers > 0:
            self.lstm = nn.LSTM(width, cfg.lstm_hidden, num_layers=cfg.lstm_layers, batch_first=True,
                                bidirectional=cfg.lstm_bidirectional)
            width = cfg.lstm_hidden * (2 if cfg.lstm_bidirectional else 1)
        self.dim = width

    def index(self, word: str) -> int:
        if self.vocab is not None:
            return self.vocab.get(word, 1)
        return 2 + zlib.crc32(word.encode("utf-8")) % self.vocab_size

    def forward(self, texts: Sequence[str]) -> TextEncoding:
        words = [simple_tokenize(t)[: self.max_length] or [UNK] for t in texts]
        length = max(len(w) for w in words)
        ids = torch.zeros(len(words), length, dtype=torch.long)
        for i, ws in enumerate(words):
            ids[i, : len(ws)] = torch.tensor([self.index(w) for w in ws])
        ids = ids.to(self.device)
        mask = ids != 0
        tokens = self.embed(ids)
        if self.lstm is not None:
            lengths = mask.sum(1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(tokens, lengths, batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            tokens, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=length)
        return TextEncoding(self.pool(tokens, mask), tokens, mask, words)
