"""Winograd (Toom-Cook) 2D convolution on a subset of output tiles.

A k x k "valid" convolution is computed tile by tile: each m x m output tile needs an
(m + k - 1)^2 input patch, and F(m x m, k x k) gives the tile with (m + k - 1)^2 products per
channel pair instead of m^2 k^2 (F(4, 5): 64 instead of 400, 6.25x fewer). The channel sums
become (m + k - 1)^2 batched GEMMs, and autograd differentiates through the transforms, so the
backward pass saves the same factor.

Features are kept position-major ([cells, batch, channels]) so gathering a tile's input patch
and scattering its outputs are row copies, and the three transforms are plain matrix products
on flattened tiles (Kronecker products of the 1D transforms).

The transforms follow from polynomial interpolation at n = m + k - 1 points (n - 1 finite
points plus infinity). Correlation y = d * g is the transpose of the linear convolution
h (len m) * g (len k), whose Toom-Cook form is V_n^-1 [(V_m h) . (V_k g)] with V_p the
n x p evaluation (Vandermonde) matrix, so

    y = V_m^T [ (V_k g) . (V_n^-T d) ],   i.e.  A^T = V_m^T,  G = V_k,  B^T = V_n^-T.

Rows of G are scaled by 1 / prod_{l != j}(a_j - a_l) and the matching rows of B^T multiplied
back, which keeps the magnitudes of both transforms balanced in float32.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

import torch

# small, well-conditioned finite points; infinity is always the last point
_POINTS = [Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2),
           Fraction(-1, 2), Fraction(3), Fraction(-3), Fraction(1, 3), Fraction(-1, 3)]


@cache
def winograd_matrices(m: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T [m, n], G [n, k], B^T [n, n]) in float64 for F(m, k), n = m + k - 1."""
    n = m + k - 1
    if m < 1 or k < 1 or n - 1 > len(_POINTS):
        raise ValueError(f"no Winograd point set for F({m}, {k})")
    pts = _POINTS[: n - 1]

    def vander(cols: int) -> list[list[Fraction]]:
        rows = [[p ** c for c in range(cols)] for p in pts]
        rows.append([Fraction(int(c == cols - 1)) for c in range(cols)])  # the point at infinity
        return rows

    scale = [Fraction(1)] * n
    for j, p in enumerate(pts):
        for q in pts:
            if q != p:
                scale[j] *= p - q
    vm, vk, vn = vander(m), vander(k), vander(n)
    a_t = torch.tensor([[float(vm[j][i]) for j in range(n)] for i in range(m)], dtype=torch.float64)
    g = torch.tensor([[float(vk[j][c] / scale[j]) for c in range(k)] for j in range(n)],
                     dtype=torch.float64)
    vn_t = torch.tensor([[float(x) for x in row] for row in vn], dtype=torch.float64)
    b_t = torch.linalg.inv(vn_t).T * torch.tensor([float(s) for s in scale],
                                                  dtype=torch.float64)[:, None]
    return a_t, g, b_t


def kron_transforms(m: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2D transforms as matrices on row-major flattened tiles (float64):
    input  V = (B^T (x) B^T) d   [n*n, n*n],
    kernel U = (G (x) G) g       [n*n, k*k],
    output Y = (A^T (x) A^T) M   [m*m, n*n]."""
    a_t, g, b_t = winograd_matrices(m, k)
    return torch.kron(b_t, b_t), torch.kron(g, g), torch.kron(a_t, a_t)


def winograd_tiles(x: torch.Tensor, weight: torch.Tensor, m: int,
                   patch_rows: torch.Tensor) -> torch.Tensor:
    """Correlate position-major features with ``weight`` on a set of output tiles, no bias.

    x: [S, B, C_in] features of S input cells; weight: [C_out, C_in, k, k]; patch_rows:
    [n*n, T] row of x under each tile's input patch (S for a zero cell). Returns
    [m*m, T, B, C_out]: each tile's outputs, row-major in the tile.
    """
    padded = torch.cat([x, x.new_zeros(1, *x.shape[1:])])
    patches = padded.index_select(0, patch_rows.reshape(-1))
    return winograd_from_patches(patches.view(*patch_rows.shape, *x.shape[1:]), weight, m)


def winograd_from_patches(patches: torch.Tensor, weight: torch.Tensor, m: int) -> torch.Tensor:
    """patches [n*n, T, B, C_in] (each tile's input patch, row-major) -> [m*m, T, B, C_out]."""
    nn_, tiles, b, c_in = patches.shape
    c_out, _, k, _ = weight.shape
    n = m + k - 1
    if nn_ != n * n:
        raise ValueError(f"F({m}, {k}) needs {n * n} patch cells per tile, got {nn_}")
    k_in, k_g, k_out = (t.to(device=patches.device, dtype=patches.dtype)
                        for t in kron_transforms(m, k))
    v = (k_in @ patches.reshape(n * n, tiles * b * c_in)).view(n * n, tiles * b, c_in)
    # U as [n*n, C_out, C_in] straight from the weight's memory; bmm reads it transposed
    u = (k_g @ weight.reshape(c_out * c_in, k * k).T).view(n * n, c_out, c_in)
    prod = torch.bmm(v, u.transpose(1, 2)).view(n * n, tiles * b * c_out)
    return (k_out @ prod).view(m * m, tiles, b, c_out)
