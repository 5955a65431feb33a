"""`vidlang train` as a real process, interrupted mid-epoch (SIGINT: the state is saved and
the process exits 130; SIGKILL: nothing can be saved, the last periodic state is used), then
`--resume` ends with the same weights, best model and logged metrics as an uninterrupted run
(bit-identical, as docs/engine.md promises for a resume on the same machine)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

VIDLANG = str(Path(sys.executable).parent / "vidlang")
SAVED = re.compile(r"saved training state: .*last\.ckpt \(epoch (\d+), step (\d+)\)")
# tiny MMN on tiny SynthVL: 48 training videos in batches of 4 = 12 steps per epoch, a
# learning-rate milestone after epoch 1, a periodic save every 2 steps. The frozen text
# encoder runs per batch (cache_frozen_text=false): the process-wide cache encodes new queries
# batched with whatever else is new, so a fresh process rebuilds it with other groupings and
# float rounding differs (docs/engine.md, section 3)
SETS = ["--set", "model.cache_frozen_text=false", "--set", "model.input_dim=32", "--set", "model.conv_hidden=16", "--set", "model.featpool_hidden=16",
        "--set", "model.conv_layers=2", "--set", "model.joint_dim=16", "--set", "data.batch_size=4",
        "--set", "trainer.max_epochs=2", "--set", "trainer.progress_bar=false",
        "--set", "optim.scheduler.milestones=[1]", "--set", "trainer.checkpoint_every_n_steps=2"]


def _start(data: Path, out: Path, *extra: str, hold_at: int | None = None) -> subprocess.Popen:
    """``hold_at``: the process waits after its save at that step until signalled, so the
    signal lands mid-epoch however loaded the machine is (VIDLANG_HOLD_AFTER_SAVE_STEP)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if hold_at is not None:
        env["VIDLANG_HOLD_AFTER_SAVE_STEP"] = str(hold_at)
    return subprocess.Popen([VIDLANG, "train", "mmn/cpu", "--set", f"data.root={data}", *SETS,
                             "--out", str(out), *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)


def _signal_after_mid_epoch_save(proc: subprocess.Popen, sig: int) -> str:
    """Read the log until a periodic save inside epoch 1 (step 4) is reported, then signal."""
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        m = SAVED.search(line)
        if m and int(m.group(2)) >= 4:
            proc.send_signal(sig)
            break
    rest, _ = proc.communicate(timeout=600)
    return "".join(seen) + rest


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def _epoch_rows(run: Path) -> list[dict[str, str]]:
    rows = []
    for log in sorted((run / "logs").glob("csv*/metrics.csv")):
        with open(log, newline="") as f:
            rows += [{k: v for k, v in r.items() if v and (k.endswith("_epoch") or k.startswith("val/"))}
                     for r in csv.DictReader(f)]
    return [r for r in rows if r]


def _same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]


def test_sigint_and_sigkill_mid_epoch_then_resume_equal_an_uninterrupted_run(tmp_path: Path) -> None:
    from vidlang.data.synthvl import generate

    data = generate(tmp_path / "syn", "tiny", 0)
    full = _start(data, tmp_path / "full")
    stopped = _start(data, tmp_path / "int", hold_at=4)
    killed = _start(data, tmp_path / "kill", hold_at=4)

    log = _signal_after_mid_epoch_save(stopped, signal.SIGINT)
    assert stopped.returncode == 130, log
    assert "Traceback" not in log
    last = log.strip().splitlines()[-1]
    assert re.fullmatch(r"interrupted: SIGINT: training state saved at epoch 1, step \d+ in \S+last\.ckpt; "
                        r"continue with: vidlang train \.\.\. --out \S+ --resume", last), last
    step = int(re.search(r"step (\d+)", last).group(1))
    assert 4 <= step < 12, "stopped inside epoch 1"

    log = _signal_after_mid_epoch_save(killed, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL, log
    state = torch.load(tmp_path / "kill" / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 0 and 0 < state["vidlang_position"]["batches_done"] < 12

    resumes = [_start(data, tmp_path / name, "--resume") for name in ("int", "kill")]
    _finish(full)
    for proc in resumes:
        _finish(proc)
    for name in ("int", "kill"):
        run = tmp_path / name
        _same_weights(tmp_path / "full" / "last", run / "last")
        _same_weights(tmp_path / "full" / "best", run / "best")
        assert json.loads((run / "best" / "info.json").read_text()) == \
            json.loads((tmp_path / "full" / "best" / "info.json").read_text())
        assert _epoch_rows(run) == _epoch_rows(tmp_path / "full")
