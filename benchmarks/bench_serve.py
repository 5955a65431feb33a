"""Load on `vidlang serve`: many concurrent searches at a real server on 127.0.0.1.

Starts ``vidlang serve`` in a subprocess (the real CLI and uvicorn, one process, models loaded
once), then, in this process:

1. baseline: ``--sequential`` searches one at a time (latency of an idle server, requests/s
   of one client);
2. load: ``--requests`` searches fired at once (asyncio + httpx, one connection each, up to
   ``--concurrency`` open at a time), bounded by ``--max-seconds`` (requests still running
   then are cancelled and counted as errors, so the run always stops by itself).

Each search is ``/api/search?q=...&k=10&moments=3`` (a retrieval query + one batched MMN pass
over the 10 videos; ``--moments 0``: retrieval only). Queries cycle through the collection's own sentences. Prints errors
(non-200, timeouts, answers that differ from the sequential answer to the same query), p50 /
p99 latency, requests/s, and the load/baseline throughput ratio.

    python benchmarks/bench_serve.py                                  # 1000 requests, tiny collection
    python benchmarks/bench_serve.py --collection serve_demo          # on `make serve`'s collection
    python benchmarks/bench_serve.py --quick                          # 200 requests, for `make bench`
    python benchmarks/bench_serve.py --max-batch 1                    # the server without batching

Without ``--collection`` the tiny collection of the tests (10 SynthVL-video videos, word-level
dual encoder, small MMN) is built in ``--cache-dir`` first (about half a minute, not timed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TINY_RETRIEVAL = ["model.embed_dim=32", "model.text.name=word", "model.text.dim=32",
                  "model.text.vocab_size=2000", "data.batch_size=8", "data.select_split=null",
                  "trainer.max_epochs=3", "optim.lr=0.01"]
TINY_GROUNDING = ["model.featpool_hidden=8", "model.conv_hidden=8", "model.joint_dim=8", "model.conv_layers=2",
                  "model.text.name=word", "model.text.dim=16", "data.select_split=null", "trainer.max_epochs=1",
                  "data.batch_size=4"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collection(args: argparse.Namespace):
    from vidlang.serve.demo import DemoPaths, build_demo_collection

    if args.collection is not None:
        return DemoPaths(args.collection)
    return build_demo_collection(args.cache_dir / "serve_tiny", n_videos=10, preset="tiny",
                                 retrieval=TINY_RETRIEVAL, grounding=TINY_GROUNDING, say=lambda _m: None)


def sentences(paths) -> list[str]:
    out: list[str] = []
    for split in ("train", "val", "test"):
        f = paths.data / f"{split}.jsonl"
        if f.is_file():
            out += [json.loads(line)["query"] for line in f.read_text().splitlines() if line.strip()]
    return sorted(set(out))


def start_server(paths, port: int, max_batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vidlang.cli.main", "serve", str(paths.index), "--grounding-ckpt",
           str(paths.grounding), "--videos", str(paths.web), "--port", str(port), "--log-level", "warning",
           "--max-batch", str(max_batch)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 180.0) -> float:
    import httpx

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"vidlang serve exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"vidlang serve did not answer /healthz within {timeout:.0f} s")


def summarise(name: str, latencies: list[float], errors: int, wall: float, n: int) -> dict[str, float]:
    lat = np.asarray(latencies) * 1000 if latencies else np.asarray([np.nan])
    row = {"requests": n, "errors": errors, "p50_ms": float(np.percentile(lat, 50)),
           "p99_ms": float(np.percentile(lat, 99)), "max_ms": float(np.max(lat)), "req_per_s": n / wall,
           "wall_s": wall}
    print(f"{name:<28} {n:>8} {errors:>7} {row['p50_ms']:>9.1f} {row['p99_ms']:>9.1f} {row['max_ms']:>9.1f} "
          f"{row['req_per_s']:>9.1f} {wall:>8.1f}", flush=True)
    return row


def baseline(base: str, queries: list[str], n: int, moments: int) -> tuple[dict[str, float], dict[str, list[str]]]:
    import httpx

    answers: dict[str, list[str]] = {}
    latencies, errors = [], 0
    with httpx.Client(timeout=120) as client:
        for q in queries[:3]:  # warm-up, not timed (first calls of torch kernels and tokenizers)
            client.get(base + "/api/search", params={"q": q, "k": 10, "moments": moments})
        started = time.perf_counter()
        for i in range(n):
            q = queries[i % len(queries)]
            t = time.perf_counter()
            r = client.get(base + "/api/search", params={"q": q, "k": 10, "moments": moments})
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                errors += 1
                continue
            answers[q] = [x["video_id"] for x in r.json()["results"]]
    return summarise("sequential (1 client)", latencies, errors, time.perf_counter() - started, n), answers


async def load(base: str, queries: list[str], n: int, concurrency: int, max_seconds: float,
               expected: dict[str, list[str]], moments: int) -> tuple[dict[str, float], dict[str, int]]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    kinds = {"status": 0, "timeout_or_connection": 0, "different_answer": 0, "cancelled": 0}

    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(max_seconds)) as client:
        async def one(i: int) -> None:
            q = queries[i % len(queries)]
            t = time.perf_counter()
            try:
                r = await client.get(base + "/api/search", params={"q": q, "k": 10, "moments": moments})
            except httpx.HTTPError:
                kinds["timeout_or_connection"] += 1
                return
            latencies.append(time.perf_counter() - t)
            if r.status_code != 200:
                kinds["status"] += 1
            elif q in expected and [x["video_id"] for x in r.json()["results"]] != expected[q]:
                kinds["different_answer"] += 1

        started = time.perf_counter()
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        done, pending = await asyncio.wait(tasks, timeout=max_seconds)
        for task in pending:
            task.cancel()
        kinds["cancelled"] = len(pending)
        wall = time.perf_counter() - started
    errors = sum(kinds.values())
    return summarise(f"{n} at once (<= {concurrency} open)", latencies, errors, wall, n), kinds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", type=Path, default=None, help="A demo collection folder (scripts/build_serve_demo.py).")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "vidlang_bench_serve")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=1000, help="Most connections open at once.")
    ap.add_argument("--sequential", type=int, default=50)
    ap.add_argument("--max-seconds", type=float, default=300.0, help="Hard bound of the load phase.")
    ap.add_argument("--moments", type=int, default=3, help="Moments per result (0: retrieval only).")
    ap.add_argument("--max-batch", type=int, default=16, help="The server's --max-batch (1: no batching).")
    ap.add_argument("--quick", action="store_true", help="200 requests, 20 sequential (for `make bench`).")
    args = ap.parse_args()
    if args.quick:
        args.requests, args.concurrency, args.sequential, args.max_seconds = 200, 200, 20, 120.0
    os.environ.setdefault("OMP_NUM_THREADS", "2")

    paths = collection(args)
    queries = sentences(paths)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(paths, port, args.max_batch)
    try:
        ready = wait_ready(base, proc)
        with open(paths.index / "ids.json") as f:
            size = len(json.load(f))
        print(f"vidlang serve on {base}: {size} videos, {len(queries)} distinct queries, k=10, "
              f"{args.moments} moments each, server --max-batch {args.max_batch}; ready in {ready:.1f} s; OMP_NUM_THREADS="
              f"{os.environ['OMP_NUM_THREADS']}, {os.cpu_count()} CPUs, load average before "
              f"{os.getloadavg()[0]:.1f}")
        print(f"{'phase':<28} {'requests':>8} {'errors':>7} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} "
              f"{'req/s':>9} {'wall s':>8}")
        seq, answers = baseline(base, queries, args.sequential, args.moments)
        heavy, kinds = asyncio.run(load(base, queries, args.requests, args.concurrency, args.max_seconds, answers,
                                        args.moments))
        print(f"errors by kind: {kinds}")
        print(f"throughput under load / one sequential client: {heavy['req_per_s'] / seq['req_per_s']:.2f}x")
        alive = proc.poll() is None
        print(f"server still up after the load: {alive}; load average after {os.getloadavg()[0]:.1f}")
        if heavy["errors"] or not alive:
            raise SystemExit(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
