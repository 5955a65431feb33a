"""Shared test fixtures: the real annotation files and a small thread budget for torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path:
    env = os.environ.get("VIDLANG_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or $VIDLANG_SHARED_DATA). Skipped locally when absent; in CI
    (CI=true) its absence is a failure, because CI is promised the data."""
    path = _shared_data_dir()
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"shared data not found at {path}")
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    try:
        import torch

        torch.set_num_threads(min(2, os.cpu_count() or 1))
    except ImportError:
        pass


from serve_support import serve_demo  # noqa: E402,F401  (session fixture of the serve tests)
