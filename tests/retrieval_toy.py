"""Tiny deterministic fixtures for the retrieval tests: a hashed bag-of-words text encoder
(no downloads) and synthetic paired video/text batches."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch
from torch import nn

from vidlang.text.base import TextEncoder, TextEncoding

STOPWORDS = {"a", "an", "the", "is", "of", "in", "on", "and", "to", "then"}


def is_content(words: list[str]) -> list[bool]:
    return [w.lower() not in STOPWORDS for w in words]


class HashWordEncoder(TextEncoder):
    """Each whitespace word -> a fixed random vector picked by its CRC32; sentence = mean."""

    def __init__(self, dim: int = 16, buckets: int = 512, seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        gen = torch.Generator().manual_seed(seed)
        self.table = nn.Embedding(buckets, dim)
        with torch.no_grad():
            self.table.weight.copy_(torch.randn(buckets, dim, generator=gen))
        self.buckets = buckets

    def forward(self, texts: Sequence[str]) -> TextEncoding:
        words = [t.lower().split() or ["<empty>"] for t in texts]
        length = max(len(w) for w in words)
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)
        for i, ws in enumerate(words):
            ids[i, : len(ws)] = torch.tensor([zlib.crc32(w.encode()) % self.buckets for w in ws])
            mask[i, : len(ws)] = True
        tokens = self.table(ids)
        m = mask.unsqueeze(-1).float()
        sentence = (tokens * m).sum(1) / m.sum(1)
        return TextEncoding(sentence, tokens, mask, words)


VERBS = ["run", "jump", "cook", "swim", "dance", "paint", "drive", "climb"]
NOUNS = ["dog", "chef", "car", "child", "horse", "guitar", "ball", "tree"]


def toy_pairs(n: int, dim: int = 12, clips: int = 6, seed: int = 0
              ) -> tuple[list[str], torch.Tensor, torch.Tensor, list[str]]:
    """n videos whose clip features encode (verb, noun) plus noise, with matching captions."""
    gen = torch.Generator().manual_seed(seed)
    protos = torch.randn(len(VERBS) + len(NOUNS), dim, generator=gen)
    texts, feats = [], torch.zeros(n, clips, dim)
    mask = torch.ones(n, clips, dtype=torch.bool)
    for i in range(n):
        v, o = i % len(VERBS), (i * 3 + i // len(VERBS)) % len(NOUNS)
        texts.append(f"the {NOUNS[o]} is {VERBS[v]}")
        half = clips // 2
        feats[i, :half] = protos[v]
        feats[i, half:] = protos[len(VERBS) + o]
        feats[i] += 0.3 * torch.randn(clips, dim, generator=gen)
        if i % 3 == 2:
            mask[i, clips - 1] = False
            feats[i, clips - 1] = 0
    return texts, feats, mask, [f"v{i}" for i in range(n)]
