"""Training-curve PNG from the run's CSV log (matplotlib, Agg backend)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def _epoch_series(rows: list[dict[str, str]], prefix: str) -> dict[str, list[tuple[int, float]]]:
    """Epoch-level series: ``train/<term>_epoch`` and ``val/<metric>`` columns."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if not key.startswith(prefix) or value in ("", None) or row.get("epoch") in ("", None):
                continue
            if prefix == "train/" and not key.endswith("_epoch"):
                continue
            series.setdefault(key, []).append((int(float(row["epoch"])) + 1, float(value)))
    return series


def plot_training_curves(csv_paths: str | Path | Sequence[str | Path], png_path: str | Path) -> Path | None:
    """Loss terms per epoch (left) and validation metrics per epoch (right) from one or more
    CSV logs (a resumed run has several, in order); None if there is no log."""
    paths = [Path(csv_paths)] if isinstance(csv_paths, (str, Path)) else [Path(p) for p in csv_paths]
    rows: list[dict[str, str]] = []
    for path in paths:
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                rows.extend(csv.DictReader(f))
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, prefix, title in ((axes[0], "train/", "training losses"), (axes[1], "val/", "validation")):
        for name, points in sorted(_epoch_series(rows, prefix).items()):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=name.removeprefix(prefix).removesuffix("_epoch"))
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return Path(png_path)
