"""The masked 2D conv stack of 2D-TAN / MMN, computed only where the mask lets values through.

Upstream semantics (kept exactly): L layers of Conv2d(k x k); the first is padded by
(k - 1) * L / 2 and the rest are unpadded, so an N x N map comes out N x N again. After each
conv: optional BatchNorm2d (MMN) -> ReLU -> multiply by a mask weight 1/count, where count is the
number of currently-valid cells under the k x k window (0 where there are none); the next
layer's mask is weight > 0.

Efficient path (same numbers up to float rounding, less work): a layer's input is zero outside
its support S_in (the previous mask), so its output differs from the conv bias only on
S_out = positions whose window touches S_in. Training-mode BatchNorm needs every grid cell, but
cells outside S_out are the bias exactly, so only S_out has to be convolved. Two ways:

- ``winograd`` (kernels up to 5 x 5; ``auto`` picks it from 256 channels up): the output grid is cut into 4 x 4
  tiles; only tiles that meet S_out are computed, each with Winograd F(4x4, kxk)
  (``blocks/winograd.py``: 64 products per channel pair and tile instead of 400 for 5 x 5),
  written into a grid that holds the bias elsewhere; BatchNorm then runs as usual on the grid.
  Float32 rounding differs from the direct conv by ~1e-6 relative.
- ``support`` (larger kernels, where Winograd is not accurate in float32, and narrow stacks): when |S_in| is
  smaller than the output grid, one GEMM of the |S_in| input rows with all k*k taps, scattered
  to the output cells each (input, tap) pair lands on; BatchNorm's batch statistics add the
  bias-only cells analytically. Layers whose input support is about as large as the grid run as
  ordinary dense convs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from vidlang.errors import ConfigError
from vidlang.models.blocks.winograd import winograd_from_patches

WINOGRAD_TILE = 4     # output tile side m of F(m x m, k x k)
WINOGRAD_MAX_KERNEL = 5  # F(4, k) for k > 5 loses ~1e-3 in float32: use the support GEMM there
# Below this width the dense per-layer convs are cheap and Winograd's gathers and transforms
# cost more than they save (bench: 128 channels 0.42 vs 0.35 CPU-s/video for support; 256
# channels 0.52 vs 0.68): `auto` picks Winograd from here up
WINOGRAD_MIN_CHANNELS = 256
ALGORITHMS = ("auto", "winograd", "support")


@dataclass(frozen=True)
class LayerPlan:
    """Static geometry of one conv layer of the stack."""

    in_size: int
    out_size: int
    padding: int
    sparse: bool
    in_cells: torch.Tensor   # [S_in] flat indices of the input support in the in_size grid
    out_cells: torch.Tensor  # [S_out] flat indices of the output support in the out_size grid
    weight: torch.Tensor     # [out_size, out_size] mask weight (1/count, 0 outside S_out)
    pair_src: torch.Tensor   # [P] row of the (S_in * k * k) GEMM output feeding each pair
    pair_dst: torch.Tensor   # [P] position in out_cells each pair adds into
    winograd: WinogradPlan | None = None


@dataclass(frozen=True)
class WinogradPlan:
    """The m x m output tiles of one layer that meet its output support, as row maps between
    position-major support features and the tiles."""

    tile: int
    patch_rows: torch.Tensor  # [n*n, T] input-support row under each patch cell (S_in = zero)
    out_rows: torch.Tensor    # [S_out] row of the [m*m * T] tile outputs holding each out cell
    patch_inverse: torch.Tensor  # [S_in, k] patch rows reading each input cell (backward)
    out_inverse: torch.Tensor    # [m*m * T, 1] out cell reading each tile output (backward)


def mask_weight(mask: torch.Tensor, kernel: int, padding: int) -> torch.Tensor:
    """1/count of valid cells under each k x k window (0 where none): the upstream re-weighting."""
    ones = torch.ones(1, 1, kernel, kernel, dtype=torch.float64)
    count = F.conv2d(mask[None, None].to(torch.float64), ones, padding=padding)[0, 0].round()
    return torch.where(count > 0, 1.0 / count.clamp(min=1), torch.zeros_like(count))


def _plan_winograd(in_mask: torch.Tensor, out_mask: torch.Tensor, kernel: int, padding: int,
                   m: int) -> WinogradPlan:
    in_size, out_size = in_mask.shape[0], out_mask.shape[0]
    n = m + kernel - 1
    per_row = -(-out_size // m)
    grid = torch.zeros(per_row * m, per_row * m, dtype=torch.bool)
    grid[:out_size, :out_size] = out_mask
    tiles = grid.view(per_row, m, per_row, m).any(dim=3).any(dim=1).flatten().nonzero().squeeze(1)
    ty, tx = tiles // per_row, tiles % per_row
    # input patch cells (padded frame -> unpadded), mapped to support rows; zero row otherwise
    in_slot = torch.full((in_size * in_size,), -1, dtype=torch.long)
    in_cells = in_mask.flatten().nonzero().squeeze(1)
    in_slot[in_cells] = torch.arange(in_cells.numel())
    r = torch.arange(n)
    py = (ty[None, :] * m + r[:, None] - padding)[:, None, :]   # [n, 1, T]
    px = (tx[None, :] * m + r[:, None] - padding)[None, :, :]   # [1, n, T]
    inside = (py >= 0) & (py < in_size) & (px >= 0) & (px < in_size)
    flat = (py.clamp(0, in_size - 1) * in_size + px.clamp(0, in_size - 1))
    rows = torch.where(inside, in_slot[flat], torch.full_like(flat, -1))
    patch_rows = torch.where(rows >= 0, rows, torch.full_like(rows, in_cells.numel()))
    # output cells: row (i * m + j) * T + t of the tile outputs; keep those in the support
    q = torch.arange(m)
    oy = (ty[None, :] * m + q[:, None])[:, None, :]
    ox = (tx[None, :] * m + q[:, None])[None, :, :]
    out_flat = (oy * (per_row * m) + ox).reshape(m * m, -1)   # positions in the rounded grid
    row_of = torch.full((per_row * m * per_row * m,), -1, dtype=torch.long)
    row_of[out_flat.reshape(-1)] = torch.arange(out_flat.numel())
    cy, cx = out_mask.nonzero().unbind(1)
    out_rows = row_of[cy * (per_row * m) + cx]
    if (out_rows < 0).any():
        raise AssertionError("Winograd plan: an output-support cell lies in no computed tile")
    patch_rows = patch_rows.reshape(n * n, -1)
    return WinogradPlan(m, patch_rows, out_rows,
                        inverse_index(patch_rows.reshape(-1), in_cells.numel()),
                        inverse_index(out_rows, out_flat.numel()))


def _plan_layer(in_mask: torch.Tensor, kernel: int, padding: int,
                use_winograd: bool = False) -> LayerPlan:
    in_size = in_mask.shape[0]
    weight = mask_weight(in_mask, kernel, padding)
    out_size = weight.shape[0]
    out_mask = weight > 0
    in_cells = in_mask.flatten().nonzero().squeeze(1)
    out_cells = out_mask.flatten().nonzero().squeeze(1)
    # dense work ~ out_size^2 window evaluations; sparse work ~ |S_in| rows times all k*k taps
    sparse = in_cells.numel() < out_size * out_size
    slot = torch.full((out_size * out_size,), -1, dtype=torch.long)
    slot[out_cells] = torch.arange(out_cells.numel())
    py, px = in_cells // in_size, in_cells % in_size
    dy, dx = torch.meshgrid(torch.arange(kernel), torch.arange(kernel), indexing="ij")
    qy = py[:, None] + padding - dy.flatten()[None]   # [S_in, k*k]
    qx = px[:, None] + padding - dx.flatten()[None]
    inside = (qy >= 0) & (qy < out_size) & (qx >= 0) & (qx < out_size)
    src = torch.arange(in_cells.numel() * kernel * kernel).view(-1, kernel * kernel)[inside]
    dst = slot[(qy * out_size + qx)[inside]]
    if (dst < 0).any():  # a pair landing outside S_out would contradict the mask geometry
        raise AssertionError("masked conv plan: a tap lands outside the output support")
    wino = _plan_winograd(in_mask, out_mask, kernel, padding, WINOGRAD_TILE) \
        if use_winograd else None
    return LayerPlan(in_size, out_size, padding, sparse and wino is None, in_cells, out_cells,
                     weight.to(torch.float32), src, dst, wino)


class _BatchNormWithConstantRows(torch.autograd.Function):
    """Training-mode batch norm of rows y [R, C] whose batch also holds ``n_virtual`` rows equal
    to c [C] that are never materialised (cells outside the support: the conv bias), and whose
    outputs are discarded (the mask weight there is 0, so their output gradient is 0).

    Fused forward/backward (a handful of passes instead of autograd's ~20 elementwise ops):
    dL/dy = gamma/sigma (g - sum(g)/N - xhat sum(g xhat)/N), sums over the R real rows,
    N = R + n_virtual; dL/dc = n_virtual * gamma/sigma (-sum(g)/N - xhat_c sum(g xhat)/N).
    """

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor,
                beta: torch.Tensor, n_virtual: int, eps: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        total = y.shape[0] + n_virtual
        mean = (y.sum(dim=0) + n_virtual * c) / total
        centred = y - mean
        var = ((centred * centred).sum(dim=0) + n_virtual * (c - mean) ** 2) / total
        invstd = torch.rsqrt(var + eps)
        xhat = centred.mul_(invstd)
        out = torch.addcmul(beta, xhat, gamma)
        ctx.save_for_backward(xhat, invstd, gamma, (c - mean) * invstd)
        ctx.n_virtual = n_virtual
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        xhat, invstd, gamma, xhat_c = ctx.saved_tensors
        total = xhat.shape[0] + ctx.n_virtual
        sum_g = grad.sum(dim=0)
        sum_gx = (grad * xhat).sum(dim=0)
        scale = gamma * invstd
        mean_g, mean_gx = sum_g / total, sum_gx / total
        grad_y = (grad - mean_g - xhat * mean_gx) * scale
        grad_c = ctx.n_virtual * scale * (-mean_g - xhat_c * mean_gx)
        return grad_y, grad_c, sum_gx, sum_g, None, None


def _bn_train_with_constant(y: torch.Tensor, const: torch.Tensor, n_const: int,
                            bn: nn.BatchNorm2d, samples: int, fused: bool) -> torch.Tensor:
    """Training-mode BatchNorm of y [..., C] (cells of ``samples`` maps) plus n_const cells per
    sample equal to const [C] that are not materialised; returns the normalised y and updates
    the running statistics exactly as nn.BatchNorm2d would over the full grid.

    ``fused`` uses :class:`_BatchNormWithConstantRows` (the Winograd path); otherwise plain
    autograd ops in the order the support path has always used, so its results (and the
    numbers recorded in docs/results.md) stay bit-identical."""
    reduce_dims = tuple(range(y.dim() - 1))
    extra = samples * n_const
    total = y[..., 0].numel() + extra
    if fused:
        gamma = bn.weight if bn.affine else torch.ones_like(const)
        beta = bn.bias if bn.affine else torch.zeros_like(const)
        flat = y.reshape(-1, y.shape[-1])
        out, mean, var = _BatchNormWithConstantRows.apply(flat, const, gamma, beta, extra, bn.eps)
        out = out.view_as(y)
    else:
        mean = (y.sum(dim=reduce_dims) + extra * const) / total
        var = (((y - mean) ** 2).sum(dim=reduce_dims) + extra * (const - mean) ** 2) / total
        out = (y - mean) / torch.sqrt(var + bn.eps)
        if bn.affine:
            out = out * bn.weight + bn.bias
    if bn.track_running_stats and bn.running_mean is not None and bn.running_var is not None:
        with torch.no_grad():
            tracked = bn.num_batches_tracked
            if tracked is not None:
                tracked.add_(1)
            if bn.momentum is None:
                if tracked is None:
                    raise ValueError("BatchNorm2d with momentum=None needs num_batches_tracked "
                                     "for its cumulative moving average")
                factor = 1.0 / float(tracked)  # cumulative moving average
            else:
                factor = bn.momentum
            unbiased = var.detach() * total / max(total - 1, 1)
            bn.running_mean.mul_(1 - factor).add_(factor * mean.detach())
            bn.running_var.mul_(1 - factor).add_(factor * unbiased)
    return out


def _finish_layer(y: torch.Tensor, plan: LayerPlan, conv: nn.Conv2d, norm: nn.Module,
                  samples: int, cell_dim: int, fused: bool) -> torch.Tensor:
    """Conv bias, BatchNorm over the full grid (the bias-only cells outside the support enter
    the training statistics analytically), ReLU and the layer's mask weight, on support
    features y [..., C] whose support cells lie along ``cell_dim``."""
    bias = conv.bias if conv.bias is not None else y.new_zeros(y.shape[-1])
    y = y + bias
    if isinstance(norm, nn.BatchNorm2d):
        if norm.training or norm.running_mean is None:
            n_const = plan.out_size * plan.out_size - plan.out_cells.numel()
            y = _bn_train_with_constant(y, bias, n_const, norm, samples, fused)
        else:
            y = F.batch_norm(y.movedim(-1, 1), norm.running_mean, norm.running_var,
                             norm.weight, norm.bias, False, 0.0, norm.eps).movedim(1, -1)
    shape = [1] * y.dim()
    shape[cell_dim] = -1
    return F.relu(y) * plan.weight.flatten()[plan.out_cells].to(y).view(shape)


class _GatherRows(torch.autograd.Function):
    """x[index] along dim 0, where index == len(x) selects a zero row, with a gather-based
    backward: ``inverse`` [len(x), k] lists the output rows each input row went to (padded with
    len(index), a zero row), so the gradient is a gather and a sum instead of a scatter-add."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, index: torch.Tensor,
                inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        padded = torch.cat([x, x.new_zeros(1, *x.shape[1:])])
        return padded.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        (inverse,) = ctx.saved_tensors
        padded = torch.cat([grad, grad.new_zeros(1, *grad.shape[1:])])
        picked = padded.index_select(0, inverse.reshape(-1))
        return picked.view(*inverse.shape, *grad.shape[1:]).sum(dim=1), None, None


def inverse_index(index: torch.Tensor, sources: int) -> torch.Tensor:
    """[sources, k] output rows that read each source row (k = most reads of one source),
    padded with len(index); entries of ``index`` equal to ``sources`` (zero rows) are ignored."""
    valid = index < sources
    src, dst = index[valid], torch.arange(index.numel())[valid]
    order = torch.argsort(src, stable=True)
    src, dst = src[order], dst[order]
    counts = torch.bincount(src, minlength=sources)
    k = max(int(counts.max()) if counts.numel() else 0, 1)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(src.numel()) - starts[src]
    table = torch.full((sources, k), index.numel(), dtype=torch.long)
    table[src, slot] = dst
    return table


class MaskedConvStack(nn.Module):
    """[B, C_in, N, N] proposal map -> [B, C_hidden, N, N] features (see the module docstring).

    Parameters live in ordinary ``convs`` (nn.Conv2d) and ``norms`` (nn.BatchNorm2d or
    nn.Identity) so the straightforward dense computation can run on the same weights.
    """

    mask2d: torch.Tensor  # registered buffer (not persistent)

    def __init__(self, in_channels: int, hidden: int, kernel: int, num_layers: int,
                 mask2d: torch.Tensor, batch_norm: bool = True, algorithm: str = "auto") -> None:
        super().__init__()
        if algorithm not in ALGORITHMS:
            raise ConfigError(f"conv stack algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if algorithm == "winograd" and kernel > WINOGRAD_MAX_KERNEL:
            raise ConfigError(f"Winograd conv supports kernels up to {WINOGRAD_MAX_KERNEL} in "
                              f"float32, got {kernel}; use algorithm 'support' or 'auto'")
        if algorithm == "auto":
            wide = min(in_channels, hidden) >= WINOGRAD_MIN_CHANNELS
            algorithm = "winograd" if kernel <= WINOGRAD_MAX_KERNEL and wide else "support"
        self.algorithm = algorithm
        if num_layers < 1 or kernel < 1:
            raise ConfigError(f"conv stack needs num_layers >= 1 and kernel >= 1, "
                              f"got {num_layers}, {kernel}")
        if (kernel - 1) * num_layers % 2:
            raise ConfigError(f"(kernel - 1) * num_layers must be even to keep the map N x N, "
                              f"got kernel={kernel}, num_layers={num_layers}")
        self.kernel = kernel
        self.first_padding = (kernel - 1) * num_layers // 2
        self.register_buffer("mask2d", mask2d.clone(), persistent=False)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for layer in range(num_layers):
            pad = self.first_padding if layer == 0 else 0
            self.convs.append(nn.Conv2d(in_channels if layer == 0 else hidden, hidden, kernel,
                                        padding=pad))
            self.norms.append(nn.BatchNorm2d(hidden) if batch_norm else nn.Identity())
        self.plans: list[LayerPlan] = []
        mask = mask2d.bool()
        for layer in range(num_layers):
            plan = _plan_layer(mask, kernel, self.first_padding if layer == 0 else 0,
                               use_winograd=self.algorithm == "winograd")
            self.plans.append(plan)
            mask = plan.weight > 0

    def layer_weights(self) -> list[torch.Tensor]:
        """Per-layer mask weights [H_l, H_l] (shared with the reference computation)."""
        return [p.weight for p in self.plans]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n, _ = x.shape
        if n != self.mask2d.shape[0]:
            raise ValueError(f"expected a {self.mask2d.shape[0]}x{self.mask2d.shape[0]} map, got {n}x{n}")
        if self.algorithm == "winograd":
            return self._forward_winograd(x)
        dense: torch.Tensor | None = x
        compact: torch.Tensor | None = None  # [B, S, C] features on the current support
        for plan, conv, norm in zip(self.plans, self.convs, self.norms):
            if plan.sparse:
                if compact is None:
                    assert dense is not None
                    compact = dense.flatten(2)[:, :, plan.in_cells.to(x.device)].transpose(1, 2)
                compact = self._sparse_layer(compact, plan, cast(nn.Conv2d, conv), norm)
                dense = None
            else:
                if dense is None:
                    assert compact is not None
                    dense = self._scatter(compact, self.plans_in_cells(plan), plan.in_size)
                dense = conv(dense)
                dense = F.relu(norm(dense)) * plan.weight.to(dense)
                compact = None
        if dense is None:
            assert compact is not None
            dense = self._scatter(compact, self.plans[-1].out_cells, self.plans[-1].out_size)
        return dense

    def _forward_winograd(self, x: torch.Tensor) -> torch.Tensor:
        """Every layer on its support only, position-major [S, B, C], tiles by Winograd."""
        b = x.shape[0]
        device = x.device
        first = self.plans[0]
        feats = x.flatten(2)[:, :, first.in_cells.to(device)].permute(2, 0, 1).contiguous()
        for plan, conv, norm in zip(self.plans, self.convs, self.norms):
            wino = plan.winograd
            assert wino is not None
            conv = cast(nn.Conv2d, conv)
            patches = _GatherRows.apply(feats, wino.patch_rows.reshape(-1).to(device),
                                        wino.patch_inverse.to(device))
            tiles = winograd_from_patches(patches.view(*wino.patch_rows.shape, b, -1),
                                          conv.weight, wino.tile)
            y = _GatherRows.apply(tiles.view(-1, b, tiles.shape[-1]), wino.out_rows.to(device),
                                  wino.out_inverse.to(device))
            feats = _finish_layer(y, plan, conv, norm, b, cell_dim=0, fused=True)
        last = self.plans[-1]
        out = feats.new_zeros(b, feats.shape[-1], last.out_size * last.out_size)
        out = out.index_copy(2, last.out_cells.to(device), feats.permute(1, 2, 0))
        return out.view(b, -1, last.out_size, last.out_size)

    @staticmethod
    def plans_in_cells(plan: LayerPlan) -> torch.Tensor:
        return plan.in_cells

    @staticmethod
    def _scatter(compact: torch.Tensor, cells: torch.Tensor, size: int) -> torch.Tensor:
        b, s, c = compact.shape
        out = compact.new_zeros(b, c, size * size)
        out[:, :, cells.to(compact.device)] = compact.transpose(1, 2)
        return out.view(b, c, size, size)

    def _sparse_layer(self, compact: torch.Tensor, plan: LayerPlan, conv: nn.Conv2d,
                      norm: nn.Module) -> torch.Tensor:
        b, s_in, c_in = compact.shape
        k2 = self.kernel * self.kernel
        c_out = conv.out_channels
        # [C_in, k*k*C_out]: every tap's weight side by side, so one GEMM evaluates them all
        w_all = conv.weight.permute(1, 2, 3, 0).reshape(c_in, k2 * c_out)
        taps = (compact @ w_all).view(b, s_in * k2, c_out)
        device = compact.device
        y = compact.new_zeros(b, plan.out_cells.numel(), c_out)
        y = y.index_add(1, plan.pair_dst.to(device), taps[:, plan.pair_src.to(device)])
        return _finish_layer(y, plan, conv, norm, b, cell_dim=1, fused=False)
