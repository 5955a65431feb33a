"""Post-LayerNorm transformer decoder layers with causal self-attention and Gaussian
re-weighting of attention (CPL/CCR's DualTransformer, cpl_ccr.md section 2).

Re-weighting: the softmax attention probabilities are multiplied along the key axis by
``g + 1e-10`` and renormalised to sum 1, so a proposal's Gaussian ``g`` focuses attention on
its span without hard cropping. Masks are boolean: ``True`` marks a real (attendable) key.
"""

from __future__ import annotations

import math

import torch
from torch import nn

GAUSS_EPS = 1e-10


def causal_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """``[L, L]`` bool, True where query i may attend key j (j <= i)."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> torch.Tensor:
    """``[L, dim]`` fixed sinusoidal position encoding (sin on even, cos on odd channels)."""
    pos = torch.arange(length, dtype=torch.float32, device=device).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe


class WeightedAttention(nn.Module):
    """Multi-head attention whose probabilities can be re-weighted per key by a Gaussian."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model width {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, key_mask: torch.Tensor | None = None,
                causal: bool = False, key_weights: torch.Tensor | None = None) -> torch.Tensor:
        """query ``[B, Lq, D]``, key ``[B, Lk, D]``; key_mask ``[B, Lk]``; key_weights ``[B, Lk]``."""
        q = self._split(self.q_proj(query)) / math.sqrt(self.head_dim)
        k, v = self._split(self.k_proj(key)), self._split(self.v_proj(key))
        scores = q @ k.transpose(-1, -2)  # [B, H, Lq, Lk]
        allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device)
        if causal:
            allowed = causal_mask(scores.shape[-1], scores.device)[: scores.shape[-2]]
        allowed = allowed.expand(scores.shape[0], 1, -1, -1)
        if key_mask is not None:
            allowed = allowed & key_mask[:, None, None, :]
        # a query with no allowed key (a padded row) attends uniformly to nothing useful: keep finite
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        probs = scores.softmax(dim=-1) * allowed
        if key_weights is not None:
            probs = probs * (key_weights[:, None, None, :] + GAUSS_EPS)
            probs = probs / probs.sum(dim=-1, keepdim=True).clamp(min=torch.finfo(probs.dtype).tiny)
        out = self.dropout(probs) @ v
        b, _, lq, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, lq, -1))


class DecoderLayer(nn.Module):
    """Post-LN decoder layer: causal self-attention, optional cross-attention, ReLU FFN."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = WeightedAttention(dim, heads, dropout)
        self.cross_attn = WeightedAttention(dim, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norm_self, self.norm_cross, self.norm_ffn = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, self_weights: torch.Tensor | None = None,
                memory_weights: torch.Tensor | None = None) -> torch.Tensor:
        x = self.norm_self(x + self.dropout(self.self_attn(x, x, mask, causal=True, key_weights=self_weights)))
        if memory is not None:
            attended = self.cross_attn(x, memory, memory_mask, key_weights=memory_weights)
            x = self.norm_cross(x + self.dropout(attended))
        return self.norm_ffn(x + self.dropout(self.ffn(x)))


class DecoderStack(nn.Module):
    """``layers`` post-LN decoder layers; one of the two stacks of CPL's DualTransformer."""

    def __init__(self, layers: int, dim: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads, ffn_dim, dropout) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, memory: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                weight_self: bool = False) -> torch.Tensor:
        """``weights`` re-weights the cross-attention keys (and the self-attention keys when
        ``weight_self``, as when the clips attend to themselves under a proposal)."""
        for layer in self.layers:
            x = layer(x, mask, memory, memory_mask,
                      self_weights=weights if weight_self else None,
                      memory_weights=None if weight_self else weights)
        return x
