"""``clip``: the text tower of a CLIP-family checkpoint (CLIPModel, SiglipModel) as a
:class:`~vidlang.text.base.TextEncoder`.

Sentence vectors are the checkpoint's text features (``get_text_features``: projected, in the
same space as the ``clip`` video extractor's image features); token vectors are the last
hidden states passed through the same projection. Read from a local folder or a hub name
already in the Hugging Face cache, never downloaded.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any

import torch

from vidlang.errors import ConfigError
from vidlang.registry import TEXT_ENCODERS
from vidlang.text.base import TextEncoder, TextEncoding, warn_if_truncated
from vidlang.text.config import TextEncoderConfig
from vidlang.text.hf_offline import load_clip_model


@functools.lru_cache(maxsize=4)
def _load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise ConfigError(f"text.path: cannot load the tokenizer of CLIP checkpoint {path!r}: "
                          f"{str(e).splitlines()[0]}") from None


class ClipTextEncoder(TextEncoder):
    """The text tower of a CLIP-family dual encoder; ``dim`` = its projection width."""

    def __init__(self, cfg: TextEncoderConfig) -> None:
        super().__init__()
        if not cfg.path:
            raise ConfigError("text.path: the clip encoder needs a CLIP checkpoint (local folder or cached hub name)")
        full = load_clip_model(str(cfg.path))
        self.tokenizer = _load_tokenizer(str(cfg.path))
        self.text_model = copy.deepcopy(full.text_model)
        proj = getattr(full, "text_projection", None)
        self.projection = copy.deepcopy(proj) if proj is not None else torch.nn.Identity()
        text_cfg = full.config.text_config
        self.dim = int(getattr(full.config, "projection_dim", None) or text_cfg.hidden_size)
        limit = int(getattr(text_cfg, "max_position_embeddings", 77))
        self.max_length = min(cfg.max_length or limit, limit)
        # SigLIP pads to the full length it was trained with; CLIP pads to the longest
        self.padding = "max_length" if "siglip" in type(full).__name__.lower() else True

    def forward(self, texts: Sequence[str]) -> TextEncoding:
        warn_if_truncated(list(texts), self.tokenizer, self.max_length, "clip")
        enc = self.tokenizer(list(texts), padding=self.padding, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        ids = enc["input_ids"].to(self.device)
        mask = enc.get("attention_mask", torch.ones_like(enc["input_ids"])).to(self.device)
        out = self.text_model(input_ids=ids, attention_mask=mask)
        tokens = self.projection(out.last_hidden_state)
        sentence = self.projection(out.pooler_output)
        words = [self.tokenizer.convert_ids_to_tokens(row[: int(n)].tolist())
                 for row, n in zip(ids.cpu(), mask.sum(1).cpu())]
        return TextEncoding(sentence, tokens, mask.bool(), words)


TEXT_ENCODERS.register("clip")(ClipTextEncoder)
