"""Zero-shot CLIP baseline: no training, only the shared embedding space of one checkpoint.

Grounding: the cosine between the query's text embedding and each clip's ``clip`` feature
(both from the same CLIP checkpoint); candidate windows are the runs of consecutive clips
whose similarity stays above a threshold, for several thresholds between the video's median
and maximum similarity; a window scores the mean similarity inside it minus the mean outside,
and NMS keeps the best ones. Retrieval: cosine between the query and each video's mean clip
embedding.

    model = ZeroShotCLIP(ZeroShotConfig(text=TextEncoderConfig(name="clip", path=CKPT)))
    windows = model.ground(feats, ["the red square moves to the left"], duration=31.0)[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from vidlang.data.features.spec import FeatureSpec
from vidlang.errors import ConfigError
from vidlang.models.base import TrainState, VidlangModel
from vidlang.ops.nms import nms_windows
from vidlang.registry import MODELS
from vidlang.text.config import TextEncoderConfig, build_text_encoder


@dataclass
class ZeroShotConfig:
    """levels: thresholds as fractions between the median (0) and maximum (1) similarity;
    min_clips: shortest run kept; nms_iou: windows overlapping a better one more are dropped."""

    text: TextEncoderConfig = field(default_factory=lambda: TextEncoderConfig(name="clip"))
    input_dim: int | None = None
    levels: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    min_clips: int = 1
    nms_iou: float = 0.7
    top_k: int = 10


def runs_above(values: np.ndarray, threshold: float, min_len: int = 1) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``values >= threshold`` holds for >= ``min_len`` steps."""
    above = np.concatenate([[False], values >= threshold, [False]])
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_len]


def windows_from_similarity(sim: np.ndarray, duration: float, cfg: ZeroShotConfig) -> list[list[float]]:
    """Ranked ``[start_s, end_s, score]`` windows of one query from its per-clip similarity."""
    n = len(sim)
    step = duration / n
    median, top = float(np.median(sim)), float(sim.max())
    candidates: dict[tuple[int, int], float] = {}
    for level in cfg.levels:
        for a, b in runs_above(sim, median + level * (top - median), cfg.min_clips):
            outside = np.concatenate([sim[:a], sim[b:]])
            score = float(sim[a:b].mean() - (outside.mean() if len(outside) else median))
            candidates[(a, b)] = score
    if not candidates:  # flat similarity: the whole video
        candidates[(0, n)] = 0.0
    ranked = sorted(candidates.items(), key=lambda kv: (-kv[1], kv[0]))
    rows = [[a * step, min(b * step, duration), score] for (a, b), score in ranked]
    # greedy NMS in rank order (ties keep it); top_k <= 0 keeps every survivor
    return nms_windows(rows, cfg.nms_iou, cfg.top_k if cfg.top_k > 0 else None)


@MODELS.register("zeroshot_clip")
class ZeroShotCLIP(VidlangModel):
    """Training-free grounding and retrieval in a CLIP checkpoint's joint space."""

    task: ClassVar[str] = "grounding"
    config_class: ClassVar[type] = ZeroShotConfig

    def __init__(self, cfg: ZeroShotConfig) -> None:
        super().__init__(cfg)
        if cfg.text.name != "clip":
            raise ConfigError(f"model.text.name: the zero-shot baseline needs the clip text encoder, got {cfg.text.name!r}")
        self.text = build_text_encoder(cfg.text, "model.text").eval()
        if cfg.input_dim is not None and cfg.input_dim != self.text.dim:
            raise ConfigError(f"model.input_dim: {cfg.input_dim} != the checkpoint's embedding width {self.text.dim}")

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(mode="none", l2_normalise=True)

    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        raise ConfigError("zeroshot_clip has nothing to train; use it directly for prediction")

    @torch.no_grad()
    def embed_queries(self, queries: Sequence[str]) -> torch.Tensor:
        """[Q, D] L2-normalised text embeddings."""
        return torch.nn.functional.normalize(self.text(list(queries)).sentence.float(), dim=-1)

    def _check_dim(self, feats: torch.Tensor) -> None:
        if feats.shape[-1] != self.text.dim:
            raise ConfigError(f"features have dim {feats.shape[-1]} but the CLIP checkpoint embeds in "
                              f"{self.text.dim}; extract them with the same checkpoint (--extractor clip)")

    @torch.no_grad()
    def similarity(self, feats: np.ndarray | torch.Tensor, queries: Sequence[str]) -> np.ndarray:
        """[Q, T] cosine between each query and each clip."""
        clips = torch.nn.functional.normalize(torch.as_tensor(np.asarray(feats), dtype=torch.float32), dim=-1)
        self._check_dim(clips)
        return (self.embed_queries(queries).cpu() @ clips.T).numpy()

    def ground(self, feats: np.ndarray | torch.Tensor, queries: Sequence[str], duration: float) -> list[list[list[float]]]:
        """Per query, ranked ``[start_s, end_s, score]`` windows in one video."""
        if not duration > 0:
            raise ConfigError(f"duration must be > 0 seconds, got {duration}")
        return [windows_from_similarity(row, float(duration), self.cfg) for row in self.similarity(feats, queries)]

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """The engine's grounding batch -> ``{"qid", "pred_relevant_windows"}`` per query."""
        out = []
        for q, (qid, query) in enumerate(zip(batch["qids"], batch["queries"])):
            row = int(batch["query_video"][q])
            feats = batch["feats"][row][batch["feat_mask"][row]].cpu().numpy()
            windows = self.ground(feats, [query], float(batch["durations"][row]))[0]
            out.append({"qid": qid, "pred_relevant_windows": windows})
        return out

    @torch.no_grad()
    def retrieval_scores(self, queries: Sequence[str], videos: Sequence[np.ndarray]) -> np.ndarray:
        """[Q, V] cosine between each query and each video's mean clip embedding."""
        means = torch.stack([torch.nn.functional.normalize(
            torch.as_tensor(np.asarray(v), dtype=torch.float32), dim=-1).mean(0) for v in videos])
        self._check_dim(means)
        return (self.embed_queries(queries).cpu() @ torch.nn.functional.normalize(means, dim=-1).T).numpy()
