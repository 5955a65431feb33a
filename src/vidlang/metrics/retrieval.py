"""Text-video retrieval metrics from a similarity matrix (texts x videos).

Text-to-video (t2v): every text row is a query; its GT is the video it belongs to (the
diagonal for a square one-caption-per-video matrix, else ``gt[row]``). Video-to-text (v2t)
with several captions per video, two labelled conventions:

* ``maxpool`` (CLIP4Clip): max over each video's captions -> videos x videos, rank caption
  *groups* (alias ``groups``);
* ``best_caption`` (CE / QB-Norm): rank of the best-scored GT caption among *all* captions
  (alias ``best``).

Ties: see :mod:`.ranks` (``average`` by default, named in every key). Optional
post-processing, reported *separately* and labelled: ``dsl`` (dual softmax over the query
axis, transductive: it uses all test queries) and ``qbnorm`` (dynamic inverted softmax
against a querybank of training captions, needs ``bank_sim``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidlang.errors import ConfigError, DataError
from vidlang.metrics.ranks import RankBounds, rank_bounds, rank_summary

DEFAULT_KS = (1, 5, 10, 50)
V2T_MODES = {"maxpool": "maxpool", "groups": "maxpool", "best_caption": "best_caption",
             "best": "best_caption"}


@dataclass
class Direction:
    """One ranking problem: a query x gallery matrix and how to find each row's GT."""

    name: str
    matrix: np.ndarray
    gt_index: np.ndarray | None = None
    gt_mask: Callable[[int, int], np.ndarray] | None = None
    label: str = ""
    skipped: int = 0

    def bounds(self) -> RankBounds:
        m = self.matrix
        return rank_bounds(lambda a, b: m[a:b], len(m),  # native dtype: exact, no copy
                           gt_mask=self.gt_mask, gt_index=self.gt_index)


def dual_softmax(sim: np.ndarray, temperature: float = 0.01) -> np.ndarray:
    """DSL re-scoring: ``sim * softmax(sim / temperature)`` with the softmax over the query
    axis (axis 0). Transductive: every test query shapes every score."""
    if temperature <= 0:
        raise ConfigError(f"dsl_temperature: must be > 0, got {temperature}")
    z = sim / temperature
    z = z - z.max(axis=0, keepdims=True)
    prior = np.exp(z)
    prior /= prior.sum(axis=0, keepdims=True)
    return sim * prior


def qb_norm(sim: np.ndarray, bank_sim: np.ndarray, beta: float = 20.0) -> np.ndarray:
    """QB-Norm (dynamic inverted softmax, k = 1). ``bank_sim``: querybank x gallery scores.

    Gallery items that are the top-1 of some bank query form the activation set; a test query
    whose top-1 is in that set gets ``beta * s - logsumexp_bank(beta * s_bank)`` per gallery
    item (the log of the normalised score: same order, no underflow); others keep theirs."""
    bank_sim = np.asarray(bank_sim, dtype=np.float64)
    if bank_sim.ndim == 2:
        _check_finite(bank_sim, "the querybank similarity matrix")
    if bank_sim.ndim != 2 or bank_sim.shape[1] != sim.shape[1]:
        raise DataError(f"qbnorm: the querybank matrix must be (bank, {sim.shape[1]}), "
                        f"got {bank_sim.shape}")
    active = np.zeros(sim.shape[1], dtype=bool)
    active[bank_sim.argmax(axis=1)] = True
    zb = beta * bank_sim
    top = zb.max(axis=0)
    lse = top + np.log(np.exp(zb - top).sum(axis=0))
    use = active[sim.argmax(axis=1)]
    out = np.array(sim, dtype=np.float64, copy=True)
    out[use] = beta * sim[use] - lse[None, :]
    return out


def _owner_array(gt: Any, num_texts: int, num_videos: int) -> np.ndarray:
    owner = np.asarray(gt)
    if owner.ndim != 1 or len(owner) != num_texts or not np.issubdtype(owner.dtype, np.integer):
        raise DataError(f"the text-to-video map must list one integer video index per text row "
                        f"({num_texts}), got shape {owner.shape} of {owner.dtype}")
    bad = (owner < 0) | (owner >= num_videos)
    if bad.any():
        row = int(bad.argmax())
        raise DataError(f"text row {row} maps to video {owner[row]}, outside 0..{num_videos - 1}")
    return owner.astype(np.int64)


def _maxpool_groups(sim: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(videos x videos) max over each video's captions (rows of videos without captions are
    -inf) and which videos have a caption."""
    v = sim.shape[1]
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    pooled = np.full((v, v), -np.inf)
    pooled[sorted_owner[starts]] = np.maximum.reduceat(sim[order], starts, axis=0)
    present = np.zeros(v, dtype=bool)
    present[sorted_owner[starts]] = True
    return pooled, present


def _v2t_maxpool(sim: np.ndarray, owner: np.ndarray | None) -> Direction:
    if owner is None:
        return Direction("v2t", sim.T, gt_index=np.arange(sim.shape[1]))
    pooled, present = _maxpool_groups(sim, owner)
    queries = np.flatnonzero(present)
    return Direction("v2t", pooled.T[queries], gt_index=queries, label="maxpool",
                     skipped=int((~present).sum()))


def _v2t_best_caption(sim: np.ndarray, owner: np.ndarray | None) -> Direction:
    if owner is None:
        return Direction("v2t", sim.T, gt_index=np.arange(sim.shape[1]))
    present = np.zeros(sim.shape[1], dtype=bool)
    present[owner] = True
    queries = np.flatnonzero(present)
    matrix = sim.T[queries]
    return Direction("v2t", matrix, label="best_caption", skipped=int((~present).sum()),
                     gt_mask=lambda a, b: owner[None, :] == queries[a:b, None])


_V2T_BUILDERS: dict[str, Callable[[np.ndarray, np.ndarray | None], Direction]] = {
    "maxpool": _v2t_maxpool,
    "best_caption": _v2t_best_caption,
}


def _check_finite(matrix: np.ndarray, what: str) -> None:
    """NaN and +-inf scores have no rank (inf ties with inf, beats every finite score): refuse."""
    if np.issubdtype(matrix.dtype, np.number) and not np.isfinite(matrix).all():
        bad = ~np.isfinite(matrix)
        row, col = np.argwhere(bad)[0]
        value = "NaN" if np.isnan(matrix[row, col]) else str(matrix[row, col])
        raise DataError(f"{what} holds {int(bad.sum())} non-finite value(s), first {value} at row "
                        f"{row}, column {col}")


def _check_sim(sim: Any, gt: Any) -> tuple[np.ndarray, np.ndarray | None]:
    sim = np.asarray(sim)
    if sim.ndim != 2 or 0 in sim.shape:
        raise DataError(f"the similarity matrix must be 2-D and non-empty, got shape {sim.shape}")
    _check_finite(sim, "the similarity matrix")
    if gt is None:
        if sim.shape[0] != sim.shape[1]:
            raise DataError(f"a non-square similarity matrix {sim.shape} needs a text-to-video map")
        return sim, None
    return sim, _owner_array(gt, sim.shape[0], sim.shape[1])


def _tagged(direction: Direction, summary: dict[str, float], labels: list[str]) -> dict[str, float]:
    tag = ",".join(x for x in [*labels] if x)
    return {f"{direction.name} {k} [{tag}]": v for k, v in summary.items()}


_POSTPROC: dict[str, Callable[..., np.ndarray | None]] = {
    "none": lambda m, direction, **kw: None,
    "dsl": lambda m, direction, dsl_temperature=0.01, **kw: dual_softmax(m, dsl_temperature),
    "qbnorm": lambda m, direction, bank_sim=None, bank_sim_v2t=None, qb_beta=20.0, **kw:
        None if (bank_sim if direction == "t2v" else bank_sim_v2t) is None
        else qb_norm(m, bank_sim if direction == "t2v" else bank_sim_v2t, qb_beta),
}
_POSTPROC_LABEL = {"dsl": "dsl,transductive", "qbnorm": "qbnorm"}


def retrieval_metrics(sim: np.ndarray, gt: Sequence[int] | np.ndarray | None = None,
                      ties: str = "average", v2t_mode: str = "maxpool",
                      ks: Sequence[int] = DEFAULT_KS, postproc: str | None = None,
                      bank_sim: np.ndarray | None = None, bank_sim_v2t: np.ndarray | None = None,
                      dsl_temperature: float = 0.01, qb_beta: float = 20.0) -> dict[str, float]:
    """t2v and v2t R@K (percent), MdR, MnR from ``sim`` (texts x videos), plus query counts.

    ``gt``: the video column of each text row (multi-caption sets); None = diagonal.
    ``v2t_mode``: ``maxpool`` | ``best_caption`` (aliases ``groups`` | ``best``).
    ``postproc``: ``dsl`` or ``qbnorm`` adds separately labelled keys after the raw ones;
    ``qbnorm`` needs ``bank_sim`` (bank captions x videos) and for v2t ``bank_sim_v2t``.
    Keys look like ``t2v R@1 [ties=average]`` / ``v2t R@1 [maxpool,ties=average]``."""
    mode = V2T_MODES.get(v2t_mode)
    if mode is None:
        raise ConfigError(f"v2t_mode: {v2t_mode!r} is not one of {', '.join(V2T_MODES)}")
    post = postproc or "none"
    if post not in _POSTPROC:
        raise ConfigError(f"postproc: {postproc!r} is not one of {', '.join(_POSTPROC)}")
    if post == "qbnorm" and bank_sim is None:
        raise ConfigError("postproc qbnorm needs bank_sim (querybank captions x gallery videos)")
    sim, owner = _check_sim(sim, gt)
    ks = tuple(int(k) for k in ks)
    t2v = Direction("t2v", sim, gt_index=owner if owner is not None else np.arange(len(sim)))
    v2t = _V2T_BUILDERS[mode](sim, owner)
    out: dict[str, float] = {}
    ties_label = f"ties={ties}"
    for direction in (t2v, v2t):
        labels = [direction.label, ties_label]
        out.update(_tagged(direction, rank_summary(direction.bounds(), ks, ties), labels))
        out[f"{direction.name} queries [{','.join(x for x in labels if x)}]"] = float(len(direction.matrix))
        if direction.skipped:
            out[f"{direction.name} skipped (no caption) [{direction.label}]"] = float(direction.skipped)
    if post != "none":
        for direction in (t2v, v2t):
            rescored = _POSTPROC[post](np.asarray(direction.matrix, dtype=np.float64), direction.name,
                                       bank_sim=bank_sim, bank_sim_v2t=bank_sim_v2t,
                                       qb_beta=qb_beta, dsl_temperature=dsl_temperature)
            if rescored is None:
                continue
            post_dir = Direction(direction.name, rescored, direction.gt_index, direction.gt_mask,
                                 direction.label)
            labels = [_POSTPROC_LABEL[post], direction.label, ties_label]
            out.update(_tagged(post_dir, rank_summary(post_dir.bounds(), ks, ties), labels))
    return out
