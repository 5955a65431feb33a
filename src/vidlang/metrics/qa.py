"""Multiple-choice QA accuracy (VideoCLIP-style: pick the best-scored candidate answer).

Ties are explicit, as for retrieval: ``average`` (default) gives a query 1/t credit when the
correct answer is among t tied maxima (the expected accuracy under random tie-breaking);
``first`` takes numpy's arg-max (the first maximum, what most released code does);
``optimistic`` / ``pessimistic`` count a tie as a hit / a miss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from vidlang.errors import ConfigError, DataError

_CREDIT: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    # args: is-maximum mask (Q, C), correct column (Q,), answer-is-a-maximum (Q,)
    "average": lambda is_max, answers, hit: np.where(hit, 1.0 / is_max.sum(axis=1), 0.0),
    "first": lambda is_max, answers, hit: (is_max.argmax(axis=1) == answers).astype(float),
    "optimistic": lambda is_max, answers, hit: hit.astype(float),
    "pessimistic": lambda is_max, answers, hit: (hit & (is_max.sum(axis=1) == 1)).astype(float),
}


def mc_accuracy(scores: np.ndarray, answers: Sequence[int] | np.ndarray,
                ties: str = "average") -> float:
    """Accuracy in percent of ``scores`` (Q, C) against the correct column ``answers`` (Q,)."""
    if ties not in _CREDIT:
        raise ConfigError(f"ties: {ties!r} is not one of {', '.join(_CREDIT)}")
    s = np.asarray(scores, dtype=np.float64)
    a = np.asarray(answers)
    if s.ndim != 2 or a.shape != (s.shape[0],):
        raise DataError(f"mc_accuracy needs scores (Q, C) and answers (Q,), got {s.shape} and {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) or np.any((a < 0) | (a >= s.shape[1])):
        raise DataError(f"answers must be column indices in 0..{s.shape[1] - 1}")
    if np.isnan(s).any():
        raise DataError(f"scores hold NaN (query {int(np.isnan(s).any(axis=1).argmax())})")
    if len(s) == 0:
        return 0.0
    is_max = s == s.max(axis=1, keepdims=True)
    hit = is_max[np.arange(len(s)), a]
    credit = _CREDIT[ties](is_max, a, hit)
    return 100.0 * float(credit.sum()) / len(s)
