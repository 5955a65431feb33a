"""Engine tests: end-to-end training of a toy grounding model, checkpoints, exact resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from engine_toy import ToyGrounder, fake_grounding_data
from vidlang.engine.checkpoint import load_model, save_pretrained
from vidlang.engine.config import CONFIG_ROOT, build_config
from vidlang.engine.pipelines.grounding import GroundingPipeline
from vidlang.engine.run import train
from vidlang.errors import ConfigError


def toy_config(**sections):
    raw = OmegaConf.merge(
        OmegaConf.load(CONFIG_ROOT / "base.yaml"),
        {"model": {"name": "engine_toy"},
         "data": {"select_split": None, "batch_size": 3},
         "trainer": {"max_epochs": 2, "progress_bar": False, "accelerator": "cpu", "log_every_n_steps": 1},
         "optim": {"lr": 0.05, "grad_clip": 1.0}},
        sections)
    return build_config(raw)


def toy_pipeline(cfg, n_videos=9):
    train_recs, train_feats = fake_grounding_data(n_videos=n_videos, seed=0, split="train")
    val_recs, val_feats = fake_grounding_data(n_videos=4, seed=1, split="val")
    return GroundingPipeline(cfg, ToyGrounder(cfg.model).feature_spec(),
                             records={"train": train_recs, "val": val_recs},
                             features={**train_feats, **val_feats})


def epoch_losses(run: Path) -> list[float]:
    with open(run / "logs" / "csv" / "metrics.csv", newline="") as f:
        return [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]


class StopAfter(L.Callback):
    """Simulates an interruption: stop cleanly after ``epochs`` epochs."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def test_toy_model_trains_loss_falls_and_round_trips(tmp_path):
    cfg = toy_config(trainer={"max_epochs": 6})
    pipe = toy_pipeline(cfg)
    result = train(cfg, tmp_path / "run", pipeline=pipe)
    losses = epoch_losses(tmp_path / "run")
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0], losses
    assert result.model_dir == result.last_dir
    model = result.model
    assert model.epochs_seen == [1, 2, 3, 4, 5, 6]  # on_train_epoch_start got 1-based epochs
    assert model.prepared_with == [r.qid for r in pipe.records("train")]  # prepare() hook
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert (tmp_path / "run" / "config.yaml").is_file()

    loaded = load_model(result.last_dir)
    assert isinstance(loaded, ToyGrounder)
    assert load_model(tmp_path / "run", expect=ToyGrounder).cfg == cfg.model
    batch = next(iter(pipe.eval_loader("val")))
    model.eval()
    assert loaded.predict(batch) == model.predict(batch)


def test_resume_is_bit_identical_to_uninterrupted_run(tmp_path):
    sched = {"scheduler": {"name": "multistep", "milestones": [1], "gamma": 0.5}}
    cfg = toy_config(trainer={"max_epochs": 2}, optim=sched)
    full = train(cfg, tmp_path / "full", pipeline=toy_pipeline(cfg))

    train(cfg, tmp_path / "cut", pipeline=toy_pipeline(cfg), callbacks=[StopAfter(1)])
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, tmp_path / "cut", pipeline=toy_pipeline(cfg))
    resumed = train(cfg, tmp_path / "cut", pipeline=toy_pipeline(cfg), resume=True)

    a = load_file(full.last_dir / "model.safetensors")
    b = load_file(resumed.last_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the resumed run logs into its own CSV folder; together they equal the uninterrupted log
    first = epoch_losses(tmp_path / "cut")
    with open(tmp_path / "cut" / "logs" / "csv_resume1" / "metrics.csv", newline="") as f:
        second = [float(r["train/loss_epoch"]) for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    assert first + second == epoch_losses(tmp_path / "full")
    assert (tmp_path / "cut" / "curves.png").stat().st_size > 0


def test_resume_without_state_is_a_clear_error(tmp_path):
    cfg = toy_config()
    with pytest.raises(ConfigError, match="no training state"):
        train(cfg, tmp_path / "none", pipeline=toy_pipeline(cfg), resume=True)


def test_model_selection_exports_best_with_label(tmp_path):
    cfg = toy_config(data={"select_split": "val"}, eval={"metric": "mIoU"}, trainer={"max_epochs": 3})
    pipe = toy_pipeline(cfg)
    scores = []
    pipe_evaluate = pipe.evaluate

    def recording(model, outputs, split):
        metrics = pipe_evaluate(model, outputs, split)
        scores.append((split, metrics["mIoU [mmn]"]))
        return metrics

    pipe.evaluate = recording
    result = train(cfg, tmp_path / "sel", pipeline=pipe)
    assert [s for s, _ in scores] == ["val"] * 3
    best = max(range(3), key=lambda i: (scores[i][1], -i))
    info = json.loads((result.best_dir / "info.json").read_text())
    assert info["epoch"] == best + 1 and info["score"] == scores[best][1] == result.best_score
    assert info["metric"] == "mIoU [mmn]" and info["selected_on"] == "val" and not info["test_selected"]
    with open(tmp_path / "sel" / "logs" / "csv" / "metrics.csv", newline="") as f:
        logged = [float(r["val/mIoU [mmn]"]) for r in csv.DictReader(f) if r.get("val/mIoU [mmn]")]
    assert logged == pytest.approx([v for _, v in scores])


def test_save_pretrained_rejects_mismatched_weights(tmp_path):
    cfg = toy_config()
    model = ToyGrounder(cfg.model)
    save_pretrained(model, cfg, tmp_path / "m")
    bigger = toy_config(model={"name": "engine_toy", "hidden": 32})
    from vidlang.engine.config import save_config

    save_config(bigger, tmp_path / "m" / "config.yaml")
    with pytest.raises(Exception, match="model.safetensors|size"):
        load_model(tmp_path / "m")
