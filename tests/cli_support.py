"""Run the installed ``vidlang`` entry point in a subprocess (what a user runs), so tests see
the real exit code and the real stderr, including anything typer/click print themselves."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VIDLANG = Path(sys.executable).parent / "vidlang"


def run_vidlang(*args: str | Path, cwd: str | Path | None = None, timeout: float = 120,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``vidlang ARGS`` with the test's environment (PYTHONPATH included), wide columns so a
    one-line error is not wrapped by the terminal width, and one torch thread."""
    full_env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([str(VIDLANG), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=full_env)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single ``error: ...`` line of a failed command; fails unless exit code 2, one
    stderr line and no traceback."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# a tiny MMN that trains in a few CPU seconds on SynthVL `tiny` (32-d features)
TINY_MMN = ["model.featpool_hidden=8", "model.conv_hidden=8", "model.conv_layers=2",
            "model.joint_dim=8", "model.text.name=word", "model.text.dim=16", "trainer.max_epochs=1",
            "trainer.progress_bar=false", "data.batch_size=16", "seed=0"]
# a tiny dual encoder for retrieval on the same data
TINY_RETRIEVAL = ["model.embed_dim=16", "model.text.name=word", "model.text.dim=16",
                  "model.text.vocab_size=500", "data.batch_size=16", "trainer.max_epochs=1",
                  "trainer.progress_bar=false", "seed=0"]


def synth_tiny(out: Path) -> Path:
    """``vidlang synth --preset tiny --seed 0 --out OUT`` (in-process: the generator is what
    the command runs, and this is a fixture, not the behaviour under test)."""
    from vidlang.data.synthvl import generate

    return Path(generate(out, "tiny", seed=0))


def train_tiny_mmn(data: Path, out: Path, *extra: str) -> Path:
    """Train the tiny MMN on ``data`` into ``out`` (in-process: a fixture, not the behaviour
    under test; the CLI's own startup would cost more than the training); the run folder."""
    from vidlang.engine import load_config
    from vidlang.engine.run import train

    train(load_config("mmn/cpu", [*TINY_MMN, f"data.root={data}", *extra]), out)
    return out
