"""Speed of the vectorised metrics against a naive per-query loop, in the same run.

* Grounding: Q queries x P candidate windows (default 100,000 x 100), mmn preset (greedy
  NMS 0.5, R@1/R@5 at IoU 0.3/0.5/0.7, mIoU) on padded arrays; plus the full dict path
  (parsing moment_detr-style dicts) on a 10,000-query slice.
* Retrieval: an N x N similarity matrix (default 10,000 x 10,000, float32), t2v and v2t
  R@1/5/10/50, MdR, MnR with average tie handling.

The naive baselines (one Python iteration per query: sort, greedy NMS, IoU; one argsort per
retrieval row) run on a subsample; their throughput gives the speed-up ratio, and their
numbers are checked against the vectorised ones. Target: each full-size metric under 5 s.
Data are random with a fixed seed (``--seed``, default 0).

    python benchmarks/bench_metrics.py            # full size (what `make bench` runs)
    python benchmarks/bench_metrics.py --quick    # 20,000 x 100 and 3,000 x 3,000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vidlang.metrics import evaluate_grounding, resolve_convention, retrieval_metrics, temporal_iou
from vidlang.metrics.grounding import score_arrays
from vidlang.metrics.inputs import WindowArrays

DURATION = 120.0


def random_windows(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    start = rng.uniform(0, DURATION - 1, shape)
    length = rng.uniform(1, DURATION / 2, shape)
    return np.stack([start, np.minimum(start + length, DURATION)], axis=-1)


def grounding_arrays(q: int, p: int, seed: int) -> WindowArrays:
    rng = np.random.default_rng(seed)
    return WindowArrays(
        qids=[str(i) for i in range(q)], durations=np.full(q, DURATION),
        pred=random_windows(rng, (q, p)), scores=rng.random((q, p)),
        pred_valid=np.ones((q, p), dtype=bool), gt=random_windows(rng, (q, 1)),
        gt_valid=np.ones((q, 1), dtype=bool))


def naive_grounding(a: WindowArrays, n: int, thresholds=(0.3, 0.5, 0.7), nms_thresh=0.5) -> dict:
    """Per-query loop in the style of the reference evaluators (sort, greedy NMS with one
    vectorised IoU row per kept window, IoU >=)."""
    hits = {(k, m): 0 for k in (1, 5) for m in thresholds}
    miou = 0.0
    for i in range(n):
        order = np.argsort(-a.scores[i], kind="stable")
        windows = a.pred[i][order]
        kept: list[int] = []
        suppressed = np.zeros(len(windows), dtype=bool)
        for j in range(len(windows)):  # upstream style: one window vs the rest per step
            if suppressed[j]:
                continue
            kept.append(j)
            suppressed |= temporal_iou(windows[j], windows)[0] > nms_thresh
        ious = temporal_iou(windows[kept], a.gt[i]).max(axis=1)
        miou += ious[0]
        for k, m in hits:
            hits[(k, m)] += bool((ious[:k] >= m).any())
    out = {f"R@{k},IoU>={m:g} [mmn]": 100.0 * h / n for (k, m), h in hits.items()}
    out["mIoU [mmn]"] = 100.0 * miou / n
    return out


def subset(a: WindowArrays, n: int) -> WindowArrays:
    return WindowArrays(a.qids[:n], a.durations[:n], a.pred[:n].copy(), a.scores[:n],
                        a.pred_valid[:n], a.gt[:n].copy(), a.gt_valid[:n])


def bench_grounding(q: int, p: int, naive_n: int, dict_n: int, seed: int) -> None:
    conv = resolve_convention("mmn")
    arrays = grounding_arrays(q, p, seed)
    t0 = time.perf_counter()
    result = score_arrays(arrays, conv)
    fast_s = time.perf_counter() - t0
    print(f"grounding arrays   {q:>9,} queries x {p} windows: {fast_s:7.2f} s "
          f"({q / fast_s:>12,.0f} queries/s)  target < 5 s: {'yes' if fast_s < 5 else 'NO'}")

    small = subset(grounding_arrays(q, p, seed), naive_n)
    t0 = time.perf_counter()
    naive = naive_grounding(small, naive_n)
    naive_s = time.perf_counter() - t0
    check = score_arrays(subset(grounding_arrays(q, p, seed), naive_n), conv).metrics
    agree = all(abs(check[k] - v) < 1e-9 for k, v in naive.items())
    print(f"grounding naive    {naive_n:>9,} queries (subsample)   : {naive_s:7.2f} s "
          f"({naive_n / naive_s:>12,.0f} queries/s)  speed-up x{(q / fast_s) / (naive_n / naive_s):,.0f}; "
          f"same numbers: {agree}")

    sub = subset(arrays, dict_n)
    preds = [{"qid": str(i), "pred_relevant_windows": np.c_[sub.pred[i], sub.scores[i]].tolist()}
             for i in range(dict_n)]
    gts = [{"qid": str(i), "duration": DURATION, "relevant_windows": sub.gt[i].tolist()}
           for i in range(dict_n)]
    t0 = time.perf_counter()
    evaluate_grounding(preds, gts, "mmn")
    dict_s = time.perf_counter() - t0
    print(f"grounding dicts    {dict_n:>9,} queries (parse + score) : {dict_s:7.2f} s "
          f"({dict_n / dict_s:>12,.0f} queries/s)")
    print(f"  R@1,IoU>=0.5 [mmn] on random windows: {result.metrics['R@1,IoU>=0.5 [mmn]']:.2f}")


def naive_retrieval(sim: np.ndarray, rows: int) -> np.ndarray:
    """CLIP4Clip-style rank of the diagonal by one argsort per row (ties: sort order)."""
    ranks = np.empty(rows, dtype=np.int64)
    for i in range(rows):
        order = np.argsort(-sim[i])
        ranks[i] = int(np.flatnonzero(order == i)[0])
    return ranks


def bench_retrieval(n: int, naive_n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sim = rng.standard_normal((n, n), dtype=np.float32)
    sim[np.diag_indices(n)] += 2.0
    t0 = time.perf_counter()
    m = retrieval_metrics(sim)
    fast_s = time.perf_counter() - t0
    queries = 2 * n  # t2v and v2t
    print(f"retrieval          {n:>6,} x {n:,} (t2v + v2t)    : {fast_s:7.2f} s "
          f"({queries / fast_s:>12,.0f} queries/s)  target < 5 s: {'yes' if fast_s < 5 else 'NO'}")
    t0 = time.perf_counter()
    naive = naive_retrieval(sim, naive_n)
    naive_s = time.perf_counter() - t0
    sub = retrieval_metrics(sim[:naive_n, :], gt=np.arange(naive_n), ks=(1,))
    agree = abs(sub["t2v R@1 [ties=average]"] - 100.0 * float((naive == 0).mean())) < 1e-9
    print(f"retrieval naive    {naive_n:>9,} rows (subsample)      : {naive_s:7.2f} s "
          f"({naive_n / naive_s:>12,.0f} queries/s)  speed-up x{(queries / fast_s) / (naive_n / naive_s):,.0f}; "
          f"same R@1: {agree}")
    print(f"  t2v R@1 [ties=average] on random scores: {m['t2v R@1 [ties=average]']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a fast check")
    ap.add_argument("--queries", type=int, default=None, help="grounding queries (default 100,000)")
    ap.add_argument("--windows", type=int, default=100, help="candidate windows per query")
    ap.add_argument("--matrix", type=int, default=None, help="retrieval matrix side (default 10,000)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    q = args.queries or (20_000 if args.quick else 100_000)
    n = args.matrix or (3_000 if args.quick else 10_000)
    print(f"bench_metrics: seed {args.seed}{' (quick)' if args.quick else ''}")
    bench_grounding(q, args.windows, naive_n=200 if args.quick else 500,
                    dict_n=min(q, 2_000 if args.quick else 10_000), seed=args.seed)
    bench_retrieval(n, naive_n=min(n, 300 if args.quick else 1_000), seed=args.seed)


if __name__ == "__main__":
    main()
