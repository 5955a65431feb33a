"""The masked 2D conv stack of 2D-TAN / MMN, computed only where the mask lets values through.

Upstream semantics (kept exactly): L layers of Conv2d(k x k); the first is padded by
(k - 1) * L / 2 and the rest are unpadded, so an N x N map comes out N x N again. After each
conv: optional BatchNorm2d (MMN) -> ReLU -> multiply by a mask weight 1/count, where count is the
number of currently-valid cells under the k x k window (0 where there are none); the next
layer's mask is weight > 0.

Efficient path (same numbers, less work): a layer's input is zero outside its support S_in
(the previous mask), so its output differs from the conv bias only on S_out = positions whose
window touches S_in. When |S_in| is smaller than the dense output grid, the layer is computed as
one GEMM of the |S_in| input rows with all k*k kernel taps, scattered to the output cells each
(input, tap) pair lands on. Cells outside S_out equal the bias exactly; BatchNorm's batch
statistics add them analytically, so training-mode BN matches the dense computation. Layers
whose input support is about as large as the grid run as ordinary dense convs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from vidlang.errors import ConfigError


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


def mask_weight(mask: torch.Tensor, kernel: int, padding: int) -> torch.Tensor:
    """1/count of valid cells under each k x k window (0 where none): the upstream re-weighting."""
    ones = torch.ones(1, 1, kernel, kernel, dtype=torch.float64)
    count = F.conv2d(mask[None, None].to(torch.float64), ones, padding=padding)[0, 0].round()
    return torch.where(count > 0, 1.0 / count.clamp(min=1), torch.zeros_like(count))


def _plan_layer(in_mask: torch.Tensor, kernel: int, padding: int) -> LayerPlan:
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
    return LayerPlan(in_size, out_size, padding, sparse, in_cells, out_cells,
                     weight.to(torch.float32), src, dst)


def _bn_train_with_constant(y: torch.Tensor, const: torch.Tensor, n_const: int,
                            bn: nn.BatchNorm2d) -> torch.Tensor:
    """Training-mode BatchNorm of y [B, S, C] plus n_const cells per sample equal to const [C]
    that are not materialised; returns the normalised y and updates the running statistics
    exactly as nn.BatchNorm2d would over the full grid."""
    b, s, _ = y.shape
    total = b * (s + n_const)
    mean = (y.sum(dim=(0, 1)) + b * n_const * const) / total
    var = (((y - mean) ** 2).sum(dim=(0, 1)) + b * n_const * (const - mean) ** 2) / total
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
    out = (y - mean) / torch.sqrt(var + bn.eps)
    if bn.affine:
        out = out * bn.weight + bn.bias
    return out


class MaskedConvStack(nn.Module):
    """[B, C_in, N, N] proposal map -> [B, C_hidden, N, N] features (see the module docstring).

    Parameters live in ordinary ``convs`` (nn.Conv2d) and ``norms`` (nn.BatchNorm2d or
    nn.Identity) so the straightforward dense computation can run on the same weights.
    """

    mask2d: torch.Tensor  # registered buffer (not persistent)

    def __init__(self, in_channels: int, hidden: int, kernel: int, num_layers: int,
                 mask2d: torch.Tensor, batch_norm: bool = True) -> None:
        super().__init__()
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
            plan = _plan_layer(mask, kernel, self.first_padding if layer == 0 else 0)
            self.plans.append(plan)
            mask = plan.weight > 0

    def layer_weights(self) -> list[torch.Tensor]:
        """Per-layer mask weights [H_l, H_l] (shared with the reference computation)."""
        return [p.weight for p in self.plans]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, n, _ = x.shape
        if n != self.mask2d.shape[0]:
            raise ValueError(f"expected a {self.mask2d.shape[0]}x{self.mask2d.shape[0]} map, got {n}x{n}")
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
        bias = conv.bias if conv.bias is not None else compact.new_zeros(c_out)
        y = y + bias
        if isinstance(norm, nn.BatchNorm2d):
            n_const = plan.out_size * plan.out_size - plan.out_cells.numel()
            if norm.training or norm.running_mean is None:
                y = _bn_train_with_constant(y, bias, n_const, norm)
            else:
                y = F.batch_norm(y.transpose(1, 2), norm.running_mean, norm.running_var,
                                 norm.weight, norm.bias, False, 0.0, norm.eps).transpose(1, 2)
        weight = plan.weight.flatten()[plan.out_cells].to(y)
        return F.relu(y) * weight[None, :, None]
