"""Distributed helpers that are no-ops (identity) on a single process.

``gather_with_grad`` concatenates a tensor from every process along dim 0 with gradients
flowing back to each process's own slice; contrastive models call it on their embeddings
when ``trainer.gather_negatives`` is on (``TrainState.gather_negatives``), so negatives come
from the whole global batch instead of the per-device one (the papers' default).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t`` [N_r, ...] from all processes (sizes may differ) keeping gradients.

    Identity on one process. The local slice keeps its autograd graph; remote slices carry
    the gradient back through ``torch.distributed.nn.functional.all_gather``.
    """
    if not is_distributed():
        return t
    from torch.distributed.nn.functional import all_gather

    n = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    if t.shape[0] < longest:
        pad = t.new_zeros((longest - t.shape[0], *t.shape[1:]))
        t = torch.cat([t, pad], dim=0)
    parts = all_gather(t)
    return torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` in rank order (``[obj]`` on one process)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of ``t`` over processes (``t`` itself on one process)."""
    if not is_distributed():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / world_size()
