"""Text-video retrieval models: the CLIP4Clip-style dual encoder and DMAE (retrieval.md §1-2).

``dual_encoder``: clip features -> Linear -> ``meanP`` | ``seqTransf`` -> contextual clip
embeddings; text -> the configured text encoder (``vidlang.registry.TEXT_ENCODERS``) -> Linear;
score = exp(logit_scale) * cos(sentence, pooled video); symmetric InfoNCE.
``dmae``: the same encoder, scored with DMAE's ``att_ti`` similarity (sentence score + word-frame
token-wise score with textual attention TWM and visual attention NFC), trained with NegNCE and,
optionally, TPM-CL. Either can add multi-level alignment (``multilevel.enabled``).

Retrieval batch (built by ``vidlang.engine.pipelines.retrieval``)::

    video_ids    list[str]              B videos
    feats        FloatTensor [B, T, D]  clip features (padded)
    feat_mask    BoolTensor  [B, T]     True at real clips (valid clips first)
    durations    FloatTensor [B]        seconds
    texts        list[str]              B texts; texts[i] describes video i (caption or paragraph)
    text_ids     list[str]              B ids of the texts
    # optional, for multi-level segment pairs:
    seg_video    LongTensor  [S]        row of ``feats`` of each segment
    seg_windows  FloatTensor [S, 2]     seconds
    seg_texts    list[str]              S sentences

Public API reused by others (TempCLR, the FAISS index): :meth:`DualEncoder.encode_video`,
:meth:`DualEncoder.encode_text` (normalised [B, D] vectors), :meth:`DualEncoder.video_repr`
(clip-sequence outputs) and :meth:`DualEncoder.text_repr` (sentence + token outputs).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vidlang.data.features.spec import FeatureSpec
from vidlang.errors import ConfigError, DataError
from vidlang.losses.contrastive import info_nce, negnce
from vidlang.losses.multilevel import global_valid_mask
from vidlang.losses.tpmcl import TPMCL
from vidlang.models.base import TrainState, VidlangModel
from vidlang.models.blocks.temporal import TEMPORAL_MODULES, masked_mean
from vidlang.models.blocks.token_sim import (
    TWM_UNITS,
    normalise_weights,
    token_wise_similarity,
)
from vidlang.models.feature_dim import dim_mismatch, require_dim
from vidlang.models.multilevel import MultiLevelAlignment, MultiLevelConfig
from vidlang.models.reprs import TextRepr, VideoRepr  # re-exported: models.retrieval.TextRepr
from vidlang.ops.padding import pad_rows, pad_to_length
from vidlang.registry import MODELS, Registry
from vidlang.text.base import TextEncoder, TextEncoding
from vidlang.text.cache import FrozenTextCache, shared_text_cache
from vidlang.text.config import TextEncoderConfig, build_text_encoder
from vidlang.text.finetune import param_groups_with_multipliers

log = logging.getLogger(__name__)


@dataclass
class DualEncoderConfig:
    """Hyperparameters of the dual encoder (and DMAE, which only changes defaults)."""

    video_dim: Any = 512  # width D of the input clip features, or "auto" (from the store)
    embed_dim: int = 256  # shared embedding width
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)  # encoder, lr_mult ...
    train_text_encoder: bool = False  # False: frozen for good (outputs cached per string);
    # True: trained at text.lr_mult x lr once epoch > text.freeze_epochs
    temporal: str = "meanP"  # meanP | seqTransf
    temporal_layers: int = 4
    temporal_heads: int = 4
    max_clips: int = 128
    num_frames: int = 0  # >0: pick this many clips uniformly (CLIP4Clip: 12 or 64); 0 = all
    similarity: str = "sentence"  # sentence (CLIP4Clip) | att_ti (DMAE)
    logit_scale_init: float = 1.0 / 0.07  # exp(logit_scale) at init; learnable
    learn_logit_scale: bool = True  # DMAE: false at 100, the release's fixed scale
    max_logit_scale: float = 100.0
    loss: str = "infonce"  # infonce | negnce
    negnce_alpha: float = 1.0
    negnce_beta: float = 0.5
    content_word_weight: float = 2.0  # TWM: weight of content words (others 1); 1 = off
    twm_unit: str = "word"  # word (vidlang) | release_character (the release's per-char defect)
    nfc_weight: float = 0.5  # NFC: weight of the nearest-frame term; 0 = off
    # att_ti's sentence half: tokenwise (release: [CLS] token-wise vs the frames, with NFC) |
    # cosine (vidlang before issue 17: cos(sentence, mean-pooled video), no NFC)
    sentence_score: str = "tokenwise"
    tpmcl_partial_type: int = -1  # -1 off | 2 | 3 | 4 (retrieval.md §2.3)
    tpmcl_margin: float = 0.6
    tpmcl_mask_fraction: float = 0.6
    tpmcl_weight: float = 1.0
    tpmcl_scoring: str = "tokenwise"  # tokenwise (release) | pooled (vidlang before issue 17)
    tpmcl_query_map: str = "learned"  # learned (release) | interpolate (vidlang before issue 17)
    tpmcl_max_frames: int = 0  # learned query map size; 0 = num_frames if > 0 else max_clips
    tpmcl_max_words: int = 64  # learned query map size (text tokens per caption)
    text_cache_size: int = 200_000  # frozen encoder: strings kept in the cache
    # frozen encoder: "lazy" encodes a text in the encoder's current mode when first met (in
    # training mode with dropout, as the recorded runs did); "precompute" encodes every
    # training text once before the first step, in eval mode (deterministic, no dropout)
    frozen_text: str = "lazy"
    multilevel: MultiLevelConfig = field(default_factory=MultiLevelConfig)


@dataclass
class DMAEConfig(DualEncoderConfig):
    """DMAE's defaults: att_ti similarity with TWM + NFC, NegNCE, TPM-CL (all three terms), the
    release's fixed logit scale 100."""

    similarity: str = "att_ti"
    loss: str = "negnce"
    tpmcl_partial_type: int = 4
    logit_scale_init: float = 100.0
    learn_logit_scale: bool = False


# similarity name -> f(model, text, video) -> [Q, B] in about [-1, 1]
SIMILARITIES: Registry[Callable[[DualEncoder, TextRepr, VideoRepr], torch.Tensor]] = Registry(
    "retrieval similarity")
# loss name -> f(cfg) -> loss(logits, valid)
CONTRASTIVE_LOSSES: Registry[Callable[[DualEncoderConfig], Callable[..., torch.Tensor]]] = Registry(
    "retrieval contrastive loss")
CONTRASTIVE_LOSSES.register("infonce")(lambda cfg: info_nce)
CONTRASTIVE_LOSSES.register("negnce")(
    lambda cfg: partial(negnce, alpha=cfg.negnce_alpha, beta=cfg.negnce_beta))


@SIMILARITIES.register("sentence")
def sentence_similarity(model: DualEncoder, text: TextRepr, video: VideoRepr) -> torch.Tensor:
    """CLIP4Clip: cosine of the sentence vector and the mean-pooled video."""
    return text.sentence @ video.pooled.t()


def sentence_tokenwise_similarity(model: DualEncoder, text: TextRepr, video: VideoRepr
                                  ) -> torch.Tensor:
    """The release's sentence half of att_ti: the sentence ([CLS]) as a one-token text,
    token-wise against the frames with NFC: ½ (max_f s + NFC bonus + mean_f s)."""
    one = torch.ones(text.sentence.shape[0], 1, dtype=text.sentence.dtype,
                     device=text.sentence.device)
    return token_wise_similarity(text.sentence[:, None], one, one.bool(), video.clips,
                                 video.mask, nfc_weight=model.cfg.nfc_weight)


SENTENCE_SCORES: dict[str, Callable[[DualEncoder, TextRepr, VideoRepr], torch.Tensor]] = {
    "tokenwise": sentence_tokenwise_similarity, "cosine": sentence_similarity}


@SIMILARITIES.register("att_ti")
def att_ti_similarity(model: DualEncoder, text: TextRepr, video: VideoRepr) -> torch.Tensor:
    """DMAE: ½ (sentence score + word-frame token-wise score with TWM and NFC); the sentence
    score follows ``sentence_score`` (the release's token-wise one by default)."""
    words = token_wise_similarity(text.tokens, text.weights, text.mask, video.clips, video.mask,
                                  nfc_weight=model.cfg.nfc_weight)
    return 0.5 * (SENTENCE_SCORES[model.cfg.sentence_score](model, text, video) + words)


att_ti_similarity.needs_word_weights = True  # type: ignore[attr-defined]


def _content_word_mask(words: Sequence[str]) -> list[bool]:
    """The project's content-word test (``vidlang.text.content_words``)."""
    from vidlang.text.content_words import content_word_mask

    return content_word_mask(words)


FROZEN_TEXT_MODES = ("lazy", "precompute")


def record_texts(records: Sequence[Any]) -> list[str]:
    """Every text of training records: ``texts`` (retrieval entries) and ``sentences``
    (paragraphs, segment pairs), plus ``question`` (MCQA)."""
    out: list[str] = []
    for r in records:
        for key in ("texts", "sentences"):
            out.extend(getattr(r, key, ()) or ())
        if isinstance(getattr(r, "question", None), str):
            out.append(r.question)
    return out


@MODELS.register("dual_encoder")
class DualEncoder(VidlangModel):
    """CLIP4Clip-style dual encoder; also the shared encoder of DMAE, multi-level and TempCLR."""

    task = "retrieval"
    config_class = DualEncoderConfig

    def __init__(self, cfg: DualEncoderConfig, text_encoder: TextEncoder | None = None,
                 content_mask: Callable[[Sequence[str]], list[bool]] | None = None) -> None:
        super().__init__(cfg)
        self.text_encoder = text_encoder or build_text_encoder(cfg.text, "model.text")
        if not cfg.train_text_encoder:
            self.text_encoder.requires_grad_(False)
        self._content_mask = content_mask or _content_word_mask
        if cfg.frozen_text not in FROZEN_TEXT_MODES:
            raise ConfigError(f"model.frozen_text={cfg.frozen_text!r}: expected one of "
                              f"{list(FROZEN_TEXT_MODES)}")
        if cfg.twm_unit not in TWM_UNITS:
            raise ConfigError(f"model.twm_unit={cfg.twm_unit!r}: expected one of {sorted(TWM_UNITS)}")
        self._twm = TWM_UNITS[cfg.twm_unit]
        self._text_cache: FrozenTextCache | None = None
        self.video_proj = nn.Linear(require_dim(cfg.video_dim, "video_dim"), cfg.embed_dim)
        self.text_proj = nn.Linear(self.text_encoder.dim, cfg.embed_dim)
        self.temporal = TEMPORAL_MODULES.get(cfg.temporal)(
            cfg.embed_dim, cfg.temporal_layers, cfg.temporal_heads, cfg.max_clips)
        self.similarity_fn = SIMILARITIES.get(cfg.similarity)
        self.contrastive = CONTRASTIVE_LOSSES.get(cfg.loss)(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(cfg.logit_scale_init)),
                                        requires_grad=cfg.learn_logit_scale)
        if cfg.sentence_score not in SENTENCE_SCORES:
            raise ConfigError(f"model.sentence_score={cfg.sentence_score!r}: expected one of "
                              f"{sorted(SENTENCE_SCORES)}")
        max_frames = cfg.tpmcl_max_frames or (cfg.num_frames if cfg.num_frames > 0
                                              else cfg.max_clips)
        self.tpmcl = (TPMCL(cfg.embed_dim, cfg.tpmcl_partial_type, cfg.tpmcl_margin,
                            cfg.tpmcl_mask_fraction, cfg.tpmcl_scoring, cfg.tpmcl_query_map,
                            max_frames, cfg.tpmcl_max_words)
                      if cfg.tpmcl_partial_type != -1 else None)
        self.multilevel = MultiLevelAlignment(cfg.multilevel) if cfg.multilevel.enabled else None
        self.last_tpmcl_active: dict[int, float] = {}  # per-term active-hinge fraction (logging)

    def feature_spec(self) -> FeatureSpec:
        """CLIP4Clip's uniform frame sampling when ``num_frames`` > 0, else every clip."""
        if self.cfg.num_frames > 0:
            return FeatureSpec(mode="uniform", num_rows=self.cfg.num_frames)
        return FeatureSpec()

    # ---- encoders -------------------------------------------------------------------------
    def _encode_raw_text(self, texts: Sequence[str]) -> TextEncoding:
        if self.cfg.train_text_encoder:
            return self.text_encoder(list(texts))
        return self.frozen_text_cache().encode(self.text_encoder, texts)

    def frozen_text_cache(self) -> FrozenTextCache:
        """The shared cache of the frozen encoder (eval mode with ``frozen_text: precompute``)."""
        if self._text_cache is None:
            self._text_cache = shared_text_cache(
                self.text_encoder, repr(self.cfg.text), capacity=self.cfg.text_cache_size,
                eval_mode=self.cfg.frozen_text == "precompute")
        return self._text_cache

    def prepare(self, train_records: Sequence[Any]) -> None:
        """``frozen_text: precompute``: encode every training text once, before the first step."""
        if self.cfg.frozen_text != "precompute" or self.cfg.train_text_encoder:
            return
        texts = record_texts(train_records)
        start = time.perf_counter()
        n = self.frozen_text_cache().warm(self.text_encoder, texts)
        log.info("frozen text: encoded %d training texts in %.1f s (model.frozen_text=precompute)",
                 n, time.perf_counter() - start)

    def sentence_vectors(self, texts: Sequence[str]) -> torch.Tensor:
        """``text_repr(texts).sentence`` without the token outputs (no padded token tensor, no
        token projection): the same values, for callers that use only sentence vectors."""
        if len(texts) == 0:
            raise DataError("no texts to encode")
        if self.cfg.train_text_encoder:
            raw = self.text_encoder(list(texts)).sentence
        else:
            raw = self.frozen_text_cache().sentences(self.text_encoder, texts)
        return F.normalize(self.text_proj(raw.to(self.text_proj.weight.device)), dim=-1)

    def needs_tokens(self) -> bool:
        """Whether training reads token outputs (token-wise similarity, TPM-CL, multi-level)."""
        return (self.cfg.similarity != "sentence" or self.tpmcl is not None
                or self.multilevel is not None)

    def sentence_only_repr(self, texts: Sequence[str]) -> TextRepr:
        """A :class:`TextRepr` whose single "token" is the sentence vector, for training runs
        that never read tokens (``needs_tokens()`` is False)."""
        sentence = self.sentence_vectors(texts)
        mask = torch.ones(sentence.shape[0], 1, dtype=torch.bool, device=sentence.device)
        return TextRepr(sentence, sentence[:, None, :], mask, mask.to(sentence.dtype))

    def text_repr(self, texts: Sequence[str]) -> TextRepr:
        """Sentence and token embeddings of ``texts`` (projected, normalised) + TWM weights."""
        if len(texts) == 0:
            raise DataError("no texts to encode")
        enc = self._encode_raw_text(texts)
        device = self.text_proj.weight.device
        sentence = F.normalize(self.text_proj(enc.sentence.to(device)), dim=-1)
        tokens = F.normalize(self.text_proj(enc.tokens.to(device)), dim=-1)
        mask = enc.mask.to(device)
        twm = getattr(self.similarity_fn, "needs_word_weights", False)
        if twm and self.cfg.content_word_weight != 1.0 and enc.words is not None:
            raw = self._twm(enc.words, mask.shape[1], self._content_mask,
                            self.cfg.content_word_weight).to(device)
        else:
            raw = torch.ones(mask.shape, device=device)
        return TextRepr(sentence, tokens, mask, normalise_weights(raw, mask))

    def video_repr(self, feats: torch.Tensor, mask: torch.Tensor) -> VideoRepr:
        """Contextual clip embeddings and the meanP video vector (CLIP4Clip: normalise the
        clips, masked mean, re-normalise)."""
        if feats.shape[-1] != self.cfg.video_dim:
            raise ConfigError(dim_mismatch("video_dim", self.cfg.video_dim, feats.shape[-1]))
        if not bool(mask.any(dim=1).all()):
            raise DataError("a video in the batch has no valid clip")
        mask = mask.bool()
        clips = F.normalize(self.temporal(self.video_proj(feats), mask), dim=-1)
        pooled = F.normalize(masked_mean(clips, mask), dim=-1)
        return VideoRepr(clips, mask, pooled)

    def raw_video(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Un-normalised video vectors [B, D]: masked mean of the contextual clip features
        before any L2 normalisation (for losses on raw dot products, e.g. TempCLR's release)."""
        mask = mask.bool()
        return masked_mean(self.temporal(self.video_proj(feats), mask), mask)

    def raw_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Un-normalised projected sentence vectors [B, D]."""
        enc = self._encode_raw_text(texts)
        return self.text_proj(enc.sentence.to(self.text_proj.weight.device))

    def encode_video(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised video vectors [B, D] (the sentence-level gallery side, e.g. for FAISS)."""
        return self.video_repr(feats, mask).pooled

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised sentence vectors [B, D] (the query side, e.g. for FAISS)."""
        return self.sentence_vectors(texts)

    def similarity(self, text: TextRepr, video: VideoRepr) -> torch.Tensor:
        """The model's text x video similarity [Q, B] (without the logit scale)."""
        return self.similarity_fn(self, text, video)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.exp().clamp(max=self.cfg.max_logit_scale)

    # ---- training -------------------------------------------------------------------------
    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        """Contrastive task loss (+ TPM-CL, + multi-level terms) on one batch of pairs."""
        texts = list(batch["texts"])
        if len(texts) != batch["feats"].shape[0]:
            raise DataError(f"retrieval batch: {len(texts)} texts for {batch['feats'].shape[0]} "
                            "videos (training needs one text per video)")
        local_video = self.video_repr(batch["feats"], batch["feat_mask"])
        local_text = self.text_repr(texts) if self.needs_tokens() else self.sentence_only_repr(texts)
        video, text, ids, texts = self._maybe_gather(local_video, local_text, batch["video_ids"],
                                                     texts, state)
        sim = self.similarity(text, video)
        valid = global_valid_mask(ids, texts, sim.device)
        out = {"contrastive": self.contrastive(self.scale() * sim, valid=valid)}
        out.update(self.auxiliary_losses(batch, local_video, local_text))
        out["loss"] = sum(out.values(), sim.new_zeros(()))
        out["logit_scale"] = self.scale().detach()
        return out

    def auxiliary_losses(self, batch: dict[str, Any], video: VideoRepr, text: TextRepr,
                         texts: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """TPM-CL and multi-level terms on matched pairs (row i of ``text`` describes video i)."""
        out: dict[str, torch.Tensor] = {}
        if self.tpmcl is not None:
            res = self.tpmcl(text.sentence, text.tokens, text.mask, video.clips, video.mask)
            out["tpmcl"] = self.cfg.tpmcl_weight * res.loss
            self.last_tpmcl_active = {k: float(v) for k, v in res.active.items()}
        if self.multilevel is not None:
            out.update(self.multilevel.losses(self, batch, video, text, texts))
        return out

    def _maybe_gather(self, video: VideoRepr, text: TextRepr, ids: Sequence[str],
                      texts: list[str], state: TrainState
                      ) -> tuple[VideoRepr, TextRepr, list[str], list[str]]:
        """All-gather embeddings across devices when the trainer asks for it."""
        if not state.gather_negatives:
            return video, text, list(ids), texts
        from vidlang.ops.distributed import all_gather_objects, gather_with_grad

        t_max = max(int(x) for x in all_gather_objects(video.clips.shape[1]))
        l_max = max(int(x) for x in all_gather_objects(text.tokens.shape[1]))
        g = gather_with_grad
        video = VideoRepr(g(pad_to_length(video.clips, t_max)), g(pad_to_length(video.mask, t_max)),
                          g(video.pooled))
        text = TextRepr(g(text.sentence), g(pad_to_length(text.tokens, l_max)),
                        g(pad_to_length(text.mask, l_max)), g(pad_to_length(text.weights, l_max)))
        flat = lambda xs: [x for part in all_gather_objects(list(xs)) for x in part]  # noqa: E731
        return video, text, flat(ids), flat(texts)

    # ---- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, texts: Sequence[str], video: VideoRepr, chunk: int = 256) -> torch.Tensor:
        """Similarity [Q, B] of ``texts`` against a pre-encoded gallery, in query chunks."""
        rows = [self.similarity(self.text_repr(texts[i:i + chunk]), video)
                for i in range(0, len(texts), chunk)]
        return torch.cat(rows, dim=0)

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Encoded gallery items of the batch (the pipeline ranks over the whole split)."""
        video = self.video_repr(batch["feats"], batch["feat_mask"])
        out = []
        for i, vid in enumerate(batch["video_ids"]):
            n = int(video.mask[i].sum())
            out.append({"video_id": vid, "clips": video.clips[i, :n].cpu(),
                        "pooled": video.pooled[i].cpu()})
        return out

    def param_groups(self, base_lr: float) -> list[dict[str, Any]]:
        """New modules at ``base_lr``; the text encoder at ``text.lr_mult`` x base_lr when it
        is trained, left out when it is frozen for good."""
        if not self.cfg.train_text_encoder:
            return super().param_groups(base_lr)
        return param_groups_with_multipliers(self, base_lr, {self.text_encoder: self.cfg.text.lr_mult})

    def on_train_epoch_start(self, state: TrainState) -> None:
        """Freeze the text encoder while epoch <= text.freeze_epochs (when it is trained)."""
        if self.cfg.train_text_encoder:
            self.text_encoder.apply_freeze(state.epoch)


@MODELS.register("dmae")
class DMAE(DualEncoder):
    """DMAE: the dual encoder with att_ti + TWM + NFC similarity, NegNCE and TPM-CL."""

    config_class = DMAEConfig


def stack_videos(items: Sequence[dict[str, Any]]) -> VideoRepr:
    """A gallery :class:`VideoRepr` from :meth:`DualEncoder.predict` outputs (padded)."""
    clips, mask = pad_rows([it["clips"] for it in items])
    return VideoRepr(clips, mask, torch.stack([it["pooled"] for it in items]))
