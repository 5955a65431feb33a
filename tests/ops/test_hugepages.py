"""vidlang.ops.hugepages: fresh, independent, correctly shaped buffers (huge-page backed or not)."""

from __future__ import annotations

import gc

import torch

from vidlang.ops.hugepages import MIN_BYTES, empty_huge


def test_large_buffers_are_fresh_independent_tensors() -> None:
    shape = (64, 96, 256)  # 6 MiB: a mapping of its own
    a, b = empty_huge(shape), empty_huge(shape)
    assert a.shape == shape and a.dtype == torch.float32 and a.is_contiguous()
    assert a.untyped_storage().nbytes() >= 64 * 96 * 256 * 4
    a.fill_(1.0)
    b.fill_(2.0)
    assert float(a.sum()) == 64 * 96 * 256 and float(b.mean()) == 2.0
    view = a[5, :3]
    del a
    gc.collect()  # the mapping lives as long as a view of it
    assert torch.equal(view, torch.ones(3, 256))
    out = empty_huge((6144, 256))
    src = torch.randn(100, 256)
    index = torch.randint(0, 100, (6144,))
    torch.index_select(src, 0, index, out=out)
    assert torch.equal(out, src[index])


def test_small_buffers_and_other_dtypes() -> None:
    small = empty_huge((4, 5))
    assert small.shape == (4, 5) and 4 * 5 * 4 < MIN_BYTES
    ints = empty_huge((MIN_BYTES // 8 + 1,), torch.int64)
    assert ints.dtype == torch.int64 and ints.numel() == MIN_BYTES // 8 + 1
