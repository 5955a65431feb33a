"""The ``alignment`` pipeline (TempCLR): paragraphs + per-second features -> clip-caption
sequences, and paragraph-to-video retrieval / step localisation scores.

Training items are videos; each gets a sequence of non-overlapping clip-caption pairs chosen as
in the release (tempclr.md section 4): pairs sorted by time, a greedy pass keeping pairs that
do not overlap the last kept one, videos with fewer than ``min_pairs`` skipped (and counted),
then ``seq_len`` pairs picked by linspace. A pair's clip is its caption window of features
(at most ``max_clip_frames`` frames, evenly picked). Evaluation uses every sentence of each
paragraph, its window as its clip ("background removed"), and scores paragraph-to-video
retrieval with three measures (``cap_avg``, ``dtw``, ``otam``) and step localisation
(order-constrained decoding, CrossTask-style recall).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from vidlang.data.records import Paragraph
from vidlang.engine.pipelines.base import TaskPipeline, make_loader
from vidlang.engine.pipelines.features import (
    FeatureDataset,
    FeatureSource,
    feature_source,
)
from vidlang.engine.schema import DataConfig, ExperimentConfig
from vidlang.errors import ConfigError, DataError
from vidlang.models.base import FeatureSpec
from vidlang.registry import PIPELINES

Window = tuple[float, float]


@dataclass
class AlignmentDataConfig(DataConfig):
    """``data`` keys of alignment experiments (see :class:`DataConfig` for the shared ones)."""

    seq_len: int = 5  # clip-caption pairs per training sequence (release: 5)
    min_pairs: int = 5  # training videos with fewer non-overlapping pairs are skipped (release: 5)
    max_clip_frames: int = 32  # frames per clip (release: 32 s at one feature per second)


def select_pairs(windows: Sequence[Window], seq_len: int, min_pairs: int) -> list[int] | None:
    """Indices of the pairs forming a training sequence, in time order, or None (too few).

    Sorted by (start, end); greedily keep a pair when it starts at or after the end of the
    last kept one; then ``seq_len`` of the kept ones by linspace (all when fewer)."""
    order = sorted(range(len(windows)), key=lambda i: (windows[i][0], windows[i][1], i))
    kept: list[int] = []
    for i in order:
        if not kept or windows[i][0] >= windows[kept[-1]][1]:
            kept.append(i)
    if len(kept) < min_pairs:
        return None
    picks = np.linspace(0, len(kept) - 1, min(seq_len, len(kept))).round().astype(int)
    return [kept[int(p)] for p in dict.fromkeys(picks.tolist())]


def window_frames(window: Window, num_frames: int, duration: float, max_frames: int,
                  video_id: str) -> list[int]:
    """Feature rows covering ``window`` (seconds) for T = ``num_frames`` rows spanning
    ``duration``; at least one row, at most ``max_frames`` (evenly picked)."""
    rate = num_frames / duration
    start = int(math.floor(window[0] * rate))
    end = max(start + 1, int(math.ceil(window[1] * rate)))
    if start >= num_frames or start < 0:
        raise DataError(f"window {list(window)} starts outside the {num_frames} feature rows "
                        f"({duration:.2f} s)", record=video_id)
    rows = list(range(start, min(end, num_frames)))
    if len(rows) > max_frames:
        picks = np.linspace(0, len(rows) - 1, max_frames).round().astype(int)
        rows = [rows[int(p)] for p in picks]
    return rows


@dataclass
class AlignmentItem:
    """One video: features, and the sentences / windows / feature rows of its pairs."""

    video_id: str
    feats: torch.Tensor  # [T, D]
    duration: float
    sentences: list[str]
    windows: list[Window]
    frames: list[list[int]]


class AlignmentDataset(FeatureDataset):
    """Videos with their pair sequences (training: selected pairs; eval: every sentence)."""

    def __init__(self, paragraphs: Sequence[Paragraph], features: FeatureSource | Callable[[], FeatureSource],
                 spec: FeatureSpec, data: AlignmentDataConfig, train: bool) -> None:
        super().__init__(features, spec)
        self.data = data
        self.items: list[tuple[Paragraph, list[int]]] = []
        self.skipped: list[str] = []
        for p in paragraphs:
            if not p.sentences:
                self.skipped.append(p.video_id)
                continue
            picks = (select_pairs(p.windows, data.seq_len, data.min_pairs) if train
                     else sorted(range(len(p.windows)), key=lambda i: (p.windows[i], i)))
            if picks is None:
                self.skipped.append(p.video_id)
            else:
                self.items.append((p, picks))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> AlignmentItem:
        p, picks = self.items[index]
        feats = self.video_features(p.video_id)
        windows: list[Window] = [(float(p.windows[i][0]), float(p.windows[i][1])) for i in picks]
        frames = [window_frames(w, feats.shape[0], float(p.duration), self.data.max_clip_frames,
                                p.video_id) for w in windows]
        return AlignmentItem(p.video_id, feats, float(p.duration),
                             [p.sentences[i] for i in picks], windows, frames)


def _pad_rows(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(int(r.shape[0]) for r in rows)
    out = torch.zeros(len(rows), longest, rows[0].shape[-1], dtype=torch.float32)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return out, mask


def collate_alignment(items: Sequence[AlignmentItem]) -> dict[str, Any]:
    """The alignment batch documented in :mod:`vidlang.models.tempclr`."""
    feats, feat_mask = _pad_rows([it.feats for it in items])
    segments = [it.feats[rows] for it in items for rows in it.frames]
    seg_feats, seg_mask = _pad_rows(segments)
    longest = max(len(it.sentences) for it in items)
    seq_index = torch.full((len(items), longest), -1, dtype=torch.long)
    start = 0
    for b, it in enumerate(items):
        seq_index[b, : len(it.sentences)] = torch.arange(start, start + len(it.sentences))
        start += len(it.sentences)
    return {
        "video_ids": [it.video_id for it in items],
        "feats": feats,
        "feat_mask": feat_mask,
        "durations": torch.tensor([it.duration for it in items], dtype=torch.float32),
        "seg_feats": seg_feats,
        "seg_mask": seg_mask,
        "seg_texts": [s for it in items for s in it.sentences],
        "seq_index": seq_index,
        "seq_mask": seq_index >= 0,
        "windows": [list(it.windows) for it in items],
    }


# ---- evaluation -------------------------------------------------------------------------------
def _stack(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return _pad_rows([r.float() for r in rows])


def caption_average_scores(text: torch.Tensor, text_mask: torch.Tensor, clips: torch.Tensor,
                           clip_mask: torch.Tensor) -> torch.Tensor:
    """Cap. Avg. [P, V]: per caption the best cosine over the video's clips, averaged over the
    paragraph's captions (embeddings are L2-normalised)."""
    sim = torch.einsum("pnd,vmd->pvnm", text, clips)
    sim = sim.masked_fill(~clip_mask[None, :, None, :], float("-inf")).amax(dim=-1)
    weights = text_mask[:, None, :].to(sim.dtype)
    return (sim.masked_fill(weights == 0, 0.0) * weights).sum(-1) / weights.sum(-1)


def sequence_scores(text: torch.Tensor, text_mask: torch.Tensor, clips: torch.Tensor,
                    clip_mask: torch.Tensor, kind: str, normalise: str, faithful: bool = False
                    ) -> torch.Tensor:
    """Negative hard DTW / OTAM distance [P, V] (higher = closer); OTAM sums both directions.
    ``faithful`` reproduces the release's evaluation (``faithful_eval_distance``)."""
    from vidlang.losses.alignment import faithful_eval_distance, pairwise_sequence_distance

    if faithful:
        return -faithful_eval_distance(text, text_mask, clips, clip_mask, kind)
    dist = pairwise_sequence_distance(text, text_mask, clips, clip_mask, kind=kind,
                                      normalise=normalise)
    if kind == "otam":
        dist = dist + pairwise_sequence_distance(clips, clip_mask, text, text_mask, kind=kind,
                                                 normalise=normalise).t()
    return -dist


def order_constrained_decode(scores: torch.Tensor) -> torch.Tensor:
    """One position per step [K] for step scores [K, T], in order (t_1 < t_2 < ... when
    K <= T, else t_1 <= t_2 <= ...), maximising the summed score: CrossTask's one-interval-
    per-step dynamic programme with unit intervals. Loops over steps, vectorised over time."""
    k_steps, t_len = scores.shape
    strict = k_steps <= t_len
    best = scores[0].clone()
    back: list[torch.Tensor] = []
    for k in range(1, k_steps):
        run_max, run_arg = torch.cummax(best, dim=0)
        if strict:  # predecessor strictly earlier: shift by one
            prev_val = torch.cat([best.new_full((1,), float("-inf")), run_max[:-1]])
            prev_arg = torch.cat([run_arg.new_zeros(1), run_arg[:-1]])
        else:
            prev_val, prev_arg = run_max, run_arg
        back.append(prev_arg)
        best = scores[k] + prev_val
    pos = [int(best.argmax())]
    for arg in reversed(back):
        pos.append(int(arg[pos[-1]]))
    return torch.tensor(pos[::-1], dtype=torch.long)


def decode_step_times(frames: torch.Tensor, text: torch.Tensor, duration: float) -> list[float]:
    """Each step's predicted time (seconds, the centre of its decoded feature row) from the
    cosine of step sentences [K, D] with per-second frame embeddings [T, D]."""
    positions = order_constrained_decode(text @ frames.t())
    seconds_per_row = duration / frames.shape[0]
    return [(int(t) + 0.5) * seconds_per_row for t in positions]


def video_to_video_accuracy(queries: Sequence[torch.Tensor], query_labels: Sequence[Any],
                            support: Sequence[torch.Tensor], support_labels: Sequence[Any],
                            kind: str = "dtw", normalise: str = "path") -> float:
    """Few-shot video-to-video alignment: each query clip sequence takes the label of its
    nearest support sequence by ``kind`` distance (cosine cost); the share that is right."""
    from vidlang.losses.alignment import pairwise_sequence_distance

    q, qm = _stack(queries)
    s, sm = _stack(support)
    dist = pairwise_sequence_distance(q, qm, s, sm, kind=kind, normalise=normalise)
    nearest = dist.argmin(dim=1).tolist()
    return float(np.mean([support_labels[j] == query_labels[i] for i, j in enumerate(nearest)]))


P2V_SCORERS = ("cap_avg", "dtw", "otam")


def _recalls(sim: torch.Tensor) -> dict[str, float]:
    from vidlang.metrics import retrieval_metrics

    full = retrieval_metrics(sim.double().numpy(), ks=(1, 5, 10))
    out = {}
    for key, value in full.items():
        if key.startswith("t2v R@") or key.startswith("t2v MdR"):
            out[key.split(" ")[1]] = float(value)
    return out


@PIPELINES.register("alignment")
class AlignmentPipeline(TaskPipeline):
    """Alignment data + evaluation. ``paragraphs``/``features`` may be injected (tests)."""

    task = "alignment"
    data_config_class = AlignmentDataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 paragraphs: Mapping[str, Sequence[Paragraph]] | None = None,
                 features: FeatureSource | None = None) -> None:
        super().__init__(cfg, feature_spec)
        self._paragraphs = {k: list(v) for k, v in (paragraphs or {}).items()}
        self._features: FeatureSource | Callable[[], FeatureSource] = feature_source(cfg.data, features)
        self.skipped: dict[str, list[str]] = {}

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        super().check_config(cfg)
        for key in ("seq_len", "min_pairs", "max_clip_frames"):
            if getattr(cfg.data, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(cfg.data, key)}")

    def paragraphs(self, split: str) -> list[Paragraph]:
        if split not in self._paragraphs:
            from vidlang.data import catalog

            paragraphs, _ = catalog.load_paragraphs(self.data.dataset, split, self.data.root or None)
            if not paragraphs:
                raise DataError(f"split {split!r} of dataset {self.data.dataset!r} has no "
                                "paragraphs", self.data.root or None)
            self._paragraphs[split] = list(paragraphs)
        return self._paragraphs[split]

    def dataset(self, split: str, train: bool) -> AlignmentDataset:
        ds = AlignmentDataset(self.paragraphs(split), self._features, self.feature_spec,
                              self.data, train)
        self.skipped[split] = ds.skipped
        if not len(ds):
            raise DataError(f"split {split!r}: no video has {self.data.min_pairs} non-overlapping "
                            "clip-caption pairs (lower data.min_pairs)", self.data.root or None)
        return ds

    def train_loader(self, rank: int = 0, world_size: int = 1) -> DataLoader:
        return make_loader(self.dataset(self.data.train_split, True), collate_alignment,
                           self.data.batch_size, shuffle=True, seed=self.cfg.seed,
                           num_workers=self.data.num_workers, rank=rank, world_size=world_size)

    def eval_loader(self, split: str, rank: int = 0, world_size: int = 1) -> DataLoader:
        return make_loader(self.dataset(split, False), collate_alignment,
                           self.data.eval_batch_size, shuffle=False, seed=self.cfg.seed,
                           num_workers=self.data.num_workers, rank=rank, world_size=world_size,
                           pad=False)

    def _step_recall(self, items: Sequence[dict[str, Any]]) -> float:
        """CrossTask-style recall (``vidlang.metrics.step_recall``) with each paragraph's
        sentences as its steps and the dataset as the one task."""
        from vidlang.metrics import step_recall

        preds, truth = [], []
        for it in items:
            times = decode_step_times(it["frames"].float(), it["text"].float(), it["duration"])
            preds.append({"vid": it["video_id"], "pred_steps": dict(enumerate(times))})
            truth.append({"vid": it["video_id"], "task": self.data.dataset,
                          "steps": {k: [list(w)] for k, w in enumerate(it["windows"])}})
        return next(v for k, v in step_recall(preds, truth).items() if k.startswith("step recall "))

    def evaluate(self, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        """``p2v/{cap_avg,dtw,otam}/R@{1,5,10}`` (+ MdR), ``steps/recall`` and counts."""
        items = {it["video_id"]: it for out in outputs for it in out}
        ordered = [items[k] for k in sorted(items)]
        model_cfg = self.cfg.model
        faithful = bool(getattr(model_cfg, "tempclr_faithful_eval", False))
        normalise = "area" if faithful else getattr(model_cfg, "eval_normalise", "path")
        text, tmask = _stack([it["text"] for it in ordered])
        clips, cmask = _stack([it["clips"] for it in ordered])
        scores = {"cap_avg": caption_average_scores(text, tmask, clips, cmask)}
        for kind in ("dtw", "otam"):
            scores[kind] = sequence_scores(text, tmask, clips, cmask, kind, normalise, faithful)
        metrics: dict[str, Any] = {}
        for name in P2V_SCORERS:
            for key, value in _recalls(scores[name]).items():
                metrics[f"p2v/{name}/{key}"] = value
        metrics["steps/recall"] = self._step_recall(ordered)
        metrics["videos"] = float(len(ordered))
        metrics["skipped"] = float(len(self.skipped.get(split, [])))
        metrics["normalise"] = normalise
        metrics["faithful_eval"] = faithful
        return metrics
