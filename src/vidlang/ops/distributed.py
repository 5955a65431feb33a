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

from vidlang.ops.padding import pad_to_length


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
    parts = all_gather(pad_to_length(t, longest, dim=0))
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


def gather_counts(*counts: int, device: torch.device | str = "cpu") -> list[tuple[int, ...]]:
    """Every process's ``counts`` (e.g. rows of several tensors) in rank order, in one collective.

    ``[counts]`` on one process. ``device`` must suit the backend (CUDA for NCCL).
    """
    if not is_distributed():
        return [tuple(counts)]
    local = torch.tensor(counts, dtype=torch.long, device=device)
    parts = [torch.zeros_like(local) for _ in range(world_size())]
    dist.all_gather(parts, local)
    return [tuple(int(x) for x in p.tolist()) for p in parts]


def gather_rows(t: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Concatenate ``t`` [counts[rank], ...] from all processes along dim 0, given every
    process's row count (from :func:`gather_counts`), so no size exchange is needed.

    Rows are zero-padded to ``max(counts)`` for the collective and the padding is dropped.
    When ``t`` requires grad the gather is differentiable as in :func:`gather_with_grad` (the
    backward sums every process's gradient for this process's rows); otherwise it is a plain
    ``all_gather``. ``requires_grad`` must agree across processes (the backward is a
    collective). Identity on one process.
    """
    if not is_distributed():
        return t
    if len(counts) != world_size() or t.shape[0] != counts[rank()]:
        raise ValueError(f"gather_rows: {t.shape[0]} local rows but counts {counts} "
                         f"(rank {rank()} of {world_size()})")
    longest = max(counts)
    t = pad_to_length(t, longest, dim=0)
    if t.requires_grad:
        from torch.distributed.nn.functional import all_gather

        parts = list(all_gather(t))
    else:
        parts = [torch.empty_like(t) for _ in counts]
        dist.all_gather(parts, t.contiguous())
    return torch.cat([p[:c] for p, c in zip(parts, counts)], dim=0)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over processes, without gradient (``t`` itself on one process)."""
    if not is_distributed():
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t
