"""The resumable training state: ``checkpoints/last.ckpt`` written atomically at the end of every
epoch (and every ``trainer.checkpoint_every_n_steps`` optimiser steps), and a clean stop on
SIGINT / SIGTERM (state saved at the next step boundary, then :class:`TrainingInterrupted`).

Why not Lightning's ``ModelCheckpoint``: with ``save_top_k=0`` it writes ``last`` only when
training ends, a kill during its write leaves a truncated file, and Ctrl+C makes Lightning exit
1 without saving. Here every write goes to a temporary file that is renamed over the old one,
so ``last.ckpt`` is always either the previous or the new complete state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from vidlang.errors import DataError, NonFiniteError, TrainingInterrupted

LAST_CKPT = Path("checkpoints") / "last.ckpt"
_TMP_PREFIX = ".tmp-"


def atomic_write(path: str | Path, write: Any) -> Path:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path`` (same folder, so
    the rename is atomic): readers see the old file or the complete new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_TMP_PREFIX}{os.getpid()}-{path.name}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete temporary files a killed process left behind in ``folder``."""
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.glob(f"{_TMP_PREFIX}*"):
            p.unlink(missing_ok=True)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes through :func:`atomic_write`."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))


def non_finite_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the floating-point tensors that hold a NaN or an infinity."""
    return [name for name, t in named
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]


def check_finite_weights(module: torch.nn.Module, what: str) -> None:
    """:class:`NonFiniteError` if any weight or buffer of ``module`` is NaN/inf (``what`` says
    what was about to be written)."""
    bad = non_finite_tensors(module.state_dict().items())
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise NonFiniteError(f"not writing {what}: {len(bad)} weight tensors hold NaN/inf "
                             f"({', '.join(bad[:5])}{more}); training diverged (lower optim.lr, "
                             f"set optim.grad_clip, or check the features)")


def check_training_state(path: str | Path) -> None:
    """A one-line :class:`DataError` when ``path`` is not a complete checkpoint file (empty,
    truncated, not a torch zip archive) - checked before Lightning tries to unpickle it."""
    path = Path(path)
    size = path.stat().st_size
    reason = None
    if size == 0:
        reason = "the file is empty"
    else:
        try:
            with zipfile.ZipFile(path) as z:
                if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in z.namelist()):
                    reason = "not a torch checkpoint (no data.pkl inside)"
        except (zipfile.BadZipFile, OSError) as e:
            reason = f"truncated or not a checkpoint ({e})"
    if reason is not None:
        raise DataError(f"cannot read the training state: {reason}; it was not written by a "
                        f"finished save - start again without --resume (or into another --out)",
                        path)


def trim_logs_after_state(state_path: str | Path, csv_logs: Sequence[Path]) -> int:
    """Drop the CSV log rows written after the training state was saved (a run killed after
    its last save logged steps, even a validation, that a resume trains and logs again).
    Lightning's ``step`` column is 0-based, so the state at global step G covers rows with
    ``step < G``. Returns how many rows were dropped (the caller reports them)."""
    import csv

    state = torch.load(state_path, map_location="cpu", weights_only=False)
    covered = int(state.get("global_step", 0))
    dropped = 0
    for log in csv_logs:
        with open(log, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], list(reader)
        keep = [r for r in rows if not r.get("step") or int(r["step"]) < covered]
        if len(keep) == len(rows):
            continue
        dropped += len(rows) - len(keep)
        tmp = log.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(keep)
        os.replace(tmp, log)
    return dropped


def batches_done_in_epoch(trainer: L.Trainer) -> int:
    """Training batches of the current epoch whose step has run (Lightning's progress)."""
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)  # type: ignore[attr-defined]


class StopRequest:
    """Turns SIGINT / SIGTERM into a request the training loop honours at the next step
    boundary (after saving); a second signal stops at once. A no-op outside the main thread."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.getsignal(s)
                signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            raise TrainingInterrupted(f"{signal.Signals(signum).name} again: stopped at once; "
                                      "the last saved training state is kept")
        self.signum = signum
        rank_zero_info(f"{signal.Signals(signum).name}: saving the training state at the end of "
                       "this step, then stopping (send it again to stop at once)")


class StopNow(Exception):
    """Raised inside the fit loop after the state was saved; turned into TrainingInterrupted."""


HOLD_AFTER_SAVE_ENV = "VIDLANG_HOLD_AFTER_SAVE_STEP"


def _hold_after_save(step: int, stop: StopRequest) -> None:
    """Fault injection for the kill-and-resume tests: with ``VIDLANG_HOLD_AFTER_SAVE_STEP=N``
    the process waits after its save at global step N (until a stop is requested, 60 s at
    most), so a test signals it at a known point instead of racing the training loop."""
    if os.environ.get(HOLD_AFTER_SAVE_ENV) != str(step):
        return
    deadline = time.monotonic() + 60.0
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(0.02)


class TrainingState(Checkpoint):
    """Writes ``<out>/checkpoints/last.ckpt`` at the end of every epoch, every ``every_n_steps``
    optimiser steps (0 = only per epoch), and when a stop was requested; then stops.

    Step-level saves happen only at optimiser-step boundaries inside an epoch (the last batch
    is covered by the end-of-epoch save, after validation), so the saved state always resumes
    exactly (see ``VidlangLightningModule.on_save_checkpoint``).
    """

    def __init__(self, out_dir: Path, stop: StopRequest, every_n_steps: int = 0) -> None:
        self.path = Path(out_dir) / LAST_CKPT
        self.stop, self.every_n_steps = stop, every_n_steps
        self.saved_at: tuple[int, int] | None = None  # (1-based epoch, global step) of the last save
        self._raise_at_next_batch = False

    # -- when ------------------------------------------------------------------------------
    def _stop_requested(self, trainer: L.Trainer) -> bool:
        flag = self.stop.requested
        if trainer.world_size > 1:  # every process must stop at the same step
            from vidlang.ops.distributed import all_reduce_sum

            t = torch.tensor([1.0 if flag else 0.0], device=trainer.strategy.root_device)
            flag = bool(all_reduce_sum(t).item() > 0)
        return flag

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._raise_at_next_batch:
            raise StopNow()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        done = batches_done_in_epoch(trainer)
        if done >= trainer.num_training_batches or done % trainer.accumulate_grad_batches:
            return  # last batch (the epoch-end save follows) or inside an accumulation
        periodic = self.every_n_steps > 0 and trainer.global_step % self.every_n_steps == 0
        stopping = self._stop_requested(trainer)
        if periodic or stopping:
            self.save(trainer, pl_module)
            _hold_after_save(trainer.global_step, self.stop)
        if stopping:  # raise before the next batch, after Lightning logged this step
            self._raise_at_next_batch = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer, pl_module)
        if self._stop_requested(trainer):
            trainer.should_stop = True  # the epoch is complete: let Lightning log it and stop

    # -- how -------------------------------------------------------------------------------
    def save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch, step = trainer.current_epoch + 1, trainer.global_step
        check_finite_weights(pl_module, f"{self.path} (epoch {epoch}, step {step})")
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state, not just weights
        self.saved_at = (epoch, step)
        rank_zero_info(f"saved training state: {self.path} (epoch {epoch}, step {step})")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """``with stop_on_signals() as stop:`` around ``trainer.fit``; see :class:`StopRequest`."""
    with StopRequest() as stop:
        yield stop


def interrupted(state: TrainingState, out_dir: Path, signum: int | None) -> TrainingInterrupted:
    """The one-line error for a stopped run: where the state is and how to continue."""
    name = signal.Signals(signum).name if signum is not None else "stop"
    if state.saved_at is None:
        return TrainingInterrupted(f"{name}: stopped before the first step finished; nothing to resume")
    epoch, step = state.saved_at
    return TrainingInterrupted(f"{name}: training state saved at epoch {epoch}, step {step} in "
                               f"{state.path}; continue with: vidlang train ... --out {out_dir} --resume")


__all__ = ["AtomicCheckpointIO", "LAST_CKPT", "StopRequest", "TrainingState", "atomic_write",
           "check_finite_weights", "check_training_state", "interrupted", "non_finite_tensors",
           "remove_stale_temporaries", "stop_on_signals"]
