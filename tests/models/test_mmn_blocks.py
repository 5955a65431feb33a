"""Sparse 2D proposal map, cascaded pooling, IoU targets and the efficient masked conv stack."""

from __future__ import annotations

import copy
from types import ModuleType

import pytest
import torch

from repo_scripts import load_repo_module
from vidlang.errors import ConfigError
from vidlang.losses.mmn import scale_iou
from vidlang.models.blocks.masked_conv import MaskedConvStack
from vidlang.models.blocks.proposal_map import (
    SparseMaxPool2DMap,
    cell_index_to_seconds,
    iou_target_map,
    sparse_mask,
)


def _reference_module() -> ModuleType:
    return load_repo_module("benchmarks/_reference_mmn.py")


SETTINGS = [(16, [15], 136), (64, [15, 8, 8], 1104), (128, [15, 8, 8, 8], 2548)]


@pytest.mark.parametrize(("n", "counts", "valid"), SETTINGS)
def test_sparse_map_valid_cell_count(n: int, counts: list[int], valid: int) -> None:
    mask = sparse_mask(n, counts)
    assert int(mask.sum()) == valid
    assert not mask.tril(-1).any(), "only cells with end >= start exist"
    assert mask.diagonal().all()
    assert mask[0, n - 1], "the whole video is always a proposal"


def test_sparse_map_positions_n16_dense() -> None:
    assert torch.equal(sparse_mask(16, [15]), torch.ones(16, 16, dtype=torch.bool).triu())


def test_sparse_map_positions_n64() -> None:
    mask = sparse_mask(64, [15, 8, 8])
    # group 1: every start, offsets 1..15
    assert mask[7, 22] and mask[48, 63]
    assert not mask[0, 16], "offset 16 is skipped: group 2 starts at offset 17"
    # group 2: stride 2, offsets 17, 19, ..., 31 from even starts only
    assert mask[0, 17] and mask[2, 21] and mask[32, 63]
    assert not mask[1, 18] and not mask[0, 18] and not mask[0, 33]
    # group 3: stride 4, offsets 35, 39, ..., 63 from starts that are multiples of 4
    assert mask[0, 35] and mask[4, 63] and mask[0, 63] and mask[28, 63]
    assert not mask[2, 37] and not mask[0, 37]


def test_sparse_map_positions_n128() -> None:
    mask = sparse_mask(128, [15, 8, 8, 8])
    # group 4: stride 8, offsets 71, 79, ..., 127 from starts that are multiples of 8
    assert mask[0, 71] and mask[8, 79] and mask[0, 127] and mask[56, 127]
    assert not mask[4, 75] and not mask[0, 67]
    row0 = mask[0].nonzero().flatten().tolist()
    assert row0 == list(range(16)) + list(range(17, 32, 2)) + list(range(35, 64, 4)) \
        + list(range(71, 128, 8))


def test_pooling_counts_too_long_for_the_map_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="num_clips=16"):
        sparse_mask(16, [15, 8])


@pytest.mark.parametrize(("n", "counts", "valid"), SETTINGS[:2])
def test_cascaded_pooling_is_max_over_the_cell_span(n: int, counts: list[int], valid: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, n)
    out = SparseMaxPool2DMap(n, counts)(x)
    mask = sparse_mask(n, counts)
    for i, j in mask.nonzero().tolist():
        assert torch.equal(out[:, :, i, j], x[:, :, i:j + 1].amax(dim=2)), (i, j)
    assert not out[:, :, ~mask].any(), "invalid cells are 0"


def test_iou_target_map_hand_checked() -> None:
    iou = iou_target_map(torch.tensor([[2.0, 6.0], [-2.0, 6.0]]), torch.tensor([8.0, 8.0]), 4)
    assert iou[0, 1, 2] == pytest.approx(1.0)    # [0.25, 0.75] is the GT itself
    assert iou[0, 0, 0] == pytest.approx(0.0)    # [0, 0.25] only touches it
    assert iou[0, 0, 3] == pytest.approx(0.5)    # whole video
    assert iou[0, 1, 1] == pytest.approx(0.5)    # [0.25, 0.5]
    assert iou[1, 0, 2] == pytest.approx(1.0)    # GT clamped to [0, 6] s
    target = scale_iou(iou, 0.5, 1.0)
    assert target[0, 0, 3] == 0.0 and target[0, 1, 2] == 1.0
    assert scale_iou(torch.tensor(0.5), 0.3, 0.7) == pytest.approx(0.5)


def test_cell_to_seconds_uses_j_plus_one() -> None:
    s = cell_index_to_seconds(torch.tensor([0, 3]), torch.tensor([1, 3]), 4, 10.0)
    assert s.tolist() == [[0.0, 5.0], [7.5, 10.0]]


GEOMETRIES = [(16, [15], 5, 8), (64, [15, 8, 8], 9, 4), (32, [15, 4], 5, 4)]


@pytest.mark.parametrize("algorithm", ["auto", "support"])  # auto: Winograd where it applies
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize(("n", "counts", "kernel", "layers"), GEOMETRIES)
def test_efficient_conv_stack_equals_straightforward(n: int, counts: list[int], kernel: int,
                                                     layers: int, batch_norm: bool,
                                                     algorithm: str) -> None:
    reference = _reference_module().reference_stack_forward
    torch.manual_seed(1)
    mask = sparse_mask(n, counts)
    fast = MaskedConvStack(5, 6, kernel, layers, mask, batch_norm,
                           "winograd" if algorithm == "auto" and kernel <= 5 else algorithm)
    slow = copy.deepcopy(fast)
    x = torch.randn(3, 5, n, n) * mask
    x_fast, x_slow = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_fast, y_slow = fast(x_fast), reference(slow, x_slow)
    assert y_fast.shape == y_slow.shape == (3, 6, n, n)
    assert torch.allclose(y_fast, y_slow, atol=1e-4, rtol=0)
    for a, b in zip(fast.buffers(), slow.buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), "BN running stats must match"
    # gradients in float64: the float32 reference alone is noisy on zero-gradient BN-fed biases
    fast64, slow64 = copy.deepcopy(fast).double(), copy.deepcopy(slow).double()
    x_fast, x_slow = x.double().requires_grad_(), x.double().requires_grad_()
    y_fast, y_slow = fast64(x_fast), reference(slow64, x_slow)
    grad = torch.randn_like(y_fast)
    y_fast.backward(grad)
    y_slow.backward(grad)
    # inputs at invalid cells are constants of the model; only valid cells carry gradient
    assert torch.allclose(x_fast.grad[..., mask], x_slow.grad[..., mask], atol=1e-8)
    for a, b in zip(fast64.parameters(), slow64.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-8, rtol=1e-6)
    fast.eval()
    slow.eval()
    with torch.no_grad():
        assert torch.allclose(fast(x), reference(slow, x), atol=1e-4, rtol=0)


def test_efficient_stack_skips_work() -> None:
    mask = sparse_mask(16, [15])
    stack = MaskedConvStack(2, 2, 5, 8, mask, True, algorithm="support")
    assert stack.plans[0].sparse and stack.plans[0].in_cells.numel() == 136
    assert stack.plans[0].out_size == 44 and stack.plans[-1].out_size == 16
    wino = MaskedConvStack(256, 256, 5, 8, mask, True)  # auto, wide 5x5 -> Winograd F(4x4, 5x5)
    assert wino.algorithm == "winograd"
    assert MaskedConvStack(64, 64, 5, 4, mask, True).algorithm == "support"  # narrow: support
    tiles = [p.winograd.patch_rows.shape[1] for p in wino.plans if p.winograd is not None]
    # every layer computes only the 4x4 output tiles that meet its support: 19 of the first
    # layer's 121 (the triangle plus its 2-cell rim), all 16 of the last 16 x 16 grid
    assert tiles == [19, 30, 43, 58, 48, 36, 25, 16]
    assert sum(tiles) * 64 < 0.1 * sum(p.out_size ** 2 for p in wino.plans) * 25


def test_conv_stack_algorithm_errors() -> None:
    mask = sparse_mask(16, [15])
    with pytest.raises(ConfigError, match="algorithm must be one of"):
        MaskedConvStack(2, 2, 5, 8, mask, True, algorithm="fft")
    with pytest.raises(ConfigError, match="kernels up to 5"):
        MaskedConvStack(2, 2, 9, 4, mask, True, algorithm="winograd")


@pytest.mark.parametrize(("m", "k"), [(2, 3), (4, 3), (2, 5), (4, 5), (3, 5), (2, 9)])
def test_winograd_tile_is_a_valid_correlation(m: int, k: int) -> None:
    """F(m x m, k x k) on every tile of a random map equals the direct conv (float64)."""
    from vidlang.models.blocks.winograd import winograd_tiles

    torch.manual_seed(m * 10 + k)
    n, size = m + k - 1, 3 * m + k - 1           # a 3 x 3 grid of output tiles, no padding
    x = torch.randn(2, 4, size, size, dtype=torch.float64)
    w = torch.randn(3, 4, k, k, dtype=torch.float64)
    ty, tx = torch.meshgrid(torch.arange(3), torch.arange(3), indexing="ij")
    r = torch.arange(n)
    rows = (ty.flatten()[None, None] * m + r[:, None, None])
    cols = (tx.flatten()[None, None] * m + r[None, :, None])
    patch_rows = (rows * size + cols).reshape(n * n, 9)
    feats = x.flatten(2).permute(2, 0, 1)                       # position-major [S, B, C]
    tiles = winograd_tiles(feats, w, m, patch_rows)             # [m*m, 9, B, C_out]
    got = tiles.view(m, m, 3, 3, 2, 3).permute(4, 5, 2, 0, 3, 1).reshape(2, 3, 3 * m, 3 * m)
    assert torch.allclose(got, torch.nn.functional.conv2d(x, w), atol=1e-9)
