"""A training split's prepared features as one pre-padded tensor, so a batch is a gather.

:class:`FeatureBank` holds every video of a dataset in one zero-padded ``[N, T_max, D]``
float32 tensor with each video's length. A batch's padded features are then one
``index_select`` of whole videos (:meth:`FeatureBank.gather_videos`), instead of zero-filling
a fresh tensor and copying the ragged per-video tensors into it at every step; TempCLR's clip
segments are gathered from the bank's rows directly (:attr:`FeatureBank.rows`: every video's
``T_max`` rows, then a zero row), so a training batch need not copy whole videos at all. The
values are the very floats of the per-video tensors and padding is +0.0 as in
:func:`vidlang.ops.padding.pad_rows`, so the collated tensors are bit-identical to the
ragged path's (``tests/engine/test_feature_bank.py``).

The batch tensors are fresh per step and large (6 MiB for 64 videos); that they do not fault
in their pages again every step is :func:`vidlang.ops.memory.retain_freed_memory`'s job.

Built by :meth:`vidlang.engine.pipelines.features.FeatureDataset.build_bank` when the whole
split fits in ``data.feature_cache_mb`` (padded); the memo's per-video tensors then become
views into the bank, so the features are held once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class FeatureBank:
    """Videos ``ids`` with features ``feats`` (``[T_i, D]`` each) pre-padded in one tensor."""

    def __init__(self, ids: Sequence[str], feats: Sequence[torch.Tensor]) -> None:
        if not feats:
            raise ValueError("a feature bank needs at least one video")
        width = int(feats[0].shape[1])
        self.lengths = torch.tensor([int(f.shape[0]) for f in feats], dtype=torch.long)
        self.longest = int(self.lengths.max())
        n = len(feats)
        # every video's rows, then one zero row: clip segments are gathered from it directly
        self.rows = torch.zeros(n * self.longest + 1, width, dtype=torch.float32)
        self.padded = self.rows[:-1].view(n, self.longest, width)
        for i, f in enumerate(feats):
            self.padded[i, : f.shape[0]] = f
        self.row_of = {vid: i for i, vid in enumerate(ids)}

    def first_row(self, row: int) -> int:
        """Where video ``row``'s features start in :attr:`rows`."""
        return row * self.longest

    @property
    def nbytes(self) -> int:
        return self.padded.element_size() * self.padded.nelement()

    def view(self, row: int) -> torch.Tensor:
        """Video ``row``'s ``[T, D]`` features: a view into the bank (no copy)."""
        return self.padded[row, : int(self.lengths[row])]

    def gather_videos(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pad_rows([self.view(r) for r in rows])`` in one gather: the ``[B, T, D]``
        zero-padded features of videos ``rows`` (T: the batch's longest) and the ``[B, T]``
        mask. (Clip segments are gathered from :attr:`rows` instead.)"""
        lengths = self.lengths.index_select(0, rows)
        longest = int(lengths.max())
        n, full, width = self.padded.shape
        src = self.padded.view(n, full * width)[:, : longest * width]  # rows of whole videos
        feats = torch.index_select(src, 0, rows).view(len(rows), longest, width)
        mask = torch.arange(longest)[None, :] < lengths[:, None]
        return feats, mask


def shared_bank(items: Sequence[object]) -> FeatureBank | None:
    """The bank every item of a batch comes from (attribute ``bank``), or None when an item
    has none or they differ (then the collate pads the ragged tensors as before)."""
    bank = getattr(items[0], "bank", None) if items else None
    if bank is None or any(getattr(it, "bank", None) is not bank for it in items):
        return None
    return bank
