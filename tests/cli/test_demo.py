"""`vidlang demo` on the tiny preset: every stage runs and writes its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end_on_tiny(tmp_path: Path) -> None:
    from vidlang.cli.demo import run_demo

    out = tmp_path / "demo"
    summary = run_demo(out, seed=0, preset="tiny", epochs=1,
                       overrides=["trainer.limit_train_batches=2", "trainer.progress_bar=false"])
    assert (out / "timeline.png").stat().st_size > 10_000
    assert set(summary["metrics"]) == {"test", "test_novel"}
    for metrics in summary["metrics"].values():
        r1 = [v for k, v in metrics.items() if k.startswith("R@1,")]
        r5 = [v for k, v in metrics.items() if k.startswith("R@5,")]
        assert r1 and len(r1) == len(r5)
        assert all(0 <= a <= b <= 100 for a, b in zip(r1, r5)), "R@5 >= R@1, in percent"
    assert len(summary["examples"]) == 3
    for example in summary["examples"]:
        assert example["ground_truth"] and 1 <= len(example["top3"]) <= 3
    saved = json.loads((out / "demo_summary.json").read_text())
    assert saved["seed"] == 0 and saved["config"] == "mmn/cpu"
    # a second run with the same settings reuses the trained model and gives the same numbers
    again = run_demo(out, seed=0, preset="tiny", epochs=1,
                     overrides=["trainer.limit_train_batches=2", "trainer.progress_bar=false"])
    assert again["metrics"] == summary["metrics"]


def test_demo_refuses_to_mix_with_another_run(tmp_path: Path) -> None:
    from vidlang.cli.demo import run_demo
    from vidlang.errors import ConfigError

    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "demo_settings.json").write_text(
        '{"seed": 5, "preset": "tiny", "epochs": null, "overrides": []}')
    with pytest.raises(ConfigError, match="another"):
        run_demo(tmp_path, seed=0, preset="tiny")
