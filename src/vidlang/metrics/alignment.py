"""Paragraph-to-video retrieval of the alignment task (TempCLR, tempclr.md sections 3-5).

Every paragraph is scored against every video with three measures: ``cap_avg`` (per caption
the best clip cosine, averaged), ``dtw`` and ``otam`` (minus the hard sequence distance on
1 - cos, OTAM summed over both directions), with the background removed (the clips are the
captions' windows) and / or kept (the video cut into fixed windows, the release's
``FullVideoBGRetrievalMetric``). Recalls come from :func:`vidlang.metrics.retrieval_metrics`.

:class:`ParagraphToVideoMetric` is the accumulating object the ``alignment`` pipeline uses:
``process`` one eval batch's per-video outputs (``video_id``, ``text`` [N, D], ``clips``
[N, D], ``bg_clips`` [K, D]), ``compute_metrics`` at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from vidlang.metrics.classes import BaseMetric
from vidlang.ops.padding import pad_rows

P2V_SCORERS = ("cap_avg", "dtw", "otam")
BACKGROUND_MODES = ("removed", "kept", "both")


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


def _recalls(sim: torch.Tensor) -> dict[str, float]:
    """t2v R@1/5/10 and MdR of a paragraph x video score matrix (paragraph i owns video i)."""
    from vidlang.metrics.retrieval import retrieval_metrics

    full = retrieval_metrics(sim.double().numpy(), ks=(1, 5, 10))
    out = {}
    for key, value in full.items():
        if key.startswith("t2v R@") or key.startswith("t2v MdR"):
            out[key.split(" ")[1]] = float(value)
    return out


def paragraph_to_video(ordered: Sequence[dict[str, Any]], background: str = "removed",
                       normalise: str = "path", keep_ratio: float = 1.3, quirks: bool = False
                       ) -> dict[str, float]:
    """``p2v/bg_{removed,kept}/{cap_avg,dtw,otam}/{R@1,R@5,R@10,MdR}`` for the ``background``
    mode(s) (``removed``, ``kept`` or ``both``) over per-video outputs; paragraph i belongs
    to video i of ``ordered``."""
    if background not in BACKGROUND_MODES:
        raise ValueError(f"background {background!r} is not one of {BACKGROUND_MODES}")
    text, tmask = pad_rows([it["text"].float() for it in ordered])
    metrics: dict[str, float] = {}
    if background in ("removed", "both"):
        clips, cmask = pad_rows([it["clips"].float() for it in ordered])
        scores = {"cap_avg": caption_average_scores(text, tmask, clips, cmask)}
        for kind in ("dtw", "otam"):
            scores[kind] = sequence_scores(text, tmask, clips, cmask, kind, normalise, quirks)
        for name in P2V_SCORERS:
            for key, value in _recalls(scores[name]).items():
                metrics[f"p2v/bg_removed/{name}/{key}"] = value
    if background in ("kept", "both"):
        wins, wmask = pad_rows([it["bg_clips"].float() for it in ordered])
        for name in P2V_SCORERS:
            sim = background_kept_scores(text, tmask, wins, wmask, name, normalise, keep_ratio,
                                         quirks)
            for key, value in _recalls(sim).items():
                metrics[f"p2v/bg_kept/{name}/{key}"] = value
        metrics["p2v/bg_kept/windows_per_video"] = float(wmask.sum(dim=1).float().mean())
    return metrics


class VideoOutputsMetric(BaseMetric):
    """Base of the alignment metrics: ``process`` takes one eval batch's per-video outputs
    (dicts with ``video_id``); they are scored once per video, in video id order (a video
    seen twice keeps its last output)."""

    def process(self, predictions: Sequence[Any], ground_truth: Sequence[Any] | None = None) -> None:
        self.predictions.extend(predictions)
        if ground_truth is not None:
            self.ground_truth.extend(ground_truth)

    def ordered(self) -> list[dict[str, Any]]:
        """The processed outputs, one per video, sorted by video id."""
        items = {it["video_id"]: it for it in self.predictions}
        return [items[k] for k in sorted(items)]


class ParagraphToVideoMetric(VideoOutputsMetric):
    """:func:`paragraph_to_video` over everything processed (options fixed at construction)."""

    def __init__(self, background: str = "removed", normalise: str = "path",
                 keep_ratio: float = 1.3, quirks: bool = False) -> None:
        super().__init__()
        self.background, self.normalise = background, normalise
        self.keep_ratio, self.quirks = keep_ratio, quirks

    def compute_metrics(self) -> dict[str, float]:
        return paragraph_to_video(self.ordered(), self.background, self.normalise,
                                  self.keep_ratio, self.quirks)
