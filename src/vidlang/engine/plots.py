"""Training-curve PNG from the run's CSV log (matplotlib, Agg backend).

Panels: training loss terms; validation metrics on their own scale (percent); counts and
ranks (``queries``, ``skipped``, ``MdR`` ...) on a third axis, so a count of 39 never squashes a
recall of 0.5. Epoch ticks are integers, every series has its own colour and marker, legends
sit outside the plotting area, and a NaN / infinite value is marked on the curve and named in
the legend (matplotlib would silently leave a gap).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Series = dict[str, list[tuple[int, float]]]

_COUNT_OR_RANK = re.compile(r"^(queries|skipped|videos|texts|captions|count|num_|n_)|(^|\s)(MdR|MnR)\b")
_MARKERS = "osD^v<>pX*h"


def _epoch_series(rows: list[dict[str, str]], prefix: str) -> Series:
    """Epoch-level series: ``train/<term>_epoch`` and ``val/<metric>`` columns. A later row
    for the same epoch wins (a resumed run's log repeats what the killed run logged)."""
    series: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if not key or not key.startswith(prefix) or value in ("", None) or row.get("epoch") in ("", None):
                continue
            if prefix == "train/" and not key.endswith("_epoch"):
                continue
            series.setdefault(key, {})[int(float(row["epoch"])) + 1] = float(value)
    return {k: sorted(v.items()) for k, v in series.items()}


def _is_count(name: str) -> bool:
    return bool(_COUNT_OR_RANK.search(name))


def _colours(n: int) -> list[Any]:
    """``n`` distinct colours (tab10, tab20, then evenly spaced hues)."""
    import matplotlib

    if n <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(n)]
    return [matplotlib.colormaps["hsv"](i / n) for i in range(n)]


def _draw(ax: Any, series: Series, strip: str, title: str) -> None:
    """One panel; non-finite points are drawn as red crosses at the panel top and named."""
    names = sorted(series)
    for i, (name, colour) in enumerate(zip(names, _colours(len(names)))):
        xs, ys = zip(*series[name])
        bad = [x for x, y in series[name] if not math.isfinite(y)]
        label = name.removeprefix(strip).removesuffix("_epoch")
        if bad:
            label += f" (NaN/inf at epoch {', '.join(map(str, bad))})"
        ax.plot(xs, [y if math.isfinite(y) else math.nan for y in ys], marker=_MARKERS[i % len(_MARKERS)],
                color=colour, label=label)
    bad_x = sorted({x for name in names for x, y in series[name] if not math.isfinite(y)})
    if bad_x:
        top = ax.get_ylim()[1]
        ax.plot(bad_x, [top] * len(bad_x), linestyle="none", marker="x", markersize=10, color="red",
                label="non-finite value (not plotted)", clip_on=False)
        ax.set_title(f"{title} - NaN/inf at epoch {', '.join(map(str, bad_x))}", color="red")
    else:
        ax.set_title(title)


def training_curves_figure(rows: list[dict[str, str]]) -> Any:
    """The matplotlib figure of :func:`plot_training_curves` (its axes: losses, metrics and,
    when logged, counts / ranks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    train = _epoch_series(rows, "train/")
    val = _epoch_series(rows, "val/")
    metrics = {k: v for k, v in val.items() if not _is_count(k.removeprefix("val/"))}
    counts = {k: v for k, v in val.items() if _is_count(k.removeprefix("val/"))}
    panels = [(train, "train/", "training losses"), (metrics, "val/", "validation metrics")]
    if counts:
        panels.append((counts, "val/", "validation counts / ranks"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (series, strip, title) in zip(axes[0], panels):
        _draw(ax, series, strip, title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:  # below the axes, never over a curve
            ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                      frameon=False)
    fig.tight_layout()
    return fig


def plot_training_curves(csv_paths: str | Path | Sequence[str | Path], png_path: str | Path) -> Path | None:
    """Loss terms, validation metrics and counts per epoch from one or more CSV logs (a resumed
    run has several, in order); None if there is no log."""
    paths = [Path(csv_paths)] if isinstance(csv_paths, (str, Path)) else [Path(p) for p in csv_paths]
    rows: list[dict[str, str]] = []
    for path in paths:
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as f:
                rows.extend(csv.DictReader(f))
    if not rows:
        return None
    import matplotlib.pyplot as plt

    fig = training_curves_figure(rows)
    fig.savefig(png_path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(png_path)
