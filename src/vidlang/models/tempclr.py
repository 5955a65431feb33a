"""TempCLR (tempclr.md): the project's dual encoder trained with a sequence-level contrastive
loss over (soft-)DTW / OTAM distances, plus the clip-level InfoNCE (0.3 / 0.7).

The encoder is :class:`vidlang.models.retrieval.DualEncoder` (one encoder, not two): each
clip-caption pair's clip (its window of per-second features) goes through ``video_repr`` and
is pooled; each caption through ``text_repr``. ``clip_weight=1, align_weight=0`` is the
clip-level baseline (VideoCLIP-style training) as a config of the same model.

Alignment batch (built by ``vidlang.engine.pipelines.alignment``)::

    video_ids    list[str]              B videos
    feats        FloatTensor [B, T, D]  per-second features of the whole video (padded;
                                        evaluation batches only: training reads the clips)
    feat_mask    BoolTensor  [B, T]     (with feats)
    durations    FloatTensor [B]        seconds
    seg_feats    FloatTensor [S, L, D]  features inside each selected caption window (padded)
    seg_mask     BoolTensor  [S, L]
    seg_texts    list[str]              S captions
    seq_index    LongTensor  [B, N]     row of seg_* of the n-th pair of video b, in time order
    seq_mask     BoolTensor  [B, N]     prefix mask of real pairs
    windows      list[list[(s, e)]]     per video, the windows of its pairs (seconds)

Evaluation batches may also carry the video cut into fixed windows (background kept, v2v)::

    win_feats    FloatTensor [W, L, D]  features inside each fixed window (padded)
    win_mask     BoolTensor  [W, L]
    win_index    LongTensor  [B, K]     row of win_* of the k-th window of video b, -1 after
    bg_windows   list[list[(s, e)]]     per video, its fixed windows (seconds)
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import torch

from vidlang.errors import ConfigError, DataError
from vidlang.losses.alignment import SEQUENCE_DISTANCES
from vidlang.losses.tempclr import (
    REDUCTIONS,
    batch_permutations,
    clip_info_nce,
    segment_shuffle_negatives,
    sequence_contrastive_loss,
)
from vidlang.models.base import TrainState
from vidlang.models.retrieval import DualEncoder, DualEncoderConfig
from vidlang.ops.padding import pad_rows
from vidlang.registry import MODELS, Registry

NEGATIVE_LEVELS = ("unit", "segment")


@dataclass
class TempCLRConfig(DualEncoderConfig):
    """The dual encoder's keys plus TempCLR's (tempclr.md sections 3-4)."""

    clip_weight: float = 0.3  # weight of the clip-level InfoNCE (release 0.3)
    align_weight: float = 0.7  # weight of the sequence-level loss (release 0.7)
    align_kind: str = "softdtw"  # training distance: softdtw | softotam (OTAM(D) + OTAM(D^T))
    gamma: float = 0.1  # soft-min smoothing
    num_negatives: int = 31
    negatives: str = "unit"  # unit: permute sentence order | segment: permute clip segments
    inner_shuffle: bool = False  # segment level: also shuffle frames inside each step
    frames_per_step: int = 4  # segment level: frames kept per step (evenly picked)
    negative_seed: int = 0  # negatives are drawn from (negative_seed, optimiser step)
    infonce_reduction: str = "mean"  # mean (project) | sum (the release)
    # clip-level InfoNCE logits: scaled_cosine (vidlang: exp(logit_scale) x cosine, learned
    # scale) | dot (the release / VideoCLIP: raw dot products of the un-normalised pooled
    # embeddings, no temperature). See docs/models.md for why vidlang keeps scaled_cosine.
    clip_logits: str = "scaled_cosine"
    trainable: str = "all"  # all | layernorm (the release's main checkpoints)
    eval_normalise: str = "path"  # none | path | n_plus_m | area (the release: area)
    # older name of eval.overrides.reproduce_upstream_quirks (either turns the quirks on)
    tempclr_faithful_eval: bool = False


def distinct_pairs(texts: list[str]) -> torch.Tensor:
    """[S, S] bool, True where texts a and b differ (equal captions are not negatives); one
    comparison of integer ids instead of S^2 string comparisons in Python."""
    ids: dict[str, int] = {}
    codes = torch.tensor([ids.setdefault(t, len(ids)) for t in texts], dtype=torch.long)
    return codes[:, None] != codes[None, :]


def _freeze_all(model: TempCLR) -> None:
    """``trainable: all`` leaves every parameter as the encoder set it."""


def _freeze_but_layernorm(model: TempCLR) -> None:
    """``trainable: layernorm``: only LayerNorm parameters train (the release's checkpoints)."""
    keep = {id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)
            for p in m.parameters()}
    if not keep:
        raise ConfigError("model.trainable: 'layernorm' but the encoder has no LayerNorm "
                          "(use temporal: seqTransf, or trainable: all)")
    for p in model.parameters():
        if id(p) not in keep:
            p.requires_grad_(False)


TRAINABLE_POLICIES: Registry[Any] = Registry("tempclr trainable policy")
TRAINABLE_POLICIES.register("all")(_freeze_all)
TRAINABLE_POLICIES.register("layernorm")(_freeze_but_layernorm)


def _scaled_cosine_logits(model: TempCLR, batch: dict[str, Any], text: torch.Tensor,
                          clips: torch.Tensor) -> torch.Tensor:
    """exp(logit_scale) · cos(caption, clip) from the normalised pair embeddings."""
    return model.scale() * text @ clips.t()


def _dot_logits(model: TempCLR, batch: dict[str, Any], text: torch.Tensor,
                clips: torch.Tensor) -> torch.Tensor:
    """The release's logits: raw dot products of the un-normalised projected caption vector and
    the un-normalised masked mean of the clip's contextual features, no temperature."""
    return model.raw_text(list(batch["seg_texts"])) @ model.raw_video(
        batch["seg_feats"], batch["seg_mask"]).t()


CLIP_LOGITS = {"scaled_cosine": _scaled_cosine_logits, "dot": _dot_logits}


@dataclass
class Sequences:
    """Per-video sequences: sentences [B, N, D], clips [B, N, D] and the prefix mask [B, N]."""

    text: torch.Tensor
    clips: torch.Tensor
    mask: torch.Tensor


@MODELS.register("tempclr")
class TempCLR(DualEncoder):
    """Sequence-level contrastive alignment on the shared dual encoder (task ``alignment``)."""

    task = "alignment"
    config_class = TempCLRConfig

    def __init__(self, cfg: TempCLRConfig, **kwargs: Any) -> None:
        self._check(cfg)
        super().__init__(cfg, **kwargs)
        TRAINABLE_POLICIES.get(cfg.trainable)(self)

    @staticmethod
    def _check(cfg: TempCLRConfig) -> None:
        kind = SEQUENCE_DISTANCES.get(cfg.align_kind) if cfg.align_kind in SEQUENCE_DISTANCES \
            else None
        if kind is None or not kind.soft:
            raise ConfigError(f"model.align_kind: {cfg.align_kind!r} must be a differentiable "
                              "(soft) distance: softdtw or softotam")
        if cfg.gamma <= 0:
            raise ConfigError(f"model.gamma: must be > 0, got {cfg.gamma}")
        if cfg.negatives not in NEGATIVE_LEVELS:
            raise ConfigError(f"model.negatives: {cfg.negatives!r} is not one of {NEGATIVE_LEVELS}")
        if cfg.clip_logits not in CLIP_LOGITS:
            raise ConfigError(f"model.clip_logits: {cfg.clip_logits!r} is not one of "
                              f"{tuple(CLIP_LOGITS)}")
        if cfg.infonce_reduction not in REDUCTIONS:
            raise ConfigError(f"model.infonce_reduction: {cfg.infonce_reduction!r} is not one "
                              f"of {REDUCTIONS}")
        if cfg.trainable not in TRAINABLE_POLICIES:
            raise ConfigError(f"model.trainable: {cfg.trainable!r} is not one of "
                              f"{TRAINABLE_POLICIES.names()}")
        if cfg.clip_weight < 0 or cfg.align_weight < 0 or cfg.clip_weight + cfg.align_weight == 0:
            raise ConfigError("model.clip_weight / model.align_weight: must be >= 0 and not both 0")
        if cfg.num_negatives < 1:
            raise ConfigError(f"model.num_negatives: must be >= 1, got {cfg.num_negatives}")

    # ---- encoding ---------------------------------------------------------------------------
    def encode_pairs(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Normalised caption [S, D] and clip [S, D] embeddings of every pair, and the clips'
        per-frame representation (for segment-level negatives)."""
        video = self.video_repr(batch["seg_feats"], batch["seg_mask"])
        text = self.sentence_vectors(list(batch["seg_texts"]))
        return text, video.pooled, video

    @staticmethod
    def to_sequences(text: torch.Tensor, clips: torch.Tensor, batch: dict[str, Any]) -> Sequences:
        """Scatter per-pair embeddings into per-video sequences in time order."""
        index, mask = batch["seq_index"].to(text.device), batch["seq_mask"].to(text.device)
        safe = index.clamp_min(0)
        return Sequences(text[safe] * mask[..., None], clips[safe] * mask[..., None], mask)

    # ---- training ---------------------------------------------------------------------------
    def _generator(self, batch: dict[str, Any], state: TrainState) -> torch.Generator:
        ids = zlib.crc32("\n".join(batch["video_ids"]).encode("utf-8"))
        return torch.Generator().manual_seed(
            (self.cfg.negative_seed * 1_000_003 + state.step * 7919 + ids) % (2**63 - 1))

    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        """``clip_nce`` (weighted InfoNCE over all pairs of the batch), ``align`` (weighted
        sequence-level CE against shuffled orders) and their sum ``loss``."""
        cfg = self.cfg
        text, clips, frames = self.encode_pairs(batch)
        out: dict[str, torch.Tensor] = {}
        if cfg.clip_weight > 0:
            texts = list(batch["seg_texts"])
            valid = distinct_pairs(texts).to(text.device)
            logits = CLIP_LOGITS[cfg.clip_logits](self, batch, text, clips)
            out["clip_nce"] = cfg.clip_weight * clip_info_nce(logits, valid, cfg.infonce_reduction)
        if cfg.align_weight > 0:
            seqs = self.to_sequences(text, clips, batch)
            gen = self._generator(batch, state)
            align = (self._unit_alignment(seqs, gen) if cfg.negatives == "unit"
                     else self._segment_alignment(seqs, frames, batch, gen))
            out["align"] = cfg.align_weight * align
        out["loss"] = sum(out.values(), text.new_zeros(()))
        out["logit_scale"] = self.scale().detach()
        return out

    def _unit_alignment(self, seqs: Sequences, gen: torch.Generator) -> torch.Tensor:
        """Sentence order permuted against the fixed clip order."""
        lengths = seqs.mask.sum(dim=1).tolist()
        perms, valid = batch_permutations(lengths, self.cfg.num_negatives, gen, seqs.mask.shape[1])
        return sequence_contrastive_loss(seqs.text, seqs.mask, seqs.clips, seqs.mask,
                                         perms.to(seqs.text.device), valid,
                                         kind=self.cfg.align_kind, gamma=self.cfg.gamma)

    def _segment_alignment(self, seqs: Sequences, frames: Any, batch: dict[str, Any],
                           gen: torch.Generator) -> torch.Tensor:
        """Steps in order against the frames of each step; negatives permute whole step
        segments of frames (and shuffle inside steps with ``inner_shuffle``)."""
        video, video_mask, labels = self._step_frames(frames, batch)
        b, f = video_mask.shape
        num = self.cfg.num_negatives
        perms = torch.arange(f).repeat(b, num, 1)
        valid = torch.zeros(b, num, dtype=torch.bool)
        for i in range(b):
            length = int(video_mask[i].sum())
            p = segment_shuffle_negatives(labels[i], num, gen, self.cfg.inner_shuffle)
            perms[i, :p.shape[0], :length] = p
            valid[i, :p.shape[0]] = True
        return sequence_contrastive_loss(seqs.text, seqs.mask, video, video_mask,
                                         perms.to(video.device), valid, kind=self.cfg.align_kind,
                                         gamma=self.cfg.gamma, permute="video")

    def _step_frames(self, frames: Any, batch: dict[str, Any]
                     ) -> tuple[torch.Tensor, torch.Tensor, list[list[int]]]:
        """Per video, ``frames_per_step`` evenly picked frame embeddings of each pair's clip,
        concatenated in time order, with the step id of each frame."""
        index, mask = batch["seq_index"], batch["seq_mask"]
        rows: list[torch.Tensor] = []
        labels: list[list[int]] = []
        for b in range(index.shape[0]):
            parts, lab = [], []
            for n in range(int(mask[b].sum())):
                s = int(index[b, n])
                count = int(frames.mask[s].sum())
                pick = torch.linspace(0, count - 1, min(count, self.cfg.frames_per_step)).round().long()
                parts.append(frames.clips[s, pick])
                lab.extend([n] * len(pick))
            rows.append(torch.cat(parts))
            labels.append(lab)
        video, video_mask = pad_rows(rows, dtype=None)
        return video, video_mask, labels

    # ---- inference --------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Per video: its sentences [N, D] and clips [N, D] in time order, its per-second frame
        embeddings [T, D] (step localisation) and its pooled vector, all L2-normalised; with
        fixed windows in the batch also ``bg_clips`` [K, D] (one pooled vector per window)
        and ``bg_windows``."""
        text, clips, _ = self.encode_pairs(batch)
        seqs = self.to_sequences(text, clips, batch)
        whole = self.video_repr(batch["feats"], batch["feat_mask"])
        win = None
        if "win_feats" in batch:
            pooled = self.video_repr(batch["win_feats"], batch["win_mask"]).pooled
            index = batch["win_index"].to(pooled.device)
            win = (pooled[index.clamp_min(0)], index >= 0)
        out = []
        for b, vid in enumerate(batch["video_ids"]):
            n = int(seqs.mask[b].sum())
            t = int(whole.mask[b].sum())
            if n == 0:
                raise DataError("video has no clip-caption pair to evaluate", record=vid)
            out.append({"video_id": vid, "text": seqs.text[b, :n].cpu(),
                        "clips": seqs.clips[b, :n].cpu(), "frames": whole.clips[b, :t].cpu(),
                        "pooled": whole.pooled[b].cpu(), "windows": list(batch["windows"][b]),
                        "duration": float(batch["durations"][b])})
            if win is not None:
                k = int(win[1][b].sum())
                out[-1].update(bg_clips=win[0][b, :k].cpu(), bg_windows=list(batch["bg_windows"][b]))
        return out
