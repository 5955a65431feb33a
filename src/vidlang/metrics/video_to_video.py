"""Few-shot video-to-video alignment accuracy (tempclr.md section 5).

Each labelled video is a sequence of fixed-window clip embeddings. Per class, ``shots`` seeded
videos are the support set and the rest queries; a query takes the label of its nearest
support video by DTW / OTAM on 1 - cos, or by the cosine of mean-pooled clips (the order-blind
reference). :class:`VideoToVideoMetric` is the accumulating object the ``alignment`` pipeline
uses (``process`` per-video outputs with ``video_id`` and ``bg_clips`` [K, D]).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vidlang.metrics.alignment import VideoOutputsMetric, sequence_scores
from vidlang.ops.padding import pad_rows

log = logging.getLogger(__name__)
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
        q, qm = pad_rows([x.float() for x in queries])
        s, sm = pad_rows([x.float() for x in support])
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


class VideoToVideoMetric(VideoOutputsMetric):
    """``v2v/{dtw,otam,mean_pool}/acc`` (%), ``v2v/queries`` and ``v2v/classes`` over the
    processed videos that ``labels`` (video id -> class) covers, or ``v2v/skipped`` with the
    reason (also logged) when there are no labels (``labels=None``; ``source`` names whose
    labels were missing) or fewer than two classes with a query."""

    def __init__(self, labels: Mapping[str, Any] | None, shots: int = 1, seed: int = 0,
                 normalise: str = "path", source: str = "", split: str = "") -> None:
        super().__init__()
        self.labels = None if labels is None else dict(labels)
        self.shots, self.seed, self.normalise = shots, seed, normalise
        self.source, self.split = source, split

    def compute_metrics(self) -> dict[str, Any]:
        ordered = self.ordered()
        reason = None
        present: dict[str, Any] = {}
        support: list[str] = []
        query: list[str] = []
        classes: set[Any] = set()
        if self.labels is None:
            reason = f"dataset {self.source!r} has no video class labels"
        else:
            present = {it["video_id"]: self.labels[it["video_id"]] for it in ordered
                       if it["video_id"] in self.labels}
            support, query = few_shot_split(present, self.shots, self.seed)
            classes = {present[v] for v in support}
            if len(classes) < 2 or not query:
                reason = (f"split {self.split!r}: {len(classes)} class(es) with more than "
                          f"{self.shots} labelled video(s); need 2")
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
                                                                     kind, self.normalise)
        out["v2v/queries"] = float(len(query))
        out["v2v/classes"] = float(len(classes))
        return out
