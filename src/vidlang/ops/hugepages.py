"""Large per-step CPU buffers backed by transparent huge pages.

A training step's batch tensors (e.g. 64 videos x 96 clips x 256 floats = 6 MiB) are allocated
fresh at every step. When the C allocator has handed that memory back to the OS in between
(glibc does for blocks this size), filling the tensor page-faults once per 4 KiB page: ~1,500
faults, measured at ~3-5 ms per batch on a virtualised 2-core machine, more than copying the
data. :func:`empty_huge` gives such a buffer its own anonymous mapping with
``MADV_HUGEPAGE``, aligned to 2 MiB, so the kernel backs it with huge pages: a handful of
faults. The mapping lives exactly as long as the tensor (and its views) and is unmapped after;
nothing is reused, so the tensor is an ordinary fresh tensor with the values written into it.

Plain ``torch.empty`` is used below :data:`MIN_BYTES`, where the platform has no
``MADV_HUGEPAGE`` (or the kernel refuses it), and inside DataLoader worker processes (their
batches are copied to shared memory anyway).
"""

from __future__ import annotations

import math
import mmap

import torch

HUGE_PAGE = 2 * 2**20
MIN_BYTES = 2 * 2**20  # smaller buffers: plain torch.empty


def _in_worker() -> bool:
    from torch.utils.data import get_worker_info

    return get_worker_info() is not None


def empty_huge(shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An uninitialised CPU tensor of ``shape`` whose memory is a fresh 2 MiB-aligned anonymous
    mapping advised for transparent huge pages (see the module docstring); ``torch.empty``
    where that does not apply."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    count = math.prod(shape)
    nbytes = count * itemsize
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if nbytes < MIN_BYTES or advice is None or not hasattr(mmap, "MAP_ANONYMOUS") or _in_worker():
        return torch.empty(shape, dtype=dtype)
    # private: an anonymous *shared* mapping is shmem, which THP leaves alone by default
    area = mmap.mmap(-1, nbytes + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        area.madvise(advice)
    except OSError:
        return torch.empty(shape, dtype=dtype)
    start = torch.frombuffer(area, dtype=torch.uint8, count=1).data_ptr()
    offset = (-start) % HUGE_PAGE
    # frombuffer keeps ``area`` alive as long as the tensor's storage lives
    return torch.frombuffer(area, dtype=dtype, offset=offset, count=count).view(shape)
