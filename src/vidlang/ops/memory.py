"""Serve a training step's large tensors from the heap instead of fresh memory mappings.

A CPU training step allocates and frees the same large tensors every step (TempCLR's batch of
clip segments, MMN's activations: hundreds of KiB to tens of MiB). glibc's malloc serves blocks
above its mmap threshold (128 KiB at start, raised as such blocks are freed, to at most 32 MiB)
with a fresh ``mmap`` and returns each to the OS with ``munmap`` when freed, so every step pays
the system calls and faults the pages in again, and trims the heap top above its trim
threshold.

:func:`retain_freed_memory` raises both thresholds (``mallopt``): blocks up to 1 GiB come from
the heap, and the heap is not trimmed below ~2 GiB of free space. Measured with
``benchmarks/bench_step.py`` at Charades-STA size against ``--no-retain`` (docs/results.md):
an ``mmn/cpu`` step 95.8 ms instead of 116.5 (epoch 42.8 s instead of 52.5), the retrieval
step's data + text share 14.2 % instead of 16.0 %. It does not remove every page fault (torch
allocates with ``posix_memalign``, whose freed blocks glibc does not always reuse). The cost:
the process keeps what it freed instead of returning it to the OS. The training engine applies
it when ``trainer.retain_freed_memory`` is true (the default); it changes no number, only where
memory comes from. A no-op (returns False) off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 1 << 30  # blocks up to 1 GiB come from the heap (and are reused)
TRIM_THRESHOLD = 2**31 - 1  # the heap top goes back to the OS only beyond ~2 GiB free (int max)

_applied = False


def retain_freed_memory() -> bool:
    """Tune glibc's malloc (process-wide) to keep freed blocks up to 1 GiB for reuse; True when
    applied (now or before), False where the C library is not glibc or refuses the settings."""
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
