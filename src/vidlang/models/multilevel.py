"""Multi-level (global + segment) alignment, an option of the dual encoder and DMAE.

vidlang's own design (retrieval.md §3; the paper's is unknown, see docs/models.md):
L = L_task + λ_g · L_global + λ_s · L_segment, each level a symmetric InfoNCE with its own
learnable temperature (init 0.07, τ >= 0.01).

* global pairs: the pooled contextual clips of a video vs its text (caption, paragraph encoded
  as the concatenated sentences, or with ``paragraph_pool: mean`` the mean sentence vector).
* segment pairs: the clips whose centres fall in a sentence's window (the nearest clip when
  none does) vs that sentence; same-video segments with tIoU >= ``iou_threshold`` and identical
  sentences are masked out of the negatives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidlang.errors import ConfigError, DataError
from vidlang.losses.multilevel import (
    clip_centres,
    global_valid_mask,
    level_loss,
    segment_clip_mask,
    segment_pool,
    segment_valid_mask,
)
from vidlang.models.reprs import TextEncoderLike, TextRepr, VideoRepr

PARAGRAPH_POOLS = ("concat", "mean")


@dataclass
class MultiLevelConfig:
    """``model.multilevel`` keys. Retrieval: λ_g = 0 (the task loss already is the global
    InfoNCE); multiple-choice QA: λ_g = 1."""

    enabled: bool = False
    lambda_global: float = 0.0
    lambda_segment: float = 0.5
    tau_init: float = 0.07
    tau_min: float = 0.01
    iou_threshold: float = 0.5
    paragraph_pool: str = "concat"  # concat | mean
    fuse_segment_score: bool = False  # test time: + mean over sentences of max clip similarity


class MultiLevelAlignment(nn.Module):
    """The two learnable temperatures and the loss terms of each level."""

    def __init__(self, cfg: MultiLevelConfig) -> None:
        super().__init__()
        if cfg.paragraph_pool not in PARAGRAPH_POOLS:
            raise ConfigError(f"model.multilevel.paragraph_pool={cfg.paragraph_pool!r}: "
                              f"expected one of {PARAGRAPH_POOLS}")
        if not 0 < cfg.tau_min <= cfg.tau_init:
            raise ConfigError(f"model.multilevel.tau_init={cfg.tau_init} must be >= tau_min="
                              f"{cfg.tau_min} > 0")
        self.cfg = cfg
        self.log_inv_tau_global = nn.Parameter(torch.tensor(math.log(1.0 / cfg.tau_init)))
        self.log_inv_tau_segment = nn.Parameter(torch.tensor(math.log(1.0 / cfg.tau_init)))

    def losses(self, model: TextEncoderLike, batch: dict[str, Any], video: VideoRepr,
               text: TextRepr, texts: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Weighted ``align_global`` / ``align_segment`` terms (absent when their λ is 0 or
        the batch has no segments)."""
        out: dict[str, torch.Tensor] = {}
        ids = list(batch["video_ids"])
        if self.cfg.lambda_global:
            texts = list(texts if texts is not None else batch["texts"])
            g_text = self.global_text(model, batch, text)
            valid = global_valid_mask(ids, texts, video.pooled.device)
            out["align_global"] = self.cfg.lambda_global * level_loss(
                video.pooled, g_text, self.log_inv_tau_global, valid, self.cfg.tau_min)
        if self.cfg.lambda_segment and len(batch.get("seg_texts") or ()) >= 2:
            seg_v, seg_t, valid = self.segment_pairs(model, batch, video)
            out["align_segment"] = self.cfg.lambda_segment * level_loss(
                seg_v, seg_t, self.log_inv_tau_segment, valid, self.cfg.tau_min)
        return out

    def global_text(self, model: TextEncoderLike, batch: dict[str, Any], text: TextRepr
                    ) -> torch.Tensor:
        """Global text vectors: the encoded texts (``concat``) or the mean of each video's
        sentence vectors (``mean``, needs the batch's segment sentences)."""
        if self.cfg.paragraph_pool == "concat" or not batch.get("seg_texts"):
            return text.sentence
        sent = model.text_repr(list(batch["seg_texts"])).sentence
        rows = batch["seg_video"].to(sent.device)
        n = text.sentence.shape[0]
        summed = torch.zeros(n, sent.shape[1], device=sent.device).index_add(0, rows, sent)
        counts = torch.bincount(rows, minlength=n)
        if bool((counts == 0).any()):
            raise DataError("paragraph_pool=mean: a video in the batch has no sentences")
        return F.normalize(summed, dim=-1)

    def segment_pairs(self, model: TextEncoderLike, batch: dict[str, Any], video: VideoRepr
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(segment video vectors [S, D], sentence vectors [S, D], allowed negatives [S, S])."""
        device = video.clips.device
        rows = batch["seg_video"].to(device)
        windows = batch["seg_windows"].to(device=device, dtype=video.clips.dtype)
        centres = batch.get("clip_centres")
        if centres is None:
            centres = clip_centres(batch["durations"].to(device, video.clips.dtype), video.mask)
        clip_mask = segment_clip_mask(centres.to(device), video.mask, rows, windows)
        seg_v = F.normalize(segment_pool(video.clips[rows], clip_mask), dim=-1)
        seg_texts = list(batch["seg_texts"])
        seg_t = model.text_repr(seg_texts).sentence
        seg_ids = [batch["video_ids"][int(r)] for r in rows]
        valid = segment_valid_mask(seg_ids, windows, seg_texts, self.cfg.iou_threshold)
        return seg_v, seg_t, valid

    @torch.no_grad()
    def segment_score(self, model: TextEncoderLike, sentences: Sequence[Sequence[str]],
                      video: VideoRepr) -> torch.Tensor:
        """[Q, B] mean over each query's sentences of the sentence's best clip similarity
        (test-time fusion; a gallery video's segments are unknown, so each clip is one)."""
        rows = []
        for sents in sentences:
            s = model.text_repr(list(sents)).sentence  # [S, D]
            sim = torch.einsum("sd,btd->sbt", s, video.clips)
            sim = sim.masked_fill(~video.mask[None], float("-inf")).max(dim=-1).values
            rows.append(sim.mean(dim=0))
        return torch.stack(rows)
