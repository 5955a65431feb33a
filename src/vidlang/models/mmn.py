"""MMN (Mutual Matching Network, AAAI 2022) and its 2D-TAN baseline as configs of one module.

Shared backbone (spec ``mmn.md`` section 3): FeatPool (Conv1d k1 -> ReLU -> AvgPool1d) ->
sparse 2D proposal map filled by cascaded max pooling -> masked conv stack.

* ``mmn`` (late fusion): conv stack with BatchNorm, two 1x1 heads into a joint space, two text
  heads; scored by cosine. Trained with scaled-IoU BCE on sigmoid(10 cos_iou) plus the
  mutual-matching contrastive loss; ranked by ((cos_mm + 1) / 2)^p * sigmoid(10 cos_iou).
* ``2dtan`` (early fusion): normalise(text (.) Conv1x1(map)) * mask before a conv stack without
  BN, one 1x1 head -> sigmoid IoU map; BCE only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional, cast

import torch
from torch import nn
from torch.nn import functional as F

from vidlang.data.features.spec import FeatureSpec
from vidlang.errors import ConfigError, DataError
from vidlang.losses.mmn import (
    gathered_mutual_matching_loss,
    mutual_matching_loss,
    scaled_iou_bce,
)
from vidlang.models.base import TrainState, VidlangModel
from vidlang.models.blocks.masked_conv import ALGORITHMS, MaskedConvStack
from vidlang.models.blocks.proposal_map import (
    SparseMaxPool2DMap,
    cell_index_to_seconds,
    iou_target_map,
)
from vidlang.models.feature_dim import dim_mismatch, require_dim
from vidlang.registry import MODELS
from vidlang.text.base import TextEncoder
from vidlang.text.cache import FrozenTextCache, shared_text_cache
from vidlang.text.config import TextEncoderConfig, build_text_encoder
from vidlang.text.finetune import apply_freeze, param_groups_with_multipliers


@dataclass
class MMNConfig:
    """Hyperparameters of MMN; defaults are the paper's Charades-STA values (``mmn.md``)."""

    input_dim: Any = 4096              # clip-feature width (VGG16 fc7 on Charades), or "auto"
    num_pre_clips: int = 32            # P: segments the raw features are averaged into (num_rows)
    num_clips: int = 16                # N: side of the 2D map
    pooling_counts: list[int] = field(default_factory=lambda: [15])
    featpool_hidden: int = 512
    featpool_kernel: int = 2           # AvgPool1d kernel; the stride is P / N
    conv_hidden: int = 512
    conv_kernel: int = 5
    conv_layers: int = 8
    batch_norm: bool = True            # MMN adds BN after every conv; 2D-TAN has none
    # how the masked stack is computed (same values up to float rounding): "auto" (Winograd
    # F(4x4, 5x5) on the support for wide 5x5 stacks, else the support GEMM), "winograd",
    # "support"; the straightforward dense stack is kept in benchmarks/_reference_mmn.py
    conv_algorithm: str = "auto"
    fusion: str = "late"               # "late" (MMN, cosine) or "early" (2D-TAN, Hadamard)
    joint_dim: int = 256               # width of the joint space (late fusion)
    # the paper's text encoder, DistilBERT (mean-pooled), frozen while epoch <= freeze_epochs,
    # then trained at lr_mult x the base lr. vidlang never downloads weights: give text.path a
    # local copy of distilbert-base-uncased, or use text.name=minilm (bundled, offline)
    text: TextEncoderConfig = field(default_factory=lambda: TextEncoderConfig(
        name="hf", path="distilbert-base-uncased", freeze_epochs=4, lr_mult=0.1))
    min_iou: float = 0.5               # scaled-IoU target t_min
    max_iou: float = 1.0               # scaled-IoU target t_max
    iou_logit_scale: float = 10.0      # s_iou = sigmoid(scale * cos)
    tau_video: float = 0.1
    tau_sent: float = 0.1
    margin: float = 0.4
    num_positive: int = 1              # top-k positive cells per sentence
    sent_removal_iou: float = 0.5      # same-video sentences with GT IoU >= this are not negatives
    negative_video_iou: float = 0.5    # own-video cells with IoU >= this are not negatives
    contrastive_weight: float = 0.05   # lambda (0 = BCE only)
    only_iou_epochs: int = 7           # full lambda while epoch <= this ...
    contrastive_decay: float = 0.01    # ... then lambda * this
    reproduce_upstream_quirks: bool = False
    # A frozen text encoder runs in eval mode and its sentence vectors are cached per string
    # (fast on CPU, deterministic). Upstream keeps DistilBERT's dropout on while frozen: false.
    cache_frozen_text: bool = True
    score_power: float = 0.5           # p in ((cos_mm + 1) / 2)^p
    rank_masked_cells: bool = False    # 2D-TAN ranks every upper-triangle cell (masked score 0)

    @property
    def featpool_stride(self) -> int:
        """P // N: the FeatPool's AvgPool1d stride from the P resampled feature rows
        (``feature_spec().num_rows``) to the N clips of the 2D map."""
        return self.num_pre_clips // self.num_clips


def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"model.{key}: {message}")


def validate_config(cfg: MMNConfig) -> None:
    """Reject values the architecture cannot run with, naming the config key."""
    _check(cfg.fusion in FUSIONS, "fusion", f"unknown {cfg.fusion!r}; known: {sorted(FUSIONS)}")
    _check(cfg.num_pre_clips % cfg.num_clips == 0, "num_pre_clips",
           f"must be a multiple of num_clips ({cfg.num_pre_clips} vs {cfg.num_clips})")
    stride = cfg.featpool_stride
    _check(cfg.featpool_kernel >= 1 and
           (cfg.num_pre_clips - cfg.featpool_kernel) // stride + 1 == cfg.num_clips,
           "featpool_kernel", f"{cfg.featpool_kernel} with stride {stride} does not turn "
           f"{cfg.num_pre_clips} segments into {cfg.num_clips} clips")
    require_dim(cfg.input_dim, "input_dim")
    _check(cfg.conv_algorithm in ALGORITHMS, "conv_algorithm",
           f"unknown {cfg.conv_algorithm!r}; known: {list(ALGORITHMS)}")
    _check(cfg.num_positive >= 1, "num_positive", "must be >= 1")
    _check(cfg.tau_video > 0 and cfg.tau_sent > 0, "tau_video", "temperatures must be > 0")
    _check(cfg.max_iou > cfg.min_iou, "max_iou", "must exceed min_iou")


def build_mmn_text_encoder(cfg: TextEncoderConfig) -> TextEncoder:
    """The configured text encoder; its errors name the ``model.text`` keys."""
    try:
        return build_text_encoder(cfg, key="model.text")
    except ConfigError as e:
        message = str(e)
        raise ConfigError(message if message.startswith("model.") else f"model.{message}") from None


class FeatPool(nn.Module):
    """[B, P, D] segment features -> [B, C, N] clip features (Conv1d k1 -> ReLU -> AvgPool)."""

    def __init__(self, input_dim: int, hidden: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(input_dim, hidden, 1)
        self.pool = nn.AvgPool1d(kernel, stride)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.conv(feats.transpose(1, 2))))


@dataclass
class GroundingScores:
    """Per-query outputs: ``iou_logits`` [Q, N, N] for the BCE; ``rank`` [Q, N, N] the ranking
    score; late fusion adds the contrastive embeddings used by the matching loss."""

    iou_logits: torch.Tensor
    rank: torch.Tensor
    sent_mm: Optional[torch.Tensor] = None   # [Q, E]
    map_mm: Optional[torch.Tensor] = None    # [B, E, N, N]


class _LateFusion(nn.Module):
    """MMN: proposal and sentence embedded separately into a joint space, scored by cosine."""

    def __init__(self, cfg: MMNConfig, text_dim: int, mask2d: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        self.stack = MaskedConvStack(cfg.featpool_hidden, cfg.conv_hidden, cfg.conv_kernel,
                                     cfg.conv_layers, mask2d, cfg.batch_norm,
                                     cfg.conv_algorithm)
        self.conv1x1_iou = nn.Conv2d(cfg.conv_hidden, cfg.joint_dim, 1)
        self.conv1x1_contrastive = nn.Conv2d(cfg.conv_hidden, cfg.joint_dim, 1)
        self.text_norm = nn.LayerNorm(text_dim)
        self.text_iou = nn.Linear(text_dim, cfg.joint_dim)
        self.text_contrastive = nn.Linear(text_dim, cfg.joint_dim)

    def forward(self, map2d: torch.Tensor, sent: torch.Tensor, query_video: torch.Tensor,
                mask2d: torch.Tensor) -> GroundingScores:
        feat = self.stack(map2d)
        map_iou = F.normalize(self.conv1x1_iou(feat), dim=1)
        map_mm = F.normalize(self.conv1x1_contrastive(feat), dim=1)
        sent = self.text_norm(sent)
        sent_iou = F.normalize(self.text_iou(sent), dim=-1)
        sent_mm = F.normalize(self.text_contrastive(sent), dim=-1)
        cos_iou = torch.einsum("qe,qenm->qnm", sent_iou, map_iou[query_video])
        cos_mm = torch.einsum("qe,qenm->qnm", sent_mm, map_mm[query_video])
        iou_logits = self.cfg.iou_logit_scale * cos_iou
        rank = ((cos_mm + 1) / 2).clamp(min=0) ** self.cfg.score_power * torch.sigmoid(iou_logits)
        return GroundingScores(iou_logits, rank * mask2d, sent_mm, map_mm)


class _EarlyFusion(nn.Module):
    """2D-TAN: the sentence gates the map (Hadamard) before the conv stack, one IoU head."""

    def __init__(self, cfg: MMNConfig, text_dim: int, mask2d: torch.Tensor) -> None:
        super().__init__()
        self.map_proj = nn.Conv2d(cfg.featpool_hidden, cfg.conv_hidden, 1)
        self.text_proj = nn.Linear(text_dim, cfg.conv_hidden)
        self.stack = MaskedConvStack(cfg.conv_hidden, cfg.conv_hidden, cfg.conv_kernel,
                                     cfg.conv_layers, mask2d, cfg.batch_norm,
                                     cfg.conv_algorithm)
        self.head = nn.Conv2d(cfg.conv_hidden, 1, 1)

    def forward(self, map2d: torch.Tensor, sent: torch.Tensor, query_video: torch.Tensor,
                mask2d: torch.Tensor) -> GroundingScores:
        fused = self.text_proj(sent)[:, :, None, None] * self.map_proj(map2d)[query_video]
        fused = F.normalize(fused, dim=1) * mask2d
        logits = self.head(self.stack(fused))[:, 0]
        return GroundingScores(logits, torch.sigmoid(logits) * mask2d)


FUSIONS: dict[str, Callable[[MMNConfig, int, torch.Tensor], nn.Module]] = {
    "late": _LateFusion,
    "early": _EarlyFusion,
}


@MODELS.register("mmn")
class MMN(VidlangModel):
    """Temporal grounding on a sparse 2D proposal map (MMN by default, 2D-TAN by config)."""

    task: ClassVar[str] = "grounding"
    config_class: ClassVar[type] = MMNConfig
    mask2d: torch.Tensor  # registered buffer (not persistent): the proposal map's cell mask

    def __init__(self, cfg: MMNConfig, text_encoder: Optional[TextEncoder] = None) -> None:
        super().__init__(cfg)
        validate_config(cfg)
        self.text_encoder = text_encoder or build_mmn_text_encoder(cfg.text)
        self._text_cache: Optional[FrozenTextCache] = None
        self.featpool = FeatPool(cfg.input_dim, cfg.featpool_hidden, cfg.featpool_kernel,
                                 cfg.featpool_stride)
        self.map2d = SparseMaxPool2DMap(cfg.num_clips, cfg.pooling_counts)
        self.register_buffer("mask2d", cast(torch.Tensor, self.map2d.mask).clone(), persistent=False)
        self.fusion = FUSIONS[cfg.fusion](cfg, self.text_encoder.dim, self.mask2d)

    # -- engine contract -------------------------------------------------------------------
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(mode="segment_mean", num_rows=self.cfg.num_pre_clips,
                           l2_normalise=True)

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """All parameters; the text encoder's at ``text.lr_mult`` x base lr (frozen or not)."""
        return param_groups_with_multipliers(self, base_lr, {self.text_encoder: self.cfg.text.lr_mult})

    def on_train_epoch_start(self, state: TrainState) -> None:
        if apply_freeze(self.text_encoder, state.epoch, self.cfg.text.freeze_epochs):
            self._text_cache = None  # the encoder will change: look the cache up again later

    def contrastive_weight(self, epoch: int) -> float:
        """lambda while epoch <= only_iou_epochs, then lambda * contrastive_decay (not zero)."""
        decay = 1.0 if epoch <= self.cfg.only_iou_epochs else self.cfg.contrastive_decay
        return self.cfg.contrastive_weight * decay

    # -- forward -----------------------------------------------------------------------------
    def encode_text(self, queries: list[str]) -> torch.Tensor:
        """[Q, D] sentence vectors (grad flows only while the encoder is unfrozen)."""
        trainable = any(p.requires_grad for p in self.text_encoder.parameters())
        if trainable or not self.cfg.cache_frozen_text:
            with torch.set_grad_enabled(torch.is_grad_enabled() and trainable):
                return self.text_encoder(list(queries)).sentence
        if self._text_cache is None:
            self._text_cache = shared_text_cache(self.text_encoder, repr(self.cfg.text),
                                                 eval_mode=True)
        return self._text_cache.sentences(self.text_encoder, queries)

    def forward(self, batch: dict[str, Any]) -> GroundingScores:
        feats = batch["feats"]
        if feats.dim() != 3 or feats.shape[1] != self.cfg.num_pre_clips:
            raise DataError(f"expected feats [B, {self.cfg.num_pre_clips}, D] (set by "
                            f"feature_spec), got {list(feats.shape)}")
        if feats.shape[2] != self.cfg.input_dim:
            raise ConfigError(dim_mismatch("input_dim", self.cfg.input_dim, feats.shape[2]))
        clips = self.featpool(feats)
        map2d = self.map2d(clips)
        sent = self.encode_text(batch["queries"]).to(feats.device)
        return self.fusion(map2d, sent, batch["query_video"], self.mask2d.to(feats.dtype))

    def targets(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(IoU map [Q, N, N], normalised GT [Q, 2]); a degenerate GT names its query."""
        windows = batch["windows"].to(torch.float32)
        durations = batch["durations"].to(windows)[batch["query_video"]]
        bad = (windows[:, 1].clamp(max=durations) <= windows[:, 0].clamp(min=0)).nonzero()
        if bad.numel():
            i = int(bad[0, 0])
            raise DataError(f"ground-truth window {windows[i].tolist()} is empty after clamping "
                            f"to [0, {float(durations[i])}]", record=str(batch["qids"][i]))
        gt = (windows / durations[:, None]).clamp(0, 1)
        return iou_target_map(windows, durations, self.cfg.num_clips), gt

    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        out = self(batch)
        iou, gt = self.targets(batch)
        mask = self.mask2d
        losses = {"loss_iou": scaled_iou_bce(out.iou_logits, iou, mask, self.cfg.min_iou,
                                             self.cfg.max_iou)}
        weight = self.contrastive_weight(state.epoch)
        total = losses["loss_iou"]
        if out.sent_mm is not None and out.map_mm is not None and weight > 0:
            cells = out.map_mm[:, :, mask].transpose(1, 2)      # [B, M, E]
            kwargs: dict[str, Any] = dict(
                tau_video=self.cfg.tau_video, tau_sent=self.cfg.tau_sent, margin=self.cfg.margin,
                top_k=self.cfg.num_positive, sent_removal_iou=self.cfg.sent_removal_iou,
                negative_video_iou=self.cfg.negative_video_iou,
                reproduce_upstream_quirks=self.cfg.reproduce_upstream_quirks)
            if state.gather_negatives:   # negatives from every device; the BCE stays local
                terms = gathered_mutual_matching_loss(
                    out.sent_mm, cells, batch["query_video"], iou[:, mask], gt,
                    video_ids=batch.get("video_ids"), **kwargs)
            else:                        # per-device negatives, as in the release
                terms = mutual_matching_loss(out.sent_mm, cells, batch["query_video"],
                                             iou[:, mask], gt, **kwargs)
            losses["loss_mm_video"] = terms.proposal_to_sentence
            losses["loss_mm_sent"] = terms.sentence_to_proposal
            total = total + weight * (terms.proposal_to_sentence + terms.sentence_to_proposal)
        losses["loss"] = total
        return losses

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Every candidate cell per query as ``[start_s, end_s, score]``, best score first
        (ties in cell order), without suppression: NMS and the top-k cap are the evaluation
        convention's post-processing step (:mod:`vidlang.metrics.postprocess`)."""
        rank = self(batch).rank
        n = self.cfg.num_clips
        candidates = torch.ones_like(self.mask2d).triu() if self.cfg.rank_masked_cells \
            else self.mask2d
        ii, jj = candidates.nonzero(as_tuple=True)
        preds = []
        for q, qid in enumerate(batch["qids"]):
            duration = float(batch["durations"][batch["query_video"][q]])
            scores = rank[q, ii, jj].double().cpu()
            # MMN ranks the non-zero cells; 2D-TAN ranks every upper-triangle cell
            keep = torch.ones_like(scores, dtype=torch.bool) if self.cfg.rank_masked_cells \
                else scores > 0
            spans = cell_index_to_seconds(ii[keep].cpu(), jj[keep].cpu(), n, duration)
            order = scores[keep].sort(descending=True, stable=True).indices
            windows = torch.cat([spans, scores[keep][:, None]], dim=1)[order]
            preds.append({"qid": qid, "vid": batch["video_ids"][int(batch["query_video"][q])],
                          "pred_relevant_windows": windows.tolist()})
        return preds


@dataclass
class TwoDTANConfig(MMNConfig):
    """2D-TAN (pool variant) as a config of the same module: early fusion, no BN, BCE only."""

    batch_norm: bool = False
    fusion: str = "early"
    contrastive_weight: float = 0.0
    # upstream: GloVe + 3-layer LSTM (last state); the `word` encoder with an LSTM stands in
    # (text.path: a GloVe file for the paper setting; without one the embeddings are hashed)
    text: TextEncoderConfig = field(default_factory=lambda: TextEncoderConfig(
        name="word", pooling="last", lstm_layers=3, lstm_hidden=512))
    rank_masked_cells: bool = True


@MODELS.register("2dtan")
class TwoDTAN(MMN):
    """2D-TAN baseline: the MMN module with :class:`TwoDTANConfig` defaults."""

    config_class: ClassVar[type] = TwoDTANConfig
