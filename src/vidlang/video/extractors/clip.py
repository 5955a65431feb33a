"""``clip``: CLIP-family image encoders (CLIPModel / SiglipModel vision towers) through
Hugging Face ``transformers``; per-frame embeddings, L2-normalised, averaged per clip.

The checkpoint is a local folder or a hub name already in the Hugging Face cache; nothing is
ever downloaded (``local_files_only=True``), and a name that is not available locally fails at
once with a :class:`ConfigError`. The same checkpoint's text tower is the ``clip`` text
encoder (``vidlang.text.clip``), so clip features and query vectors share one space.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vidlang.errors import ConfigError
from vidlang.registry import EXTRACTORS
from vidlang.text.hf_offline import load_clip_model  # shared with the clip text encoder
from vidlang.video.decode import Clip, FrameSize
from vidlang.video.extractors.base import Extractor

# OpenAI CLIP's normalisation; used when the checkpoint has no preprocessor_config.json
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def image_normalisation(path: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) from the checkpoint's preprocessor_config.json, else CLIP's."""
    cfg_file = Path(path) / "preprocessor_config.json"
    if cfg_file.is_file():
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        if "image_mean" in cfg and "image_std" in cfg:
            return tuple(cfg["image_mean"]), tuple(cfg["image_std"])
    return CLIP_MEAN, CLIP_STD


@EXTRACTORS.register("clip")
class ClipExtractor(Extractor):
    """Mean of L2-normalised CLIP image embeddings of the frames of each clip."""

    name: ClassVar[str] = "clip"
    default_fps: ClassVar[float] = 1.0

    def __init__(self, model: str | None = None, clip_seconds: float = 2.0, fps: float | None = None,
                 num_frames: int | None = None, batch_size: int = 16, device: str = "cpu") -> None:
        super().__init__(clip_seconds, fps, num_frames, batch_size)
        if not model:
            raise ConfigError("--model: the clip extractor needs a CLIP checkpoint (local folder or cached hub name)")
        import torch

        self.model_path = str(model)
        self.device = torch.device(device)
        self.model = load_clip_model(self.model_path).to(self.device)
        vision = getattr(self.model.config, "vision_config", None)
        if vision is None:
            raise ConfigError(f"--model: {model!r} has no vision_config")
        self.image_size = int(vision.image_size)
        self.frame_size = FrameSize(self.image_size, self.image_size, "short_side_crop")
        mean, std = image_normalisation(self.model_path)
        self._mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.dim = int(getattr(self.model.config, "projection_dim", None) or vision.hidden_size)

    def options(self) -> dict[str, Any]:
        return {**super().options(), "model": self.model_path, "image_size": self.image_size}

    def frame_embeddings(self, frames: np.ndarray) -> np.ndarray:
        """[N, dim] L2-normalised image embeddings of [N, S, S, 3] uint8 frames."""
        import torch

        with torch.no_grad():
            pixels = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
            pixels = ((pixels - self._mean) / self._std).to(self.device)
            emb = self.model.get_image_features(pixel_values=pixels)
            emb = getattr(emb, "pooler_output", emb)
            emb = torch.nn.functional.normalize(emb.float(), dim=-1)
        return emb.cpu().numpy()

    def encode(self, clips: Sequence[Clip]) -> np.ndarray:
        frames = np.concatenate([c.frames for c in clips], axis=0)
        emb = self.frame_embeddings(frames)
        bounds = np.cumsum([0] + [len(c.frames) for c in clips])
        return np.stack([emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
