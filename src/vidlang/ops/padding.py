"""Ragged rows -> one zero-padded batch and its validity mask (torch and NumPy).

* :func:`pad_rows`: a list of ``[T_i, ...]`` tensors -> ``[N, T_max, ...]`` and a ``[N, T_max]``
  mask (True at real rows), in one C++ call (``pad_sequence``);
* :func:`pad_to_length`: one tensor padded with zeros (False) along a dimension up to a length
  (before a collective that needs equal shapes);
* :func:`pad_flat_rows` / :func:`pad_arrays`: the NumPy counterparts, from rows already
  concatenated (with their lengths) or from a list of arrays, with one scatter.

Padding is zero everywhere, so a padded batch holds exactly the values a per-row copy into a
zero tensor gives.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence


def pad_to_length(x: torch.Tensor, length: int, dim: int = 1) -> torch.Tensor:
    """``x`` with zeros (False) appended along ``dim`` up to ``length`` (``x`` itself when it
    is already that long)."""
    extra = length - x.shape[dim]
    if extra <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = extra
    return torch.cat([x, x.new_zeros(shape)], dim=dim)


def pad_rows(rows: Sequence[torch.Tensor], dtype: torch.dtype | None = torch.float32,
             min_length: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, T_max, ...]`` zero-padded stack of ``[T_i, ...]`` tensors (all of one dtype and
    device) and its ``[N, T_max]`` mask (True at real rows, on the same device).

    ``dtype``: the output's dtype (float32 by default, as the feature pipelines feed models);
    ``None`` keeps the rows' dtype. ``min_length``: at least this many positions (a text
    batch whose strings are all empty still gets one, masked, token)."""
    out = pad_sequence(list(rows), batch_first=True)
    out = pad_to_length(out, min_length, dim=1)
    if dtype is not None and out.dtype != dtype:
        out = out.to(dtype)
    lengths = torch.tensor([int(r.shape[0]) for r in rows], dtype=torch.long, device=out.device)
    return out, torch.arange(out.shape[1], device=out.device)[None, :] < lengths[:, None]


def pad_flat_rows(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``flat`` [sum(lengths), ...], ``lengths[i]`` of them belonging to item i ->
    ``(N, max(lengths), ...)`` zero-padded array (``flat``'s dtype) and its ``(N, P)`` mask."""
    lengths = np.asarray(lengths, dtype=np.int64)
    q, total = len(lengths), int(lengths.sum())
    p = int(lengths.max()) if q else 0
    out = np.zeros((q, p, *flat.shape[1:]), dtype=flat.dtype)
    starts = np.cumsum(lengths) - lengths
    col = np.arange(total) - np.repeat(starts, lengths)
    out[np.repeat(np.arange(q), lengths), col] = flat
    return out, np.arange(p)[None, :] < lengths[:, None]


def pad_arrays(arrays: Sequence[np.ndarray], dtype: np.dtype | type | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`pad_flat_rows` of a non-empty list of ``[T_i, ...]`` arrays (cast to ``dtype``
    when given, as a copy into an array of that dtype would)."""
    flat = np.concatenate([np.asarray(a) for a in arrays])
    if dtype is not None:
        flat = flat.astype(dtype, copy=False)
    return pad_flat_rows(flat, np.array([len(a) for a in arrays], dtype=np.int64))
