"""Feature stores and resampling: lazy reads vs loading everything, vectorised vs loop resampling.

Writes a synthetic canonical feature file (N videos of T x D float32, T drawn in [T_min, T_max],
seed 0) to a temporary folder, then measures in the same run:

* write throughput of ``write_canonical_h5`` (MB/s);
* random access: open the store and read one video (``open_feature_store``) vs the baseline of
  loading every video into a dict first, as naive loaders do: time and peak Python-heap memory
  (tracemalloc) of each, and their ratios;
* resampling every video with ``segment_average`` (MMN, P clips), ``fixed_bin_pool`` (CPL, 200
  bins) and ``uniform_pick`` (50 rows): videos/s, the cost relative to the baseline of reading
  those videos from the store (resampling should not be the bottleneck of a loader), and the
  speed-up over the upstream per-bin Python loop (results checked bit-identical).

    python benchmarks/bench_features.py            # full size: 1,000 videos, D = 500, T in [100, 400]
    python benchmarks/bench_features.py --quick    # 200 videos, D = 256, for `make bench`
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vidlang.data.features import (
    fixed_bin_pool,
    open_feature_store,
    segment_average,
    uniform_pick,
    write_canonical_h5,
)


def upstream_loop(feats: np.ndarray, n: int, clamp_last: bool) -> np.ndarray:
    """Baseline: the upstream per-bin Python loop (round edges, optionally clamp to T-1)."""
    t = len(feats)
    edges = np.round(np.arange(n + 1) / n * t).astype(np.int64)
    if clamp_last:
        edges[edges >= t] = t - 1
    return np.stack([feats[s:e].mean(axis=0) if e > s else feats[min(s, t - 1)]
                     for s, e in zip(edges[:-1], edges[1:])])


def timed(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_mib(fn: Callable[[], object]) -> float:
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    ap.add_argument("--videos", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=500)
    ap.add_argument("--t-min", type=int, default=100)
    ap.add_argument("--t-max", type=int, default=400)
    ap.add_argument("--clips", type=int, default=256, help="MMN segments (ActivityNet: 256)")
    args = ap.parse_args()
    if args.quick:
        args.videos, args.dim = 200, 256
    rng = np.random.default_rng(0)
    lengths = rng.integers(args.t_min, args.t_max + 1, args.videos)
    videos = [(f"v{i:06d}", rng.standard_normal((int(t), args.dim), dtype=np.float32), float(t) * 0.5)
              for i, t in enumerate(lengths)]
    total_mb = sum(v[1].nbytes for v in videos) / 1e6
    print(f"{args.videos} videos, D={args.dim}, T in [{args.t_min}, {args.t_max}], {total_mb:.0f} MB, seed 0")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.h5"
        t_write = timed(lambda: write_canonical_h5(path, videos, clip_seconds=0.5), repeat=1)
        print(f"write: {t_write:.2f} s, {total_mb / t_write:.0f} MB/s")

        probe = videos[len(videos) // 2][0]

        def lazy() -> np.ndarray:
            with open_feature_store(path) as store:
                return store[probe]

        def eager() -> np.ndarray:
            with open_feature_store(path) as store:
                everything = {vid: store[vid] for vid in store.video_ids()}
            return everything[probe]

        t_lazy, t_eager = timed(lazy), timed(eager, repeat=1)
        m_lazy, m_eager = peak_mib(lazy), peak_mib(eager)
        print(f"open + read one video: lazy {t_lazy * 1e3:.2f} ms / {m_lazy:.1f} MiB peak; "
              f"load-all baseline {t_eager * 1e3:.0f} ms / {m_eager:.0f} MiB peak; "
              f"speed-up x{t_eager / t_lazy:.0f}, memory ratio {m_lazy / m_eager:.4f}")

        with open_feature_store(path) as store:
            ids = store.video_ids()
            t_read = timed(lambda: [store[vid] for vid in ids])
            feats = [store[vid] for vid in ids]
    print(f"read all {len(ids)} videos from the store: {len(ids) / t_read:.0f} videos/s")
    cases = [
        (f"segment_average P={args.clips} (no L2)", lambda f: segment_average(f, args.clips, l2_normalise=False),
         lambda f: upstream_loop(f, args.clips, clamp_last=True)),
        ("fixed_bin_pool 200 bins", lambda f: fixed_bin_pool(f, 200),
         lambda f: upstream_loop(f, 200, clamp_last=False)),
        ("uniform_pick 50", lambda f: uniform_pick(f, 50), None),
    ]
    for name, fn, loop in cases:
        t_fn = timed(lambda fn=fn: [fn(f) for f in feats])
        line = f"{name}: {len(feats) / t_fn:.0f} videos/s, {t_fn / t_read:.2f}x the time of reading them"
        if loop is not None:
            assert all(np.array_equal(fn(f), loop(f)) for f in feats[:5])  # bit-identical
            t_loop = timed(lambda loop=loop: [loop(f) for f in feats], repeat=1)
            line += f"; upstream loop {len(feats) / t_loop:.0f} videos/s, speed-up x{t_loop / t_fn:.1f}"
        print(line)

if __name__ == "__main__":
    main()
