"""curves.png and the demo's timeline.png, checked on the matplotlib objects: counts on their
own axis, integer epoch ticks, distinct colours, legends outside the plotting areas, NaN named,
every prediction visible with its score."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from vidlang.cli.demo import timeline_figure  # noqa: E402
from vidlang.engine.plots import plot_training_curves, training_curves_figure  # noqa: E402

VAL = [f"R@{r},IoU>=0.{t} [mmn]" for r in (1, 5) for t in (3, 5, 7)] + ["mIoU [mmn]"]


def _rows() -> list[dict[str, str]]:
    rows = []
    for epoch in range(3):
        rows.append({"epoch": str(epoch), "step": str(epoch), "train/loss_epoch": str(1.0 - 0.1 * epoch),
                     "train/loss_iou_epoch": "nan" if epoch == 1 else str(0.5 - 0.1 * epoch)})
        rows.append({"epoch": str(epoch), "step": str(epoch),
                     **{f"val/{k}": str(10.0 + i + epoch) for i, k in enumerate(VAL)},
                     "val/queries [mmn]": "39.0", "val/skipped [mmn]": "0.0"})
    return rows


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_curves_axes_ticks_colours_legends_and_nan() -> None:
    fig = training_curves_figure(_rows())
    fig.canvas.draw()
    losses, metrics, counts = fig.axes[:3]
    assert len(fig.axes) == 3
    labels = {ax: [ln.get_label() for ln in ax.lines if not ln.get_label().startswith("non-finite")]
              for ax in (losses, metrics, counts)}
    assert sorted(labels[counts]) == ["queries [mmn]", "skipped [mmn]"]  # counts on their own axis
    assert not any(x.startswith(("queries", "skipped")) for x in labels[metrics])
    assert len(labels[metrics]) == len(VAL)
    renderer = fig.canvas.get_renderer()
    for ax in (losses, metrics, counts):
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)  # whole epochs only
        colours = [tuple(ln.get_color()) if not isinstance(ln.get_color(), str) else ln.get_color()
                   for ln in ax.lines]
        assert len(set(colours)) == len(colours)  # every series its own colour
        legend = ax.get_legend()
        assert legend is not None
        assert not _overlaps(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
    assert "loss_iou (NaN/inf at epoch 2)" in labels[losses]
    assert "NaN/inf at epoch 2" in losses.get_title()
    assert any(ln.get_label().startswith("non-finite") for ln in losses.lines)


def test_curves_png_is_written_from_several_logs_later_rows_winning(tmp_path: Path) -> None:
    import csv

    rows = _rows()
    paths = []
    for i, part in enumerate((rows[:4], rows[2:])):  # the resumed log repeats epoch 2
        path = tmp_path / f"m{i}.csv"
        keys = sorted({k for r in part for k in r})
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows(part)
        paths.append(path)
    assert plot_training_curves(paths, tmp_path / "curves.png").stat().st_size > 10_000
    fig = training_curves_figure(rows[:4] + rows[2:])
    loss = next(ln for ln in fig.axes[0].lines if ln.get_label() == "loss")
    assert list(loss.get_xdata()) == [1, 2, 3]


def test_timeline_shows_every_prediction_with_its_score_and_a_legend_off_the_bars() -> None:
    panels = [("v1", 30.0, [("a person opens the door", [[2.0, 9.0]],
                             [[0.0, 30.0, 0.91], [3.0, 10.0, 0.52], [0.0, 29.0, 0.11]]),
                            ("a person sits", [[10.0, 20.0]], [[10.0, 21.0, 0.7]])]),
              ("v2", 12.0, [("someone waves", [[1.0, 4.0]], [[1.0, 5.0, 0.33], [0.0, 12.0, 0.2]])])]
    fig = timeline_figure(panels)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["#1 0.91", "#2 0.52", "#3 0.11", "#1 0.7", "#1 0.33", "#2 0.2"]
    for ax in fig.axes:  # overlapping windows sit in separate lanes: no bar covers another
        bars = [p.get_bbox() for p in ax.patches]
        for i, a in enumerate(bars):
            for b in bars[i + 1:]:
                assert not (a.y0 < b.y1 and b.y0 < a.y1 and a.x0 < b.x1 and b.x0 < a.x1)
    legend = fig.legends[0]
    box = legend.get_window_extent(renderer)
    assert all(not _overlaps(box, ax.get_window_extent(renderer)) for ax in fig.axes)
    assert math.isclose(fig.axes[0].get_xlim()[1], 30.0)
