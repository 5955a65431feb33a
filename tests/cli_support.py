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
