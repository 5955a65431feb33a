"""The video half shared by the retrieval-family pipelines (``retrieval``, ``mcqa``): clip
centre times and the collate of ids, padded features, masks and durations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from vidlang.data.features.spec import FeatureSpec
from vidlang.engine.pipelines.bank import shared_bank
from vidlang.errors import DataError
from vidlang.ops.padding import pad_rows


def clip_centre_times(num_raw: int, duration: float, spec: FeatureSpec) -> torch.Tensor | None:
    """Centre time (s) of each clip after resampling, for the modes that keep raw clips
    (``none``, ``uniform``); None for averaging modes (the model then assumes even tiling)."""
    if not math.isfinite(duration) or num_raw < 1:
        return None
    step = duration / num_raw
    if spec.mode == "none":
        rows = torch.arange(num_raw, dtype=torch.float32)
    elif spec.mode == "uniform" and spec.num_rows:
        from vidlang.data.features import uniform_pick_indices

        rows = torch.as_tensor(uniform_pick_indices(num_raw, spec.num_rows), dtype=torch.float32)
    else:
        return None
    return (rows + 0.5) * step


class CentresMixin:
    """Clip centre times computed once per video (they depend only on its length)."""

    spec: FeatureSpec

    def centres(self, video_id: str, num_raw: int, duration: float) -> torch.Tensor | None:
        cache: dict[tuple[str, int, float], torch.Tensor | None] = self.__dict__.setdefault(
            "_centres", {})
        key = (video_id, num_raw, duration)
        if key not in cache:
            cache[key] = clip_centre_times(num_raw, duration, self.spec)
        return cache[key]


def collate_videos(items: Sequence[Any]) -> dict[str, Any]:
    """The video half of every batch: ids, padded features, mask, durations (features: one
    gather when the items come from one :class:`~vidlang.engine.pipelines.bank.FeatureBank`,
    else the ragged tensors padded; the same tensors either way)."""
    bank = shared_bank(items)
    if bank is not None:
        feats, mask = bank.gather_videos(torch.tensor([it.bank_row for it in items],
                                                         dtype=torch.long))
    else:
        dim = int(items[0].feats.shape[1])
        for it in items:
            if it.feats.shape[1] != dim:
                raise DataError(f"feature width {it.feats.shape[1]} != {dim} of the batch",
                                record=it.entry.video_id)
        feats, mask = pad_rows([it.feats for it in items])
    return {"video_ids": [it.entry.video_id for it in items], "feats": feats, "feat_mask": mask,
            "durations": torch.tensor([it.entry.duration for it in items], dtype=torch.float32)}


def add_centres(batch: dict[str, Any], items: Sequence[Any]) -> None:
    """``clip_centres`` [B, T] when every item knows its clip times (padding: +inf)."""
    centres: list[torch.Tensor] = []
    for it in items:
        c = getattr(it, "centres", None)
        if c is None:
            return
        centres.append(c)
    out = torch.full(batch["feat_mask"].shape, float("inf"))
    for i, c in enumerate(centres):
        out[i, : c.shape[0]] = c
    batch["clip_centres"] = out
