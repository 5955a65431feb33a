"""Cross-check annotations against a feature store: every video present, right dimension,
finite values, at least one clip. Used by ``vidlang data validate``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidlang.data.features.stores import FeatureStore, NonFiniteFeaturesError
from vidlang.errors import DataError

PROBLEMS = ("missing", "wrong_dim", "non_finite", "zero_length", "unreadable")


@dataclass
class VideoProblem:
    video_id: str
    problem: str
    detail: str


@dataclass
class ValidationReport:
    """Per-video problems and counts; ``ok`` when nothing is wrong."""

    store: str
    expected_dim: int | None
    videos: int = 0
    problems: list[VideoProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def counts(self) -> dict[str, int]:
        out = {p: 0 for p in PROBLEMS}
        for p in self.problems:
            out[p.problem] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {"store": self.store, "expected_dim": self.expected_dim, "videos": self.videos,
                "ok": self.ok, "counts": self.counts(),
                "problems": [vars(p) for p in self.problems]}


def _check_one(store: FeatureStore, vid: str, dim: int | None) -> VideoProblem | None:
    if vid not in store:
        return VideoProblem(vid, "missing", f"not in {store.path}")
    try:
        feats = np.asarray(store[vid])
    except NonFiniteFeaturesError as e:
        return VideoProblem(vid, "non_finite", f"{e.bad} NaN/inf values")
    except DataError as e:
        return VideoProblem(vid, "unreadable", e.reason)
    if feats.shape[0] == 0:
        return VideoProblem(vid, "zero_length", f"shape {tuple(feats.shape)}")
    if dim is not None and feats.shape[1] != dim:
        return VideoProblem(vid, "wrong_dim", f"dim {feats.shape[1]}, expected {dim}")
    bad = int((~np.isfinite(feats)).sum())
    if bad:
        return VideoProblem(vid, "non_finite", f"{bad} NaN/inf values of {feats.size}")
    return None


def validate_store(store: FeatureStore, video_ids: Iterable[str], expected_dim: int | None = None) -> ValidationReport:
    """Check each distinct video id once (in first-seen order) against ``store``.

    ``expected_dim`` defaults to the store's own dimension (its ``feature_dim`` attribute or its
    first video), so a store mixing dimensions is caught either way.
    """
    ids = list(dict.fromkeys(video_ids))
    if expected_dim is None:
        try:
            expected_dim = store.dim
        except DataError:
            expected_dim = None
    report = ValidationReport(str(store.path), expected_dim, videos=len(ids))
    for vid in ids:
        problem = _check_one(store, vid, expected_dim)
        if problem is not None:
            report.problems.append(problem)
    return report
