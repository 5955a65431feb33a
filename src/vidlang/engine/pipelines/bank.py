"""A training split's prepared features as one pre-padded tensor, so a batch is a gather.

:class:`FeatureBank` holds every video of a dataset in one zero-padded ``[N, T_max, D]``
float32 tensor (plus one zero row after it) with each video's length. A batch's padded
features are then one ``index_select`` of whole videos (:meth:`FeatureBank.gather_videos`)
and a batch of clip segments one ``index_select`` of rows (:meth:`FeatureBank.gather_rows`),
instead of zero-filling a fresh tensor and copying ragged arrays into it per batch. The
values are the very floats of the per-video tensors and padding is +0.0 as in
:func:`vidlang.ops.padding.pad_rows`, so the collated tensors are bit-identical to the
ragged path's (``tests/engine/test_feature_bank.py``).

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
        # one zero row after the padded block: what padding positions of a row gather point at
        self.flat = torch.zeros(n * self.longest + 1, width, dtype=torch.float32)
        self.padded = self.flat[:-1].view(n, self.longest, width)
        for i, f in enumerate(feats):
            self.padded[i, : f.shape[0]] = f
        self.row_of = {vid: i for i, vid in enumerate(ids)}
        self.zero_row = n * self.longest

    @property
    def nbytes(self) -> int:
        return self.flat.element_size() * self.flat.nelement()

    def view(self, row: int) -> torch.Tensor:
        """Video ``row``'s ``[T, D]`` features: a view into the bank (no copy)."""
        return self.padded[row, : int(self.lengths[row])]

    def gather_videos(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pad_rows([self.view(r) for r in rows])``: the ``[B, T_max of the batch, D]``
        zero-padded features of videos ``rows`` and the ``[B, T]`` mask, in one gather."""
        lengths = self.lengths.index_select(0, rows)
        longest = int(lengths.max())
        out = self.padded[:, :longest].index_select(0, rows)
        return out, torch.arange(longest)[None, :] < lengths[:, None]

    def gather_rows(self, flat: torch.Tensor, lengths: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Segments of rows: ``flat`` holds the bank row numbers (``video * T_max + frame``,
        see :meth:`flat_index`) of every segment concatenated, ``lengths`` how many belong to
        each segment -> ``[S, longest, D]`` zero-padded features and the ``[S, longest]`` mask
        (what :func:`vidlang.engine.pipelines.features.gather_rows` gives)."""
        longest = int(lengths.max()) if len(lengths) else 0
        mask = torch.arange(longest)[None, :] < lengths[:, None]
        index = torch.full((len(lengths), longest), self.zero_row, dtype=torch.long)
        if len(flat):
            index[mask] = flat
        width = self.flat.shape[1]
        out = torch.index_select(self.flat, 0, index.reshape(-1)).view(len(lengths), longest, width)
        return out, mask

    def flat_index(self, row: int, frames: torch.Tensor) -> torch.Tensor:
        """Bank row numbers of frames ``frames`` of video ``row`` (for :meth:`gather_rows`)."""
        return frames + row * self.longest


def shared_bank(items: Sequence[object]) -> FeatureBank | None:
    """The bank every item of a batch comes from (attribute ``bank``), or None when an item
    has none or they differ (then the collate pads the ragged tensors as before)."""
    bank = getattr(items[0], "bank", None) if items else None
    if bank is None or any(getattr(it, "bank", None) is not bank for it in items):
        return None
    return bank
