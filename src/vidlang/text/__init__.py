"""Text encoders behind one interface (:class:`~vidlang.text.base.TextEncoder`).

Importing this package registers ``minilm`` (default, offline), ``hf`` and ``word`` in
``vidlang.registry.TEXT_ENCODERS``; transformers is imported only when an HF encoder is built.
Build one with ``build_text_encoder(TextEncoderConfig(name=..., ...))``.
"""

from vidlang.text import clip, hf, word  # noqa: F401  (registers the encoders)
from vidlang.text.base import TextEncoder, TextEncoding
from vidlang.text.config import TextEncoderConfig, build_text_encoder
from vidlang.text.finetune import apply_freeze, param_groups_with_multipliers, set_trainable

__all__ = [
    "TextEncoder",
    "TextEncoderConfig",
    "TextEncoding",
    "apply_freeze",
    "build_text_encoder",
    "param_groups_with_multipliers",
    "set_trainable",
]
