"""Resumable training in-process (toy model): a state saved inside an epoch resumes exactly,
saves are atomic, and a NaN loss or NaN weights never become a checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file
from test_engine import toy_config, toy_pipeline

from vidlang.engine.resume import atomic_write, check_training_state
from vidlang.engine.run import LAST_CKPT, train
from vidlang.errors import DataError, NonFiniteError


class KillAfterStep(L.Callback):
    """Simulates SIGKILL inside an epoch: training dies at the start of the batch after
    optimiser step ``step`` (whose periodic save has been written)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError("killed")


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "last" / "model.safetensors")


def epoch_rows(run: Path) -> list[dict[str, str]]:
    rows = []
    for log in sorted((run / "logs").glob("csv*/metrics.csv")):
        with open(log, newline="") as f:
            rows += [r for r in csv.DictReader(f) if r.get("train/loss_epoch")]
    return rows


@pytest.mark.parametrize("schedule", [
    {"name": "multistep", "milestones": [1], "gamma": 0.5},
    {"name": "inverse_sqrt", "warmup_updates": 3, "warmup_init_lr": 0.001},  # steps per update
])
def test_mid_epoch_state_resumes_bit_identically(tmp_path: Path, schedule: dict) -> None:
    cfg = toy_config(trainer={"max_epochs": 2, "checkpoint_every_n_steps": 1},
                     optim={"scheduler": schedule})
    full = train(cfg, tmp_path / "full", pipeline=toy_pipeline(cfg))  # 3 steps per epoch

    with pytest.raises(RuntimeError, match="killed"):  # dies inside epoch 2, after step 4
        train(cfg, tmp_path / "cut", pipeline=toy_pipeline(cfg), callbacks=[KillAfterStep(4)])
    state = torch.load(tmp_path / "cut" / LAST_CKPT, weights_only=True)
    assert state["global_step"] == 4 and state["vidlang_position"]["batches_done"] == 1
    resumed = train(cfg, tmp_path / "cut", pipeline=toy_pipeline(cfg), resume=True)

    a, b = weights(full.out_dir), weights(resumed.out_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the epoch means of the resumed epoch count the batches trained before the kill
    assert [r["train/loss_epoch"] for r in epoch_rows(full.out_dir)] == \
        [r["train/loss_epoch"] for r in epoch_rows(resumed.out_dir)]


def test_atomic_write_keeps_the_old_file_when_the_writer_dies(tmp_path: Path) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old complete state")

    def dies_half_way(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_half_way)
    assert target.read_bytes() == b"old complete state"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary left


def test_truncated_or_empty_training_state_is_one_data_error(tmp_path: Path) -> None:
    cfg = toy_config(trainer={"max_epochs": 1})
    train(cfg, tmp_path / "run", pipeline=toy_pipeline(cfg))
    ckpt = tmp_path / "run" / LAST_CKPT
    check_training_state(ckpt)  # complete: fine
    data = ckpt.read_bytes()
    for broken in (data[: len(data) // 2], b"", b"garbage" * 100):
        ckpt.write_bytes(broken)
        with pytest.raises(DataError, match=r"last\.ckpt: cannot read the training state"):
            train(cfg, tmp_path / "run", pipeline=toy_pipeline(cfg), resume=True)


class PoisonBatch(L.Callback):
    """Puts a NaN into the features of the second training batch."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0 and batch_idx == 1:
            batch["feats"][0, 0, 0] = float("nan")


def test_non_finite_loss_stops_training_naming_step_and_videos(tmp_path: Path) -> None:
    cfg = toy_config(trainer={"max_epochs": 2})
    pipe = toy_pipeline(cfg)
    with pytest.raises(NonFiniteError, match=r"training loss is nan at epoch 1, step 2 .*videos: train_v"):
        train(cfg, tmp_path / "run", pipeline=pipe, callbacks=[PoisonBatch()])
    assert not (tmp_path / "run" / "last").exists() and not (tmp_path / "run" / LAST_CKPT).exists()


def test_non_finite_weights_are_never_saved(tmp_path: Path) -> None:
    from engine_toy import ToyGrounder
    from vidlang.engine.checkpoint import save_pretrained

    cfg = toy_config()
    model = ToyGrounder(cfg.model)
    with torch.no_grad():
        next(model.parameters())[0].fill_(float("inf"))
    with pytest.raises(NonFiniteError, match="not writing .*best: 1 weight tensors hold NaN/inf"):
        save_pretrained(model, cfg, tmp_path / "best")
    assert not (tmp_path / "best").exists()


def test_resume_drops_log_rows_written_after_the_saved_state(tmp_path) -> None:
    """A run killed after its last save may have logged later steps (even an epoch's
    validation); a resume trains them again, so those rows must not stay twice in the log."""
    import csv

    import torch

    from vidlang.engine.resume import trim_logs_after_state

    state = tmp_path / "last.ckpt"
    torch.save({"global_step": 10}, state)
    log = tmp_path / "metrics.csv"
    rows = [{"epoch": "0", "step": "9", "val/x": ""}, {"epoch": "0", "step": "10", "val/x": ""},
            {"epoch": "0", "step": "11", "val/x": "0.5"}]
    with open(log, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["epoch", "step", "val/x"])
        writer.writeheader()
        writer.writerows(rows)
    assert trim_logs_after_state(state, [log]) == 2
    with open(log, newline="") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["9"]
    assert trim_logs_after_state(state, [log]) == 0
