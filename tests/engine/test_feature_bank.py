"""The pre-padded feature bank (issue 16): a batch's padded features are one gather from it,
and every collated tensor is bit-identical to padding the ragged per-video tensors."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from repo_scripts import load_repo_module
from vidlang.engine.pipelines.bank import FeatureBank, shared_bank
from vidlang.engine.pipelines.features import (
    FeatureMemo,
    flat_rows,
    gather_flat,
    gather_rows,
    segment_lengths,
)
from vidlang.ops.padding import pad_rows

bench = load_repo_module("benchmarks/bench_step.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[list, Path, Path]:
    root = tmp_path_factory.mktemp("bank")
    videos = bench.make_videos(90, 210, seed=3)
    bench.write_features(root / "features.h5", videos, seed=3)
    return videos, root / "features.h5", root


def test_bank_gathers_equal_padding_the_ragged_tensors() -> None:
    """Whole videos and clip segments (gathered from the bank's rows) equal the ragged path,
    including batches whose longest video has no padding row of its own."""
    gen = torch.Generator().manual_seed(0)
    rng = random.Random(0)
    lengths = (7, 3, 9, 1, 9)
    feats = [torch.randn(t, 5, generator=gen) for t in lengths]
    bank = FeatureBank([f"v{i}" for i in range(len(feats))], feats)
    for picks in ([0, 1, 2], [3, 1], [4, 2, 4, 0], [3], [2, 4]):
        got, mask = bank.gather_videos(torch.tensor(picks))
        ref = pad_rows([feats[r] for r in picks])
        assert got.shape == ref[0].shape and got.dtype == ref[0].dtype
        assert torch.equal(got, ref[0]) and torch.equal(mask, ref[1])
        assert bank.rows.shape == (len(lengths) * max(lengths) + 1, 5) and not bank.rows[-1].any()
        groups = [[sorted(rng.sample(range(lengths[p]), rng.randint(1, lengths[p])))
                   for _ in range(rng.randint(1, 3))] for p in picks]
        seg = gather_flat(bank.rows, [bank.first_row(p) for p in picks],
                          [flat_rows(g) for g in groups], segment_lengths(groups))
        ref_seg = gather_rows([feats[p] for p in picks], groups)
        assert torch.equal(seg[0], ref_seg[0]) and torch.equal(seg[1], ref_seg[1])
    assert torch.equal(bank.view(1), feats[1])


def test_memo_builds_a_bank_only_when_the_padded_copy_fits() -> None:
    feats = {"a": torch.ones(4, 2), "b": torch.ones(1, 2)}
    ragged = 4 * 2 * 5
    padded = 4 * 2 * 2 * 4
    small = FeatureMemo(ragged + padded - ragged - 1)  # holds the ragged, not the padded copy
    big = FeatureMemo(padded)
    for memo in (small, big):
        for vid, f in feats.items():
            memo.put(vid, f, 8)
    assert small.bank(["a", "b"]) is None
    bank = big.bank(["a", "b", "a"])
    assert bank is not None and big.nbytes == padded and big.bank(["a", "b"]) is bank
    view, num_raw = big.get("b")  # the memo now holds views into the bank
    assert num_raw == 8 and view.data_ptr() == bank.padded[1].data_ptr()
    assert big.bank(["a", "missing"]) is None


def _batches(config: str, data: tuple[list, Path, Path], overrides: dict[str, Any],
             epochs: int = 2) -> tuple[Any, list[dict[str, Any]]]:
    videos, features, root = data
    _, _, pipe = bench.build(config, videos, features, root, overrides)
    loader = pipe.train_loader()
    out = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        out.extend(loader)
    return loader, out


def _assert_same_batch(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert value.dtype == b[key].dtype and value.shape == b[key].shape, key
            assert torch.equal(value, b[key]), key
        else:
            assert value == b[key], key


@pytest.mark.parametrize("config", ["retrieval/synthvl_cpu", "tempclr/synthvl_cpu",
                                    "retrieval/synthvl_paragraphs_cpu"])
def test_bank_batches_equal_the_ragged_path(data: tuple[list, Path, Path], config: str) -> None:
    """Training batches of 2 epochs with the bank (default memo) and without any memo (every
    video read from HDF5 and padded per step): every tensor equal, dtype and shape included."""
    loader, banked = _batches(config, data, {})
    assert loader.dataset.bank is not None
    assert shared_bank(list(loader.dataset[i] for i in range(3))) is loader.dataset.bank
    _, ragged = _batches(config, data, {"data": {"feature_cache_mb": 0}})
    assert len(banked) == len(ragged) >= 4
    for a, b in zip(banked, ragged):
        _assert_same_batch(a, b)


def test_too_small_a_budget_pads_per_step(data: tuple[list, Path, Path]) -> None:
    """1 MiB holds part of the split: no bank, the memo fills up, batches unchanged."""
    loader, small = _batches("tempclr/synthvl_cpu", data, {"data": {"feature_cache_mb": 1}}, 1)
    assert loader.dataset.bank is None and loader.dataset.memo.full
    _, ragged = _batches("tempclr/synthvl_cpu", data, {"data": {"feature_cache_mb": 0}}, 1)
    for a, b in zip(small, ragged):
        _assert_same_batch(a, b)


def test_feature_bank_false_keeps_the_memo_and_pads_per_step(data: tuple[list, Path, Path]) -> None:
    loader, plain = _batches("retrieval/synthvl_cpu", data, {"data": {"feature_bank": False}}, 1)
    assert loader.dataset.bank is None and len(loader.dataset.memo.items) > 0
    _, banked = _batches("retrieval/synthvl_cpu", data, {}, 1)
    for a, b in zip(plain, banked):
        _assert_same_batch(a, b)
