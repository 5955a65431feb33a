"""CPL: weakly supervised grounding by Gaussian contrastive proposal learning (CVPR 2022).

No timestamps are used in training: the model proposes K Gaussian spans from a learnable
prediction token, and each proposal is scored by how well the video under it lets a decoder
reconstruct the (partially masked) sentence. Behaviour follows the released code as described
in ``cpl_ccr.md``, with the defects of section 7 fixed by default and kept behind flags:

* the objective is causal next-word prediction over corrupted inputs (``rec_target:
  next_word``, what produced the published numbers) or masked-words-only (``masked_only``);
* test-time masking is seeded per query from a hash of its qid (``eval_mask: per_query``), so
  evaluation is deterministic; ``global_rng`` draws from the global RNG as the release did;
* masking and voting are vectorised (Gumbel top-k sampling without replacement).

The word vocabulary is built from the training sentences by :meth:`CPL.prepare` (the engine
calls it before training) and is stored with the weights.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from vidlang.data.features.spec import FeatureSpec
from vidlang.errors import ConfigError
from vidlang.losses.cpl import diversity_loss, label_smoothed_ce, pick, ranking_loss
from vidlang.models.base import TrainState, VidlangModel
from vidlang.models.blocks.gaussian import (
    gaussian_weights,
    negative_proposals,
    negative_schedule,
    proposal_boxes,
)
from vidlang.models.blocks.transformer import DecoderStack, sinusoidal_positions
from vidlang.models.feature_dim import dim_mismatch, require_dim
from vidlang.ops.windows import window_iou  # eps 1e-12, clamped union (CPL's formula)
from vidlang.registry import MODELS
from vidlang.text.content_words import content_word_weights
from vidlang.text.vocab import Vocabulary, encode_batch, word_vectors

log = logging.getLogger(__name__)


@dataclass
class CPLConfig:
    """Hyperparameters of CPL; defaults are the paper's Charades-STA values (cpl_ccr.md s. 4)."""

    frame_dim: Any = 1024          # clip-feature width (I3D on Charades; 500 for ActivityNet C3D), or "auto"
    num_clips: int = 200           # fixed bins of the video branch
    num_props_clips: int = 50      # clips of the proposal branch (picked from the 200)
    hidden: int = 256
    ffn_dim: int = 512
    heads: int = 4
    layers: int = 3                # per stack of the DualTransformer
    dropout: float = 0.1
    word_dim: int = 300            # GloVe width; MiniLM (384-d) is projected/padded to it
    vocab_size: int = 1111         # top-N training words; V = N + 1 with PAD
    max_words: int = 20
    glove_path: str | None = None  # GloVe text file; None = bundled MiniLM token embeddings
    embed_seed: int = 0            # seed of the MiniLM 384 -> word_dim projection
    num_proposals: int = 8         # K
    sigma: float = 9.0             # Gaussian std = width / sigma
    min_width: float = 0.01
    gamma: float = 0.5             # negative schedule r = min(epoch / max_epoch, 1) ** gamma
    margin_ref: float = 0.1        # m1
    margin_neg: float = 0.15       # m2
    lambda_div: float = 0.146
    alpha_rank: float = 1.0        # alpha1
    alpha_div: float = 5.0         # alpha2
    label_smoothing: float = 0.1
    content_weight: float = 2.0    # masking logit of content words (others 1)
    mask_ratio: float = 0.3333333333333333  # floor(L * ratio) words masked, at least 1
    rec_target: str = "next_word"  # next_word | masked_only
    eval_mask: str = "per_query"   # per_query (seeded by qid hash) | global_rng (release)
    eval_mask_samples: int = 1     # average the ranking loss over this many test masks
    mask_seed: int = 0             # mixed into the per-query hash
    vote: bool = False             # R@1 by IoU-weighted voting (CPL*)
    vote_weights: str = "best_iou"  # best_iou (Charades) | uniform (ActivityNet)


CHOICES: dict[str, tuple[str, ...]] = {
    "rec_target": ("next_word", "masked_only"),
    "eval_mask": ("per_query", "global_rng"),
    "vote_weights": ("best_iou", "uniform"),
}


def check_choices(cfg: Any, choices: dict[str, tuple[str, ...]]) -> None:
    """ConfigError naming ``model.<key>`` for a value outside its allowed set."""
    for key, allowed in choices.items():
        value = getattr(cfg, key)
        if value not in allowed:
            raise ConfigError(f"model.{key}: {value!r} is not one of {', '.join(allowed)}")


def check_positive(cfg: Any, keys: Iterable[str]) -> None:
    for key in keys:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"model.{key}: must be >= 1, got {getattr(cfg, key)}")


# ---- deterministic per-query randomness -------------------------------------------------

_MASK64 = (1 << 64) - 1


def _signed(x: int) -> int:
    x &= _MASK64
    return x - (1 << 64) if x >> 63 else x


_GOLDEN, _MIX1, _MIX2 = _signed(0x9E3779B97F4A7C15), _signed(0xBF58476D1CE4E5B9), _signed(0x94D049BB133111EB)


def query_seed(qid: str, salt: int = 0, sample: int = 0) -> int:
    """A stable signed 64-bit seed from a query id (independent of PYTHONHASHSEED)."""
    digest = hashlib.blake2b(f"{salt}:{sample}:{qid}".encode(), digest_size=8).digest()
    return _signed(int.from_bytes(digest, "little"))


def _lshr(x: torch.Tensor, s: int) -> torch.Tensor:
    return (x >> s) & ((1 << (64 - s)) - 1)


def hashed_uniform(seeds: torch.Tensor, length: int) -> torch.Tensor:
    """``[N, length]`` uniforms in (0, 1): splitmix64 of (seed, position), fully vectorised."""
    pos = torch.arange(1, length + 1, dtype=torch.int64, device=seeds.device)
    z = seeds.unsqueeze(1) + pos * _GOLDEN
    z = (z ^ _lshr(z, 30)) * _MIX1
    z = (z ^ _lshr(z, 27)) * _MIX2
    z = z ^ _lshr(z, 31)
    return (_lshr(z, 11).double() + 0.5) / float(1 << 53)


def sample_mask(logits: torch.Tensor, valid: torch.Tensor, counts: torch.Tensor,
                uniform: torch.Tensor) -> torch.Tensor:
    """Bool ``[N, L]``: ``counts[n]`` positions drawn without replacement with probabilities
    ``softmax(logits)`` over ``valid`` positions (Gumbel top-k, given the uniforms)."""
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-12, 1 - 1e-12)))
    keys = torch.where(valid, logits.double() + gumbel, torch.full_like(gumbel, -torch.inf))
    ranks = keys.argsort(dim=1, descending=True).argsort(dim=1)
    return (ranks < counts.unsqueeze(1)) & valid


def _best_iou_weights(boxes: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    anchor = boxes.gather(1, best.view(-1, 1, 1).expand(-1, 1, 2))  # [Q, 1, 2]
    return window_iou(anchor, boxes)


VOTE_WEIGHTS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "best_iou": _best_iou_weights,
    "uniform": lambda boxes, best: torch.ones(boxes.shape[:2], dtype=boxes.dtype, device=boxes.device),
}


def vote(boxes: torch.Tensor, best: torch.Tensor, weighting: str = "best_iou") -> torch.Tensor:
    """CPL* voting: ``vote_i = sum_j IoU(p_i, p_j) c_j`` for ``[Q, K, 2]`` boxes, with
    ``c_j = IoU(p_best, p_j)`` (``best_iou``) or 1 (``uniform``); returns ``[Q, K]``."""
    pair = window_iou(boxes.unsqueeze(2), boxes.unsqueeze(1))  # [Q, K, K]
    return (pair * VOTE_WEIGHTS[weighting](boxes, best).unsqueeze(1)).sum(dim=-1)


# ---- the model --------------------------------------------------------------------------


@dataclass
class Encoded:
    """Per-query tensors shared by every decoded branch."""

    props: torch.Tensor        # [Q, P, d] proposal-branch clips
    words: torch.Tensor        # [Q, L+1, d] masked decoder input (start, w1 .. wL) + positions
    target: torch.Tensor       # [Q, L+1] next-word targets (w1 .. wL, PAD)
    loss_mask: torch.Tensor    # [Q, L+1] scored positions
    key_mask: torch.Tensor     # [Q, L+1] attendable decoder positions
    center: torch.Tensor       # [Q, K]
    width: torch.Tensor        # [Q, K]
    masked: torch.Tensor | None = None  # [Q, L+1] input positions replaced by the mask token


def _next_word_mask(valid: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    return valid


def _masked_only_mask(valid: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    # position t predicts the word at input position t + 1: score it only where that was masked
    shifted = torch.zeros_like(masked)
    shifted[:, :-1] = masked[:, 1:]
    return valid & shifted


REC_TARGETS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "next_word": _next_word_mask,
    "masked_only": _masked_only_mask,
}

BRANCHES = ("pos", "ref", "neg_left", "neg_right")


@MODELS.register("cpl")
class CPL(VidlangModel):
    """Gaussian proposals from a DualTransformer, ranked by masked-sentence reconstruction."""

    task: ClassVar[str] = "grounding"
    config_class: ClassVar[type] = CPLConfig
    choices: ClassVar[dict[str, tuple[str, ...]]] = CHOICES
    word_table: torch.Tensor    # [V, word_dim] input word vectors (buffer, saved)
    vocab_bytes: torch.Tensor   # the vocabulary, UTF-8 (buffer, saved; its length varies)
    props_index: torch.Tensor   # which of the num_clips bins feed the proposal branch

    def __init__(self, cfg: CPLConfig) -> None:
        super().__init__(cfg)
        check_choices(cfg, self.choices)
        require_dim(cfg.frame_dim, "frame_dim")
        check_positive(cfg, ("num_clips", "num_props_clips", "hidden", "heads", "layers",
                             "word_dim", "vocab_size", "max_words", "num_proposals", "eval_mask_samples"))
        if cfg.hidden % cfg.heads:
            raise ConfigError(f"model.hidden: {cfg.hidden} is not divisible by model.heads={cfg.heads}")
        if cfg.num_props_clips > cfg.num_clips:
            raise ConfigError(f"model.num_props_clips: {cfg.num_props_clips} > model.num_clips={cfg.num_clips}")
        self.num_words = cfg.vocab_size + 1
        d = cfg.hidden
        self.frame_fc = nn.Linear(cfg.frame_dim, d)
        self.word_fc = nn.Linear(cfg.word_dim, d)
        self.pred_vec = nn.Parameter(torch.zeros(cfg.frame_dim))
        self.start_vec = nn.Parameter(torch.zeros(cfg.word_dim))
        self.mask_vec = nn.Parameter(torch.zeros(cfg.word_dim))
        self.drop = nn.Dropout(cfg.dropout)
        stack = (cfg.layers, d, cfg.heads, cfg.ffn_dim, cfg.dropout)
        self.video_stack = DecoderStack(*stack)   # DualTransformer stack 1
        self.text_stack = DecoderStack(*stack)    # DualTransformer stack 2
        self.fc_gauss = nn.Linear(d, 2 * cfg.num_proposals)
        self.fc_comp = nn.Linear(d, self.num_words)
        self.register_buffer("word_table", torch.zeros(self.num_words, cfg.word_dim))
        self.register_buffer("vocab_bytes", torch.zeros(0, dtype=torch.uint8))
        from vidlang.data.features.resample import uniform_pick_indices

        self.register_buffer("props_index", torch.from_numpy(uniform_pick_indices(cfg.num_clips, cfg.num_props_clips)),
                             persistent=False)
        self._vocab: Vocabulary | None = None
        self._weights_cache: dict[tuple[str, ...], list[float]] = {}
        self.word_source = "unfitted"

    # ---- vocabulary ----------------------------------------------------------------------
    def prepare(self, train_records: Sequence[Any]) -> None:
        """Build the vocabulary from the training split's sentences (timestamps unused)."""
        self.fit_vocabulary(r.query for r in train_records)

    def fit_vocabulary(self, sentences: Iterable[str]) -> Vocabulary:
        """Top-``vocab_size`` words of ``sentences`` and their input vectors (GloVe or MiniLM)."""
        vocab = Vocabulary.build(sentences, self.cfg.vocab_size)
        if len(vocab) < self.num_words:
            log.info("vocabulary: %d distinct training words < model.vocab_size=%d; output rows "
                     "%d..%d are never targets", len(vocab) - 1, self.cfg.vocab_size, len(vocab), self.num_words - 1)
        vectors, source = word_vectors(vocab, self.cfg.word_dim, self.cfg.glove_path, self.cfg.embed_seed)
        self.set_vocabulary(vocab, vectors, source)
        return vocab

    def set_vocabulary(self, vocab: Vocabulary, vectors: torch.Tensor, source: str = "given") -> None:
        """Install a vocabulary (at most ``vocab_size + 1`` words) and its ``[len, word_dim]`` vectors."""
        if len(vocab) > self.num_words or vectors.shape != (len(vocab), self.cfg.word_dim):
            raise ConfigError(f"model.vocab_size: a vocabulary of {len(vocab)} words with vectors "
                              f"{tuple(vectors.shape)} does not fit V={self.num_words}, word_dim={self.cfg.word_dim}")
        with torch.no_grad():
            self.word_table.zero_()
            self.word_table[: len(vocab)] = vectors.to(self.word_table)
        self.vocab_bytes = vocab.to_tensor().to(self.word_table.device)
        self._vocab, self.word_source = vocab, source

    @property
    def vocab(self) -> Vocabulary:
        if self._vocab is None:
            if self.vocab_bytes.numel() == 0:
                raise ConfigError(
                    f"{type(self).__name__} has no vocabulary: call model.prepare(train_records) (the engine "
                    "does before training) or load a trained model")
            self._vocab = Vocabulary.from_tensor(self.vocab_bytes)
        return self._vocab

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        saved = state_dict.get(prefix + "vocab_bytes")
        if saved is not None:  # the vocabulary's byte length varies: take the saved size
            self.vocab_bytes = torch.zeros_like(saved, device=self.vocab_bytes.device)
            self._vocab = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(mode="fixed_bin", num_rows=self.cfg.num_clips)

    # ---- encoding ------------------------------------------------------------------------
    def _content_weights(self, words: list[str]) -> list[float]:
        key = tuple(words)
        if key not in self._weights_cache:
            if len(self._weights_cache) > 100_000:
                self._weights_cache.clear()
            self._weights_cache[key] = content_word_weights(words, self.cfg.content_weight, 1.0)
        return self._weights_cache[key]

    def _text(self, queries: Sequence[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """ids ``[Q, L]``, lengths ``[Q]`` and masking logits ``[Q, L+1]`` (position 0 = start)."""
        toks, ids = encode_batch(self.vocab, queries, self.cfg.max_words)
        lengths = torch.tensor([len(t) for t in toks], dtype=torch.long)
        logits = torch.zeros(len(toks), ids.shape[1] + 1)
        for i, t in enumerate(toks):  # per-string tagging (sampling itself is vectorised)
            if t:
                logits[i, 1: len(t) + 1] = torch.tensor(self._content_weights(t))
        return ids.to(device), lengths.to(device), logits.to(device)

    def _mask_uniform(self, qids: Sequence[str], length: int, device: torch.device, sample: int = 0) -> torch.Tensor:
        """Uniforms driving the word mask: the global RNG while training (or with
        ``eval_mask: global_rng``), else a hash of each qid (deterministic evaluation)."""
        if self.training or self.cfg.eval_mask == "global_rng":
            return torch.rand(len(qids), length, dtype=torch.float64).to(device)
        seeds = torch.tensor([query_seed(q, self.cfg.mask_seed, sample) for q in qids], dtype=torch.int64)
        return hashed_uniform(seeds, length).to(device)

    def _encode(self, batch: dict[str, Any], sample: int = 0) -> Encoded:
        """Pass 1 (proposals) and the inputs of pass 2 for every query of ``batch``."""
        cfg = self.cfg
        feats, qv = batch["feats"], batch["query_video"]
        device = feats.device
        if feats.shape[1] != cfg.num_clips:
            raise ConfigError(f"model.num_clips: batch has {feats.shape[1]} clips, expected {cfg.num_clips} "
                              "(features must be resampled per feature_spec())")
        if feats.shape[2] != cfg.frame_dim:
            raise ConfigError(dim_mismatch("frame_dim", cfg.frame_dim, feats.shape[2]))
        b = feats.shape[0]
        video = torch.cat([feats, self.pred_vec.expand(b, 1, -1)], dim=1)
        frames = self.frame_fc(self.drop(video))[qv]  # [Q, T+1, d]
        fmask = batch.get("feat_mask")
        fmask = None if fmask is None else torch.cat([fmask, fmask.new_ones(b, 1)], dim=1)[qv]

        ids, lengths, mask_logits = self._text(batch["queries"], device)
        q, L = ids.shape
        raw = torch.cat([self.start_vec.expand(q, 1, -1), self.word_table[ids]], dim=1)  # [Q, L+1, w]
        words = self.word_fc(self.drop(raw))
        pos = sinusoidal_positions(L + 1, cfg.hidden, device)
        positions = torch.arange(L + 1, device=device)
        real = (positions >= 1) & (positions <= lengths.unsqueeze(1))            # w1 .. wn
        full = positions <= lengths.unsqueeze(1)                                   # start, w1 .. wn
        valid = full & ((positions < lengths.unsqueeze(1)) | (lengths.unsqueeze(1) < cfg.max_words))

        # pass 1: words (unmasked) -> stack 2; video + prediction token attend to them -> stack 1
        enc_words = self.text_stack(words + pos, full)
        h = self.video_stack(frames, fmask, memory=enc_words, memory_mask=full)
        cw = torch.sigmoid(self.fc_gauss(h[:, -1])).view(q, cfg.num_proposals, 2)

        counts = (lengths.float() * cfg.mask_ratio).floor().long().clamp(min=1).minimum(lengths)
        masked = sample_mask(mask_logits, real, counts, self._mask_uniform(batch["qids"], L + 1, device, sample))
        words = torch.where(masked.unsqueeze(-1), self.word_fc(self.mask_vec).expand_as(words), words)
        target = torch.cat([ids, ids.new_zeros(q, 1)], dim=1)
        return Encoded(props=frames[:, self.props_index], words=words + pos, target=target,
                       loss_mask=REC_TARGETS[cfg.rec_target](valid, masked), key_mask=valid,
                       center=cw[..., 0], width=cw[..., 1], masked=masked)

    def gaussians(self, center: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        return gaussian_weights(center, width, self.cfg.num_props_clips, self.cfg.sigma, self.cfg.min_width)

    def _decode(self, enc: Encoded, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Pass 2 for queries ``rows`` under Gaussian ``weights`` ``[N, P]`` -> word logits."""
        memory = self.video_stack(enc.props[rows], None, weights=weights, weight_self=True)
        h = self.text_stack(enc.words[rows], enc.key_mask[rows], memory=memory, weights=weights)
        return self.fc_comp(h)

    # ---- per-branch scores (CCR extends these) -------------------------------------------
    def branch_terms(self, branch: str, logits: torch.Tensor, enc: Encoded, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-sample loss terms of one branch (CPL: the label-smoothed reconstruction CE)."""
        return {"ce": label_smoothed_ce(logits, enc.target[rows], enc.loss_mask[rows], self.cfg.label_smoothing)}

    def rank_scores(self, logits: torch.Tensor, enc: Encoded, rows: torch.Tensor) -> torch.Tensor:
        """Per-sample ranking loss of positive proposals at inference (lower is better)."""
        return self.branch_terms("pos", logits, enc, rows)["ce"]

    def combine(self, terms: dict[str, dict[str, torch.Tensor]], best: torch.Tensor,
                gauss: torch.Tensor) -> dict[str, torch.Tensor]:
        """CPL's total: ``L_rec + alpha1 L_rank + alpha2 L_div`` on the best proposal k*."""
        cfg = self.cfg
        ce_pos = pick(terms["pos"]["ce"], best)
        rec = 0.5 * (ce_pos.mean() + terms["ref"]["ce"].mean())
        rank = ranking_loss(ce_pos, terms["ref"]["ce"], terms["neg_left"]["ce"], terms["neg_right"]["ce"],
                            cfg.margin_ref, cfg.margin_neg)
        div = diversity_loss(gauss, cfg.lambda_div)
        return {"loss": rec + cfg.alpha_rank * rank + cfg.alpha_div * div, "rec": rec, "rank": rank, "div": div}

    # ---- training ------------------------------------------------------------------------
    def training_losses(self, batch: dict[str, Any], state: TrainState) -> dict[str, torch.Tensor]:
        """Reconstruction, ranking and diversity losses; never reads ``batch["windows"]``."""
        cfg = self.cfg
        enc = self._encode(batch)
        q, k = enc.center.shape
        device = enc.center.device
        gauss = self.gaussians(enc.center, enc.width)                       # [Q, K, P]
        queries = torch.arange(q, device=device)
        # positives (query-major) and the whole-video reference, decoded together
        rows = torch.cat([queries.repeat_interleave(k), queries])
        weights = torch.cat([gauss.reshape(q * k, -1), gauss.new_ones(q, cfg.num_props_clips)])
        logits = self._decode(enc, rows, weights)
        terms = {"pos": self.branch_terms("pos", logits[: q * k], enc, rows[: q * k]),
                 "ref": self.branch_terms("ref", logits[q * k:], enc, queries)}
        terms["pos"] = {name: t.view(q, k) for name, t in terms["pos"].items()}
        best = terms["pos"]["ce"].detach().argmin(dim=1)
        # hard negatives around k* only (the losses read no other proposal's negatives)
        r = negative_schedule(state.epoch, state.max_epochs, cfg.gamma)
        lc, lw, rc, rw = negative_proposals(pick(enc.center, best), pick(enc.width, best), r, cfg.sigma)
        neg_w = self.gaussians(torch.cat([lc, rc]), torch.cat([lw, rw]))
        neg_rows = torch.cat([queries, queries])
        neg_logits = self._decode(enc, neg_rows, neg_w)
        terms["neg_left"] = self.branch_terms("neg_left", neg_logits[:q], enc, queries)
        terms["neg_right"] = self.branch_terms("neg_right", neg_logits[q:], enc, queries)
        return self.combine(terms, best, gauss)

    # ---- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def proposal_losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Ranking loss ``[Q, K]`` (mean over ``eval_mask_samples`` masks) and boxes ``[Q, K, 2]``
        in (0, 1) units."""
        total = None
        for sample in range(self.cfg.eval_mask_samples):  # a few masks, each fully batched
            enc = self._encode(batch, sample)
            q, k = enc.center.shape
            rows = torch.arange(q, device=enc.center.device).repeat_interleave(k)
            logits = self._decode(enc, rows, self.gaussians(enc.center, enc.width).reshape(q * k, -1))
            scores = self.rank_scores(logits, enc, rows).view(q, k)
            total = scores if total is None else total + scores
        assert total is not None
        return total / self.cfg.eval_mask_samples, proposal_boxes(enc.center, enc.width)

    @torch.no_grad()
    def predict(self, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """All K proposals per query, lowest reconstruction loss first (score = -loss).

        With ``vote`` the IoU-voting winner is moved to the top (R@1 of CPL*), the rest keep
        the loss order, and the winner's score is just above the best loss score so scores stay sorted.
        """
        losses, boxes = self.proposal_losses(batch)
        order = losses.argsort(dim=1, stable=True)
        if self.cfg.vote:
            winner = vote(boxes, order[:, 0], self.cfg.vote_weights).argmax(dim=1)
            rest = order.masked_select(order != winner.unsqueeze(1)).view(order.shape[0], -1)
            order = torch.cat([winner.unsqueeze(1), rest], dim=1)
        scores = (-losses).gather(1, order)
        if self.cfg.vote:
            top = (-losses).amax(dim=1)
            scores[:, 0] = torch.nextafter(top, torch.full_like(top, torch.inf))
        dur = batch["durations"][batch["query_video"]].to(boxes)
        ranked = boxes.gather(1, order.unsqueeze(-1).expand(-1, -1, 2)) * dur.view(-1, 1, 1)
        out = torch.cat([ranked, scores.unsqueeze(-1)], dim=-1).cpu().tolist()
        return [{"qid": qid, "pred_relevant_windows": rows} for qid, rows in zip(batch["qids"], out)]

