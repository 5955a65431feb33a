"""DTW / soft-DTW / OTAM kernels: DP reference, brute-force paths, gamma -> 0, tslearn, masks.

Every test runs once per backend (the torch anti-diagonal kernel and the compiled numba one)."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator

import pytest
import torch

from vidlang.losses.alignment import (
    cosine_cost,
    dtw_backend,
    pairwise_sequence_distance,
    reference_distance,
    sequence_distance,
)

KINDS = ["dtw", "softdtw", "otam", "softotam"]
BACKENDS = ["torch", "numba"] if importlib.util.find_spec("numba") else ["torch"]


@pytest.fixture(autouse=True, params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    with dtw_backend(request.param):
        yield request.param


def _masks(rows: list[int], cols: list[int], n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = torch.tensor(rows)[:, None] > torch.arange(n)[None]
    c = torch.tensor(cols)[:, None] > torch.arange(m)[None]
    return r, c


def _enumerate_paths(n: int, m: int, otam: bool) -> list[list[tuple[int, int]]]:
    """Every monotone path from (0, 0) to (n-1, m-1); OTAM paths on the zero-padded grid
    (m + 2 columns) with vertical moves only in the first and last column."""
    width = m + 2 if otam else m
    paths: list[list[tuple[int, int]]] = []

    def walk(path: list[tuple[int, int]]) -> None:
        i, j = path[-1]
        if (i, j) == (n - 1, width - 1):
            paths.append(list(path))
            return
        for di, dj in ((1, 1), (1, 0), (0, 1)):
            ni, nj = i + di, j + dj
            if ni >= n or nj >= width:
                continue
            if otam and (di, dj) == (1, 0) and nj not in (0, width - 1):
                continue
            walk([*path, (ni, nj)])

    walk([(0, 0)])
    return paths


def _path_costs(cost: torch.Tensor, otam: bool) -> tuple[torch.Tensor, list[int]]:
    padded = torch.nn.functional.pad(cost, (1, 1)) if otam else cost
    paths = _enumerate_paths(cost.shape[0], cost.shape[1], otam)
    totals = torch.stack([sum(padded[i, j] for i, j in p) for p in paths])
    return totals, [len(p) for p in paths]


@pytest.mark.parametrize("kind", KINDS)
def test_matches_plain_dp_values_and_gradients(kind: str) -> None:
    gen = torch.Generator().manual_seed(0)
    n, m = 5, 7
    rows, cols = [5, 3, 1, 5, 2, 4], [7, 7, 4, 1, 6, 2]
    cost = torch.rand(len(rows), n, m, generator=gen, dtype=torch.float64, requires_grad=True)
    rmask, cmask = _masks(rows, cols, n, m)
    d = sequence_distance(cost, rmask, cmask, kind=kind, gamma=0.3)
    weights = torch.rand(len(rows), generator=gen, dtype=torch.float64)
    (grad,) = torch.autograd.grad((d * weights).sum(), cost)
    for b, (nb, mb) in enumerate(zip(rows, cols)):
        block = cost[b, :nb, :mb].detach().clone().requires_grad_(True)
        ref = reference_distance(block, kind=kind, gamma=0.3)
        (ref_grad,) = torch.autograd.grad(ref * weights[b], block)
        assert abs(float(d[b].detach()) - float(ref.detach())) < 1e-9
        torch.testing.assert_close(grad[b, :nb, :mb], ref_grad, atol=1e-9, rtol=0)
        outside = torch.ones(n, m, dtype=torch.bool)
        outside[:nb, :mb] = False
        assert bool((grad[b][outside] == 0).all())  # padding gets no gradient


@pytest.mark.parametrize("kind", KINDS)
def test_brute_force_path_enumeration(kind: str) -> None:
    gen = torch.Generator().manual_seed(1)
    otam = "otam" in kind
    gamma = 0.25
    for n, m in [(1, 1), (2, 3), (3, 3), (3, 2), (4, 3)]:
        cost = torch.rand(n, m, generator=gen, dtype=torch.float64)
        totals, lengths = _path_costs(cost, otam)
        if kind.startswith("soft"):
            expected = -gamma * torch.logsumexp(-totals / gamma, dim=0)
        else:
            expected = totals.min()
        got = sequence_distance(cost[None], kind=kind, gamma=gamma)[0]
        assert abs(float(got) - float(expected)) < 1e-10, (n, m)
        if not kind.startswith("soft"):
            best = int(totals.argmin())
            by_path = sequence_distance(cost[None], kind=kind, normalise="path")[0]
            assert abs(float(by_path) - float(totals[best]) / lengths[best]) < 1e-10


def test_soft_path_length_is_expected_length() -> None:
    gen = torch.Generator().manual_seed(2)
    cost = torch.rand(3, 4, generator=gen, dtype=torch.float64)
    gamma = 0.5
    totals, lengths = _path_costs(cost, otam=False)
    probs = torch.softmax(-totals / gamma, dim=0)
    expected_len = float((probs * torch.tensor(lengths, dtype=torch.float64)).sum())
    d = sequence_distance(cost[None], kind="softdtw", gamma=gamma)[0]
    by_path = sequence_distance(cost[None], kind="softdtw", gamma=gamma, normalise="path")[0]
    assert abs(float(by_path) - float(d) / expected_len) < 1e-10


@pytest.mark.parametrize("soft,hard", [("softdtw", "dtw"), ("softotam", "otam")])
def test_soft_tends_to_hard_as_gamma_vanishes(soft: str, hard: str) -> None:
    gen = torch.Generator().manual_seed(3)
    cost = torch.rand(4, 6, 9, generator=gen, dtype=torch.float64)
    exact = sequence_distance(cost, kind=hard)
    gaps = []
    for gamma in (1.0, 0.1, 0.01, 0.001):
        approx = sequence_distance(cost, kind=soft, gamma=gamma)
        gap = (exact - approx).abs().max()
        # soft-min lies within gamma * log(3) of the min at each of the n + m (+2) steps
        assert float(gap) <= gamma * math.log(3) * (6 + 9 + 2) + 1e-12
        gaps.append(float(gap))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.02


def test_padding_values_never_leak() -> None:
    gen = torch.Generator().manual_seed(4)
    cost = torch.rand(3, 4, 5, generator=gen, dtype=torch.float64)
    rmask, cmask = _masks([2, 4, 3], [5, 3, 1], 4, 5)
    poisoned = cost.clone()
    poisoned[~(rmask[:, :, None] & cmask[:, None, :])] = float("nan")
    for kind in KINDS:
        a = sequence_distance(cost, rmask, cmask, kind=kind)
        p = poisoned.clone().requires_grad_(True)
        b = sequence_distance(p, rmask, cmask, kind=kind)
        torch.testing.assert_close(a, b)
        b.sum().backward()
        assert torch.isfinite(p.grad).all()


def test_normalisations_and_errors() -> None:
    gen = torch.Generator().manual_seed(5)
    cost = torch.rand(2, 3, 4, generator=gen, dtype=torch.float64)
    rmask, cmask = _masks([3, 2], [4, 3], 3, 4)
    raw = sequence_distance(cost, rmask, cmask, kind="dtw")
    n = torch.tensor([3.0, 2.0], dtype=torch.float64)
    m = torch.tensor([4.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(sequence_distance(cost, rmask, cmask, kind="dtw",
                                                 normalise="n_plus_m"), raw / (n + m))
    torch.testing.assert_close(sequence_distance(cost, rmask, cmask, kind="dtw",
                                                 normalise="area"), raw / (n * m))
    with pytest.raises(ValueError, match="prefix"):
        sequence_distance(cost, torch.tensor([[True, False, True], [True, True, False]]))
    with pytest.raises(ValueError, match="no valid"):
        sequence_distance(cost, torch.tensor([[False] * 3, [True] * 3]))
    with pytest.raises(Exception, match="unknown sequence distance"):
        sequence_distance(cost, kind="lcss")
    with pytest.raises(ValueError, match="gamma"):
        sequence_distance(cost, kind="softdtw", gamma=0.0)


def test_pairwise_matches_per_pair_and_float32() -> None:
    gen = torch.Generator().manual_seed(6)
    text = torch.randn(3, 4, 8, generator=gen)
    video = torch.randn(5, 6, 8, generator=gen)
    tmask, _ = _masks([4, 2, 3], [1, 1, 1], 4, 1)
    _, vmask = _masks([1] * 5, [6, 3, 5, 1, 2], 1, 6)
    table = pairwise_sequence_distance(text, tmask, video, vmask, kind="dtw", chunk_pairs=4)
    for p in range(3):
        for v in range(5):
            c = cosine_cost(text[p:p + 1], video[v:v + 1])
            d = sequence_distance(c, tmask[p:p + 1], vmask[v:v + 1], kind="dtw")
            assert abs(float(table[p, v]) - float(d[0])) < 1e-5
    assert table.dtype == torch.float32


def test_matches_tslearn_soft_dtw() -> None:
    metrics = pytest.importorskip("tslearn.metrics")
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    for gamma in (0.1, 1.0):
        ours = sequence_distance(torch.cdist(x, y)[None] ** 2, kind="softdtw", gamma=gamma)
        # tslearn's pytorch backend: the same algorithm without numba's slow first compile
        theirs = metrics.soft_dtw(x, y, gamma=gamma, be="pytorch")
        assert abs(float(ours[0]) - float(theirs)) < 1e-8
