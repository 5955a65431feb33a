"""Run a function in two CPU processes joined by a gloo process group (distributed tests)."""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from typing import Any


def _entry(rank: int, port: int, q: Any, worker: Callable[..., Any], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    # a forked child must not enter an OpenMP region the parent already started (it hangs,
    # e.g. in a conv); one intra-op thread keeps every op inline
    torch.set_num_threads(1)

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=2)
    try:
        q.put((rank, True, worker(rank, *args)))
    except BaseException:  # report instead of leaving the parent waiting for a result
        q.put((rank, False, traceback.format_exc()))
    finally:
        dist.destroy_process_group()


def run_two_processes(worker: Callable[..., Any], *args: Any, timeout: float = 60.0
                      ) -> dict[int, Any]:
    """``{rank: worker(rank, *args)}`` from two gloo processes; a worker's error fails the test.

    Results travel through a queue, so return plain Python / NumPy values, not tensors.
    """
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork avoids re-importing torch in the children (seconds on a busy box); CPU/gloo only
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    q = ctx.Queue()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    procs = [ctx.Process(target=_entry, args=(r, port, q, worker, args)) for r in range(2)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    failed = True
    try:
        for _ in procs:
            rank, ok, value = q.get(timeout=timeout)
            if not ok:  # the other rank may be stuck in a collective: do not wait for it
                raise AssertionError(f"rank {rank} failed:\n{value}")
            results[rank] = value
        failed = False
    finally:
        for p in procs:
            p.join(timeout=1 if failed else 30)
            if p.is_alive():
                p.kill()
                p.join()
    return results
