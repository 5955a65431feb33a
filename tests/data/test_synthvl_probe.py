"""SynthVL probes: the data is learnable above the prior, and the knobs' shortcuts show up."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidlang.data.synthvl import generate
from vidlang.data.synthvl.probe import _best_span, run_probes
from vidlang.ops.windows import paired_iou


@pytest.fixture(scope="module")
def knobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("probe"), "tiny", seed=2, n_train=160, n_test=60, n_test_novel=40,
                    feature_dim=64, spurious_cooccurrence=0.9, shuffled_order_distractors=0.5,
                    hard_negative_fraction=0.4)


def test_probes_learn_above_prior_and_expose_the_shortcuts(knobs: Path) -> None:
    result = run_probes(knobs)
    for row in result["grounding"]:
        assert row["probe"]["R1@0.5"] > row["prior"]["R1@0.5"] + 0.15, row
    masked = result["masked_object"]
    assert masked["train"] > 0.75 and masked["test"] < 0.45
    assert all(v < 0.35 for v in result["mc_text_only"].values())
    cosine = result["signature_cosine"]
    assert min(cosine["same_verb"], cosine["same_object"]) > cosine["unrelated"] + 0.2
    retrieval = result["retrieval"]
    assert retrieval["vs_random_video"] > 0.75
    # hard negatives are harder than random videos; a reordered twin is a coin flip when pooled
    assert retrieval["vs_hard_negative_twin"] < retrieval["vs_random_video"] - 0.05
    assert abs(retrieval["vs_shuffled_order_twin"] - 0.5) < 0.15
    order = result["order"]
    assert order["pairs"] == 15
    assert order["order_aware"] > order["order_blind"] + 0.2


def test_best_span_and_iou() -> None:
    import numpy as np

    scores = np.array([0.0, 0.1, 2.0, 2.1, 1.9, 0.0, -0.1])
    assert _best_span(scores) == (2, 5)
    assert float(paired_iou((0.0, 2.0), (1.0, 3.0))) == pytest.approx(1 / 3)
    assert float(paired_iou((0.0, 1.0), (2.0, 3.0))) == 0.0


def test_probe_command(knobs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from vidlang.cli.main import main

    main(["synth-probe", str(knobs)])
    out = capsys.readouterr().out
    assert "test_novel" in out and "order-aware" in out
