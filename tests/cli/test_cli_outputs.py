"""Output a user can read: ``eval`` says where it wrote its files, a retrieval report carries no
grounding preset, and no packaged config turns the progress bar off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_support import TINY_MMN, TINY_RETRIEVAL, run_vidlang, synth_tiny, train_tiny_mmn
from vidlang.engine import load_config
from vidlang.engine.config import packaged_configs
from vidlang.engine.progress import progress_iter


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth_tiny(tmp_path_factory.mktemp("outputs") / "data")


def test_retrieval_eval_prints_where_it_wrote_and_no_grounding_preset(tiny: Path, tmp_path: Path) -> None:
    from vidlang.engine.run import train

    train(load_config("retrieval/synthvl_cpu", [*TINY_RETRIEVAL, f"data.root={tiny}"]), tmp_path / "r")
    proc = run_vidlang("eval", "retrieval/synthvl_cpu", "--set", f"data.root={tiny}",
                       "--ckpt", tmp_path / "r", "--out", tmp_path / "ev")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert "preset" not in report and any(k.startswith("t2v R@1") for k in report["metrics"])
    assert f"wrote metrics.json to {tmp_path / 'ev'}" in proc.stderr
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"] == report["metrics"]


def test_grounding_eval_report_names_its_preset_and_folder(tiny: Path, tmp_path: Path) -> None:
    from vidlang.engine.evaluation import evaluate

    run = train_tiny_mmn(tiny, tmp_path / "m")
    cfg = load_config("mmn/cpu", [*TINY_MMN, f"data.root={tiny}"])
    report = evaluate(cfg, run, out_dir=tmp_path / "ev")
    assert report["preset"] == "mmn" and report["out_dir"] == str(tmp_path / "ev")
    assert (tmp_path / "ev" / "predictions.jsonl").is_file()


@pytest.mark.parametrize("name", [n for n in packaged_configs()
                                  if not n.startswith(("dataset/", "model/")) and n != "base"])
def test_packaged_experiments_show_progress(name: str) -> None:
    assert load_config(name).trainer.progress_bar, f"{name} trains without a progress bar"


def test_progress_iter_yields_everything() -> None:
    assert list(progress_iter(range(5), "x")) == list(range(5))
    assert list(progress_iter(iter(range(3)), "x", enabled=False)) == [0, 1, 2]
