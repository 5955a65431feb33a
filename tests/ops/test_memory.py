"""vidlang.ops.memory: after retain_freed_memory a large tensor lives in malloc's heap, where
with glibc's defaults it is a memory mapping of its own (mallinfo2's ``hblkhd``)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# a 40 MiB tensor is above glibc's largest automatic mmap threshold (32 MiB); hblkhd is the
# bytes malloc holds in mmapped blocks: its growth when the tensor is made
PROBE = """
import ctypes, sys
import torch
from vidlang.ops.memory import retain_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
before = libc.mallinfo2().hblkhd
x = torch.ones(10 * 2**20)
print(applied, libc.mallinfo2().hblkhd - before)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc"
                           or tuple(map(int, platform.libc_ver()[1].split(".")[:2])) < (2, 33),
                           reason="glibc >= 2.33 (mallinfo2)")


def _mapped_bytes(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@glibc
def test_large_tensor_comes_from_the_heap_once_retained() -> None:
    applied, mapped = _mapped_bytes("retain")
    assert applied == "True"
    assert mapped == 0  # the 40 MiB block is in the heap, not a mapping of its own
    _, plain = _mapped_bytes("plain")
    assert plain >= 40 * 2**20  # the control: glibc's defaults map it


def test_off_glibc_it_does_nothing_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import vidlang.ops.memory as memory

    monkeypatch.setattr(memory, "_applied", False)
    monkeypatch.setattr(memory.platform, "libc_ver", lambda: ("musl", "1.2"))
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: pytest.fail("libc must not be loaded"))
    assert memory.retain_freed_memory() is False
