"""InfoNCE and NegNCE on hand-checkable matrices."""

from __future__ import annotations

import math

import pytest
import torch

from vidlang.losses.contrastive import hard_negative_mask, info_nce, negnce
from vidlang.registry import LOSSES

S = torch.tensor([[0.50, 0.70, 0.10],
                  [0.20, 0.60, 0.45],
                  [0.30, 0.00, 0.40]])


def _ce_rows(z: list[list[float]]) -> float:
    total = 0.0
    for i, row in enumerate(z):
        total += -row[i] + math.log(sum(math.exp(x) for x in row))
    return total / len(z)


def test_info_nce_is_mean_of_both_directions() -> None:
    z = (10 * S).tolist()
    zt = (10 * S.t()).tolist()
    expected = 0.5 * (_ce_rows(z) + _ce_rows(zt))
    assert float(info_nce(10 * S)) == pytest.approx(expected, rel=1e-5)
    assert LOSSES.get("infonce") is info_nce


def test_info_nce_valid_mask_removes_negatives() -> None:
    valid = torch.ones(3, 3, dtype=torch.bool)
    valid[0, 1] = valid[1, 0] = False
    z = 10 * S
    rows = [[z[0, 0], z[0, 2]], [z[1, 1], z[1, 2]], z[2].tolist()]
    cols = [[z[0, 0], z[2, 0]], [z[1, 1], z[2, 1]], z[:, 2].tolist()]
    expected = 0.5 * (_ce_rows_pos(rows, [0, 0, 2]) + _ce_rows_pos(cols, [0, 0, 2]))
    assert float(info_nce(z, valid)) == pytest.approx(expected, rel=1e-5)


def _ce_rows_pos(rows: list[list[float]], pos: list[int]) -> float:
    return sum(-float(r[p]) + math.log(sum(math.exp(float(x)) for x in r))
               for r, p in zip(rows, pos)) / len(rows)


def test_hard_negatives_beat_row_or_column_positive() -> None:
    hard = hard_negative_mask(S)
    # (0,1): 0.70 > S00 = 0.5 (row); (1,2): 0.45 > S22 = 0.4 (column only)
    expected = torch.zeros(3, 3, dtype=torch.bool)
    expected[0, 1] = expected[1, 2] = True
    assert torch.equal(hard, expected)
    assert torch.equal(hard_negative_mask(S.t()), expected.t())


def test_negnce_value_on_hand_case() -> None:
    scale = 100.0
    z = scale * S

    def one_dir(m: torch.Tensor, hard: list[tuple[int, int]]) -> float:
        p = m.softmax(1).clamp(1e-6, 1 - 1e-6)
        pos = -sum(math.log(float(p[i, i])) for i in range(3)) / 3
        neg = -sum(math.log(1 - float(p[i, j])) for i, j in hard) / len(hard)
        return 1.0 * pos + 0.5 * neg

    expected = 0.5 * (one_dir(z, [(0, 1), (1, 2)]) + one_dir(z.t(), [(1, 0), (2, 1)]))
    assert float(negnce(z, S)) == pytest.approx(expected, rel=1e-5)
    # no hard negatives: only the alpha term remains, which equals InfoNCE
    easy = torch.eye(3) * 0.9
    assert float(negnce(2 * easy)) == pytest.approx(float(info_nce(2 * easy)), rel=1e-5)


def test_negnce_penalises_hard_negatives_more_than_infonce() -> None:
    z = 10 * S
    assert float(negnce(z, S, beta=0.5)) > float(negnce(z, S, beta=0.0))
    assert float(negnce(z, S, beta=0.0)) == pytest.approx(float(info_nce(z)), rel=1e-5)


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="square"):
        info_nce(torch.zeros(2, 3))
