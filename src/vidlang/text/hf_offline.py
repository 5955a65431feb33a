"""Reading Hugging Face weights from disk only: the one loading piece that the ``hf`` / ``clip``
text encoders and the ``clip`` video extractor share (video imports it from here, down a floor).

Weights come from a local folder or a hub name already in the Hugging Face cache
(``local_files_only=True``); anything else is a clear :class:`ConfigError`, never a download.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from vidlang.errors import ConfigError


def from_pretrained_offline(path: str, key: str, what: str, *loaders: Any) -> list[Any]:
    """``loader.from_pretrained(path, local_files_only=True)`` for each loader (AutoModel,
    AutoTokenizer, ...): never downloads; a path that is neither a local folder nor a cached hub
    name is one :class:`ConfigError` naming the config ``key`` and ``what`` was being loaded."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no per-load "Loading weights" bars on stderr
    where = "local folder" if Path(path).is_dir() else "hub name (looked up in the local cache only)"
    try:
        return [loader.from_pretrained(path, local_files_only=True) for loader in loaders]
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{key}: cannot load {what} {path!r} from the {where}: "
            f"{str(e).splitlines()[0]}. vidlang never downloads weights; pass a local folder "
            "or fetch the model once with `huggingface-cli download <name>`") from None


@functools.lru_cache(maxsize=4)
def load_clip_model(path: str) -> Any:
    """A CLIP-family dual encoder (CLIPModel, SiglipModel, ...) from ``path``, in eval mode,
    read once per process (the video extractor and the text encoder share it); never downloads."""
    from transformers import AutoModel

    (model,) = from_pretrained_offline(path, "--model", "CLIP checkpoint", AutoModel)
    if not hasattr(model, "get_image_features") or not hasattr(model, "get_text_features"):
        raise ConfigError(f"--model: {path!r} is a {type(model).__name__}, not a CLIP-family "
                          "dual encoder (CLIPModel, SiglipModel)")
    return model.eval()
