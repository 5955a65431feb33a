"""vidlang.ops.padding: the one ragged-batch padding, pinned to the copies it replaced.

Each former copy (feature pipelines' ``pad_rows``, the frozen-text cache's token padding, the
dual encoder's ``stack_videos`` and ``_pad_to``, TempCLR's step-frame padding, the gather
padding of the distributed helpers, the metrics' ``pad_ragged`` scatter and the index's
embedding batch) is written out below as it stood, and the shared helper must give equal
values, dtype, shape and device on random ragged rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from vidlang.ops.padding import pad_arrays, pad_flat_rows, pad_rows, pad_to_length


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.device == b.device and torch.equal(a, b)


def ragged(rng: np.random.Generator, lengths: list[int], dim: int, dtype: torch.dtype) -> list[torch.Tensor]:
    return [torch.as_tensor(rng.standard_normal((n, dim))).to(dtype) for n in lengths]


LENGTHS = [[3, 0, 5, 1], [4], [0, 0], [2, 7, 7, 1, 3]]


# ---- the former copies, verbatim ----------------------------------------------------------------
def old_pipeline_pad_rows(rows):  # engine/pipelines/features.py
    out = pad_sequence(list(rows), batch_first=True)
    if out.dtype != torch.float32:
        out = out.float()
    lengths = torch.tensor([int(r.shape[0]) for r in rows], dtype=torch.long)
    return out, torch.arange(out.shape[1])[None, :] < lengths[:, None]


def old_text_cache_pad(token_rows):  # text/cache.py FrozenTextCache.encode
    lengths = torch.tensor([t.shape[0] for t in token_rows], dtype=torch.long)
    tokens = pad_sequence(list(token_rows), batch_first=True)
    if tokens.shape[1] == 0:
        tokens = tokens.new_zeros(len(token_rows), 1, tokens.shape[2])
    return tokens, torch.arange(tokens.shape[1])[None, :] < lengths[:, None]


def old_stack_videos(clips_list):  # models/retrieval.py stack_videos
    t_max = max(int(c.shape[0]) for c in clips_list)
    dim = int(clips_list[0].shape[1])
    clips = torch.zeros(len(clips_list), t_max, dim)
    mask = torch.zeros(len(clips_list), t_max, dtype=torch.bool)
    for i, c in enumerate(clips_list):
        clips[i, : c.shape[0]] = c
        mask[i, : c.shape[0]] = True
    return clips, mask


def old_tempclr_pad(rows):  # models/tempclr.py step frames
    longest = max(r.shape[0] for r in rows)
    video = rows[0].new_zeros(len(rows), longest, rows[0].shape[-1])
    video_mask = torch.zeros(len(rows), longest, dtype=torch.bool, device=video.device)
    for b, r in enumerate(rows):
        video[b, :r.shape[0]] = r
        video_mask[b, :r.shape[0]] = True
    return video, video_mask


def old_pad_to(x, length):  # models/retrieval.py _pad_to
    extra = length - x.shape[1]
    if extra <= 0:
        return x
    pad = x.new_zeros((x.shape[0], extra, *x.shape[2:]))
    return torch.cat([x, pad], dim=1)


def old_gather_pad(t, longest):  # engine/distributed.py gather_with_grad / gather_rows
    if t.shape[0] < longest:
        t = torch.cat([t, t.new_zeros((longest - t.shape[0], *t.shape[1:]))], dim=0)
    return t


def old_pad_ragged_scatter(flat, lens):  # metrics/inputs.py pad_ragged (after validation)
    q, total = len(lens), int(lens.sum())
    owner = np.repeat(np.arange(q), lens)
    p = int(lens.max()) if q else 0
    out = np.zeros((q, p, flat.shape[1]), dtype=np.float64)
    starts = np.cumsum(lens) - lens
    col = np.arange(total) - np.repeat(starts, lens)
    out[owner, col] = flat
    return out, np.arange(p)[None, :] < lens[:, None]


def old_embed_batch(feats):  # index/embed.py embed_videos
    t_max = max(len(f) for f in feats)
    x = np.zeros((len(feats), t_max, feats[0].shape[1]), dtype=np.float32)
    mask = np.zeros((len(feats), t_max), dtype=bool)
    for i, f in enumerate(feats):
        x[i, : len(f)] = f
        mask[i, : len(f)] = True
    return x, mask


# ---- pins --------------------------------------------------------------------------------------
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_pad_rows_matches_old_copies(lengths: list[int], dtype: torch.dtype) -> None:
    rng = np.random.default_rng(sum(lengths))
    rows = ragged(rng, lengths, 6, dtype)
    new = pad_rows(rows)
    old = old_pipeline_pad_rows(rows)
    assert same(new[0], old[0]) and same(new[1], old[1])
    new_t, old_t = pad_rows(rows, dtype=None, min_length=1), old_text_cache_pad(rows)
    assert same(new_t[0], old_t[0]) and same(new_t[1], old_t[1])
    if max(lengths) > 0:
        assert all(same(n, o) for n, o in zip(pad_rows(rows), old_stack_videos(rows)))
        assert all(same(n, o) for n, o in zip(pad_rows(rows, dtype=None), old_tempclr_pad(rows)))


@pytest.mark.parametrize("length", [0, 3, 5, 9])
def test_pad_to_length_matches_old_copies(length: int) -> None:
    rng = np.random.default_rng(length)
    x = torch.as_tensor(rng.standard_normal((4, 5, 3)), dtype=torch.float32)
    m = torch.as_tensor(rng.random((4, 5)) < 0.5)
    assert same(pad_to_length(x, length), old_pad_to(x, length))
    assert same(pad_to_length(m, length), old_pad_to(m, length))
    assert same(pad_to_length(x, length, dim=0), old_gather_pad(x, length))
    if length <= 5:
        assert pad_to_length(x, length) is x  # nothing to add: no copy


@pytest.mark.parametrize("lengths", LENGTHS)
def test_numpy_padding_matches_old_copies(lengths: list[int]) -> None:
    rng = np.random.default_rng(len(lengths))
    lens = np.array(lengths, dtype=np.int64)
    flat = rng.standard_normal((int(lens.sum()), 3))
    new, old = pad_flat_rows(flat, lens), old_pad_ragged_scatter(flat, lens)
    assert new[0].dtype == old[0].dtype and np.array_equal(new[0], old[0])
    assert np.array_equal(new[1], old[1])
    if max(lengths) > 0:
        feats = [rng.standard_normal((n, 4)) for n in lengths]  # float64 in, float32 out
        (x, mask), (ox, omask) = pad_arrays(feats, np.float32), old_embed_batch(feats)
        assert x.dtype == ox.dtype == np.float32 and np.array_equal(x, ox)
        assert np.array_equal(mask, omask)


def test_hand_cases() -> None:
    out, mask = pad_rows([torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0]])])
    assert out[:, :, 0].tolist() == [[1.0, 2.0], [3.0, 0.0]]
    assert mask.tolist() == [[True, True], [True, False]]
    ids, valid = pad_flat_rows(np.array([[5], [6], [7]]), np.array([1, 0, 2]))
    assert ids[:, :, 0].tolist() == [[5, 0], [0, 0], [6, 7]] and ids.dtype == np.int64
    assert valid.tolist() == [[True, False], [False, False], [True, True]]
    empty, empty_mask = pad_rows([torch.zeros(0, 2)], dtype=None, min_length=1)
    assert empty.shape == (1, 1, 2) and not empty_mask.any()
