"""Frame aggregators of CLIP4Clip: ``meanP`` and ``seqTransf`` (registered in TEMPORAL_MODULES).

Both map projected clip embeddings [B, T, D] (+ mask [B, T], True at real clips) to contextual
clip embeddings [B, T, D]; :func:`masked_mean` then pools them into one video vector. Keeping
the per-clip outputs lets DMAE, TPM-CL, multi-level alignment and TempCLR reuse them.
"""

from __future__ import annotations

import torch
from torch import nn

from vidlang.registry import Registry

TEMPORAL_MODULES: Registry[type[nn.Module]] = Registry("temporal module")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [B, T, D] over the positions where mask [B, T] is True (at least one)."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


@TEMPORAL_MODULES.register("meanP")
class MeanPool(nn.Module):
    """Parameter-free: the clip embeddings are passed through unchanged (pooling comes later)."""

    def __init__(self, dim: int, num_layers: int = 4, num_heads: int = 4,
                 max_positions: int = 128) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x


@TEMPORAL_MODULES.register("seqTransf")
class SequenceTransformer(nn.Module):
    """Learned position embeddings + a small transformer encoder, with a residual to the input."""

    def __init__(self, dim: int, num_layers: int = 4, num_heads: int = 4,
                 max_positions: int = 128) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.positions = nn.Embedding(max_positions, dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, num_heads, dim_feedforward=2 * dim, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.max_positions:
            raise ValueError(f"{t} clips exceed seqTransf's max_positions={self.max_positions}")
        pos = self.positions(torch.arange(t, device=x.device)).unsqueeze(0)
        return x + self.encoder(x + pos, src_key_padding_mask=~mask)
