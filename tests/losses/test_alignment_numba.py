"""The compiled (numba) DTW / soft-DTW / OTAM kernel: equal to the plain DP, to tslearn and to
the torch kernel (values and gradients, ragged masks, gamma 0.01 .. 10), the same numbers for
every strip height and block width (strips of rows are the kernel's wavefront), the float32
path within float32 rounding of the float64 one on grids two strips tall, gradcheck,
determinism across threads, and how the backend is chosen."""

from __future__ import annotations

import pytest
import torch

from vidlang.losses.alignment import (
    BACKEND_ENV,
    SEQUENCE_DISTANCES,
    dtw_backend,
    reference_distance,
    resolve_backend,
    sequence_distance,
)

pytest.importorskip("numba")

KINDS = ["dtw", "softdtw", "otam", "softotam"]
GAMMAS = [0.01, 0.1, 1.0, 10.0]
TOL = {torch.float32: 1e-5, torch.float64: 1e-9}
ROWS, COLS = [5, 3, 1, 5, 2, 4, 5], [7, 7, 4, 1, 6, 2, 3]  # ragged, incl. 1-long sequences


def _masks(n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.tensor(ROWS)[:, None] > torch.arange(n)[None],
            torch.tensor(COLS)[:, None] > torch.arange(m)[None])


def _value_and_grad(cost: torch.Tensor, kind: str, gamma: float, backend: str,
                    normalise: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    c = cost.detach().clone().requires_grad_(True)
    rmask, cmask = _masks(*cost.shape[1:])
    d = sequence_distance(c, rmask, cmask, kind=kind, gamma=gamma, normalise=normalise,
                          backend=backend)
    weights = torch.linspace(0.5, 1.5, len(ROWS), dtype=cost.dtype)
    (grad,) = torch.autograd.grad((d * weights).sum(), c)
    return d.detach(), grad


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_plain_dp_ragged_all_gammas(kind: str, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(0)
    cost = torch.rand(len(ROWS), 5, 7, generator=gen, dtype=torch.float64).to(dtype)
    weights = torch.linspace(0.5, 1.5, len(ROWS), dtype=torch.float64)
    for gamma in GAMMAS if kind.startswith("soft") else [0.0]:
        d, grad = _value_and_grad(cost, kind, gamma, "numba")
        assert d.dtype == dtype and grad.dtype == dtype
        for b, (nb, mb) in enumerate(zip(ROWS, COLS)):
            block = cost[b, :nb, :mb].double().requires_grad_(True)
            ref = reference_distance(block, kind=kind, gamma=gamma)
            (ref_grad,) = torch.autograd.grad(ref * weights[b], block)
            assert abs(float(d[b]) - float(ref.detach())) < TOL[dtype]
            torch.testing.assert_close(grad[b, :nb, :mb].double(), ref_grad, rtol=0,
                                       atol=TOL[dtype])
            assert bool((grad[b, nb:] == 0).all()) and bool((grad[b, :, mb:] == 0).all())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("normalise", ["none", "path"])
def test_same_numbers_as_the_torch_kernel(kind: str, normalise: str) -> None:
    gen = torch.Generator().manual_seed(1)
    cost = torch.rand(len(ROWS), 5, 7, generator=gen, dtype=torch.float64) * 3.0
    for gamma in (0.05, 2.0):
        d_n, g_n = _value_and_grad(cost, kind, gamma, "numba", normalise)
        d_t, g_t = _value_and_grad(cost, kind, gamma, "torch", normalise)
        torch.testing.assert_close(d_n, d_t, rtol=0, atol=1e-12)
        torch.testing.assert_close(g_n, g_t, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_tslearn_value_and_gradient(dtype: torch.dtype) -> None:
    softdtw = pytest.importorskip("tslearn.metrics").SoftDTW
    gen = torch.Generator().manual_seed(2)
    cost = torch.rand(3, 9, 6, generator=gen, dtype=torch.float64).to(dtype) * 2.0
    for gamma in GAMMAS:
        c = cost.clone().requires_grad_(True)
        d = sequence_distance(c, kind="softdtw", gamma=gamma, backend="numba")
        d.sum().backward()
        for b in range(cost.shape[0]):
            # tslearn's pytorch backend: the same recursions without numba's slow first compile
            theirs = softdtw(cost[b].double(), gamma=gamma, be="pytorch",
                             compute_with_backend=True)
            assert abs(float(d[b].detach()) - float(theirs.compute())) < TOL[dtype]
            torch.testing.assert_close(c.grad[b].double(), theirs.grad(), rtol=0,
                                       atol=TOL[dtype])


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_float64(kind: str) -> None:
    gen = torch.Generator().manual_seed(3)
    cost = torch.rand(3, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    rmask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    cmask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)

    def f(c: torch.Tensor) -> torch.Tensor:
        return sequence_distance(c, rmask, cmask, kind=kind, gamma=0.3, backend="numba")

    assert torch.autograd.gradcheck(f, (cost,), eps=1e-6, atol=1e-7)


def test_no_overflow_at_extreme_gamma_and_costs() -> None:
    gen = torch.Generator().manual_seed(4)
    cost = torch.rand(4, 12, 10, generator=gen, dtype=torch.float64) * 500.0
    for kind in ("softdtw", "softotam"):
        for gamma in (0.01, 10.0):
            d, grad = _value_and_grad(cost[:, :5, :7].repeat(2, 1, 1)[:len(ROWS)], kind, gamma,
                                      "numba")
            assert torch.isfinite(d).all() and torch.isfinite(grad).all()
            d_t, grad_t = _value_and_grad(cost[:, :5, :7].repeat(2, 1, 1)[:len(ROWS)], kind,
                                          gamma, "torch")
            torch.testing.assert_close(d, d_t, rtol=1e-12, atol=1e-9)
            torch.testing.assert_close(grad, grad_t, rtol=0, atol=1e-9)


def test_deterministic_and_independent_of_threads_and_blocking() -> None:
    import numba

    gen = torch.Generator().manual_seed(5)
    cost = torch.rand(37, 6, 8, generator=gen)  # 37 pairs: blocks of 8 with a ragged tail
    first = _run_all(cost)
    assert all(torch.equal(a, b) for a, b in zip(first, _run_all(cost)))
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        one = _run_all(cost)
    finally:
        numba.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(first, one))
    # a pair's numbers do not depend on which block or lane it lands in
    alone = _run_all(cost[5:6])
    assert all(torch.equal(a[5:6], b) for a, b in zip(first, alone))


def _run_all(cost: torch.Tensor) -> list[torch.Tensor]:
    c = cost.clone().requires_grad_(True)
    d = sequence_distance(c, kind="softdtw", gamma=0.1, backend="numba")
    d.sum().backward()
    return [d.detach(), c.grad]


def _ragged(batch: int, n: int, m: int, seed: int, dtype: torch.dtype
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """cost [batch, n, m] in [0, 2) with ragged lengths (incl. 1 and the full size)."""
    gen = torch.Generator().manual_seed(seed)
    cost = (torch.rand(batch, n, m, generator=gen, dtype=torch.float64) * 2.0).to(dtype)
    rows = torch.randint(1, n + 1, (batch,), generator=gen)
    cols = torch.randint(1, m + 1, (batch,), generator=gen)
    rows[0], cols[0], rows[-1], cols[1] = n, m, 1, 1
    return cost, rows, cols


@pytest.mark.parametrize("kind", KINDS)
def test_every_strip_height_and_block_width_gives_the_same_numbers(kind: str) -> None:
    from vidlang.losses.alignment_numba import run_kernel

    spec = SEQUENCE_DISTANCES.get(kind)
    gamma = 0.3 if spec.soft else 0.0
    for dtype in (torch.float64, torch.float32):
        cost, rows, cols = _ragged(11, 13, 9, seed=7, dtype=dtype)
        # the torch kernel (float64) with its path lengths and gradient
        c = cost.double().requires_grad_(True)
        ref_val, ref_len = spec.kernel(c, rows, cols, gamma, True)
        (ref_grad,) = torch.autograd.grad(ref_val.sum(), c)
        first = None
        # strips of 1, 2, 5 rows (13 rows: ragged last strip) and one strip; 1, 3, 8 lanes
        for strip in (1, 2, 5, 32):
            for lanes in (1, 3, 8):
                got = run_kernel(cost, rows, cols, gamma, spec.otam, True, True, lanes=lanes,
                                 strip=strip)
                assert got[2].dtype == dtype
                tol = 1e-12 if dtype == torch.float64 else 2e-6
                torch.testing.assert_close(got[0], ref_val.detach(), rtol=0, atol=tol)
                torch.testing.assert_close(got[1], ref_len, rtol=0, atol=tol)
                torch.testing.assert_close(got[2].double(), ref_grad, rtol=0, atol=tol)
                if first is None:
                    first = got
                assert all(torch.equal(a, b) for a, b in zip(first, got)), (strip, lanes)


@pytest.mark.parametrize("kind", ["softdtw", "softotam"])
def test_float32_path_within_float32_rounding_on_tall_grids(kind: str) -> None:
    """float32 inputs run float32 exp / log / weights (values still summed in float64): on
    grids two strips tall (70 rows) the values stay within float32 rounding of the float64 kernel's
    (absolute 1e-6 + 6e-8 relative, 6e-8 being float32's rounding; relative because at
    gamma 10 the values reach -1000, where one float32 step is 6e-5) and the gradients
    within 2e-6 absolute."""
    from vidlang.losses.alignment_numba import run_kernel

    otam = SEQUENCE_DISTANCES.get(kind).otam
    cost, rows, cols = _ragged(9, 70, 60, seed=8, dtype=torch.float32)
    for gamma in GAMMAS:
        v32, l32, g32 = run_kernel(cost, rows, cols, gamma, otam, True, True)
        v64, l64, g64 = run_kernel(cost.double(), rows, cols, gamma, otam, True, True)
        assert torch.isfinite(v32).all() and torch.isfinite(g32).all()
        assert bool(((v32 - v64).abs() <= 1e-6 + 6e-8 * v64.abs()).all()), gamma
        torch.testing.assert_close(l32, l64, rtol=0, atol=1e-5)
        torch.testing.assert_close(g32.double(), g64, rtol=0, atol=2e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bit_identical_with_one_or_two_threads_on_tall_ragged_grids(dtype: torch.dtype) -> None:
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs two numba threads")
    cost, rows, cols = _ragged(37, 70, 40, seed=9, dtype=dtype)  # 5 blocks, 2 strips
    rmask = torch.arange(70)[None] < rows[:, None]
    cmask = torch.arange(40)[None] < cols[:, None]
    threads = numba.get_num_threads()
    runs = []
    try:
        for n_threads in (2, 1):
            numba.set_num_threads(n_threads)
            for kind in KINDS:
                c = cost.clone().requires_grad_(True)
                d = sequence_distance(c, rmask, cmask, kind=kind, gamma=0.1, normalise="path",
                                      backend="numba")
                d.sum().backward()
                runs.append((d.detach(), c.grad))
    finally:
        numba.set_num_threads(threads)
    half = len(runs) // 2
    for (d2, g2), (d1, g1) in zip(runs[:half], runs[half:]):
        assert torch.equal(d2, d1) and torch.equal(g2, g1)


@pytest.mark.parametrize("kind", KINDS)
def test_numba_f64_backend_gives_float32_inputs_the_float64_numbers(kind: str) -> None:
    """``numba_f64`` (the kernel's float32 behaviour before issue 16): float32 costs give the
    float64 kernel's values and gradients, rounded to float32, bit for bit."""
    cost, rows, cols = _ragged(9, 12, 10, seed=10, dtype=torch.float32)
    rmask = torch.arange(12)[None] < rows[:, None]
    cmask = torch.arange(10)[None] < cols[:, None]
    out = []
    for c_in, backend in ((cost, "numba_f64"), (cost.double(), "numba")):
        c = c_in.clone().requires_grad_(True)
        d = sequence_distance(c, rmask, cmask, kind=kind, gamma=0.1, backend=backend)
        d.sum().backward()
        out.append((d.detach(), c.grad))
    (d32, g32), (d64, g64) = out
    assert d32.dtype == g32.dtype == torch.float32
    assert torch.equal(d32, d64.float()) and torch.equal(g32, g64.float())


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    c32, c16 = torch.rand(2, 3, 3), torch.rand(2, 3, 3).half()
    assert resolve_backend(None, c32) == "numba"
    assert resolve_backend(None, c32.double()) == "numba"
    assert resolve_backend(None, c16) == "torch"  # a float type numba does not run
    assert resolve_backend("torch", c32) == "torch"
    assert resolve_backend("numba_f64", c32) == "numba_f64"
    with dtw_backend("torch"):
        assert resolve_backend(None, c32) == "torch"
        assert resolve_backend("numba", c32) == "numba"  # an explicit argument wins
    monkeypatch.setenv(BACKEND_ENV, "torch")
    assert resolve_backend(None, c32) == "torch"
    monkeypatch.setenv(BACKEND_ENV, "cuda")
    with pytest.raises(ValueError, match=f"{BACKEND_ENV}.*'cuda'"):
        resolve_backend(None, c32)
    with pytest.raises(ValueError, match="float32 / float64"):
        sequence_distance(c16, backend="numba")
    with pytest.raises(ValueError, match="float32 / float64"):
        sequence_distance(c16, backend="numba_f64")
    with pytest.raises(ValueError, match="unknown DTW backend"):
        with dtw_backend("fast"):
            pass


def test_no_gradient_work_without_grad() -> None:
    cost = torch.rand(3, 4, 5)
    with torch.no_grad():
        d = sequence_distance(cost.requires_grad_(True), kind="softotam", backend="numba")
    assert not d.requires_grad
    torch.testing.assert_close(d, sequence_distance(cost.detach(), kind="softotam",
                                                    backend="torch"), rtol=0, atol=1e-6)


def test_concurrent_callers_from_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    gen = torch.Generator().manual_seed(6)
    costs = [torch.rand(24, 7, 9, generator=gen, dtype=torch.float64) for _ in range(4)]
    alone = [sequence_distance(c, kind="softotam", backend="numba") for c in costs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(
            lambda c: sequence_distance(c, kind="softotam", backend="numba"), costs))
    assert all(torch.equal(a, b) for a, b in zip(alone, together))
