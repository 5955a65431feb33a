"""vidlang.ops.windows / vidlang.ops.nms: the one temporal IoU and the one NMS.

Each former copy of the IoU formula (metrics, NMS, QVHighlights, MMN and multi-level losses,
CPL, zero-shot, SynthVL probe) is written out below as it stood before the merge, and the
shared function, called with that caller's parameters, must give the same bits on random
windows (ties, touching and zero-length windows, identical points and reversed windows
included), plus hand-computed cases.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidlang.errors import ConfigError
from vidlang.models.zeroshot import ZeroShotConfig, windows_from_similarity
from vidlang.ops.nms import batched_nms, nms, nms_windows, soft_nms
from vidlang.ops.windows import (
    iou_bounds,
    iou_to_gt_sets,
    max_iou_to_gt,
    paired_iou,
    pairwise_window_iou,
    temporal_iou,
    window_iou,
)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and bit pattern (so -0.0 != 0.0 and NaN == NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes()


def same_tensor_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and same_bits(a.numpy(), b.numpy())


def random_windows(rng: np.random.Generator, shape: tuple[int, ...], reversed_share: float = 0.1
                   ) -> np.ndarray:
    """Windows on a coarse grid (many ties, touching and zero-length windows), a few reversed,
    some continuous."""
    start = rng.integers(0, 12, size=shape) * 0.5
    length = rng.integers(0, 8, size=shape) * 0.5
    cont = rng.random(shape) < 0.3
    start = np.where(cont, rng.random(shape) * 6, start)
    length = np.where(cont, rng.random(shape) * 4, length)
    w = np.stack([start, start + length], axis=-1)
    flip = rng.random(shape) < reversed_share
    w[flip] = w[flip][:, ::-1]
    return w


# ---- the former copies, verbatim ----------------------------------------------------------------
def old_metrics_bounds(s1, e1, s2, e2, union):  # metrics/iou.py _iou_from_bounds
    inter = np.maximum(np.minimum(e1, e2) - np.maximum(s1, s2), 0.0)
    if union == "hull":
        uni = np.maximum(e1, e2) - np.minimum(s1, s2)
    else:
        uni = (e1 - s1) + (e2 - s2) - inter
    out = np.zeros(np.broadcast(inter, uni).shape, dtype=np.float64)
    np.divide(inter, uni, out=out, where=uni > 0)
    return out


def old_iou_with_one(starts, ends, s, e):  # metrics/nms.py _iou_with_one
    inter = np.minimum(ends, e[:, None])
    tmp = np.maximum(starts, s[:, None])
    inter -= tmp
    np.maximum(inter, 0.0, out=inter)
    union = np.maximum(ends, e[:, None])
    np.minimum(starts, s[:, None], out=tmp)
    union -= tmp
    with np.errstate(invalid="ignore", divide="ignore"):
        np.divide(inter, union, out=inter)
    return inter


def old_batched_nms(windows, scores, valid, thresh, rounds, kind="hard", sigma=0.5, min_score=0.0):
    q, p = scores.shape
    rounds = max(0, min(int(rounds), p))
    kept = np.full((q, rounds), -1, dtype=np.int64)
    if q == 0 or p == 0 or rounds == 0:
        return kept
    rows = np.arange(q)
    starts = np.ascontiguousarray(windows[..., 0], dtype=np.float64)
    ends = np.ascontiguousarray(windows[..., 1], dtype=np.float64)
    current = np.where(valid, scores.astype(np.float64), -np.inf)
    for r in range(rounds):
        best = current.argmax(axis=1)
        has = current[rows, best] > -np.inf
        if not has.any():
            break
        kept[:, r] = np.where(has, best, -1)
        current[rows, best] = -np.inf
        if kind == "hard" and thresh is None:
            continue
        iou = old_iou_with_one(starts, ends, starts[rows, best], ends[rows, best])
        if kind == "hard":
            current[iou > thresh] = -np.inf
        else:
            with np.errstate(invalid="ignore"):
                current *= np.exp(-(iou**2) / sigma)
                current[current < min_score] = -np.inf
    return kept


def old_qvh_rows(windows, gt, gt_valid):  # metrics/qvhighlights.py temporal_iou_rows
    s1, e1 = windows[:, None, 0], windows[:, None, 1]
    inter = np.maximum(np.minimum(e1, gt[:, :, 1]) - np.maximum(s1, gt[:, :, 0]), 0.0)
    union = (e1 - s1) + (gt[:, :, 1] - gt[:, :, 0]) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)
    return np.where(gt_valid, iou, -1.0)


def old_mmn_iou_1d(a, b):  # losses/mmn.py
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def old_multilevel_iou(a, b):  # losses/multilevel.py temporal_iou
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1])
             - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp_min(0)
    union = (torch.maximum(a[:, None, 1], b[None, :, 1])
             - torch.minimum(a[:, None, 0], b[None, :, 0])).clamp_min(1e-9)
    return inter / union


def old_cpl_iou(a, b):  # models/cpl.py window_iou
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    hull = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    return inter / hull.clamp(min=1e-12)


def old_scalar_iou(a, b):  # models/zeroshot.py _iou, data/synthvl/probe.py iou
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def old_zeroshot_nms(ranked, nms_iou, top_k):  # models/zeroshot.py greedy loop
    kept = []
    for window, score in ranked:
        if all(old_scalar_iou(window, (w[0], w[1])) <= nms_iou for w in kept):
            kept.append([window[0], window[1], score])
        if len(kept) == top_k:
            break
    return kept


SEEDS = range(6)


# ---- NumPy: metrics, NMS, QVHighlights, scalar copies ------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("union", ["hull", "sum"])
def test_metric_functions_match_old_formula(seed: int, union: str) -> None:
    rng = np.random.default_rng(seed)
    a, b = random_windows(rng, (37,)), random_windows(rng, (23,))
    old = old_metrics_bounds(a[:, None, 0], a[:, None, 1], b[None, :, 0], b[None, :, 1], union)
    assert same_bits(temporal_iou(a, b, union), old)
    c = random_windows(rng, (37,))
    assert same_bits(paired_iou(a, c, union), old_metrics_bounds(a[:, 0], a[:, 1], c[:, 0], c[:, 1], union))
    pred, gt = random_windows(rng, (9, 7)), random_windows(rng, (9, 4))
    valid = rng.random((9, 4)) < 0.7
    old_sets = np.where(valid[:, None, :], old_metrics_bounds(
        pred[:, :, None, 0], pred[:, :, None, 1], gt[:, None, :, 0], gt[:, None, :, 1], union), -1.0)
    assert same_bits(iou_to_gt_sets(pred, gt, valid, union), old_sets)
    assert same_bits(max_iou_to_gt(pred, gt, valid, union),
                     np.maximum(old_sets.max(axis=-1, initial=-1.0), 0.0))


@pytest.mark.parametrize("seed", SEEDS)
def test_nms_iou_and_qvh_rows_match_old_formula(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    w = random_windows(rng, (8, 30))
    starts, ends = np.ascontiguousarray(w[..., 0]), np.ascontiguousarray(w[..., 1])
    pick = rng.integers(0, 30, size=8)
    s, e = starts[np.arange(8), pick], ends[np.arange(8), pick]
    new = iou_bounds(starts, ends, s[:, None], e[:, None], guard="none")
    assert same_bits(new, old_iou_with_one(starts, ends, s, e))
    first, gt = random_windows(rng, (11,)), random_windows(rng, (11, 5))
    valid = rng.random((11, 5)) < 0.8
    new_rows = iou_to_gt_sets(first[:, None], gt, valid, union="sum", guard="nonzero")[:, 0]
    assert same_bits(new_rows, old_qvh_rows(first, gt, valid))


def test_scalar_copies_match_paired_iou() -> None:
    rng = np.random.default_rng(7)
    a, b = random_windows(rng, (400,)), random_windows(rng, (400,))
    old = np.array([old_scalar_iou(tuple(x), tuple(y)) for x, y in zip(a.tolist(), b.tolist())])
    assert same_bits(paired_iou(a, b), old)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kind,thresh", [("hard", 0.5), ("hard", 0.0), ("hard", None),
                                         ("soft", None)])
def test_batched_nms_matches_old(seed: int, kind: str, thresh: float | None) -> None:
    rng = np.random.default_rng(200 + seed)
    w = random_windows(rng, (6, 25), reversed_share=0.0)
    scores = np.round(rng.random((6, 25)), 1)  # ties
    valid = rng.random((6, 25)) < 0.9
    for rounds in (1, 5, 25):
        new = batched_nms(w, scores, valid, thresh, rounds, kind=kind)
        assert np.array_equal(new, old_batched_nms(w, scores, valid, thresh, rounds, kind=kind))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("nms_iou,top_k", [(0.7, 10), (0.3, 3), (0.0, 10), (1.0, 0), (0.5, -1)])
def test_zeroshot_nms_matches_old_greedy_loop(seed: int, nms_iou: float, top_k: int) -> None:
    rng = np.random.default_rng(300 + seed)
    sim = np.round(rng.random(40), 1)
    cfg = ZeroShotConfig(nms_iou=nms_iou, top_k=top_k)
    new = windows_from_similarity(sim, 17.3, cfg)
    # the ranked candidates, rebuilt as windows_from_similarity builds them
    from vidlang.models.zeroshot import runs_above

    n, step = len(sim), 17.3 / len(sim)
    median, top = float(np.median(sim)), float(sim.max())
    cands = {}
    for level in cfg.levels:
        for a, b in runs_above(sim, median + level * (top - median), cfg.min_clips):
            outside = np.concatenate([sim[:a], sim[b:]])
            cands[(a, b)] = float(sim[a:b].mean() - (outside.mean() if len(outside) else median))
    ranked = sorted(cands.items(), key=lambda kv: (-kv[1], kv[0]))
    old = old_zeroshot_nms([((a * step, min(b * step, 17.3)), s) for (a, b), s in ranked],
                           nms_iou, top_k)
    assert new == old and len(new) > 0
    assert n == 40


# ---- torch: MMN targets, multi-level negatives, CPL votes ---------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_copies_match_window_iou(seed: int, dtype: torch.dtype) -> None:
    rng = np.random.default_rng(400 + seed)
    a = torch.as_tensor(random_windows(rng, (13,)), dtype=dtype)
    b = torch.as_tensor(random_windows(rng, (9,)), dtype=dtype)
    # tiny positive unions, where the eps matter
    a[0] = torch.tensor([1.0, 1.0 + 1e-13], dtype=dtype)
    b[0] = torch.tensor([1.0, 1.0 + 1e-13], dtype=dtype)
    a[1] = torch.tensor([2.0, 2.0 + 1e-10], dtype=dtype)
    b[1] = torch.tensor([2.0, 2.0 + 1e-10], dtype=dtype)
    assert same_tensor_bits(window_iou(a[:, None], b[None], guard="positive"),
                            old_mmn_iou_1d(a[:, None], b[None]))
    assert same_tensor_bits(pairwise_window_iou(a, b, eps=1e-9), old_multilevel_iou(a, b))
    assert same_tensor_bits(window_iou(a[:, None], b[None]), old_cpl_iou(a[:, None], b[None]))
    boxes = torch.as_tensor(random_windows(rng, (3, 5)), dtype=dtype)
    assert same_tensor_bits(window_iou(boxes.unsqueeze(2), boxes.unsqueeze(1)),
                            old_cpl_iou(boxes.unsqueeze(2), boxes.unsqueeze(1)))


def test_torch_eps_and_guard_change_only_degenerate_windows() -> None:
    a = torch.tensor([[0.0, 4.0], [1.0, 1.0], [0.0, 1e-10], [float("nan"), 1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 4.0], [1.0, 1.0], [0.0, 1e-10], [0.0, 1.0]], dtype=torch.float64)
    assert window_iou(a, b).tolist()[:3] == [0.75, 0.0, 1.0]
    assert pairwise_window_iou(a[2:3], b[2:3], eps=1e-9).item() == pytest.approx(0.1)
    assert torch.isnan(window_iou(a, b)[3])  # clamp keeps NaN ...
    assert window_iou(a, b, guard="positive")[3].item() == 0.0  # ... the union > 0 guard gives 0
    with pytest.raises(ConfigError, match="guard"):
        window_iou(a, b, guard="nope")


# ---- hand-computed cases ------------------------------------------------------------------------
def test_hand_values_numpy() -> None:
    iou = temporal_iou([[0, 10], [5, 15], [0, 5]], [[0, 10], [5, 10], [20, 30]])
    assert iou.tolist() == [[1.0, 0.5, 0.0], [1 / 3, 0.5, 0.0], [0.5, 0.0, 0.0]]
    assert paired_iou([0.0, 10.0], [5.0, 15.0], union="sum") == pytest.approx(1 / 3)
    point = iou_bounds(np.array([3.0]), np.array([3.0]), np.array([3.0]), np.array([3.0]), guard="none")
    assert np.isnan(point[0])  # 0 / 0 in NMS: never suppresses
    assert temporal_iou([[3, 3]], [[3, 3]])[0, 0] == 0.0
    rev = iou_bounds(np.array([5.0]), np.array([3.0]), np.array([6.0]), np.array([4.0]),
                     union="sum", guard="nonzero")
    assert rev[0] == 0.0 and np.signbit(rev[0])  # union -4: -0.0, as moment_detr's formula
    with pytest.raises(ConfigError, match="union"):
        temporal_iou([[0, 1]], [[0, 1]], union="nope")


def test_hand_values_nms() -> None:
    w = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0], [0.0, 5.0]])
    s = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms(w, s, 0.5).tolist() == [0, 2, 3]  # [1, 10] has IoU 0.9 with [0, 10]
    assert nms(w, s, 0.5, topk=2).tolist() == [0, 2]
    assert nms(w, s, 0.95).tolist() == [0, 1, 2, 3]
    assert soft_nms(w, s).tolist()[:2] == [0, 2]  # [1, 10] decays to 0.8 * exp(-0.81 / 0.5)
    rows = np.column_stack([w, s])
    assert nms_windows(rows, 0.5) == [[0.0, 10.0, 0.9], [20.0, 30.0, 0.7], [0.0, 5.0, 0.6]]
