"""The ``alignment`` pipeline (TempCLR): paragraphs + per-second features -> clip-caption
sequences, and paragraph-to-video retrieval / step localisation scores.

Training items are videos; each gets a sequence of non-overlapping clip-caption pairs chosen as
in the release (tempclr.md section 4): pairs sorted by time, a greedy pass keeping pairs that
do not overlap the last kept one, videos with fewer than ``min_pairs`` skipped (and counted),
then ``seq_len`` pairs picked by linspace. A pair's clip is its caption window of features
(at most ``max_clip_frames`` frames, evenly picked). Evaluation uses every sentence of each
paragraph, its window as its clip ("background removed"), and scores paragraph-to-video
retrieval with three measures (``cap_avg``, ``dtw``, ``otam``) and step localisation
(order-constrained decoding, CrossTask-style recall). With ``eval.overrides.background: kept``
(or ``both``) each video is also cut into fixed windows (``window`` / ``stride`` seconds) and
scored with the background kept (tempclr.md section 5, the release's
``FullVideoBGRetrievalMetric``). Those windows also give the few-shot video-to-video accuracy
(nearest labelled support video by DTW / OTAM) where the dataset has video class labels.
Evaluation options: :class:`AlignmentEvalOptions` (``eval.overrides``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from vidlang.data.records import Paragraph
from vidlang.engine.pipelines.base import TaskPipeline, make_loader
from vidlang.engine.pipelines.features import (
    FeatureDataset,
    FeatureMemo,
    FeatureSource,
    feature_memo,
    feature_source,
    flat_rows,
    gather_rows,
)
from vidlang.engine.schema import DataConfig, ExperimentConfig
from vidlang.errors import ConfigError, DataError
from vidlang.models.base import FeatureSpec
from vidlang.ops.padding import pad_rows
from vidlang.registry import PIPELINES, Registry

log = logging.getLogger(__name__)
Window = tuple[float, float]
BACKGROUND_MODES = ("removed", "kept", "both")


@dataclass
class AlignmentDataConfig(DataConfig):
    """``data`` keys of alignment experiments (see :class:`DataConfig` for the shared ones)."""

    seq_len: int = 5  # clip-caption pairs per training sequence (release: 5)
    min_pairs: int = 5  # training videos with fewer non-overlapping pairs are skipped (release: 5)
    max_clip_frames: int = 32  # frames per clip (release: 32 s at one feature per second)


@dataclass
class AlignmentEvalOptions:
    """``eval.overrides`` keys of alignment experiments (validated like every config section)."""

    background: str = "removed"  # removed | kept | both (paragraph-to-video scoring)
    window: float = 16.0  # background kept / v2v: window length in seconds (release: 16)
    stride: float = 16.0  # background kept / v2v: window stride in seconds (release: 16)
    keep_ratio: float = 1.3  # background kept, dtw / otam: keep int(ratio * #captions) windows
    reproduce_upstream_quirks: bool = False  # the release's eval cost and bugs (tempclr.md §3)
    v2v: bool = True  # few-shot video-to-video accuracy (needs video class labels)
    v2v_shots: int = 1  # support videos per class
    v2v_seed: int = 0  # seed of the support / query split


def eval_options(cfg: ExperimentConfig) -> AlignmentEvalOptions:
    """The typed ``eval.overrides`` of an alignment experiment (ConfigError names the key)."""
    from vidlang.engine.config import validate_section

    opts: AlignmentEvalOptions = validate_section(AlignmentEvalOptions, dict(cfg.eval.overrides),
                                                  "eval.overrides")
    if opts.background not in BACKGROUND_MODES:
        raise ConfigError(f"eval.overrides.background: {opts.background!r} is not one of "
                          f"{BACKGROUND_MODES}")
    for key in ("window", "stride", "keep_ratio"):
        if not getattr(opts, key) > 0:
            raise ConfigError(f"eval.overrides.{key}: must be > 0, got {getattr(opts, key)}")
    if opts.v2v_shots < 1:
        raise ConfigError(f"eval.overrides.v2v_shots: must be >= 1, got {opts.v2v_shots}")
    return opts


def cut_windows(duration: float, window: float, stride: float) -> list[Window]:
    """Fixed windows over [0, duration]: starts 0, stride, 2 stride, ...; each ``window`` long,
    the last one clipped at ``duration``; stops after the first window reaching the end (so
    overlapping strides add no tail windows inside earlier ones). At least one window."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be > 0, got {window}, {stride}")
    out: list[Window] = []
    start = 0.0
    while True:
        end = float(min(start + window, duration))
        out.append((round(start, 6), round(end, 6)))
        start += stride
        if end >= duration - 1e-9 or start >= duration - 1e-9:
            return out


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
    bg_windows: list[Window] = field(default_factory=list)  # fixed windows (background kept)
    bg_frames: list[list[int]] = field(default_factory=list)
    # frames / bg_frames concatenated (built once per item, for the collate's single gather)
    frames_flat: torch.Tensor | None = field(default=None, repr=False, compare=False)
    bg_flat: torch.Tensor | None = field(default=None, repr=False, compare=False)


class AlignmentDataset(FeatureDataset):
    """Videos with their pair sequences (training: selected pairs; eval: every sentence), and
    with ``background`` = (window, stride) seconds also the video cut into fixed windows."""

    def __init__(self, paragraphs: Sequence[Paragraph], features: FeatureSource | Callable[[], FeatureSource],
                 spec: FeatureSpec, data: AlignmentDataConfig, train: bool,
                 background: tuple[float, float] | None = None,
                 memo: FeatureMemo | None = None) -> None:
        super().__init__(features, spec, memo)
        self.data = data
        self.background = background
        self.items: list[tuple[Paragraph, list[int]]] = []
        self.built: dict[int, AlignmentItem] = {}  # items whose features the memo holds
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
        item = self.built.get(index)
        if item is None:
            item = self._build(index)
            if self.memo is not None and self.memo.get(item.video_id) is not None:
                self.built[index] = item  # same features, windows and rows every epoch
        return item

    def _build(self, index: int) -> AlignmentItem:
        p, picks = self.items[index]
        feats = self.video_features(p.video_id)
        windows: list[Window] = [(float(p.windows[i][0]), float(p.windows[i][1])) for i in picks]
        frames = [window_frames(w, feats.shape[0], float(p.duration), self.data.max_clip_frames,
                                p.video_id) for w in windows]
        item = AlignmentItem(p.video_id, feats, float(p.duration),
                             [p.sentences[i] for i in picks], windows, frames,
                             frames_flat=flat_rows(frames))
        if self.background is not None:
            item.bg_windows = cut_windows(float(p.duration), *self.background)
            item.bg_frames = [window_frames(w, feats.shape[0], float(p.duration),
                                            self.data.max_clip_frames, p.video_id)
                              for w in item.bg_windows]
            item.bg_flat = flat_rows(item.bg_frames)
        return item


def _sequence_index(counts: Sequence[int]) -> torch.Tensor:
    """[B, max count] rows of a flat segment list per video, -1 past each video's count."""
    sizes = torch.tensor(list(counts), dtype=torch.long)
    starts = torch.cumsum(sizes, 0) - sizes
    cols = torch.arange(int(sizes.max()))[None, :]
    return torch.where(cols < sizes[:, None], starts[:, None] + cols, torch.tensor(-1))


def _flats(flats: Sequence[torch.Tensor | None]) -> list[torch.Tensor] | None:
    return None if any(f is None for f in flats) else list(flats)  # type: ignore[arg-type]


def collate_alignment(items: Sequence[AlignmentItem]) -> dict[str, Any]:
    """The alignment batch documented in :mod:`vidlang.models.tempclr` (``win_*`` /
    ``bg_windows`` only when the items carry fixed windows)."""
    feats, feat_mask = pad_rows([it.feats for it in items])
    seg_feats, seg_mask = gather_rows([it.feats for it in items], [it.frames for it in items],
                                      _flats([it.frames_flat for it in items]))
    seq_index = _sequence_index([len(it.sentences) for it in items])
    batch: dict[str, Any] = {
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
    if all(it.bg_frames for it in items):
        win_feats, win_mask = gather_rows([it.feats for it in items],
                                          [it.bg_frames for it in items],
                                          _flats([it.bg_flat for it in items]))
        win_index = _sequence_index([len(it.bg_frames) for it in items])
        batch.update(win_feats=win_feats, win_mask=win_mask, win_index=win_index,
                     bg_windows=[list(it.bg_windows) for it in items])
    return batch


# ---- evaluation -------------------------------------------------------------------------------
def _stack(rows: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return pad_rows([r.float() for r in rows])


def caption_average_scores(text: torch.Tensor, text_mask: torch.Tensor, clips: torch.Tensor,
                           clip_mask: torch.Tensor) -> torch.Tensor:
    """Cap. Avg. [P, V]: per caption the best cosine over the video's clips, averaged over the
    paragraph's captions (embeddings are L2-normalised)."""
    sim = torch.einsum("pnd,vmd->pvnm", text, clips)
    sim = sim.masked_fill(~clip_mask[None, :, None, :], float("-inf")).amax(dim=-1)
    weights = text_mask[:, None, :].to(sim.dtype)
    return (sim.masked_fill(weights == 0, 0.0) * weights).sum(-1) / weights.sum(-1)


def sequence_scores(text: torch.Tensor, text_mask: torch.Tensor, clips: torch.Tensor,
                    clip_mask: torch.Tensor, kind: str, normalise: str, quirks: bool = False
                    ) -> torch.Tensor:
    """Negative hard DTW / OTAM distance [P, V] (higher = closer); OTAM sums both directions.
    ``quirks`` reproduces the release's evaluation (``release_pairwise_distance``)."""
    from vidlang.losses.alignment import pairwise_sequence_distance, release_pairwise_distance

    if quirks:
        return -release_pairwise_distance(text, text_mask, clips, clip_mask, kind)
    dist = pairwise_sequence_distance(text, text_mask, clips, clip_mask, kind=kind,
                                      normalise=normalise)
    if kind == "otam":
        dist = dist + pairwise_sequence_distance(clips, clip_mask, text, text_mask, kind=kind,
                                                 normalise=normalise).t()
    return -dist


def keep_nearest_windows(sim: torch.Tensor, text_mask: torch.Tensor, win_mask: torch.Tensor,
                         keep_ratio: float = 1.3) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's background-kept window selection for sim [P, V, N, M] (caption x window
    similarity), text_mask [P, N], win_mask [V, M]: per pair, the int(keep_ratio * n_p)
    windows (at most m_v) with the highest similarity to any caption, in temporal order.

    Returns indices [P, V, K] (ascending; padded with the last valid index) and their prefix
    mask [P, V, K]. Ties in similarity keep the earlier window."""
    best = sim.masked_fill(~text_mask[:, None, :, None], float("-inf")).amax(dim=2)
    best = best.masked_fill(~win_mask[None], float("-inf"))  # [P, V, M]
    keep = (text_mask.sum(dim=1).to(torch.float64) * keep_ratio).floor().long().clamp_min(1)
    count = torch.minimum(keep[:, None], win_mask.sum(dim=1)[None])  # [P, V]
    k_max = int(count.max())
    order = torch.sort(-best, dim=-1, stable=True).indices[..., :k_max]
    valid = torch.arange(k_max)[None, None] < count[..., None]
    picked = torch.sort(order.masked_fill(~valid, sim.shape[-1]), dim=-1).values
    last = picked.gather(-1, (count - 1)[..., None])
    return torch.where(valid, picked, last), valid


def background_kept_scores(text: torch.Tensor, text_mask: torch.Tensor, windows: torch.Tensor,
                           win_mask: torch.Tensor, kind: str, normalise: str,
                           keep_ratio: float = 1.3, quirks: bool = False,
                           chunk_cells: int = 20_000_000) -> torch.Tensor:
    """Background-kept paragraph-to-video scores [P, V] (higher = closer).

    ``cap_avg``: :func:`caption_average_scores` over all of the video's windows. ``dtw`` /
    ``otam``: minus the hard distance from the paragraph to the windows kept by
    :func:`keep_nearest_windows` (per pair), cost 1 - cos, ``normalise``, OTAM summed over
    both directions; with ``quirks`` the release's evaluation (1 - raw dot, area scaling to
    the longest paragraph x the most windows, its padding and OTAM quirks). Computed in
    chunks of paragraphs of about ``chunk_cells`` similarity cells."""
    from vidlang.losses.alignment import release_eval_distance, sequence_distance

    if kind == "cap_avg":
        return caption_average_scores(text, text_mask, windows, win_mask)
    if not quirks:
        text = torch.nn.functional.normalize(text, dim=-1)
        windows = torch.nn.functional.normalize(windows, dim=-1)
    n_rows, n_cols = text_mask.sum(dim=1), win_mask.sum(dim=1)
    max_rows, max_cols = int(n_rows.max()), int(n_cols.max())
    p, v = text.shape[0], windows.shape[0]
    step = max(1, chunk_cells // max(1, v * text.shape[1] * windows.shape[1]))
    out = text.new_empty((p, v))
    for start in range(0, p, step):
        t, tm = text[start:start + step], text_mask[start:start + step]
        q = t.shape[0]
        sim = torch.einsum("pnd,vmd->pvnm", t, windows)
        index, valid = keep_nearest_windows(sim, tm, win_mask, keep_ratio)
        k = index.shape[-1]
        kept = sim.gather(-1, index[:, :, None, :].expand(q, v, t.shape[1], k))
        cost = (1.0 - kept).reshape(q * v, t.shape[1], k)
        rows = tm[:, None].expand(q, v, tm.shape[1]).reshape(q * v, -1)
        cols = valid.reshape(q * v, k)
        if quirks:
            dist = release_eval_distance(cost, rows.sum(dim=1), cols.sum(dim=1), max_rows,
                                         max_cols, kind)
        else:
            dist = sequence_distance(cost, rows, cols, kind=kind, normalise=normalise)
            if kind == "otam":
                dist = dist + sequence_distance(cost.transpose(1, 2).contiguous(), cols, rows,
                                                kind=kind, normalise=normalise)
        out[start:start + q] = -dist.reshape(q, v)
    return out


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


V2V_KINDS = ("dtw", "otam", "mean_pool")


def video_to_video_accuracy(queries: Sequence[torch.Tensor], query_labels: Sequence[Any],
                            support: Sequence[torch.Tensor], support_labels: Sequence[Any],
                            kind: str = "dtw", normalise: str = "path") -> float:
    """Few-shot video-to-video alignment: each query clip sequence [M_i, D] takes the label of
    its nearest support sequence; the share that is right. ``dtw`` / ``otam``: hard distance
    on 1 - cos (OTAM summed over both directions, as in paragraph-to-video); ``mean_pool``:
    cosine of the mean clip embeddings, the order-blind reference."""
    if kind not in V2V_KINDS:
        raise ValueError(f"video-to-video kind {kind!r} is not one of {V2V_KINDS}")
    if kind == "mean_pool":
        def pooled(seqs: Sequence[torch.Tensor]) -> torch.Tensor:
            return F.normalize(torch.stack([x.float().mean(dim=0) for x in seqs]), dim=-1)

        nearest = (pooled(queries) @ pooled(support).t()).argmax(dim=1).tolist()
    else:
        q, qm = _stack(queries)
        s, sm = _stack(support)
        nearest = sequence_scores(q, qm, s, sm, kind, normalise).argmax(dim=1).tolist()
    return float(np.mean([support_labels[j] == query_labels[i] for i, j in enumerate(nearest)]))


def few_shot_split(labels: Mapping[str, Any], shots: int, seed: int
                   ) -> tuple[list[str], list[str]]:
    """(support, query) video ids: in every class with more than ``shots`` videos, ``shots``
    seeded picks are support and the rest queries; smaller classes are left out. Classes and
    their videos are visited in sorted order, so the split depends only on (labels, shots,
    seed)."""
    members: dict[str, list[str]] = {}
    for vid, label in labels.items():
        members.setdefault(str(label), []).append(vid)
    rng = np.random.default_rng(seed)
    support: list[str] = []
    query: list[str] = []
    for label in sorted(members):
        vids = sorted(members[label])
        if len(vids) <= shots:
            continue
        order = rng.permutation(len(vids)).tolist()
        support.extend(vids[i] for i in order[:shots])
        query.extend(vids[i] for i in order[shots:])
    return support, query


def _synthvl_labels(root: str | None, split: str) -> dict[str, str]:
    """SynthVL: a video's opening and closing actions in order, "<first verb> -> <last verb>"
    (so "open -> close" and "close -> open" are different classes)."""
    from vidlang.data.synthvl.loader import read_videos

    if root is None:
        raise ConfigError("data.root: the synthvl dataset needs the folder written by `vidlang synth`")
    videos = read_videos(root, split)[0]
    out = {}
    for v in videos:
        events = v.get("events") or []
        if not events:
            raise DataError("video has no events to label it by", record=str(v.get("vid")))
        out[str(v["vid"])] = f"{events[0]['verb']} -> {events[-1]['verb']}"
    return out


def _youcook2_labels(root: str | None, split: str) -> dict[str, str]:
    """YouCook2: the annotation file's ``recipe_type`` (e.g. 113), the few-shot class."""
    from vidlang.data.catalog import default_root

    path = (Path(root) if root else default_root()) / "youcook2" / "youcookii_annotations_trainval.json"
    if not path.is_file():
        raise DataError("YouCook2 annotation file missing (recipe types)", path)
    database = json.loads(path.read_text(encoding="utf-8"))["database"]
    return {vid: str(entry["recipe_type"]) for vid, entry in database.items()
            if "recipe_type" in entry}


VIDEO_LABELS: Registry[Callable[[str | None, str], dict[str, str]]] = Registry(
    "video class labels")
VIDEO_LABELS.register("synthvl")(_synthvl_labels)
VIDEO_LABELS.register("youcook2")(_youcook2_labels)


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
    """Alignment data + evaluation. ``paragraphs``/``features``/``labels`` (split -> video id
    -> class) may be injected (tests); otherwise they come from ``data.dataset``."""

    task = "alignment"
    data_config_class = AlignmentDataConfig

    def __init__(self, cfg: ExperimentConfig, feature_spec: FeatureSpec,
                 paragraphs: Mapping[str, Sequence[Paragraph]] | None = None,
                 features: FeatureSource | None = None,
                 labels: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(cfg, feature_spec)
        self._paragraphs = {k: list(v) for k, v in (paragraphs or {}).items()}
        self._features: FeatureSource | Callable[[], FeatureSource] = feature_source(cfg.data, features)
        self._labels = {k: dict(v) for k, v in (labels or {}).items()}
        self.memo = feature_memo(cfg.data)
        self.skipped: dict[str, list[str]] = {}
        self.options = eval_options(cfg)

    @classmethod
    def check_config(cls, cfg: ExperimentConfig) -> None:
        super().check_config(cfg)
        for key in ("seq_len", "min_pairs", "max_clip_frames"):
            if getattr(cfg.data, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(cfg.data, key)}")
        opts = eval_options(cfg)
        for mode in ("removed", "kept"):
            if cfg.eval.metric.startswith(f"p2v/bg_{mode}/") and opts.background not in (mode, "both"):
                raise ConfigError(f"eval.metric: {cfg.eval.metric!r} needs "
                                  f"eval.overrides.background {mode} or both, got {opts.background!r}")

    def paragraphs(self, split: str) -> list[Paragraph]:
        if split not in self._paragraphs:
            from vidlang.data import catalog

            paragraphs, _ = catalog.load_paragraphs(self.data.dataset, split, self.data.root or None)
            if not paragraphs:
                raise DataError(f"split {split!r} of dataset {self.data.dataset!r} has no "
                                "paragraphs", self.data.root or None)
            self._paragraphs[split] = list(paragraphs)
        return self._paragraphs[split]

    def training_records(self) -> list[Paragraph]:
        return self.paragraphs(self.data.train_split)

    def video_labels(self, split: str) -> dict[str, Any] | None:
        """Video id -> class for the few-shot video-to-video metric, or None when the dataset
        has no labels (``VIDEO_LABELS``)."""
        if split not in self._labels:
            if self.data.dataset not in VIDEO_LABELS:
                return None
            self._labels[split] = VIDEO_LABELS.get(self.data.dataset)(self.data.root or None, split)
        return self._labels[split]

    def _needs_windows(self) -> bool:
        return self.options.background != "removed" or self.options.v2v

    def dataset(self, split: str, train: bool) -> AlignmentDataset:
        background = None if train or not self._needs_windows() else \
            (self.options.window, self.options.stride)
        ds = AlignmentDataset(self.paragraphs(split), self._features, self.feature_spec,
                              self.data, train, background, self.memo)
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

    @property
    def quirks(self) -> bool:
        """``eval.overrides.reproduce_upstream_quirks`` (or its older name on the model,
        ``model.tempclr_faithful_eval``)."""
        return self.options.reproduce_upstream_quirks or \
            bool(getattr(self.cfg.model, "tempclr_faithful_eval", False))

    def _paragraph_to_video(self, ordered: Sequence[dict[str, Any]], normalise: str
                            ) -> dict[str, float]:
        """``p2v/bg_{removed,kept}/{cap_avg,dtw,otam}/...`` for the configured modes."""
        text, tmask = _stack([it["text"] for it in ordered])
        metrics: dict[str, float] = {}
        if self.options.background in ("removed", "both"):
            clips, cmask = _stack([it["clips"] for it in ordered])
            scores = {"cap_avg": caption_average_scores(text, tmask, clips, cmask)}
            for kind in ("dtw", "otam"):
                scores[kind] = sequence_scores(text, tmask, clips, cmask, kind, normalise,
                                               self.quirks)
            for name in P2V_SCORERS:
                for key, value in _recalls(scores[name]).items():
                    metrics[f"p2v/bg_removed/{name}/{key}"] = value
        if self.options.background in ("kept", "both"):
            wins, wmask = _stack([it["bg_clips"] for it in ordered])
            for name in P2V_SCORERS:
                sim = background_kept_scores(text, tmask, wins, wmask, name, normalise,
                                             self.options.keep_ratio, self.quirks)
                for key, value in _recalls(sim).items():
                    metrics[f"p2v/bg_kept/{name}/{key}"] = value
            metrics["p2v/bg_kept/windows_per_video"] = float(wmask.sum(dim=1).float().mean())
        return metrics

    def _video_to_video(self, ordered: Sequence[dict[str, Any]], split: str, normalise: str
                        ) -> dict[str, Any]:
        """``v2v/{dtw,otam,mean_pool}/acc`` (%) on each video's fixed-window sequence, or
        ``v2v/skipped`` with the reason (also logged)."""
        labels = self.video_labels(split)
        reason = None
        if labels is None:
            reason = f"dataset {self.data.dataset!r} has no video class labels"
        else:
            present = {it["video_id"]: labels[it["video_id"]] for it in ordered
                       if it["video_id"] in labels}
            support, query = few_shot_split(present, self.options.v2v_shots, self.options.v2v_seed)
            classes = {present[v] for v in support}
            if len(classes) < 2 or not query:
                reason = (f"split {split!r}: {len(classes)} class(es) with more than "
                          f"{self.options.v2v_shots} labelled video(s); need 2")
        if reason is not None:
            log.warning("video-to-video accuracy skipped: %s", reason)
            return {"v2v/skipped": reason}
        by_id = {it["video_id"]: it for it in ordered}
        q_seqs = [by_id[v]["bg_clips"] for v in query]
        s_seqs = [by_id[v]["bg_clips"] for v in support]
        q_lab = [present[v] for v in query]
        s_lab = [present[v] for v in support]
        out: dict[str, Any] = {}
        for kind in V2V_KINDS:
            out[f"v2v/{kind}/acc"] = 100.0 * video_to_video_accuracy(q_seqs, q_lab, s_seqs, s_lab,
                                                                     kind, normalise)
        out["v2v/queries"] = float(len(query))
        out["v2v/classes"] = float(len(classes))
        return out

    def evaluate(self, outputs: Sequence[Any], split: str) -> dict[str, Any]:
        """``p2v/bg_{removed,kept}/{cap_avg,dtw,otam}/R@{1,5,10}`` (+ MdR) per
        ``eval.overrides.background``, ``v2v/{dtw,otam,mean_pool}/acc``, ``steps/recall`` and
        counts."""
        items = {it["video_id"]: it for out in outputs for it in out}
        ordered = [items[k] for k in sorted(items)]
        quirks = self.quirks
        normalise = "area" if quirks else getattr(self.cfg.model, "eval_normalise", "path")
        metrics: dict[str, Any] = self._paragraph_to_video(ordered, normalise)
        if self.options.v2v:
            metrics.update(self._video_to_video(ordered, split,
                                                getattr(self.cfg.model, "eval_normalise", "path")))
        metrics["steps/recall"] = self._step_recall(ordered)
        metrics["videos"] = float(len(ordered))
        metrics["skipped"] = float(len(self.skipped.get(split, [])))
        metrics["normalise"] = normalise
        metrics["background"] = self.options.background
        metrics["reproduce_upstream_quirks"] = quirks
        return metrics
