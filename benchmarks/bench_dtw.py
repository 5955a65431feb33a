"""Soft-DTW forward + backward throughput: vidlang's anti-diagonal kernel vs baselines.

For a batch of B pairs of n x n cost matrices (B = 256; n = 32 and 128 at full size), times
``vidlang.losses.alignment.sequence_distance(kind="softdtw", gamma=0.1)`` forward + backward
(gradient with respect to the cost matrices) against, in the same run:

* the plain O(n*m) dynamic programme (``reference_distance``: a Python loop over cells,
  vectorised over the batch, autograd backward), and
* tslearn's numba soft-DTW (``SoftDTW(D).compute()`` + ``.grad()``, one pair at a time; its
  JIT compilation is excluded by a warm-up call), when tslearn is installed.

Before timing, values and gradients of every path are checked to agree (max |diff|). Prints
pairs/s of each path and the ratios (the plain DP is timed once, the others best of N). Inputs: uniform random costs, seed 0, float32 for the
torch paths (tslearn computes in float64). Threads: ``--threads`` (default 1).

    python benchmarks/bench_dtw.py            # full: B=256, n in {32, 128}, best of 3
    python benchmarks/bench_dtw.py --quick    # B=64, n in {32, 64}, best of 2 (for `make bench`)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from vidlang.losses.alignment import reference_distance, sequence_distance

GAMMA = 0.1


def ours(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = cost.detach().clone().requires_grad_(True)
    d = sequence_distance(c, kind="softdtw", gamma=GAMMA)
    d.sum().backward()
    return d.detach(), c.grad


def plain_dp(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    c = cost.detach().clone().requires_grad_(True)
    d = reference_distance(c, kind="softdtw", gamma=GAMMA)
    d.sum().backward()
    return d.detach(), c.grad


def tslearn_path() -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None:
    try:
        from tslearn.metrics import SoftDTW
    except ImportError:
        return None

    def run(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values, grads = [], []
        for matrix in cost.double().numpy():
            sdtw = SoftDTW(matrix, gamma=GAMMA)
            values.append(sdtw.compute())
            grads.append(sdtw.grad())
        return torch.tensor(values), torch.from_numpy(np.stack(grads))

    return run


def best_time(fn: Callable[[torch.Tensor], object], cost: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(cost)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-plain", action="store_true", help="skip the slow plain-DP baseline")
    args = p.parse_args()
    batch = args.batch or (64 if args.quick else 256)
    sizes = args.sizes or ([32, 64] if args.quick else [32, 128])
    repeats = args.repeats or (2 if args.quick else 3)
    torch.set_num_threads(args.threads)
    paths: dict[str, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {"vidlang": ours}
    if not args.no_plain:
        paths["plain DP"] = plain_dp
    ts = tslearn_path()
    if ts is not None:
        paths["tslearn"] = ts
    else:
        print("tslearn not installed: no tslearn baseline (pip install 'vidlang[dev]')")
    print(f"soft-DTW forward+backward, gamma={GAMMA}, batch={batch}, threads={args.threads}, "
          f"best of {repeats}, seed 0")
    for n in sizes:
        cost = torch.rand(batch, n, n, generator=torch.Generator().manual_seed(0))
        ref_val, ref_grad = ours(cost)
        for name, fn in paths.items():  # correctness and warm-up (tslearn's numba JIT)
            if name != "vidlang":
                val, grad = fn(cost[:2])
                dv = float((val.float() - ref_val[:2]).abs().max())
                dg = float((grad.float() - ref_grad[:2]).abs().max())
                print(f"  n={n}: |{name} - vidlang| value {dv:.2e}, gradient {dg:.2e}")
        # the plain DP is timed once: it is the slow baseline (minutes at n = 128)
        rates = {name: batch / best_time(fn, cost, 1 if name == "plain DP" else repeats)
                 for name, fn in paths.items()}
        line = ", ".join(f"{name} {rate:,.0f} pairs/s" for name, rate in rates.items())
        ratios = ", ".join(f"{rates['vidlang'] / rate:.1f}x {name}"
                           for name, rate in rates.items() if name != "vidlang")
        print(f"n={n}: {line}; vidlang = {ratios}")


if __name__ == "__main__":
    main()
