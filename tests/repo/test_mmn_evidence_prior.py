"""The text-only priors of scripts/run_mmn_evidence.py on hand cases (no MiniLM, no training)."""

from __future__ import annotations

import numpy as np

from repo_scripts import load_repo_module
from vidlang.data.records import GroundingRecord

ev = load_repo_module("scripts/run_mmn_evidence.py")
QUERIES = ("the person opens the door.", "someone holds the cup before washing it.",
           "after the person sits down, they read the book.")
# normalised GT windows that are exactly cells of the 16 x 16 map
WINDOWS = ((0.0, 0.25), (0.5, 0.75), (0.75, 1.0))


def _record(i: int, query: str, window: tuple[float, float], duration: float = 40.0) -> GroundingRecord:
    return GroundingRecord(qid=f"q{i}", video_id=f"v{i}", duration=duration, query=query,
                           windows=((window[0] * duration, window[1] * duration),))


def _one_hot(texts):
    """Stand-in for MiniLM: each distinct query is its own direction."""
    vocab = sorted(set(QUERIES) | set(texts))
    return np.array([[1.0 if t == v else 0.0 for v in vocab] for t in texts])


def _train() -> list[GroundingRecord]:
    # each query 3 times with its window, plus a rare alternative window for the first query
    out = [_record(3 * i + j, q, w) for i, (q, w) in enumerate(zip(QUERIES, WINDOWS)) for j in range(3)]
    return out + [_record(99, QUERIES[0], (0.5, 1.0))]


def test_identical_queries_vote_for_their_training_cells() -> None:
    test = [_record(100 + i, q, (0.0, 0.1), duration=20.0) for i, q in enumerate(QUERIES)]
    preds = ev.query_prior(_train(), test, k=3, embed=_one_hot)
    for pred, window in zip(preds, WINDOWS):
        start, end, _ = pred["pred_relevant_windows"][0]
        assert (start, end) == (window[0] * 20.0, window[1] * 20.0)  # scaled by the test duration
        scores = [w[2] for w in pred["pred_relevant_windows"]]
        assert scores == sorted(scores, reverse=True)


def test_all_neighbours_give_the_duration_prior_ranking() -> None:
    test = [_record(100, QUERIES[1], (0.0, 0.1))]
    knn = ev.query_prior(_train(), test, k=10**6, embed=_one_hot)[0]["pred_relevant_windows"]
    prior = ev.duration_prior(_train(), test)[0]["pred_relevant_windows"]
    assert [w[:2] for w in knn] == [w[:2] for w in prior]


def test_context_groups_and_prior() -> None:
    assert [ev.query_context(q) for q in QUERIES] == ["none", "before", "after"]
    assert ev.query_context("once the person holds the cup, someone looks at the phone.") == "after"
    test = [_record(100 + i, q.replace("the", "a"), (0.0, 0.1)) for i, q in enumerate(QUERIES)]
    preds = ev.context_prior(_train(), test)
    for pred, window in zip(preds, WINDOWS):
        assert pred["pred_relevant_windows"][0][:2] == [window[0] * 40.0, window[1] * 40.0]
