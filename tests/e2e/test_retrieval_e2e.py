"""End to end on a tiny SynthVL (hard negatives on): the engine trains the dual encoder, DMAE
with multi-level alignment, and the MCQA model; losses fall and the metrics are well formed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vidlang.engine.config import load_config
from vidlang.engine.evaluation import build_pipeline, run_eval_outputs
from vidlang.engine.run import train

TINY = ["model.video_dim=32", "model.embed_dim=32", "model.text.name=word", "model.text.dim=32",
        "model.text.vocab_size=2000", "data.batch_size=16", "data.select_split=null",
        "trainer.max_epochs=3", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
        "optim.lr=0.01"]


@pytest.fixture(scope="module")
def tiny_synthvl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidlang.data.synthvl.generate import generate

    return generate(tmp_path_factory.mktemp("synthvl"), preset="tiny", seed=0,
                    hard_negative_fraction=0.3)


def _epoch_losses(run: Path) -> list[float]:
    with open(run / "logs" / "csv" / "metrics.csv", newline="") as f:
        return [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]


def _train_and_eval(name: str, root: Path, out: Path, extra: list[str]) -> tuple[list[float], dict]:
    cfg = load_config(name, [f"data.root={root}", *TINY, *extra])
    result = train(cfg, out)
    pipe = build_pipeline(cfg, result.model)
    metrics = pipe.evaluate(result.model, run_eval_outputs(result.model, pipe, "test"), "test")
    return _epoch_losses(out), metrics


def _check_rank_metrics(metrics: dict, direction: str) -> None:
    def get(name: str) -> float:
        (value,) = [v for k, v in metrics.items() if k.startswith(f"{direction} {name} [")]
        return float(value)

    assert 0.0 <= get("R@1") <= get("R@5") <= get("R@10") <= 100.0
    assert get("MdR") >= 1.0 and get("MnR") >= 1.0


@pytest.mark.slow
def test_dual_encoder_caption_retrieval(tiny_synthvl: Path, tmp_path: Path) -> None:
    losses, metrics = _train_and_eval("retrieval/synthvl_cpu", tiny_synthvl, tmp_path / "de", [])
    assert len(losses) == 3 and losses[-1] < losses[0]
    _check_rank_metrics(metrics, "t2v")
    _check_rank_metrics(metrics, "v2t")


@pytest.mark.slow
def test_dmae_multilevel_paragraph_retrieval(tiny_synthvl: Path, tmp_path: Path) -> None:
    losses, metrics = _train_and_eval(
        "retrieval/synthvl_paragraphs_cpu", tiny_synthvl, tmp_path / "dm",
        ["model.name=dmae", "model.similarity=att_ti", "model.loss=negnce",
         "model.tpmcl_partial_type=4"])
    assert losses[-1] < losses[0]
    _check_rank_metrics(metrics, "t2v")


@pytest.mark.slow
def test_mcqa_with_multilevel(tiny_synthvl: Path, tmp_path: Path) -> None:
    losses, metrics = _train_and_eval("mcqa/synthvl_cpu", tiny_synthvl, tmp_path / "qa",
                                      ["trainer.max_epochs=2"])
    assert losses[-1] < losses[0]
    assert 0.0 <= metrics["accuracy"] <= 100.0
